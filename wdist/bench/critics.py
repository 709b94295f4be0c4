"""``wdist bench critics``: training steps per second and peak memory of each image critic.

For every (critic, image size) it times full training steps on random images in [-1, 1] of
shape ``(batch, 3, size, size)``. One training step is what ``wdist estimate`` does per batch:
one critic forward on the P batch and the Q batch concatenated, the Kantorovich–Rubinstein loss
``-(mean f(x_P) - mean f(x_Q))`` (plus ``gp_lambda`` times the WGAN-GP gradient penalty on random
interpolates for ``gp-dcgan``, as in WGAN-GP training), backward, and an Adam step (betas
0.5, 0.9, as the default ``train`` config). Data loading and generators are left out: this is
the critic's own cost.

Timing: ``--warmup`` untimed steps, then ``--repeats`` runs of ``--steps`` timed steps (device
synchronised after each); the figure is the median over repeats of the median step time.

Memory: on CUDA the peak allocated memory (``torch.cuda.max_memory_allocated``) from just
before the critic is built to the end of the last step, less what was allocated before (the
two input batches): weights, gradients, optimiser state, activations. On the CPU torch does not
track allocations, so the table reports the **peak RSS** of the process (``getrusage``
``ru_maxrss``) minus its resident size before the critic was built (taken after one throwaway step
of a tiny conv net on a full batch, so that library code and workspaces first touched by any
training step are not charged to the critic;
some allocator and thread overhead remains, about 70-90 MiB even for tiny critics on a Linux
x86 machine, so compare large figures, not small ones); each (critic, size) then runs in a fresh
Python process (``--no-isolate`` turns that off, after which the figure only counts growth beyond
the earlier cells' peak).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Optional, Sequence

import torch
import yaml

import critics
from wdist.bench._provenance import provenance, write_result
from wdist.bench._timing import describe_device, fmt_or_na, peak_memory_mb, reset_peak_memory, synchronize
from wdist.objectives import gradient_penalty, kr_gap

__all__ = ["CellSettings", "run_critic_benchmark", "bench_one", "format_table", "cli", "CRITICS"]

CRITICS = (
    "bcop-dcgan",
    "soc-lipconvnet",
    "rko-dcgan",
    "ossn-dcgan",
    "gp-dcgan",
    "aoc-dcgan",
    "cayley-dcgan",
    "aol-convnet",
    "sll-convnet",
    "cpl-convnet",
)
GP_CRITICS = ("gp-dcgan",)
GP_LAMBDA = 10.0


@dataclass(frozen=True)
class CellSettings:
    """What every (critic, size) cell gets: the critic's width multiplier (``None``: its default),
    images per side per step, timed steps per repeat, untimed warm-up steps, repeats and the device."""

    width: Optional[float] = 1.0
    batch: int = 64
    steps: int = 20
    warmup: int = 3
    repeats: int = 3
    device: str = "cpu"


def _rss_now_mib() -> Optional[float]:
    """Current resident set size in MiB (Linux ``/proc``), or ``None`` where unavailable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _maxrss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024.0


def _prewarm(dev: torch.device, shape: tuple[int, ...], batch: int = 2) -> None:
    """One GP training step of a throwaway tiny conv net, so that the libraries' code and
    workspaces touched on first use are resident before the memory baseline is taken."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(shape[0], 4, 4, 2, 1), torch.nn.LeakyReLU(0.2), torch.nn.Flatten(), torch.nn.LazyLinear(1)
    ).to(dev)
    x = torch.rand((batch,) + tuple(shape), device=dev)
    net(x)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.5, 0.9))
    loss = -net(x).mean() + gradient_penalty(net, x, x.flip(0))
    loss.backward()
    opt.step()
    torch.fft.rfft2(x).abs().sum()
    torch.linalg.svdvals(x[0, 0])


def critic_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"NAME"`` or ``"NAME:KEY=VALUE,KEY=VALUE"`` (e.g. ``bcop-cones:centres=1024``) as the critic's
    registered name and its options (each value read as YAML: ``1024`` an int, ``0.5`` a float).

    Raises ``ValueError`` naming the spec when an option is not ``KEY=VALUE``."""
    name, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"critic {spec!r}: options are KEY=VALUE separated by commas; got {item!r}")
        options[key.strip()] = yaml.safe_load(value)
    return name, options


