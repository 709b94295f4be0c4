"""Train the bundled generator ``digits/wgan-gp-8`` (WGAN-GP on scikit-learn's 8 x 8 digits).

Usage::

    python -m generators.train_digits --out generators/weights/digits_wgan_gp_8.pt
    python -m generators.train_digits --out /tmp/final.pt --snapshots 100 300 1000 3000 10000 \
        --snapshot-dir generators/weights/digits_track

``--snapshots`` also saves the generator after the given generator steps of the same run (the
training is unchanged: saving draws no random numbers), as ``<snapshot-dir>/digits_wgan_gp_8_step<N>.pt``
with one provenance file ``<snapshot-dir>/snapshots.json``: the series ``wdist track`` follows.

Writes three files side by side: the weights ``<out>`` (a raw state dict, float32), a sample grid
``<out>.png`` (left: 100 generated samples, right: 100 real digits, each pixel shown as a 4 x 4
block) and the recipe ``<out>.json`` (seed, steps, optimiser, penalty weight, wall time, torch
version, sha256 of the weights). Everything is seeded and runs on one CPU thread.

Data: ``sklearn.datasets.load_digits()``, 1797 images with intensities 0..16, mapped linearly to
[-1, 1] (``x / 8 - 1``), shape ``(1, 8, 8)``.

Objective (Gulrajani et al. 2017): the critic f maximises
``E f(x_real) - E f(G(z)) - lambda * E (||grad f(x_hat)||_2 - 1)^2`` with ``x_hat`` uniform on
segments between real and generated samples; the generator minimises ``-E f(G(z))``;
``n_critic`` critic steps per generator step.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from generators.architectures.digits import DigitsGenerator

__all__ = ["load_digit_images", "DigitsCritic", "train", "save_grid", "main", "SNAPSHOT_NAME"]


def load_digit_images() -> Tensor:
    """The 1797 scikit-learn digits as float32 of shape ``(1797, 1, 8, 8)`` in [-1, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits().data.astype(np.float32)  # (1797, 64), 0..16
    return torch.from_numpy(data / 8.0 - 1.0).view(-1, 1, 8, 8)


class DigitsCritic(nn.Module):
    """MLP critic ``64 -> width -> width -> 1`` with LeakyReLU(0.2); no normalisation (GP)."""

    def __init__(self, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, width),
            nn.LeakyReLU(0.2),
            nn.Linear(width, width),
            nn.LeakyReLU(0.2),
            nn.Linear(width, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Critic values, shape ``(N,)`` for ``x`` of shape ``(N, 1, 8, 8)``."""
        return self.net(x).squeeze(1)


def _gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, rng: torch.Generator) -> Tensor:
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=rng)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def train(
    steps: int = 10000,
    n_critic: int = 5,
    batch_size: int = 64,
    lr: float = 1e-4,
    betas: tuple[float, float] = (0.5, 0.9),
    gp_lambda: float = 10.0,
    seed: int = 0,
    lr_decay: str = "linear",
    log_every: int = 500,
    snapshots: Sequence[int] = (),
    on_snapshot: Optional[Callable[[int, DigitsGenerator], None]] = None,
) -> tuple[DigitsGenerator, list[dict[str, float]]]:
    """Train the digits generator with WGAN-GP on one CPU thread.

    Parameters
    ----------
    steps : int
        Generator updates; the critic gets ``n_critic`` updates before each.
    n_critic : int
        Critic updates per generator update.
    batch_size : int
        Real and generated samples per update.
    lr, betas : float, tuple of float
        Adam settings, the same for both networks.
    gp_lambda : float
        Weight of the gradient penalty.
    seed : int
        Seeds initialisation, latents, batches and interpolation weights.
    lr_decay : {"linear", "none"}
        ``linear`` lowers both learning rates linearly to 0 over the run (settles the generator,
        as in the WGAN-GP reference code); ``none`` keeps them constant.
    log_every : int
        Generator steps between log lines (critic gap ``E f(real) - E f(fake)`` and pixel
        statistics of 1000 samples against the data).
    snapshots : sequence of int
        Generator steps after which ``on_snapshot(step, generator)`` is called (after that step's
        update and learning-rate step). It must not draw random numbers, so that the run is the
        same with and without snapshots.
    on_snapshot : callable, optional
        Receives each snapshot; required when ``snapshots`` is not empty.

    Returns
    -------
    generator : DigitsGenerator
        Trained, in eval mode, on CPU.
    history : list of dict
        One entry per log line.
    """
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    data = load_digit_images()
    n = data.shape[0]
    G = DigitsGenerator()
    D = DigitsCritic()
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    if lr_decay not in ("linear", "none"):
        raise ValueError(f"lr_decay must be 'linear' or 'none', got {lr_decay!r}")
    bad = [s for s in snapshots if not 1 <= int(s) <= steps]
    if bad:
        raise ValueError(f"snapshot steps must lie in 1..{steps} (the generator steps of the run); got {bad}")
    if snapshots and on_snapshot is None:
        raise ValueError("snapshots were asked for but no on_snapshot callback receives them")
    snapshot_steps = {int(s) for s in snapshots}
    scheds = [
        torch.optim.lr_scheduler.LambdaLR(o, lambda i: 1.0 - i / steps if lr_decay == "linear" else 1.0)
        for o in (opt_g, opt_d)
    ]
    history: list[dict[str, float]] = []
    gap = torch.zeros(())
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        for _ in range(n_critic):
            real = data[torch.randint(n, (batch_size,), generator=rng)]
            with torch.no_grad():
                fake = G(torch.randn(batch_size, G.latent_dim, generator=rng))
            f_real, f_fake = D(real).mean(), D(fake).mean()
            gap = (f_real - f_fake).detach()
            loss_d = f_fake - f_real + gp_lambda * _gradient_penalty(D, real, fake, rng)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        loss_g = -D(G(torch.randn(batch_size, G.latent_dim, generator=rng))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for sched in scheds:
            sched.step()
        if step in snapshot_steps and on_snapshot is not None:
            on_snapshot(step, G)
        if step % log_every == 0 or step == steps:
            with torch.no_grad():
                x = G(torch.randn(1000, G.latent_dim, generator=rng))
            entry = {
                "step": float(step),
                "seconds": time.perf_counter() - t0,
                "critic_gap": float(gap),
                "pixel_mean_max_abs_diff": float((x.mean(0) - data.mean(0)).abs().max()),
                "pixel_std_max_abs_diff": float((x.std(0) - data.std(0)).abs().max()),
            }
            history.append(entry)
            print(
                f"step {step:6d}  {entry['seconds']:7.1f}s  gap {entry['critic_gap']:.4f}  "
                f"max|mean diff| {entry['pixel_mean_max_abs_diff']:.3f}  "
                f"max|std diff| {entry['pixel_std_max_abs_diff']:.3f}",
                flush=True,
            )
    G.eval()
    return G, history


def save_grid(fake: Tensor, real: Tensor, path: Path, scale: int = 4) -> None:
    """Write a PNG: 10 x 10 ``fake`` images on the left, 10 x 10 ``real`` on the right.

    ``fake`` and ``real`` have shape ``(>=100, 1, 8, 8)`` in [-1, 1]; -1 is drawn white, 1 black
    (as scikit-learn's digits are usually shown).
    """
    from PIL import Image

    def tile(x: Tensor) -> np.ndarray:
        x = ((1 - x[:100].clamp(-1, 1)) / 2 * 255).round().to(torch.uint8).view(10, 10, 8, 8)
        x = nn.functional.pad(x, (1, 1, 1, 1), value=255)  # 1-pixel white border per digit
        return x.permute(0, 2, 1, 3).reshape(100, 100).numpy()

    gap = np.full((100, 10), 160, dtype=np.uint8)
    img = np.concatenate([tile(fake), gap, tile(real)], axis=1)
    Image.fromarray(img, mode="L").resize((img.shape[1] * scale, img.shape[0] * scale), Image.NEAREST).save(path)


#: File name of the snapshot after ``step`` generator steps.
SNAPSHOT_NAME = "digits_wgan_gp_8_step{step:05d}.pt"


def _write_snapshot_record(folder: Path, saved: list[dict[str, object]], recipe: dict[str, object]) -> None:
    """``<folder>/snapshots.json``: the run's recipe (without its log) and every snapshot file."""
    record = {
        "name": "digits/wgan-gp-8 training snapshots",
        "what": "the generator of one WGAN-GP run saved after the given generator steps; load each with "
        "generators.load('digits/wgan-gp-8', checkpoint=FILE); the series `wdist track` follows by default",
        **{k: v for k, v in recipe.items() if k not in ("name", "history", "weights_file", "sample_grid")},
        "final_weights_sha256": recipe["sha256"],
        "snapshots": saved,
    }
    record.pop("sha256", None)
    record.pop("weights_bytes", None)
    (folder / "snapshots.json").write_text(json.dumps(record, indent=2) + "\n")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> None:
    """Command line: train, then write the weights, the sample grid and the recipe."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("generators/weights/digits_wgan_gp_8.pt"))
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--n-critic", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--gp-lambda", type=float, default=10.0)
    p.add_argument("--lr-decay", choices=["linear", "none"], default="linear")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--snapshots", type=int, nargs="*", default=[], help="generator steps to save snapshots after")
    p.add_argument("--snapshot-dir", type=Path, default=Path("generators/weights/digits_track"))
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    saved: list[dict[str, object]] = []

    def save_snapshot(step: int, G: DigitsGenerator) -> None:
        args.snapshot_dir.mkdir(parents=True, exist_ok=True)
        path = args.snapshot_dir / SNAPSHOT_NAME.format(step=step)
        torch.save({k: v.detach().clone().contiguous() for k, v in G.state_dict().items()}, path)
        saved.append({"step": step, "file": path.name, "bytes": path.stat().st_size, "sha256": _sha256(path)})

    t0, c0 = time.perf_counter(), time.process_time()
    G, history = train(
        steps=args.steps,
        n_critic=args.n_critic,
        batch_size=args.batch_size,
        lr=args.lr,
        gp_lambda=args.gp_lambda,
        seed=args.seed,
        lr_decay=args.lr_decay,
        snapshots=args.snapshots,
        on_snapshot=save_snapshot,
    )
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0

    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().clone().contiguous() for k, v in G.state_dict().items()}, out)
    with torch.no_grad():
        fake = G(torch.randn(100, G.latent_dim, generator=torch.Generator().manual_seed(1)))
    real = load_digit_images()[torch.randperm(1797, generator=torch.Generator().manual_seed(1))[:100]]
    save_grid(fake, real, out.with_suffix(".png"))
    recipe = {
        "name": "digits/wgan-gp-8",
        "command": "python -m generators.train_digits "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
            if v != []
        ),
        "data": "sklearn.datasets.load_digits(): 1797 images 8x8, intensity 0..16 -> x/8 - 1 in [-1, 1]",
        "generator": "DigitsGenerator: Linear(32,128)-ReLU-Linear(128,256)-ReLU-Linear(256,64)-tanh, "
        "view (1, 8, 8); z ~ N(0, I_32)",
        "critic": "MLP 64-256-256-1, LeakyReLU(0.2), no normalisation",
        "loss": "WGAN-GP (Gulrajani et al. 2017)",
        "seed": args.seed,
        "generator_steps": args.steps,
        "n_critic": args.n_critic,
        "batch_size": args.batch_size,
        "optimiser": {
            "name": "Adam",
            "lr": args.lr,
            "betas": [0.5, 0.9],
            "lr_schedule": args.lr_decay + (" to 0 over the generator steps" if args.lr_decay == "linear" else ""),
            "both_networks": True,
        },
        "gp_lambda": args.gp_lambda,
        "threads": args.threads,
        "training_seconds": round(seconds, 1),
        "training_cpu_seconds": round(cpu_seconds, 1),
        "timing_note": "wall time on a 2-core machine shared with other jobs; CPU time is the process's own",
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch_version": torch.__version__,
        "weights_file": out.name,
        "weights_bytes": out.stat().st_size,
        "sha256": _sha256(out),
        "sample_grid": out.with_suffix(".png").name + " (left: 100 samples, seed 1; right: 100 real digits)",
        "history": history,
    }
    out.with_suffix(".json").write_text(json.dumps(recipe, indent=2) + "\n")
    if saved:
        _write_snapshot_record(args.snapshot_dir, saved, recipe)
    print(f"wrote {out} ({recipe['weights_bytes']} bytes, sha256 {recipe['sha256']}) in {seconds:.1f}s")


if __name__ == "__main__":
    main()
