"""``wdist bench layers``: forward+backward cost of the Lipschitz convolutions against a plain conv.

For every (channels C, kernel k, spatial n) it times, in training mode (the weight rebuilt at
every step, as during training), a stride-1 C -> C layer on a (batch, C, n, n) input:

* ``bcop``      :class:`critics.layers.BCOPConv2d` (batched, convergence-tested Björck);
* ``bcop-ref``  a straightforward implementation of the published algorithm (Li et al. 2019):
  every matrix orthonormalised separately by 10 power iterations then 20 first-order Björck
  iterations, projectors from the first C/2 columns of C x C matrices, every step;
* ``soc``       :class:`critics.layers.SOCConv2d` (odd kernels only; its training terms);
* ``soc-grid``  the same scaled by its bound on the benchmark's ``n x n`` grid (``input_size``,
  as in ``soc-lipconvnet``): the cost of reaching the intended norm (only when asked for);
* ``rko``, ``ossn`` the baselines; ``conv`` a plain ``nn.Conv2d``;
* ``aoc``       :class:`critics.layers.AOCConv2d` at stride 1 (its construction is BCOP's there);
* ``aoc-s2``    ``AOCConv2d`` with native stride 2 (even kernels: the explicit kernel of a BCOP
  convolution of size k - 1 and a 2 x 2 stride-2 RKO), against ``conv-s2``, a plain
  ``nn.Conv2d`` of the same kernel at stride 2 (its ``/conv`` column is relative to ``conv-s2``);
* ``cayley``    :class:`critics.layers.CayleyConv2d` (FFT, circular);
* ``aol``       :class:`critics.layers.AOLConv2d`;
* ``sll``, ``cpl`` the residual blocks :class:`critics.layers.SLLConv2d`,
  :class:`critics.layers.CPLConv2d` (odd kernels; two convolutions each).

Reported: median milliseconds over ``repeats`` steps after 3 warm-up steps, the layers of one
shape taking turns within each repeat (fairer on shared cores), by the wall clock or, with
``--clock cpu``, the process's CPU time (``time.process_time``: the work a step does, not the
wait for a core, so it holds up on a machine shared with other jobs; with several threads it
sums theirs; CPU only), memory (CUDA: peak allocated MiB
during one step of a freshly built layer alone with the input, its CUDA-graph pool included;
CPU: MiB of tensors saved for backward, a proxy, since torch does not track CPU peaks),
the ratio to the plain conv, BCOP's speed-up over the reference, and the orthogonality error
:math:`\\max \\|Q^\\top Q - I\\|_2` reached by each BCOP variant's orthogonaliser (so the
comparison is at the same error).

Where each family's time goes (CPU, one thread, C = 128, k = 3, 16 x 16, batch 64, the input
needing no gradient; per-phase thread time and ``torch.profiler`` op tables, taken on a loaded
machine, so read them as shares). With F, I, W the forward, input-gradient and weight-gradient
passes of one such convolution (W about 1.4 F on this CPU's oneDNN), the plain conv costs F + W:

* ``soc``: convolutions only (97% of the step): its 6 training terms are 5 forward, 4
  input-gradient and 5 weight-gradient passes, (5F + 4I + 5W) / (F + W), about 6.5x whatever
  else is done; the scale (reshaped bound, C^3 Gram iterations) is under 1%. Only fewer
  training terms change that (3 terms: (2F + I + 2W) / (F + W), about 2.5x), at the price of a
  different training map (truncation tail at s = 0.7: 1.8e-4 with 6 terms, 6.9e-2 with 3), so
  ``train_terms`` stays the user's choice. On grids no larger than the kernel the series is
  summed on the operator matrix instead (:class:`critics.layers.SOCConv2d`).
* ``cayley`` (training): at the 130 distinct of the 144 ``rfft2`` frequencies, one LU of
  I + A, two triangular solves with the batch (forward and adjoint) and one outer product, about
  55%; ``rfft2`` / ``irfft2`` and their backward 15%; the kernel's spectrum (one product with
  the DFT matrix) and the skew part 15%; gathers of the distinct frequencies the rest. (It used to
  invert at every frequency with C right-hand sides, multiply, differentiate the inverse with two
  C^3 products, and FFT the zero-padded C x C x 16 x 16 kernel: 3.2-3.7x.)
* ``sll``, ``cpl``: two convolutions with one kernel, (2F + I + 2W) / (F + W), about 2.4x before
  anything else; the scales t (SLL: the Gram kernel, one (C k^2)^2 C product; CPL: Gram
  iterations) 2-4%; the ReLU and the residual add, in place, 2%.
* ``bcop``, ``aoc``: the convolution of a circularly padded copy of the input (the copy, and
  oneDNN on the 18 x 18 unpadded input) about 5%; the kernel build about 8% (Björck with its
  convergence test on H and on the projectors, the two projector chains, nine tap products:
  about 60 small operations, 6-7 ms forward and as much backward).
* ``aol``: the Gram kernel of its scales (one 1152 x 128 x 1152 product, one in the backward,
  :func:`critics.functional.kernel_gram`), about 8%.

Those are the first layer's costs (the input needs no gradient). With ``--input-grad`` (every
layer of a critic but the first) every convolution also runs its input-gradient pass and the
plain conv costs F + I + W: ``soc`` then (5F + 5I + 5W) / (F + I + W) = 5x, ``sll`` and ``cpl``
2x, before anything else.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import time
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from critics.functional import orthogonality_error
from critics.layers import (
    AOCConv2d,
    AOLConv2d,
    BCOPConv2d,
    CayleyConv2d,
    CPLConv2d,
    OSSNConv2d,
    RKOConv2d,
    SLLConv2d,
    SOCConv2d,
)
from critics.layers.conv_base import same_padding
from wdist.bench._provenance import provenance, write_result
from wdist.bench._timing import describe_device, peak_memory_mb, reset_peak_memory, synchronize

__all__ = ["run_layer_benchmark", "combine_runs", "format_table", "ReferenceBCOPConv2d", "cli"]

LAYERS = (
    "conv",
    "bcop",
    "bcop-ref",
    "soc",
    "soc-grid",
    "rko",
    "ossn",
    "aoc",
    "conv-s2",
    "aoc-s2",
    "cayley",
    "aol",
    "sll",
    "cpl",
)
#: the layers timed unless ``--layers`` says otherwise: all but ``soc-grid``, whose per-frequency
#: bound takes minutes per step on the CPU at the default 512 channels on 32 x 32
DEFAULT_LAYERS = tuple(name for name in LAYERS if name != "soc-grid")
#: rows timed against the plain stride-2 convolution rather than the stride-1 one
STRIDE_2 = ("conv-s2", "aoc-s2")


class ReferenceBCOPConv2d(nn.Module):
    """The published BCOP algorithm, written plainly (the benchmark's reference row).

    ``2k - 1`` separate C x C parameters; each forward normalises each one separately by 10 power
    iterations and orthonormalises it by 20 first-order Björck iterations; the projectors use
    the first C/2 columns; the kernel is assembled tap by tap; circular padding.
    """

    def __init__(self, channels: int, kernel_size: int, power_iters: int = 10, bjorck_iters: int = 20) -> None:
        super().__init__()
        self.c, self.k = channels, kernel_size
        self.power_iters, self.bjorck_iters = power_iters, bjorck_iters
        self.mats = nn.ParameterList(
            [nn.Parameter(nn.init.orthogonal_(torch.empty(channels, channels))) for _ in range(2 * kernel_size - 1)]
        )
        self.register_buffer("u", F.normalize(torch.randn(2 * kernel_size - 1, channels), dim=1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.last_orthogonality_error = float("nan")

    def _orthonormalize(self, i: int, w: Tensor) -> Tensor:
        with torch.no_grad():
            u = self.u[i]
            for _ in range(self.power_iters):
                v = F.normalize(w.mT @ u, dim=0)
                u = F.normalize(w @ v, dim=0)
            self.u[i] = u
        sigma = u @ w @ v
        x = w / sigma
        for _ in range(self.bjorck_iters):
            x = 1.5 * x - 0.5 * x @ (x.mT @ x)
        return x

    def _block_1d(self, projectors: list[Tensor]) -> list[Tensor]:
        eye = torch.eye(self.c, dtype=projectors[0].dtype, device=projectors[0].device)
        taps = [projectors[0], eye - projectors[0]]
        for p in projectors[1:]:
            new = [None] * (len(taps) + 1)
            for t, a in enumerate(taps):
                new[t] = a @ p if new[t] is None else new[t] + a @ p
                new[t + 1] = a @ (eye - p)
            taps = new
        return taps

    def forward(self, x: Tensor) -> Tensor:
        ortho = [self._orthonormalize(i, w) for i, w in enumerate(self.mats)]
        self.last_orthogonality_error = max(float(orthogonality_error(o)) for o in ortho)
        h, rest = ortho[0], ortho[1:]
        if self.k == 1:
            kernel = h[:, :, None, None]
        else:
            r = self.c // 2
            proj = [q[:, :r] @ q[:, :r].mT for q in rest]
            vert = self._block_1d(proj[: self.k - 1])
            horiz = self._block_1d(proj[self.k - 1 :])
            kernel = torch.stack([torch.stack([h @ a @ b for b in horiz], -1) for a in vert], -2)
        return (
            F.conv2d(F.pad(x, same_padding(self.k), mode="circular"), kernel.to(x.dtype))
            + self.bias.to(x.dtype)[:, None, None]
        )


def _make(name: str, c: int, k: int, n: int) -> nn.Module | None:
    if name == "conv":
        return nn.Conv2d(c, c, k, padding="same")
    if name == "bcop":
        return BCOPConv2d(c, c, k)
    if name == "bcop-ref":
        return ReferenceBCOPConv2d(c, k)
    if name == "soc":
        return SOCConv2d(c, c, k) if k % 2 else None
    if name == "soc-grid":
        return SOCConv2d(c, c, k, input_size=(n, n)) if k % 2 else None
    if name == "rko":
        return RKOConv2d(c, c, k)
    if name == "ossn":
        return OSSNConv2d(c, c, k)
    if name == "aoc":
        return AOCConv2d(c, c, k)
    if name == "conv-s2":
        return nn.Conv2d(c, c, k, stride=2, padding=(k - 2) // 2) if k % 2 == 0 else None
    if name == "aoc-s2":
        return AOCConv2d(c, c, k, stride=2) if k % 2 == 0 else None
    if name == "cayley":
        return CayleyConv2d(c, c, k)
    if name == "aol":
        return AOLConv2d(c, c, k)
    if name == "sll":
        return SLLConv2d(c, c, k) if k % 2 else None
    if name == "cpl":
        return CPLConv2d(c, c, k) if k % 2 else None
    raise ValueError(f"unknown layer {name!r}; choose from {', '.join(LAYERS)}")


def _saved_tensor_mb(fn) -> float:
    """MiB of tensors autograd saves for backward while running ``fn`` (CPU memory proxy)."""
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        seen[id(t)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values()) / 2**20


def _bcop_orthogonality_error(layer: BCOPConv2d) -> float:
    """Error reached by the orthonormalisation the layer's training steps run: on CUDA (graph
    replay) the graph's fixed iteration count, elsewhere Björck until ``bjorck_tol``."""
    graphed = layer._graph is not None and layer._graph_iters is not None
    tol, iters = (None, layer._graph_iters) if graphed else (layer.bjorck_tol, None)
    with torch.no_grad():
        errs = [orthogonality_error(layer._orthonormalize(layer.ortho_param.float(), tol, iters)).max()]
        if layer.proj_param is not None:
            errs.append(orthogonality_error(layer._orthonormalize(layer.proj_param.float(), tol, iters)).max())
    return float(max(errs))