def bench_one(
    critic_name: str, size: int, settings: CellSettings = CellSettings(), *, channels: int = 3, seed: int = 0
) -> dict[str, Any]:
    """Time training steps of one critic at one size in this process; returns one table row."""
    dev, batch = torch.device(settings.device), settings.batch
    torch.manual_seed(seed)
    shape = (channels, size, size)
    gen = torch.Generator().manual_seed(seed)
    # P and Q batches: two different random image distributions in [-1, 1]
    xp = (torch.rand((batch,) + shape, generator=gen) * 2 - 1).to(dev)
    xq = (0.5 * torch.randn((batch,) + shape, generator=gen)).clamp(-1, 1).to(dev)
    _prewarm(dev, shape, batch)
    synchronize(dev)
    rss0 = _rss_now_mib()
    if rss0 is None:
        rss0 = _maxrss_mib()
    reset_peak_memory(dev)
    mem0 = torch.cuda.memory_allocated(dev) / 2**20 if dev.type == "cuda" else 0.0

    name, options = critic_spec(critic_name)
    width = {} if settings.width is None else {"width": settings.width}
    critic = critics.build(name, shape, **width, **options).to(dev).train()
    n_params = sum(p.numel() for p in critic.parameters() if p.requires_grad)
    opt = torch.optim.Adam([p for p in critic.parameters() if p.requires_grad], lr=1e-4, betas=(0.5, 0.9))
    gp = name in GP_CRITICS
    xpq = torch.cat([xp, xq])

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        f = critic(xpq)  # one forward on both batches, as CriticSystem.training_step
        loss = -kr_gap(f[:batch], f[batch:])
        if gp:
            loss = loss + GP_LAMBDA * gradient_penalty(critic, xp, xq)
        loss.backward()
        opt.step()

    for _ in range(settings.warmup):
        step()
    synchronize(dev)
    medians = []
    for _ in range(settings.repeats):
        times = []
        for _ in range(settings.steps):
            t0 = time.perf_counter()
            step()
            synchronize(dev)
            times.append(time.perf_counter() - t0)
        medians.append(statistics.median(times))
    sec = statistics.median(medians)
    if dev.type == "cuda":
        peak = peak_memory_mb(dev)
        memory, memory_kind = (None if peak is None else peak - mem0), "peak allocated (MiB)"
    else:
        memory, memory_kind = max(0.0, _maxrss_mib() - rss0), "peak RSS (MiB)"
    return {
        "critic": critic_name,
        "size": size,
        "shape": list(shape),
        **asdict(settings),  # its device is replaced by the device in words below
        "parameters": int(n_params),
        "loss": "kr+gp" if gp else "kr",
        "seconds_per_step": sec,
        "steps_per_second": 1.0 / sec,
        "repeat_medians_s": medians,
        "memory_mib": memory,
        "memory_kind": memory_kind,
        "device": describe_device(dev),
        "threads": torch.get_num_threads(),
        "error": None,
    }


