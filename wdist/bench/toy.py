"""``wdist bench toy``: training steps per second for each toy config and each vector critic.

Each (config, critic) pair trains for ``--steps`` steps ``--repeats`` times through
:func:`wdist.estimate` itself (its configuration derived from the file's with
:func:`dataclasses.replace`; evaluated once, after the last step, outside the timed window, without
references or the empirical Lipschitz check); the figure is the median over repeats of the median
step time after ``--warmup`` steps.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch
from pytorch_lightning.callbacks import Callback

from wdist.bench._provenance import provenance, write_result
from wdist.bench._timing import describe_device
from wdist.config import CriticConfig, EstimateConfig, default_config_path, parse_config

__all__ = ["run_toy_benchmark", "timed_config", "cli"]

_CRITICS = ["bjorck-mlp", "sn-mlp", "gp-mlp"]


class _StepTimer(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._t = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self.times.append(time.perf_counter() - self._t)


def timed_config(cfg: EstimateConfig, critic: str, steps: int, accelerator: str) -> EstimateConfig:
    """``cfg`` with ``critic`` (the file's options for ``bjorck-mlp``, only its ``width`` and ``depth``
    for the others; ``gp-mlp`` with the ``wgan-gp`` loss) trained for ``steps`` steps on one
    ``accelerator`` device, evaluated once at the last step, without references, train-subset
    diagnosis or empirical Lipschitz check."""
    options = dict(cfg.critic.options)
    if critic != "bjorck-mlp":
        options = {k: v for k, v in options.items() if k in ("width", "depth")}
    train = replace(cfg.train, steps=steps, eval_every=steps, loss="wgan-gp" if critic == "gp-mlp" else cfg.train.loss)
    return replace(
        cfg, critic=CriticConfig(critic, options), train=train, out=None,
        trainer=replace(cfg.trainer, accelerator=accelerator, devices=1),
        eval=replace(cfg.eval, ot_samples=0, ot_floor=False, empirical_lipschitz_samples=0, train_subset=False),
    )  # fmt: skip


def _steps_per_second(cfg: EstimateConfig, warmup: int) -> float:
    from wdist.pipeline import estimate  # start-up cost: the training stack, imported when the benchmark runs

    timer = _StepTimer()
    estimate(cfg, callbacks=[timer], quiet=True)
    return 1.0 / statistics.median(timer.times[warmup:])


def run_toy_benchmark(
    configs: Sequence[Path],
    critics_: Sequence[str],
    steps: int = 60,
    warmup: int = 10,
    repeats: int = 3,
    accelerator: str = "cpu",
) -> list[dict]:
    """Rows ``{config, critic, steps_per_second, repeats, device}`` (median over repeats)."""
    rows = []
    dev = torch.device("cuda" if accelerator in ("gpu", "cuda") else "cpu")
    for config in configs:
        shared = parse_config(config)  # once: every run of this file derives its configuration from it
        for critic in critics_:
            cfg = timed_config(shared, critic, steps, accelerator)
            runs = [_steps_per_second(cfg, warmup) for _ in range(repeats)]
            rows.append(
                {
                    "config": config.stem,
                    "critic": critic,
                    "steps_per_second": statistics.median(runs),
                    "repeats": repeats,
                    "device": describe_device(dev),
                }
            )
    return rows


def format_table(rows: Sequence[dict]) -> str:
    lines = ["| config | critic | steps/s (median) |", "|---|---|---|"]
    lines += [f"| {r['config']} | {r['critic']} | {r['steps_per_second']:.1f} |" for r in rows]
    if rows:
        lines.append(f"\ndevice: {rows[0]['device']}; median over {rows[0]['repeats']} repeats")
    return "\n".join(lines)


def cli(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="wdist bench toy", description=__doc__)
    ap.add_argument("--configs", nargs="*", default=None, help="toy YAML files (default: configs/toy/*.yaml)")
    ap.add_argument("--critics", nargs="*", default=_CRITICS)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu", "cuda"])
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(list(argv))
    if args.steps <= args.warmup or args.warmup < 0 or args.repeats < 1:
        ap.error(
            f"need --steps > --warmup >= 0 and --repeats >= 1 (timed steps are those after the warm-up); "
            f"got --steps {args.steps}, --warmup {args.warmup}, --repeats {args.repeats}"
        )
    configs = (
        [Path(c) for c in args.configs]
        if args.configs
        else sorted((default_config_path().parent.parent / "toy").glob("*.yaml"))
    )
    made = provenance("toy", argv, describe_device(torch.device("cuda" if args.accelerator != "cpu" else "cpu")))
    rows = run_toy_benchmark(
        configs,
        args.critics,
        args.steps,
        args.warmup,
        args.repeats,
        "gpu" if args.accelerator == "cuda" else args.accelerator,
    )
    print(format_table(rows))
    if args.json:
        # the runs set their own thread count: the device as they used it, not as it was at the start
        write_result(args.json, {**made, "device": rows[0]["device"]} if rows else made, rows)
    return 0
