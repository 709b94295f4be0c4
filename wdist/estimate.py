"""One estimate end to end: config -> sources -> critic -> Trainer.fit -> held-out bound -> Result.

This is the data flow of DESIGN.md; each step is a call into the module that owns it.
"""

from __future__ import annotations

import logging
import os
import platform
import time
import warnings
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

import critics
from critics.empirical import empirical_lipschitz
from wdist.config import ConfigError, EstimateConfig, resolve_config
from wdist.data import PairDataModule
from wdist.loggers import finish_wandb, make_loggers
from wdist.ot import exact_w1
from wdist.plots import plot_bound_curve
from wdist.results import CERTIFIED_TOLERANCE, Result, atomic_write_text
from wdist.sources import FiniteSource, LatentSource, Source, check_compatible
from wdist.stats import mean_difference_interval

__all__ = ["estimate", "references", "prepare_output_dir", "build_run", "versions"]


def versions() -> dict[str, str]:
    """Versions of everything that shapes the number."""
    import ot
    import torchvision

    from wdist import __version__

    return {
        "wdist": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pytorch_lightning": pl.__version__,
        "pot": ot.__version__,
        "numpy": np.__version__,
    }


def prepare_output_dir(out: Union[str, os.PathLike]) -> Path:
    """Create ``out`` and prove it is writable before any training happens."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".wdist-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"Output folder {str(path)!r} is not writable ({type(err).__name__}: {err.strerror or err}). "
            "Choose a folder you can write to with --out DIR."
        ) from None
    return path


def _check_ot_fits(ot_samples: int) -> None:
    """Refuse, before any training, an exact-OT reference too large for this machine's memory."""
    from wdist.ot import max_exact_samples

    largest = max_exact_samples()
    if ot_samples and largest is not None and ot_samples > largest:
        raise ConfigError(
            f"Invalid configuration: eval.ot_samples={ot_samples} needs {16 * ot_samples ** 2 / 2**30:.1f} GiB for the "
            f"exact-OT cost matrix and plan (16 x n^2 bytes), more than half of this machine's available memory; "
            f"use eval.ot_samples <= {largest} (or 0 to skip the reference)."
        )


def _set_aside_previous_result(out: Path) -> None:
    """A new run into a folder holding an earlier run's result renames that result to
    ``previous_result.json`` (and its plot), so that a new run failing part-way never leaves the
    old ``result.json`` beside the new config and metrics, looking like this run's result."""
    for name in ("result.json", "bound_curve.png"):
        try:
            os.replace(out / name, out / f"previous_{name}")
        except FileNotFoundError:  # none there (or another DDP rank moved it first)
            pass


def _sides(cfg: EstimateConfig) -> tuple[Source, Source, Optional[float], Optional[str]]:
    if cfg.toy is not None:
        return cfg.toy.p, cfg.toy.q, cfg.toy.exact_w1(), cfg.toy.exact_w1_method()
    assert cfg.p is not None and cfg.q is not None
    return cfg.p, cfg.q, None, None


def _samples(source: Source, n: int, gen: torch.Generator, device: torch.device, batch: int = 1024) -> torch.Tensor:
    """``n`` samples on the CPU; a generator side decodes its latents on ``device`` in batches."""
    if isinstance(source, LatentSource):
        z = source.sample_latent(n, gen)
        module = source.module.to(device)
        with torch.no_grad():
            return torch.cat([module(z[i : i + batch].to(device)).float().cpu() for i in range(0, n, batch)])
    return source.sample(n, gen)