def _bench_isolated(critic_name: str, size: int, settings: CellSettings, threads: Optional[int]) -> dict[str, Any]:
    """:func:`bench_one` in a fresh Python process (so that its peak RSS is its own)."""
    payload = json.dumps({"critic_name": critic_name, "size": size, "settings": asdict(settings), "threads": threads})
    # the worker imports torch, critics and this module only (the wdist package imports lazily)
    proc = subprocess.run([sys.executable, "-m", "wdist.bench.critics", payload], capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("WDIST_BENCH_ROW ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"worker exited with {proc.returncode}: {tail[0]}")
    return json.loads(lines[-1][len("WDIST_BENCH_ROW ") :])


def _worker(payload: str) -> None:
    spec = json.loads(payload)
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    row = bench_one(spec["critic_name"], spec["size"], CellSettings(**spec["settings"]))
    print("WDIST_BENCH_ROW " + json.dumps(row), flush=True)


def run_critic_benchmark(
    critics_: Sequence[str] = CRITICS,
    sizes: Sequence[int] = (32, 64),
    settings: CellSettings = CellSettings(),
    *,
    isolate: Optional[bool] = None,
    threads: Optional[int] = None,
    log=None,  # noqa: ANN001  (callable taking a string, for progress)
) -> list[dict[str, Any]]:
    """One row per (critic, size). ``isolate`` (default: on the CPU) runs each in its own process.

    A cell that fails (e.g. out of memory) gives a row with ``error`` set instead of stopping the
    others.
    """
    if isolate is None:
        isolate = settings.device == "cpu"
    if threads and not isolate:
        torch.set_num_threads(threads)
    if isolate and not threads:
        threads = torch.get_num_threads()  # the workers use this process's thread count
    rows = []
    for size in sizes:
        for name in critics_:
            t0 = time.perf_counter()
            try:
                if isolate:
                    row = _bench_isolated(name, int(size), settings, threads)
                else:
                    row = bench_one(name, int(size), settings)
            except Exception as err:  # noqa: BLE001  (report and go on with the other cells)
                row = {
                    "critic": name,
                    "size": int(size),
                    "width": settings.width,
                    "batch": settings.batch,
                    "error": f"{type(err).__name__}: {err}",
                }
                if settings.device == "cuda":
                    torch.cuda.empty_cache()
            if log is not None:
                speed = "error" if row.get("error") else f"{row['steps_per_second']:.2f} steps/s"
                log(f"  {name} @ {size}x{size}: {speed} ({time.perf_counter() - t0:.1f} s)")
            rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    ok = [r for r in rows if not r.get("error")]
    mem_label = ok[0]["memory_kind"] if ok else "memory (MiB)"
    lines = [
        f"| critic | input | width | params | loss | steps/s | ms/step | {mem_label} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        w = "default" if r.get("width") is None else f"{r['width']:g}"
        if r.get("error"):
            lines.append(f"| {r['critic']} | 3x{r['size']}x{r['size']} | {w} | | | error: {r['error']} | | |")
            continue
        lines.append(
            f"| {r['critic']} | {r['shape'][0]}x{r['size']}x{r['size']} | {w} | {r['parameters'] / 1e6:.2f}M "
            f"| {r['loss']} "
            f"| {r['steps_per_second']:.2f} | {1e3 * r['seconds_per_step']:.1f} | {fmt_or_na(r['memory_mib'], '.0f')} |"
        )
    if ok:
        r = ok[0]
        lines.append(
            f"\ndevice: {r['device']}; batch {r['batch']} (P) + {r['batch']} (Q); median over {r['repeats']} repeats "
            f"of the median of {r['steps']} steps after {r['warmup']} warm-up steps"
        )
    return "\n".join(lines)


def cli(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="wdist bench critics", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="image sides (default: 32 64)")
    ap.add_argument(
        "--critics",
        nargs="+",
        default=list(CRITICS),
        help=f"NAME or NAME:KEY=VALUE,... (options of the critic, e.g. bcop-cones:centres=1024); "
        f"default: {' '.join(CRITICS)}",
    )
    ap.add_argument(
        "--width", type=float, default=1.0, help="width multiplier (1.0: the published widths; smaller for a quick run)"
    )
    ap.add_argument("--batch", type=int, default=64, help="images per side per step (default 64)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument(
        "--isolate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="each cell in a fresh process (default: on for cpu, so peak RSS is per cell)",
    )
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(list(argv))
    if args.device == "cuda" and not torch.cuda.is_available():
        print("wdist bench critics: error: --device cuda but no CUDA device is available.", file=sys.stderr)
        return 2
    if min(args.steps, args.repeats, args.batch) < 1 or args.warmup < 0 or args.width <= 0:
        print(
            "wdist bench critics: error: --steps, --repeats, --batch must be >= 1, --warmup >= 0, --width > 0.",
            file=sys.stderr,
        )
        return 2
    try:
        unknown = [c for c in args.critics if critic_spec(c)[0] not in critics.available()]
    except ValueError as err:
        print(f"wdist bench critics: error: {err}", file=sys.stderr)
        return 2
    if unknown:
        print(
            f"wdist bench critics: error: unknown critic(s) {', '.join(unknown)}; image critics: {', '.join(CRITICS)}.",
            file=sys.stderr,
        )
        return 2
    for spec in args.critics:
        name, options = critic_spec(spec)
        accepted = critics.critic_options(name)
        refused = sorted(set(options) - set(accepted))
        if refused:
            print(
                f"wdist bench critics: error: critic {spec!r}: unknown option(s) {', '.join(refused)} for {name}; "
                f"it accepts: {', '.join(accepted)}.",
                file=sys.stderr,
            )
            return 2
    made = provenance("critics", argv, describe_device(torch.device(args.device)))
    settings = CellSettings(**{f.name: getattr(args, f.name) for f in fields(CellSettings)})
    rows = run_critic_benchmark(
        args.critics,
        args.sizes,
        settings,
        isolate=args.isolate,
        threads=args.threads,
        log=lambda s: print(s, file=sys.stderr, flush=True),
    )
    print(format_table(rows))
    if args.json:
        write_result(args.json, made, rows)
    return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
    _worker(sys.argv[1])