def _build(
    name: str, c: int, k: int, n: int, dev: torch.device, act_dtype: torch.dtype, compile: bool
) -> tuple[nn.Module, object] | None:
    layer = _make(name, c, k, n)
    if layer is None:
        return None
    layer = layer.to(dev).train()
    if name in ("conv", "conv-s2"):
        layer = layer.to(act_dtype)
    return layer, (torch.compile(layer) if compile else layer)


def _cuda_step_memory_mb(
    name: str, c: int, k: int, x: Tensor, dev: torch.device, act_dtype: torch.dtype, compile: bool
) -> float | None:
    """Peak allocated MiB during one training step of a freshly built layer, alone on the device
    with the input: parameters, gradients, its CUDA-graph pool (BCOP, SOC) and the step's
    temporaries."""
    gc.collect()
    torch.cuda.empty_cache()
    made = _build(name, c, k, int(x.shape[-1]), dev, act_dtype, compile)
    if made is None:
        return None
    layer, fwd = made
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(1):  # warm-up (and CUDA-graph capture)
            _step(layer, fwd, x)
        reset_peak_memory(dev)
        _step(layer, fwd, x)
        synchronize(dev)
    mem = peak_memory_mb(dev)
    del layer, fwd, made
    gc.collect()
    torch.cuda.empty_cache()
    return mem