def _reference_pair(source: Source, n: int, gen: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint samples of one source (for the same-distribution floor)."""
    if isinstance(source, FiniteSource):
        m = min(n, len(source) // 2)
        perm = torch.randperm(len(source), generator=gen)
        return source.data[perm[:m]], source.data[perm[m : 2 * m]]
    return _samples(source, n, gen, device), _samples(source, n, gen, device)


def references(
    p: Source, q: Source, n: int, floor: bool, seed: int, device: torch.device
) -> dict[str, Any]:
    """Exact empirical OT between ``n`` samples of P and of Q (finite sets: a random subset, or all
    of it when smaller), and optionally P against a disjoint sample of P (the sampling floor).

    Biased upwards: E W1(P_n, Q_n) >= W1(P, Q). In high dimension the bias dominates, which the
    floor makes visible.
    """
    out: dict[str, Any] = {
        "empirical_ot_w1": None, "empirical_ot_n": None, "empirical_ot_floor": None, "empirical_ot_floor_n": None,
    }
    if n <= 0:
        return out
    gen = torch.Generator().manual_seed(seed + 2_000_029)

    def draw(src: Source) -> torch.Tensor:
        if isinstance(src, FiniteSource):
            m = min(n, len(src))
            return src.data[torch.randperm(len(src), generator=gen)[:m]]
        return _samples(src, n, gen, device)

    xp, xq = draw(p), draw(q)
    m = min(len(xp), len(xq))
    xp, xq = xp[:m], xq[:m]
    out["empirical_ot_w1"] = exact_w1(xp.flatten(1), xq.flatten(1)).value
    out["empirical_ot_n"] = m
    if floor:
        a, b = _reference_pair(p, m, gen, device)
        out["empirical_ot_floor"] = exact_w1(a.flatten(1), b.flatten(1)).value if len(a) and len(b) else None
        # a finite P gives two disjoint halves, so its floor may use fewer samples than the OT value
        out["empirical_ot_floor_n"] = int(min(len(a), len(b))) if out["empirical_ot_floor"] is not None else None
    return out


class _Clock(Callback):
    """Wall time of training proper (excludes set-up and the references)."""

    def __init__(self) -> None:
        self.start: Optional[float] = None
        self.seconds = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.start is not None:
            self.seconds = time.perf_counter() - self.start


def _quiet_lightning(quiet: bool) -> None:
    """Silence Lightning's chatter that says nothing about the estimate."""
    for pattern in (
        ".*Experiment logs directory .* exists and is not empty.*",
        ".*isinstance\\(treespec, LeafSpec\\).*",
        ".*in eval mode.*",  # the frozen generator is in eval mode on purpose
        ".*does not have many workers.*",  # samples are generated in-process, on purpose
        ".*Checkpoint directory .* exists and is not empty.*",
        ".*`IterableDataset` has `__len__` defined.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)
    # Lightning's INFO lines (accelerator found, tips) say nothing the result does not; the
    # device is part of every result. Warnings stay visible.
    for name in ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_run(cfg: EstimateConfig):
    """The sources, critic, data module and training system of a configuration (no Trainer)."""
    from wdist.system import CriticSystem

    p, q, exact, method = _sides(cfg)
    check_compatible(p, q)
    shape = tuple(p.shape)
    try:
        critic = critics.build(cfg.critic.name, shape, **cfg.critic.options)
    except (ValueError, TypeError) as err:  # a bad option value: name the option block
        raise ConfigError(
            f"Invalid configuration: critic {cfg.critic.name!r} could not be built with critic.options="
            f"{dict(cfg.critic.options)!r} for inputs of shape {shape}: {err}"
        ) from None
    dm = PairDataModule(p, q, cfg.train.batch_size, cfg.eval.n_eval, cfg.eval.batch_size, cfg.seed)
    system = CriticSystem(
        critic,
        shape,
        p_decoder=p.module if isinstance(p, LatentSource) else None,
        q_decoder=q.module if isinstance(q, LatentSource) else None,
        loss=cfg.train.loss,
        gp_lambda=cfg.train.gp_lambda,
        optimizer=cfg.train.optimizer,
        lr=cfg.train.lr,
        betas=tuple(cfg.train.betas),
        momentum=cfg.train.momentum,
        weight_decay=cfg.train.weight_decay,
        schedule=cfg.train.schedule,
        max_steps=cfg.train.steps,
        confidence=cfg.eval.confidence,
        interval=cfg.eval.interval,
        domain=p.domain,
        seed=cfg.seed,
    )
    return p, q, exact, method, dm, system


def _config_record(cfg: EstimateConfig, resolved: Optional[dict]) -> dict[str, Any]:
    if resolved is not None:
        return resolved
    rec: dict[str, Any] = {}
    for k in ("critic", "train", "eval", "logger"):
        rec[k] = asdict(getattr(cfg, k))
    for k in ("toy", "p", "q"):
        v = getattr(cfg, k)
        rec[k] = None if v is None else (asdict(v) if is_dataclass(v) else v.describe())
    rec["seed"] = cfg.seed
    return rec


def _trainer(cfg: EstimateConfig, loggers: list, cbs: list, out_dir: Optional[Path], quiet: bool) -> pl.Trainer:
    """The Lightning Trainer of a run."""
    from wdist.system import AtomicCheckpointIO

    return pl.Trainer(
        plugins=[AtomicCheckpointIO()],
        max_steps=cfg.train.steps,
        val_check_interval=cfg.train.eval_every,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        accelerator=cfg.train.accelerator,
        devices=cfg.train.devices,
        num_nodes=cfg.train.num_nodes,
        strategy=cfg.train.strategy,
        precision=cfg.train.precision,
        logger=loggers if loggers else False,
        callbacks=cbs,
        enable_checkpointing=bool(out_dir is not None and cfg.train.checkpoint_every),
        enable_progress_bar=cfg.train.progress_bar and not quiet,
        enable_model_summary=False,
        inference_mode=False,
        log_every_n_steps=max(1, min(50, cfg.train.eval_every)),
        default_root_dir=str(out_dir) if out_dir is not None else None,
    )


def estimate(
    config: Union[str, os.PathLike, dict, EstimateConfig, None] = None,
    overrides: Sequence[str] = (),
    *,
    out: Union[str, os.PathLike, None] = None,
    resume: Union[str, os.PathLike, None] = None,
    callbacks: Sequence[Callback] = (),
    quiet: bool = False,
) -> Result:
    """Train a critic on P vs Q and return the held-out, certified lower bound on W1(P, Q).

    Parameters
    ----------
    config : YAML path, dict, :class:`~wdist.config.EstimateConfig`, or ``None`` for the bundled
        digits default.
    overrides : dotted command-line overrides, e.g. ``["--train.steps", "200"]``.
    out : output folder (overrides ``config.out``); receives ``result.json``, ``metrics.csv``,
        ``bound_curve.png``, ``config.yaml`` and ``checkpoints/``. ``None`` and no ``config.out``:
        nothing is written.
    resume : a previous run's output folder; training continues from ``checkpoints/last.ckpt``
        with that run's ``config.yaml`` (``config`` is then ignored; overrides still apply).

    Returns
    -------
    Result
        ``lower_bound = estimate / lipschitz_certificate`` with its interval; distances are L2 on
        the flattened samples, in the sources' domain.
    """
    from wdist.system import AtomicCheckpointIO, StepCheckpoint

    ckpt_path: Optional[str] = None
    if resume is not None:
        rdir = Path(resume)
        saved = rdir / "config.yaml"
        last = rdir / "checkpoints" / "last.ckpt"
        if not saved.is_file():
            raise ConfigError(f"Cannot resume from {str(rdir)!r}: it has no config.yaml (is it a wdist output folder?).")
        if not last.is_file():
            raise ConfigError(f"Cannot resume from {str(rdir)!r}: no checkpoint at {str(last)!r} (set train.checkpoint_every to write them).")
        config, ckpt_path, out = saved, str(last), (out or rdir)
    _quiet_lightning(quiet)
    cfg, resolved_yaml, resolved = resolve_config(config, overrides)
    _check_ot_fits(cfg.eval.ot_samples)
    out_dir = Path(out) if out is not None else (Path(cfg.out) if cfg.out else None)
    if out_dir is not None:
        prepare_output_dir(out_dir)
        if ckpt_path is None:
            _set_aside_previous_result(out_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    p, q, exact, exact_method, dm, system = build_run(cfg)
    shape = tuple(p.shape)

    loggers: list = []
    cbs: list[Callback] = list(callbacks)
    clock = _Clock()
    cbs.append(clock)
    if out_dir is not None:
        loggers = make_loggers(
            out_dir, cfg.logger.kind, cfg.logger.project, cfg.logger.group, cfg.logger.name, config=resolved or {},
            resume=ckpt_path is not None,
        )
        if cfg.train.checkpoint_every:
            cbs.append(
                StepCheckpoint(
                    dirpath=out_dir / "checkpoints",
                    every_n_train_steps=cfg.train.checkpoint_every,
                    save_last=True,
                    save_top_k=1,
                    filename="step{step}",
                    auto_insert_metric_name=False,
                )
            )
        if resolved_yaml is not None and ckpt_path is None:
            atomic_write_text(out_dir / "config.yaml", resolved_yaml)
    try:
        trainer = _trainer(cfg, loggers, cbs, out_dir, quiet)
    except Exception as err:  # Lightning refusing the accelerator/devices/strategy/precision
        t = cfg.train
        raise ConfigError(
            f"Invalid configuration: the trainer refused train.accelerator={t.accelerator!r}, "
            f"train.devices={t.devices!r}, train.num_nodes={t.num_nodes!r}, train.strategy={t.strategy!r}, "
            f"train.precision={t.precision!r}: {err}"
        ) from None
    t0 = time.perf_counter()
    trainer.fit(system, datamodule=dm, ckpt_path=ckpt_path)
    if not system.curve or system.curve[-1]["step"] != trainer.global_step or system.last_eval is None:
        trainer.validate(system, datamodule=dm, verbose=False)
    train_seconds = clock.seconds or (time.perf_counter() - t0)

    last = system.last_eval
    assert last is not None
    device = trainer.strategy.root_device
    if trainer.global_rank != 0:
        return None  # type: ignore[return-value]  # rank 0 reports; the statistics are identical

    fp, fq = last["fp"], last["fq"]
    critic = system.critic
    report = critics.certificate_report(critic, shape)
    cert = report.total
    b = system.difference_range(cert)
    iv = mean_difference_interval(fp, fq, confidence=cfg.eval.confidence, method=cfg.eval.interval, value_range=b)
    certified = cert <= 1.0 + CERTIFIED_TOLERANCE

    emp = None
    if cfg.eval.empirical_lipschitz_samples > 0:
        gen = torch.Generator().manual_seed(cfg.seed + 3_000_017)
        n_emp = cfg.eval.empirical_lipschitz_samples
        heldout = dm.heldout
        assert heldout is not None
        zp, zq = heldout.p[:n_emp], heldout.q[:n_emp]
        xp = system._decode(zp.to(system.device), system.p_decoder)
        xq = system._decode(zq.to(system.device), system.q_decoder)
        critic.eval()
        emp = float(empirical_lipschitz(critic, xp, xq, n_interpolates=n_emp, generator=gen))
    refs = references(p, q, cfg.eval.ot_samples, cfg.eval.ot_floor, cfg.seed, device)

    lb, lb_lo, lb_hi = iv.estimate / cert, iv.lo / cert, iv.hi / cert
    if emp is not None and emp > cert * (1 + 1e-6):
        verdict = (
            f"INCONSISTENT: an observed gradient norm {emp:.6g} exceeds the certificate {cert:.6g}; "
            "the certificate is wrong for this critic; do not use the bound (please report this)."
        )
    elif certified:
        verdict = (
            f"certified: Lip(f) <= {cert:.6f} <= 1 + {CERTIFIED_TOLERANCE:g}, so the held-out estimate is a lower "
            f"bound on W1 up to sampling error ({100 * cfg.eval.confidence:.0f}% interval, {iv.method})."
        )
    else:
        verdict = (
            f"not certified: Lip(f) <= {cert:.6g} > 1 + {CERTIFIED_TOLERANCE:g}; the raw estimate {iv.estimate:.4g} "
            f"is NOT a bound on W1. estimate / certificate = {lb:.4g} is a valid (loose) lower bound."
        )
    result = Result(
        estimate=float(iv.estimate),
        lipschitz_certificate=float(cert),
        lower_bound=float(lb),
        stderr=float(iv.stderr),
        ci95=[float(lb_lo), float(lb_hi)] if abs(cfg.eval.confidence - 0.95) < 1e-12 else _ci95(fp, fq, cfg, cert, b),
        ci={
            "confidence": cfg.eval.confidence,
            "method": iv.method,
            "estimate_lo": float(iv.lo),
            "estimate_hi": float(iv.hi),
            "lower_bound_lo": float(lb_lo),
            "lower_bound_hi": float(lb_hi),
        },
        certified=bool(certified),
        verdict=verdict,
        exact_w1=None if exact is None else float(exact),
        exact_w1_method=exact_method,
        empirical_ot_w1=refs["empirical_ot_w1"],
        empirical_ot_floor=refs["empirical_ot_floor"],
        empirical_ot_n=refs["empirical_ot_n"],
        empirical_ot_floor_n=refs["empirical_ot_floor_n"],
        empirical_lipschitz=emp,
        certificate_layers=report.as_dict()["layers"],
        n_eval=int(fp.numel()),
        steps=int(trainer.global_step),
        seconds=float(train_seconds),
        device=f"{device.type}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)") + (f" x {trainer.world_size} processes" if trainer.world_size > 1 else ""),
        critic=cfg.critic.name,
        loss=cfg.train.loss,
        p=p.describe(),
        q=q.describe(),
        shape=list(shape),
        domain=None if p.domain is None else [float(p.domain[0]), float(p.domain[1])],
        versions=versions(),
        curve=list(system.curve),
        config=_config_record(cfg, resolved),
    )
    if out_dir is not None:
        plot = plot_bound_curve(
            result.curve,
            out_dir / "bound_curve.png",
            exact_w1=result.exact_w1,
            empirical_ot=result.empirical_ot_w1,
            empirical_ot_floor=result.empirical_ot_floor,
            certified=result.certified,
            title=f"{result.critic}: {result.p} vs {result.q}",
        )
        result.save(out_dir / "result.json")
        finish_wandb(
            loggers,
            summary={k: v for k, v in result.to_dict().items() if k not in ("curve", "config")},
            images={"bound_curve": plot},
        )
    return result


def _ci95(fp: torch.Tensor, fq: torch.Tensor, cfg: EstimateConfig, cert: float, b: Optional[float]) -> list[float]:
    iv = mean_difference_interval(fp, fq, confidence=0.95, method=cfg.eval.interval, value_range=b)
    return [float(iv.lo / cert), float(iv.hi / cert)]
