"""``wdist bench estimate``: wall time until the certified lower bound settles within 1% of its final value.

Each (setup, critic) pair runs ``wdist.estimate`` once, with held-out evaluation every
``--eval-every`` steps. A callback stamps the wall clock (``time.perf_counter``) at the start
of training and at the end of every evaluation; the bound curve of the result gives the lower
bound at each of those evaluations. Reported:

* the run's result: the certified lower bound on the test split with its 95% interval;
* ``final``: the bound of the select-split curve at the last evaluation (the curve the run selects
  its state on: the test split is evaluated once, at the end);
* ``time to 1%``: wall seconds from the start of training to the first evaluation after which
  *every* later select-split lower bound lies within 1% of ``final`` (``|lb - final| <= 0.01 |final|``),
  with the step it happened at; evaluations included (they are part of any run);
* ``train-only``: the same time minus the time spent in evaluations up to that point (what a
  run with sparse evaluation would take to reach the same step);
* total steps and total training wall time.

The figure depends on the schedule (the configs use cosine decay to 0 over ``steps``, which
makes late bounds settle) and on the evaluation noise (``n_eval``); it is one run, not a median.

Setups:

``digits``      the offline default ``configs/digits/default.yaml`` (8 x 8 digits vs the bundled
                ``digits/wgan-gp-8``; 600 steps, batch 128, Adam 2e-3 cosine), critic overridden.
``cifar-like``  3 x 32 x 32: P = 5120 smoothed random images written to a temporary ``.npy``
                (8 x 8 Gaussian noise, bilinearly upsampled to 32 x 32, ``tanh(1.5 x)``, stored as
                uint8; seed 0) read through ``TensorFile``; Q = ``lconvnet/wgan-gp-32`` with RANDOM
                weights (seeded; no checkpoint needed) and batch-statistics batch norm (as the
                published sampler; with running statistics its random-weight samples are all nearly
                0); batch 64, Adam 1e-3 cosine, 1024 held-out pairs. Time is the critic's mostly:
                this generator decodes 64 images in ~0.1 s on a CPU core.

Exact-OT references and the empirical Lipschitz check are switched off (they run after training
and are not part of the time to a bound).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from wdist.bench._provenance import provenance, write_result
from wdist.bench._timing import describe_device, fmt_or_na
from wdist.config import ConfigError, default_config_path
from wdist.pipeline import estimate
from wdist.report import format_interval

__all__ = ["run_estimate_benchmark", "time_to_within", "format_table", "cli", "SETUPS", "write_smooth_images"]

SETUPS = ("digits", "cifar-like")
CRITICS = ("bcop-dcgan", "soc-lipconvnet")
DEFAULT_STEPS = {"digits": None, "cifar-like": 1000}  # None: the config's own (600)
DEFAULT_EVAL_EVERY = {"digits": 10, "cifar-like": 25}
CIFAR_LIKE_N = 5120
CIFAR_LIKE_GENERATOR = "lconvnet/wgan-gp-32"  # DCGAN-sized: cheap to decode on a CPU (SNGAN-32's is ~30x dearer)


class EvalClock(Callback):
    """Wall-clock stamps: training start, and the start and end of every held-out evaluation."""

    def __init__(self) -> None:
        self.t_start: Optional[float] = None
        self.evals: list[dict[str, float]] = []  # {"step", "t_start", "t_end"}
        self._v0 = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.t_start = time.perf_counter()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._v0 = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.evals.append({"step": int(trainer.global_step), "t_start": self._v0, "t_end": time.perf_counter()})


def time_to_within(curve: Sequence[dict], clock: EvalClock, rel: float = 0.01) -> dict[str, Any]:
    """Pair the bound curve with the clock's stamps (by step) and find when the bound settled.

    Returns ``final``, ``step``, ``wall_s`` (from training start, evaluations included),
    ``train_s`` (evaluation time removed) and ``evals``; ``None`` values if nothing was evaluated.
    """
    stamps: dict[int, dict[str, float]] = {}
    for e in clock.evals:  # the last evaluation at a step wins, as in the curve
        stamps[e["step"]] = e
    points = [(p["step"], float(p["lower_bound"]), stamps.get(int(p["step"]))) for p in curve]
    points = [(s, lb, st) for s, lb, st in points if st is not None]
    if not points or clock.t_start is None:
        return {"final": None, "step": None, "wall_s": None, "train_s": None, "evals": 0}
    final = points[-1][1]
    k = len(points) - 1
    while k > 0 and abs(points[k - 1][1] - final) <= rel * abs(final):
        k -= 1
    step, _, st = points[k]
    wall = st["t_end"] - clock.t_start
    eval_time = sum(e["t_end"] - e["t_start"] for e in clock.evals if e["t_end"] <= st["t_end"])
    return {
        "final": final,
        "step": int(step),
        "wall_s": wall,
        "train_s": wall - eval_time,
        "evals": len(points),
        "curve_wall_s": [e["t_end"] - clock.t_start for _, _, e in points],
    }


def write_smooth_images(path: Path, n: int = CIFAR_LIKE_N, seed: int = 0) -> Path:
    """``n`` smooth random 3 x 32 x 32 images as uint8 (N, 3, 32, 32): 8 x 8 Gaussian noise,
    bilinear upsampling, ``tanh(1.5 x)`` into (-1, 1), quantised to 0..255."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.randn(n, 3, 8, 8, generator=gen)
    x = torch.tanh(1.5 * torch.nn.functional.interpolate(low, size=(32, 32), mode="bilinear", align_corners=False))
    arr = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    np.save(path, arr)
    return path


