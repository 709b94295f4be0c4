"""``wdist bench toy``: training steps per second for each toy config and each vector critic.

Each (config, critic) pair trains for ``--steps`` steps ``--repeats`` times through the same
Lightning loop as ``wdist estimate`` (no held-out evaluation inside the timed window); the figure
is the median over repeats of the median step time after ``--warmup`` steps.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from wdist.bench._provenance import provenance, write_result
from wdist.bench._timing import describe_device
from wdist.config import default_config_path, load_config
from wdist.pipeline import build_run

__all__ = ["run_toy_benchmark", "cli"]

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


def _steps_per_second(config: Path, critic: str, steps: int, warmup: int, accelerator: str) -> float:
    overrides = ["--critic.name", critic, "--train.steps", str(steps), "--train.eval_every", str(steps)]
    cfg = load_config(config, overrides)
    if critic != "bjorck-mlp":
        cfg.critic.options = {k: v for k, v in cfg.critic.options.items() if k in ("width", "depth")}
    if critic == "gp-mlp":
        cfg.train.loss = "wgan-gp"
    run = build_run(cfg)
    timer = _StepTimer()
    trainer = pl.Trainer(
        max_steps=steps,
        val_check_interval=steps,
        check_val_every_n_epoch=None,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        accelerator=accelerator,
        devices=1,
        inference_mode=False,
    )
    trainer.fit(run.system, datamodule=run.datamodule)
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
        for critic in critics_:
            runs = [_steps_per_second(config, critic, steps, warmup, accelerator) for _ in range(repeats)]
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
        write_result(args.json, made, rows)
    return 0