def _step(layer: nn.Module, fwd: object, x: Tensor) -> None:
    for p in layer.parameters():
        p.grad = None
    x.grad = None
    fwd(x).float().square().mean().backward()  # type: ignore[operator]


#: the clocks a step can be timed by: elapsed time, or the process's CPU time (CPU only)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _interleaved_times(
    built: dict[str, tuple[nn.Module, object]], x: Tensor, dev: torch.device, repeats: int, clock: str = "wall"
) -> dict[str, list[float]]:
    """Seconds per forward+backward of each layer by ``clock`` (:data:`CLOCKS`), the layers taking
    turns within every repeat (so that load from other processes on shared cores hits all of them
    alike)."""
    now = CLOCKS[clock]
    times: dict[str, list[float]] = {name: [] for name in built}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # padding='same' with even kernels
        for _ in range(3):  # warm-up
            for layer, fwd in built.values():
                _step(layer, fwd, x)
        for _ in range(repeats):
            for name, (layer, fwd) in built.items():
                synchronize(dev)
                t0 = now()
                _step(layer, fwd, x)
                synchronize(dev)
                times[name].append(now() - t0)
    return times


def run_layer_benchmark(
    device: str = "cpu",
    dtype: str = "float32",
    compile: bool = False,
    channels: list[int] | None = None,
    kernels: list[int] | None = None,
    sizes: list[int] | None = None,
    batch: int = 64,
    repeats: int = 20,
    layers: Sequence[str] = DEFAULT_LAYERS,
    clock: str = "wall",
    input_grad: bool = False,
) -> list[dict]:
    """Time forward+backward of each layer at each shape.

    Parameters
    ----------
    device : ``"cpu"`` or ``"cuda"``.
    dtype : ``"float32"`` or ``"bfloat16"`` (activations; parameters and orthogonalisation stay
        float32 in the Lipschitz layers, the plain conv runs fully in the dtype).
    compile : wrap each layer in ``torch.compile``.
    channels, kernels, sizes : shapes to run (defaults 64/128/256/512, 2/3, 8/16/32).
    batch : batch size (default 64).
    repeats : timed repetitions per layer (median reported; >= 20 recommended), after 3 warm-ups.
    layers : the layers to time (:data:`LAYERS`).
    clock : ``"wall"`` (elapsed seconds) or ``"cpu"`` (the process's CPU seconds, CPU device only).
    input_grad : the input needs its gradient, as at every layer of a critic but the first: the
        backward then runs the input-gradient pass of every convolution, the plain conv's too
        (:math:`F + I + W` instead of :math:`F + W`). Default ``False``: the first layer's case.

    Returns
    -------
    list of dict, one per (layer, C, k, n): ``ms``, ``mem_mb``, ``vs_conv``, ``vs_ref`` (BCOP),
    ``orth_err`` (BCOP variants), ``convs`` (SOC: convolutions per forward).
    """
    dev = torch.device(device)
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16'; got {dtype!r}")
    if clock not in CLOCKS or (clock == "cpu" and dev.type != "cpu"):
        raise ValueError(f"clock must be 'wall', or 'cpu' on the CPU device; got clock={clock!r} on device {device!r}")
    act_dtype = getattr(torch, dtype)
    channels = list(channels or [64, 128, 256, 512])
    kernels = list(kernels or [2, 3])
    sizes = list(sizes or [8, 16, 32])
    rows: list[dict] = []
    for c in channels:
        for k in kernels:
            for n in sizes:
                x = torch.randn(batch, c, n, n, device=dev, dtype=act_dtype, requires_grad=input_grad)
                built: dict[str, tuple[nn.Module, object]] = {}
                for name in layers:
                    made = _build(name, c, k, int(x.shape[-1]), dev, act_dtype, compile)
                    if made is not None:
                        built[name] = made
                times = _interleaved_times(built, x, dev, repeats, clock)
                shape_rows: dict[str, dict] = {}
                for name, (layer, fwd) in built.items():
                    row = {
                        "layer": name,
                        "channels": c,
                        "kernel": k,
                        "size": n,
                        "batch": batch,
                        "device": device,
                        "dtype": dtype,
                        "compile": compile,
                        "clock": clock,
                        "input_grad": input_grad,
                        "ms": 1e3 * statistics.median(times[name]),
                        "mem_mb": None if dev.type == "cuda" else _saved_tensor_mb(lambda: fwd(x)),
                    }
                    if name == "bcop":
                        row["orth_err"] = _bcop_orthogonality_error(layer)
                    if name == "bcop-ref":
                        row["orth_err"] = layer.last_orthogonality_error
                    if name in ("soc", "soc-grid"):
                        row["convs"] = layer.train_terms - 1
                    shape_rows[name] = row
                del built
                if dev.type == "cuda":  # each layer alone, so no other layer's memory is counted
                    for name, row in shape_rows.items():
                        row["mem_mb"] = _cuda_step_memory_mb(name, c, k, x, dev, act_dtype, compile)
                conv_ms = shape_rows.get("conv", {}).get("ms")
                conv_s2_ms = shape_rows.get("conv-s2", {}).get("ms")
                for name, row in shape_rows.items():
                    ref = conv_s2_ms if name in STRIDE_2 else conv_ms
                    row["vs_conv"] = row["ms"] / ref if ref else None
                if "bcop" in shape_rows and "bcop-ref" in shape_rows:
                    shape_rows["bcop"]["vs_ref"] = shape_rows["bcop-ref"]["ms"] / shape_rows["bcop"]["ms"]
                for soc in (shape_rows.get(name) for name in ("soc", "soc-grid")):
                    if soc is not None and conv_ms:
                        soc["vs_conv_per_conv"] = soc["ms"] / (conv_ms * soc["convs"])
                rows.extend(shape_rows.values())
    return rows


