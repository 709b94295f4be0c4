"""CUDA-graph replay of a layer's kernel construction (forward and backward, one autograd node).

Building a Lipschitz kernel (Björck iterations, block convolutions, Gram iterations) is hundreds
of tiny CUDA kernels; launching them one by one from Python costs several milliseconds per layer
and training step. :class:`GraphedBuild` captures the construction once and replays it.
:class:`~critics.layers.LipschitzConv2d` decides when (CUDA, training mode, a subclass build
without host synchronisation); this module only captures and replays.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch import Tensor

from critics.functional import bjorck_iterations_needed, bjorck_orthonormalize

__all__ = ["GraphedBuild", "FixedBjorckGraph", "can_replay"]


class GraphedBuild:
    r"""CUDA graphs of ``fn(*params)`` and of its backward, replayed as one autograd node.

    Capture (after warm-up on a side stream): the forward graph computes ``fn`` on the
    parameters' own memory (so in-place optimiser updates are seen without copies); the backward
    graph maps a static output gradient to the parameter gradients. Each call replays the
    forward graph and returns a copy of its output; its backward copies the incoming gradient
    in, replays the backward graph and returns copies of the parameter gradients (so that
    accumulation into ``.grad`` never aliases the graph's static buffers). The static
    intermediates belong to the latest replay, so a backward must follow its own forward
    before the next one (one kernel build per step, as :class:`LipschitzConv2d` does); an
    out-of-order backward raises rather than return wrong gradients.
    """

    def __init__(self, fn: Callable[..., Tensor], params: tuple[Tensor, ...], warmup: int = 3) -> None:
        with torch.cuda.device(params[0].device):  # capture on the parameters' GPU, not the current one
            self._capture(fn, params, warmup)

    def _capture(self, fn: Callable[..., Tensor], params: tuple[Tensor, ...], warmup: int) -> None:
        self.params = params
        self.trainable = [i for i, t in enumerate(params) if t.requires_grad]
        if not self.trainable:
            raise ValueError("no parameter requires a gradient: nothing to capture a backward for")
        wrt = [params[i] for i in self.trainable]
        device = params[0].device
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                out = fn(*params)
                torch.autograd.grad(out, wrt, torch.ones_like(out), allow_unused=True)
        torch.cuda.current_stream(device).wait_stream(side)
        del out
        torch.cuda.synchronize(device)
        self.forward_graph = torch.cuda.CUDAGraph()
        self.backward_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.forward_graph):
            self.output = fn(*params)
        self.output_grad = torch.zeros_like(self.output)
        with torch.cuda.graph(self.backward_graph, pool=self.forward_graph.pool()):
            self.param_grads = torch.autograd.grad(self.output, wrt, self.output_grad, allow_unused=True)
        self.output = self.output.detach()
        self.replays = 0
        self.backward_of = 0

    def __call__(self) -> Tensor:
        return _ReplayBuild.apply(self, *self.params)


class FixedBjorckGraph:
    r"""Mixin: the CUDA-graph build of a layer whose kernel runs Björck iterations.

    A CUDA graph cannot hold Björck's convergence test (a host synchronisation deciding the
    loop), so a captured build runs a fixed number of iterations: two more than the parameters
    need at capture (:meth:`graph_iterations`), re-measured every ``graph_recheck_every``
    builds and recaptured once the margin is gone (each iteration squares the error, so one
    spare iteration is ample between checks). A new ``ortho`` configuration re-measures at once.

    The layer provides ``ortho``, ``bjorck_iters``, ``bjorck_tol``, ``_kernel_from(*matrices,
    tol, iters)``, :meth:`_bjorck_matrices` (the free matrices that are orthonormalised, in
    ``_kernel_from``'s order) and :meth:`_graph_settings` (what else the build depends on).
    """

    graph_recheck_every: int = 50
    _graph_iters: int | None = None
    _graph_ortho: Any = None
    _graph_builds: int = 0

    def _bjorck_matrices(self) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def _orthonormalize(self, w: Tensor, tol: float | None = None, iters: int | None = None) -> Tensor:
        """Björck with ``self.ortho``, but the given ``tol`` (None: no early stop) and ``iters``
        (None: ``bjorck_iters``): what ``_kernel_from`` runs on each of :meth:`_bjorck_matrices`."""
        options = {**self.ortho.bjorck_options(), "tol": tol}
        if iters is not None:
            options["iters"] = iters
        return bjorck_orthonormalize(w, **options)

    def _graph_settings(self) -> tuple:
        raise NotImplementedError

    def graph_iterations(self) -> int:
        """Björck iterations the current parameters need to reach ``bjorck_tol`` (at most
        ``bjorck_iters``; all of them when ``bjorck_tol`` is None)."""
        if self.bjorck_tol is None:
            return self.bjorck_iters
        o = self.ortho
        work = [m.float() if m.dtype in (torch.float16, torch.bfloat16) else m for m in self._bjorck_matrices()]
        return max(
            bjorck_iterations_needed(m, o.bjorck_tol, o.bjorck_iters, beta=o.bjorck_beta, gram_iters=o.gram_iters)
            for m in work
        )

    def _graph_build(self) -> tuple[Callable[..., Tensor], tuple[Tensor, ...], tuple]:
        self._graph_builds += 1
        fresh = self._graph_iters is None or self._graph_ortho != self.ortho
        if fresh or self._graph_builds % self.graph_recheck_every == 0:
            needed = self.graph_iterations()
            if fresh or needed >= self._graph_iters:
                self._graph_iters = min(self.bjorck_iters, needed + 2)
            self._graph_ortho = self.ortho
        build = functools.partial(self._kernel_from, tol=None, iters=self._graph_iters)
        settings = (type(self).__name__, self._graph_iters, *self._graph_settings(), self.ortho)
        return build, self._bjorck_matrices(), settings


class _ReplayBuild(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, graphed: GraphedBuild, *params: Tensor) -> Tensor:
        with torch.cuda.device(params[0].device):
            graphed.forward_graph.replay()
        graphed.replays += 1
        ctx.graphed, ctx.replay = graphed, graphed.replays
        return graphed.output.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        graphed: GraphedBuild = ctx.graphed
        if ctx.replay != graphed.replays or graphed.backward_of == ctx.replay:
            raise RuntimeError(
                "backward through a CUDA-graphed kernel build after a later build of the same layer, "
                "or a second time: its saved intermediates were overwritten. Run one backward after "
                "each forward that rebuilds the kernel, or set layer.cuda_graphs = False for this layer."
            )
        graphed.backward_of = ctx.replay  # the backward replay reuses the forward's buffers
        graphed.output_grad.copy_(grad)
        with torch.cuda.device(graphed.output_grad.device):
            graphed.backward_graph.replay()
        grads: list[Tensor | None] = [None] * len(graphed.params)
        for i, g in zip(graphed.trainable, graphed.param_grads):
            grads[i] = g.clone() if g is not None else None
        return (None, *grads)


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


def can_replay(params: tuple[Tensor, ...]) -> bool:
    """Whether a graph of a build over ``params`` may be captured or replayed now: CUDA parameters,
    at least one requiring a gradient, not inside ``torch.compile`` tracing or another capture."""
    if params[0].device.type != "cuda" or _compiling() or torch.cuda.is_current_stream_capturing():
        return False
    return any(t.requires_grad for t in params)  # a frozen layer has nothing to differentiate
