"""The result of a trained run, assembled from the values its stages passed down, and its files.

:func:`report` takes the run's :class:`~wdist.assembly.Session` (its pieces, Trainer, clock and
loggers), the test evaluation and the configuration record, and adds what is measured after
training: the empirical Lipschitz check on select samples, the exact-OT references (solved beside
training or now) and the run record. It writes ``result.json``, ``bound_curve.png`` and the W&B
summary when the run has a folder.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytorch_lightning as pl
import torch

import critics
from critics.empirical import empirical_lipschitz
from wdist._version import __version__
from wdist.assembly import Session
from wdist.evaluation import Evaluation
from wdist.loggers import finish_wandb
from wdist.plots import plot_bound_curve
from wdist.results import Result, RunRecord
from wdist.seeds import EMPIRICAL_LIPSCHITZ_OFFSET, generator
from wdist.sources import Generator

__all__ = ["report", "versions", "device_text", "precision_text"]


def versions() -> dict[str, str]:
    """Versions of everything that shapes the number."""
    import ot
    import torchvision

    return {
        "wdist": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pytorch_lightning": pl.__version__,
        "pot": ot.__version__,
        "numpy": np.__version__,
    }


def device_text(trainer: pl.Trainer) -> str:
    """The device a run trained on, as the result records it (the GPU's name, or the CPU and its
    torch threads), with the number of processes when several trained."""
    device = trainer.strategy.root_device
    if device.type == "cuda":
        text = f"cuda ({torch.cuda.get_device_name(device)})"
    else:
        threads = torch.get_num_threads()
        text = f"{device.type} ({platform.processor() or platform.machine()}, {threads} thread{'s' * (threads != 1)})"
    return text + (f" x {trainer.world_size} processes" if trainer.world_size > 1 else "")


# Lightning's short spellings of its precision settings, as its Trainer reports them
_PRECISION_ALIASES = {"16": "16-mixed", "bf16": "bf16-mixed", "32": "32-true", "64": "64-true"}


def precision_text(precision: Any) -> str:
    """A Lightning precision setting in its long spelling (``"32"`` -> ``"32-true"``)."""
    text = str(precision)
    return _PRECISION_ALIASES.get(text, text)


def report(
    session: Session,
    tested: Evaluation,
    record: dict[str, Any],
    out_dir: Optional[Path],
    auto: Optional[dict[str, Any]] = None,
) -> Result:
    """The result of the reported run, written into ``out_dir`` when given.

    ``tested``: its test evaluation (the bound); ``record``: its configuration as ``config.yaml``
    holds it; ``auto``: for ``critic.name: auto``, the choice of critic. Added here: the empirical
    Lipschitz check, the largest gradient norm of the reported critic at ``n`` select samples of
    each side and ``n`` interpolates between them (``n = eval.empirical_lipschitz_samples``; an
    empirical *lower* estimate of Lip(f), set beside the certificate; the test split is read once,
    by the evaluation of the bound), and the exact-OT references.
    """
    run, trainer = session.run, session.trainer
    cfg, system, p, q = run.cfg, run.system, run.sides.p, run.sides.q
    device, precision = device_text(trainer), precision_text(trainer.precision)
    precision_requested = precision_text(cfg.trainer.precision)
    n = cfg.eval.empirical_lipschitz_samples
    emp: Optional[float] = None
    if n > 0:
        xp, xq = system.select_samples()
        system.critic.eval()
        gen = generator(cfg.seed, EMPIRICAL_LIPSCHITZ_OFFSET)
        emp = float(empirical_lipschitz(system.critic, xp[:n], xq[:n], n_interpolates=n, generator=gen))
    refs = session.references()
    system.count_evaluated_draws("the samples of the exact-OT references")
    ranges = system.range_records()
    run_record = RunRecord(
        critic=cfg.critic.name, loss=system.train_cfg.loss, p=p.describe(), q=q.describe(),
        shape=list(p.shape), domain=None if p.domain is None else [float(p.domain[0]), float(p.domain[1])],
        steps=int(trainer.global_step), seconds=session.clock.total_seconds, device=device,
        versions=versions(), config=record,
        precision=precision, precision_requested=precision_requested,
        loss_default=critics.default_loss(cfg.critic.name),
        segments=session.clock.segments, threads=run.threads.record(),
        generators={
            side: {**src.record(), **({"range_check": ranges[side]} if side in ranges else {})}
            for side, src in (("p", p), ("q", q)) if isinstance(src, Generator)
        },
        split=run.datamodule.split_record(),
    )  # fmt: skip
    result = Result.from_evaluation(
        tested, run_record, system.evaluations, refs, run.sides.exact_w1, run.sides.exact_w1_method, emp,
        system.selection.record(), system.selected_evaluation, auto=auto,
    )  # fmt: skip
    if out_dir is not None:
        plot = plot_bound_curve(
            result.curve, out_dir / "bound_curve.png", exact_w1=None if result.exact is None else result.exact.w1,
            empirical_ot=result.references.empirical_ot_w1, empirical_ot_floor=result.references.empirical_ot_floor,
            one_lipschitz=result.one_lipschitz, title=f"{result.run.critic}: {result.run.p} vs {result.run.q}",
            reported=(result.bound.step, result.lower_bound, result.bound.lower_bound_lo, result.bound.lower_bound_hi),
        )  # fmt: skip
        result.save(out_dir / "result.json")
        summary = result.to_dict()
        summary.pop("curve")
        summary["run"].pop("config")
        finish_wandb(session.loggers, summary=summary, images={"bound_curve": plot})
    return result