def combine_runs(runs: Sequence[list[dict]]) -> list[dict]:
    r"""Rows of several whole runs of :func:`run_layer_benchmark` (same layers and shapes) as one row per
    (layer, C, k, n): ``ms`` and ``vs_conv`` the medians over the runs, ``vs_conv_runs`` every run's
    ratio and ``vs_conv_range`` their [smallest, largest] (the spread the machine's drift between runs
    gives: the ratio is taken within each run, against that run's plain conv)."""
    keys = ("layer", "channels", "kernel", "size")
    combined: dict[tuple, dict] = {}
    for rows in runs:
        for row in rows:
            key = tuple(row[k] for k in keys)
            entry = combined.setdefault(key, {**row, "runs": len(runs), **{f"{f}_runs": [] for f in _PER_RUN}})
            for field in _PER_RUN:
                entry[f"{field}_runs"].append(row.get(field))
    for entry in combined.values():
        for field in _PER_RUN:
            values = [v for v in entry[f"{field}_runs"] if v is not None]
            entry[field] = statistics.median(values) if values else None
        ratios = [r for r in entry["vs_conv_runs"] if r is not None]
        entry["vs_conv_range"] = [min(ratios), max(ratios)] if ratios else None
    return list(combined.values())


#: The per-run figures of a row that :func:`combine_runs` takes the median of.
_PER_RUN = ("ms", "mem_mb", "vs_conv", "vs_conv_per_conv", "vs_ref", "orth_err")


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of :func:`run_layer_benchmark` rows."""
    spread = any(r.get("vs_conv_range") for r in rows)
    head = (
        f"{'layer':<9}{'C':>5}{'k':>3}{'n':>4}{'ms':>10}{'mem MiB':>9}{'/conv':>7}"
        + (f"{'/conv [min, max]':>18}" if spread else "")
        + f"{'/conv/#conv':>12}{'ref/bcop':>9}{'orth err':>10}"
    )
    lines = [head, "-" * len(head)]

    def fmt(v: float | None, spec: str) -> str:
        if isinstance(v, (int, float)) and not math.isnan(v):
            return format(v, spec)
        return "-".rjust(int(spec.split(".")[0]))

    for r in rows:
        lo_hi = r.get("vs_conv_range")
        lines.append(
            f"{r['layer']:<9}{r['channels']:>5}{r['kernel']:>3}{r['size']:>4}{fmt(r['ms'], '10.1f')}"
            f"{fmt(r.get('mem_mb'), '9.1f')}{fmt(r.get('vs_conv'), '7.2f')}"
            + ((f"[{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]" if lo_hi else "-").rjust(18) if spread else "")
            + f"{fmt(r.get('vs_conv_per_conv'), '12.2f')}{fmt(r.get('vs_ref'), '9.2f')}"
            + fmt(r.get("orth_err"), "10.1e")
        )
    runs = max((r.get("runs", 1) for r in rows), default=1)
    if runs > 1:
        lines.append(f"ms and /conv: medians over {runs} whole runs (each the median of its repeats)")
    return "\n".join(lines)


def cli(argv: Sequence[str]) -> int:
    """``wdist bench layers [--device cpu|cuda] [--dtype float32|bfloat16] [--compile] ...``"""
    p = argparse.ArgumentParser(prog="wdist bench layers", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--channels", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--kernels", type=int, nargs="+", default=[2, 3])
    p.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument(
        "--runs", type=int, default=1, help="whole runs, one after the other: the median and spread of their ratios"
    )
    p.add_argument("--layers", nargs="+", default=list(DEFAULT_LAYERS), choices=list(LAYERS))
    p.add_argument(
        "--json", "--out", dest="out", default="bench_layers.json", help="result file for the rows (with provenance)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 avoids thrashing on shared cores)")
    p.add_argument(
        "--clock",
        default="wall",
        choices=sorted(CLOCKS),
        help="wall: elapsed time; cpu: the process's CPU time per step (robust to other jobs on shared cores)",
    )
    p.add_argument(
        "--input-grad",
        action="store_true",
        help="the input needs its gradient (every critic layer but the first): each convolution's backward "
        "also computes the input gradient, the plain conv's too",
    )
    a = p.parse_args(list(argv))
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("wdist bench layers: error: --device cuda but no CUDA device is available")
        return 2
    if a.clock == "cpu" and a.device != "cpu":
        print(f"wdist bench layers: error: --clock cpu times CPU work and needs --device cpu; got --device {a.device}")
        return 2
    device = describe_device(torch.device(a.device))
    made = provenance("layers", argv, device + ("" if a.clock == "wall" else "; ms = process CPU time per step"))
    made["conditions"] += "; the input needs its gradient" if a.input_grad else "; the input needs no gradient"
    if a.runs < 1:
        print(f"wdist bench layers: error: --runs must be >= 1; got {a.runs}")
        return 2
    runs = [
        run_layer_benchmark(
            a.device, a.dtype, a.compile, a.channels, a.kernels, a.sizes, a.batch, a.repeats, a.layers, a.clock,
            a.input_grad,
        )  # fmt: skip
        for _ in range(a.runs)
    ]
    rows = runs[0] if a.runs == 1 else combine_runs(runs)
    print(made["device"])
    print(format_table(rows))
    print(f"rows written to {write_result(a.out, made, rows)}")
    return 0