def _setup_config(
    setup: str, critic: str, tmp: Path, width: Optional[float], n_eval: Optional[int]
) -> tuple[Any, list[str], str]:
    """(config, base overrides, description) of one setup."""
    if setup == "digits":
        cfg: Any = str(default_config_path())
        over = ["--critic.name", critic]
        if width is not None:
            over += ["--critic.options", json.dumps({"width": width})]
        if n_eval is not None:
            over += ["--eval.n_eval", str(n_eval), "--eval.n_eval_q", str(n_eval), "--eval.batch_size", str(n_eval)]
        desc = "digits 1x8x8: sklearn digits vs bundled digits/wgan-gp-8 (configs/digits/default.yaml)"
        return cfg, over, desc
    if setup == "cifar-like":
        npy = tmp / "smooth_images_3x32x32.npy"
        if not npy.exists():
            write_smooth_images(npy)
        ne = n_eval or 1024
        cfg = {
            "p": {"class_path": "TensorFile", "init_args": {"path": str(npy)}},
            # batch statistics in batch norm (as the published LConvNet sampler): with random weights
            # and running statistics the samples are all nearly the constant 0 image
            "q": {
                "class_path": "Generator",
                "init_args": {"name": CIFAR_LIKE_GENERATOR, "batchnorm": "batch", "random_weights": True},
            },
            "critic": {"name": critic, "options": {} if width is None else {"width": width}},
            "train": {
                "steps": DEFAULT_STEPS["cifar-like"],
                "batch_size": 64,
                "optimizer": "adam",
                "lr": 1e-3,
                "schedule": "cosine",
            },
            "eval": {"n_eval": ne, "batch_size": min(ne, 512)},
            "seed": 0,
        }
        desc = (
            f"cifar-like 3x32x32: P = {CIFAR_LIKE_N} smoothed random images (TensorFile .npy, seed 0) vs "
            f"Q = {CIFAR_LIKE_GENERATOR} with random weights (seed 0), batch-statistics batch norm"
        )
        return cfg, [], desc
    raise ValueError(f"unknown setup {setup!r}; choose from {', '.join(SETUPS)}")


def run_one(
    setup: str,
    critic: str,
    *,
    steps: Optional[int] = None,
    eval_every: Optional[int] = None,
    accelerator: str = "cpu",
    width: Optional[float] = None,
    n_eval: Optional[int] = None,
    tmp: Path,
) -> dict[str, Any]:
    """One estimate with a clock; one table row."""
    cfg, over, desc = _setup_config(setup, critic, tmp, width, n_eval)
    steps = steps or DEFAULT_STEPS[setup]
    eval_every = eval_every or DEFAULT_EVAL_EVERY[setup]
    if steps is not None:
        over += ["--train.steps", str(steps)]
    over += [
        "--train.eval_every",
        str(eval_every),
        "--trainer.accelerator",
        accelerator,
        "--trainer.devices",
        "1",
        "--eval.ot_samples",
        "0",
        "--eval.empirical_lipschitz_samples",
        "0",
    ]
    clock = EvalClock()
    torch.manual_seed(0)  # the random-weight generator is built from the global RNG
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=".*(does not have many workers|num_workers|GPU available but not used|TPU available"
            "|module\\(s\\) in eval mode).*",
        )
        result = estimate(cfg, over, callbacks=[clock], quiet=True)
    total = time.perf_counter() - t0
    conv = time_to_within(result.curve, clock)
    return {
        "setup": setup,
        "critic": critic,
        "description": desc,
        "shape": list(result.run.shape),
        "accelerator": accelerator,
        "device": result.run.device,
        "steps": result.run.steps,
        "eval_every": eval_every,
        "n_eval_p": result.bound.n_eval_p,
        "n_eval_q": result.bound.n_eval_q,
        "lower_bound": result.lower_bound,
        "ci95": result.ci95,
        "certified": result.certified,
        "one_lipschitz": result.one_lipschitz,
        "final_curve_bound": conv["final"],
        "settled_step": conv["step"],
        "time_to_1pct_s": conv["wall_s"],
        "train_time_to_1pct_s": conv["train_s"],
        "train_seconds": result.run.seconds,
        "total_seconds": total,
        "evals": conv["evals"],
        "curve": [
            {"step": p["step"], "lower_bound": p["lower_bound"], "wall_s": w}
            for p, w in zip(result.curve, conv.get("curve_wall_s", []))
        ],
    }


def run_estimate_benchmark(
    setups: Sequence[str] = SETUPS,
    critics_: Sequence[str] = CRITICS,
    *,
    steps: Optional[int] = None,
    eval_every: Optional[int] = None,
    accelerator: str = "cpu",
    width: Optional[float] = None,
    n_eval: Optional[int] = None,
    log=None,  # noqa: ANN001
) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="wdist-bench-estimate-") as d:
        for setup in setups:
            for critic in critics_:
                row = run_one(
                    setup,
                    critic,
                    steps=steps,
                    eval_every=eval_every,
                    accelerator=accelerator,
                    width=width,
                    n_eval=n_eval,
                    tmp=Path(d),
                )
                if log is not None:
                    log(
                        f"  {setup} / {critic}: {row['time_to_1pct_s']:.1f} s to 1% of "
                        f"{row['final_curve_bound']:.4g} ({row['total_seconds']:.1f} s in all)"
                    )
                rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| setup | critic | certified lower bound, test split (95% CI) | select-split bound, last evaluation "
        "| 1-Lipschitz | time to 1% (s) | train-only (s) | at step | steps | train time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        # settled only at the last evaluation: the bound was still moving; the time is the run's length
        last = " (last eval)" if r["evals"] > 1 and r["settled_step"] == r["curve"][-1]["step"] else ""
        lines.append(
            f"| {r['setup']} | {r['critic']} | {fmt_or_na(r['lower_bound'], '.4f')} {format_interval(*r['ci95'])} "
            f"| {fmt_or_na(r['final_curve_bound'], '.4f')} "
            f"| {'yes' if r.get('one_lipschitz', r['certified']) else 'no'} | {fmt_or_na(r['time_to_1pct_s'], '.1f')} "
            f"| {fmt_or_na(r['train_time_to_1pct_s'], '.1f')} | {r['settled_step']}{last} "
            f"| {r['steps']} | {fmt_or_na(r['train_seconds'], '.1f')} |"
        )
    if rows:
        lines.append("")
        seen = set()
        for r in rows:
            if r["setup"] not in seen:
                seen.add(r["setup"])
                lines.append(
                    f"* {r['description']}; the select split evaluated every {r['eval_every']} steps; the bound "
                    f"on {r['n_eval_p']} + {r['n_eval_q']} test samples (P + Q)"
                )
        lines.append(f"* device: {rows[0]['device']}; one run per row (not a median)")
        if any(r["evals"] > 1 and r["settled_step"] == r["curve"][-1]["step"] for r in rows):
            lines.append(
                "* (last eval): the bound was still moving by more than 1% before the last evaluation; train longer"
            )
    return "\n".join(lines)


def cli(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="wdist bench estimate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--critics", nargs="+", default=list(CRITICS))
    ap.add_argument(
        "--steps", type=int, default=None, help="training steps (default: digits 600 as its config, cifar-like 1000)"
    )
    ap.add_argument(
        "--eval-every", type=int, default=None, help="held-out evaluation interval (default: digits 10, cifar-like 25)"
    )
    ap.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu", "cuda"])
    ap.add_argument(
        "--width",
        type=float,
        default=None,
        help="critic width multiplier (default: digits 0.25 as its config, cifar-like 1.0)",
    )
    ap.add_argument(
        "--n-eval",
        type=int,
        default=None,
        help="held-out samples of each side (default: digits 500 of P and 5000 of Q, cifar-like 1024 of each)",
    )
    ap.add_argument("--json", default=None, help="also write the rows (with their curves) to this JSON file")
    args = ap.parse_args(list(argv))
    accelerator = "gpu" if args.accelerator == "cuda" else args.accelerator
    if accelerator == "gpu" and not torch.cuda.is_available():
        print("wdist bench estimate: error: --accelerator gpu but no CUDA device is available.", file=sys.stderr)
        return 2
    for name, v in (("--steps", args.steps), ("--eval-every", args.eval_every), ("--n-eval", args.n_eval)):
        if v is not None and v < 1:
            print(f"wdist bench estimate: error: {name} must be >= 1, got {v}.", file=sys.stderr)
            return 2
    made = provenance("estimate", argv, describe_device(torch.device("cuda" if accelerator == "gpu" else "cpu")))
    try:
        rows = run_estimate_benchmark(
            args.setups,
            args.critics,
            steps=args.steps,
            eval_every=args.eval_every,
            accelerator=accelerator,
            width=args.width,
            n_eval=args.n_eval,
            log=lambda s: print(s, file=sys.stderr, flush=True),
        )
    except ConfigError as err:
        print(f"wdist bench estimate: error: {err}", file=sys.stderr)
        return 2
    print(format_table(rows))
    if args.json:
        write_result(args.json, made, rows)
    return 0
