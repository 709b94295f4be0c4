"""The base class of the Lipschitz convolutions: padding, eval-mode caching, certificate.

Every convolution in :mod:`critics.layers` is a stride-1 ``"same"`` convolution whose kernel is a
differentiable function of free parameters (:meth:`LipschitzConv2d._build_kernel`). This base
class

* validates the constructor arguments (:mod:`critics._checks`), with errors that name the
  offending value;
* pads explicitly, ``(k - 1) // 2`` before and ``k // 2`` after in each direction, so even
  kernels are supported (asymmetrically) for ``"zeros"`` and ``"circular"`` padding;
* applies the convolution on a grid no larger than its kernel (the last stages of an image
  critic: 2 x 2, 1 x 1) as the operator's matrix (:func:`small_grid_conv`): no padded copies and
  no more multiply-adds than the convolution;
* caches the built kernel in eval mode (detached, so eval mode freezes the weights: gradients
  still reach the *input*, not the parameters), keyed on the version counters and storage of
  every parameter and buffer, so an optimiser step, ``load_state_dict``, ``.to()`` or
  ``train()`` invalidates it; in training mode the differentiable kernel is shared by the
  forwards of one step (e.g. the critic on P and on Q) until a backward passes through it;
* on CUDA, in training mode, builds the kernel by replaying a CUDA graph of its construction
  (forward and backward) where the subclass offers a synchronisation-free build
  (:meth:`LipschitzConv2d._graph_build`; the capture and replay are in
  :mod:`critics.layers._cuda_graphs`);
* certifies the layer from the kernel actually used (:meth:`lipschitz_bound`);
* exports it as a plain ``nn.Conv2d`` with that kernel (:meth:`LipschitzConv2d.export`).
"""

from __future__ import annotations

import functools
import warnings
import weakref
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from critics._checks import check_channels
from critics.layers._cuda_graphs import GraphedBuild, can_replay
from critics.norms import conv_matrix, same_conv_operator_norm

__all__ = ["LipschitzConv2d", "PADDING_MODES", "same_padding", "small_grid_conv"]

PADDING_MODES = ("zeros", "circular")


def same_padding(kernel_size: int) -> tuple[int, int, int, int]:
    """``F.pad`` widths (left, right, top, bottom), in pixels, of a stride-1 "same" convolution:
    ``(k - 1) // 2`` before and ``k // 2`` after, so the output has the input's size."""
    before, after = (kernel_size - 1) // 2, kernel_size // 2
    return (before, after, before, after)


def small_grid_conv(x: Tensor, kernel: Tensor, bias: Tensor | None, padding_mode: str) -> Tensor:
    r"""A stride-1 "same" convolution of ``x`` (N, C, n_h, n_w) applied as its matrix
    (:func:`critics.norms.conv_matrix`).

    .. math::

        M_{(o, i, k), (c, j, l)} = \sum_{a, b} K_{o c a b}\, S^{(h)}_a[i, j]\, S^{(w)}_b[k, l],
        \qquad y = M \operatorname{vec}(x) + b

    with :math:`S_a` the tap matrices of :func:`critics.norms.tap_shifts` (the padding folded in), so
    :math:`M` is exactly the operator of ``conv2d(pad(x), K)``: the same numbers up to float
    rounding (another summation order). One matrix product of :math:`N \times C n_h n_w` by
    :math:`C n_h n_w \times O n_h n_w`: on a grid no larger than the kernel
    (:math:`n_h n_w \le k^2`) that is no more multiply-adds than the convolution's
    :math:`N O C k^2 n_h n_w`, without the padded copies (and their backward) of a padded input.
    """
    n_h, n_w = x.shape[-2:]
    matrix = conv_matrix(kernel, (n_h, n_w), padding_mode)
    if bias is not None:
        bias = bias.repeat_interleave(n_h * n_w)
    return F.linear(x.flatten(1), matrix, bias).view(x.shape[0], kernel.shape[0], n_h, n_w)


class _CircularConvOdd(torch.autograd.Function):
    r"""Stride-1 circular "same" convolution with an odd kernel (``p = k // 2``) whose input
    gradient is itself a circular convolution.

    Forward: :math:`y = K * \operatorname{pad}(x)` (circular padding, one padded copy). The
    circular convolution is a normal operator with adjoint the circular convolution with
    :math:`K^*[i, j, a, b] = K[j, i, k-1-a, k-1-b]`, so the input gradient is
    :math:`K^* * \operatorname{pad}(g)`: one forward-sized convolution of a padded copy of
    :math:`g`, where autograd through ``pad`` would run the convolution's input gradient on the
    :math:`(n + 2p)^2` padded grid and then fold the wrapped border back. The kernel gradient is the
    usual one of the padded input (the input is saved and padded again), the bias gradient the sum
    of :math:`g`. The backward is made of differentiable operations, so gradients of gradients work
    as for ``conv2d``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, kernel: Tensor, bias: Tensor | None, p: int) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(x, kernel)
        ctx.p, ctx.has_bias = p, bias is not None
        return F.conv2d(F.pad(x, (p, p, p, p), mode="circular"), kernel, bias)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # noqa: ANN001
        x, kernel = ctx.saved_tensors
        p = ctx.p
        grad_x = grad_kernel = grad_bias = None
        if ctx.needs_input_grad[0]:
            adjoint = kernel.transpose(0, 1).flip(2, 3)
            grad_x = F.conv2d(F.pad(grad, (p, p, p, p), mode="circular"), adjoint)
        if ctx.needs_input_grad[1]:
            padded = F.pad(x, (p, p, p, p), mode="circular")  # again: tracked when a gradient of it is asked
            grad_kernel = torch.nn.grad.conv2d_weight(padded, kernel.shape, grad)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(dim=(0, 2, 3))
        return grad_x, grad_kernel, grad_bias, None


def _circular_conv_odd(x: Tensor, kernel: Tensor, bias: Tensor | None, p: int) -> Tensor:
    """Stride-1 circular "same" convolution with an odd kernel (``p = k // 2``, at most the input's
    side): the operator of ``conv2d(pad(x, circular), kernel) + bias``, with the cheaper input
    gradient of :class:`_CircularConvOdd`."""
    return _CircularConvOdd.apply(x, kernel, bias, p)


def _drop_cache(layer_ref: "weakref.ref[LipschitzConv2d]", grad: Tensor) -> None:
    layer = layer_ref()
    if layer is not None:
        layer.clear_cache()


class LipschitzConv2d(nn.Module):
    r"""Base class: stride-1 "same" convolution with a kernel built from free parameters.

    Subclasses set up their parameters, initialise them in ``_init_free`` (called by
    :meth:`reset_parameters`, which also zeroes the bias) and implement :meth:`_build_kernel`; forward is
    :math:`y = \mathcal{C}_K(\operatorname{pad}(x)) + b`.

    Lipschitz bound: the float64 FFT norm of the kernel actually used (L2; exact for circular
    padding, on the :math:`n_h \times n_w` grid; for zero padding exact from the operator's
    matrix on small grids, else an upper bound on the :math:`(n_h + k - 1) \times (n_w + k - 1)`
    grid, :func:`critics.norms.same_conv_operator_norm`; stride 1); subclasses state theirs.

    Parameters
    ----------
    in_channels, out_channels, kernel_size : int
        Positive; square kernels only.
    padding_mode : str
        ``"zeros"`` or ``"circular"`` (any kernel size; even kernels pad one more pixel after
        than before).
    bias : bool
        Learnable per-channel bias (does not change the Lipschitz constant).

    Attributes
    ----------
    cuda_graphs : bool
        Replay a captured CUDA graph of the kernel construction in CUDA training steps (default
        True; set False on an instance to build eagerly). The graph reads the parameters'
        memory, so optimiser steps are seen; it is recaptured if a parameter is moved or
        replaced. A failed capture warns once and falls back to the eager build.
    """

    padding_modes: tuple[str, ...] = PADDING_MODES
    cuda_graphs: bool = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding_mode: str = "zeros",
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_channels(name, in_channels, out_channels, kernel_size)
        if padding_mode not in self.padding_modes:
            parity = "even" if kernel_size % 2 == 0 else "odd"
            raise ValueError(
                f"{name}: padding_mode={padding_mode!r} is not supported (kernel_size={kernel_size}, "
                f"{parity}); use one of {', '.join(map(repr, self.padding_modes))}"
            )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = int(kernel_size)
        self.padding_mode = padding_mode
        factory = {"device": device, "dtype": dtype}
        self.bias = nn.Parameter(torch.zeros(self.out_channels, **factory)) if bias else None
        self._cached_kernel: Tensor | None = None
        self._cache_key: tuple | None = None
        self._graph: tuple[tuple, GraphedBuild] | None = None

    # -- to be provided by subclasses ---------------------------------------------------------
    def _init_free(self) -> None:
        """Initialise the free parameters in place (called by :meth:`reset_parameters`, without
        gradient tracking)."""
        raise NotImplementedError

    def _build_kernel(self) -> Tensor:
        """The (out_channels, in_channels, k, k) kernel, differentiable in the parameters."""
        raise NotImplementedError

    def _graph_build(self) -> tuple[Callable[..., Tensor], tuple[Tensor, ...], tuple] | None:
        """``(fn, params, settings)`` with ``fn(*params)`` the training-mode kernel computed
        without host synchronisation or data-dependent control flow (so that it can be captured
        as a CUDA graph), and ``settings`` the hyperparameters it depends on; ``None`` (the
        default) where the layer has no such build."""
        return None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["_graph"] = None  # CUDA graphs are neither copied nor pickled: recaptured on use
        return state

    def reset_parameters(self) -> None:
        """Initialise the free parameters (:meth:`_init_free`, each subclass its own way) and zero the
        bias; forget the cached kernel."""
        with torch.no_grad():
            self._init_free()
            if self.bias is not None:
                self.bias.zero_()
        self.clear_cache()

    # -- kernel and cache ---------------------------------------------------------------------
    def _settings(self) -> tuple:
        """Hyperparameters the kernel depends on (subclasses extend it): part of the cache key,
        so that changing one on a built layer rebuilds the kernel."""
        return ()

    def _state_key(self) -> tuple:
        return self._settings() + tuple(
            (t._version, t.data_ptr(), t.dtype, t.device, t.requires_grad)
            for t in (*self.parameters(recurse=False), *self.buffers(recurse=False))
        )

    def clear_cache(self) -> None:
        """Forget the eval-mode kernel (the next eval forward rebuilds it)."""
        self._cached_kernel = None
        self._cache_key = None

    def train(self, mode: bool = True) -> "LipschitzConv2d":
        self.clear_cache()
        return super().train(mode)

    def _cached(self, build: Callable[[], Tensor]) -> Tensor:
        """``build()``, reused while the parameters, the mode and the grad mode are unchanged.

        Eval mode (or no grad): a detached value, kept until a parameter or buffer changes
        (version counter, storage or ``requires_grad``), a hyperparameter changes
        (:meth:`_settings`) or ``train()``/``eval()`` is called. Training mode with
        grad: the differentiable value is shared by every forward until the next backward
        passes through it (a hook then drops it, as that backward frees its graph) or a
        parameter changes, so calling the critic on P and on Q in one step builds the kernel
        once.
        """
        grad = torch.is_grad_enabled() and self.training
        key = (self.training, grad, self._state_key())
        if self._cache_key == key and self._cached_kernel is not None:
            return self._cached_kernel
        device_type = next(iter(self.parameters())).device.type
        if torch.is_autocast_enabled(device_type):
            # mixed precision: the kernel is built in float32 (orthogonality needs it) and only
            # cast to the activations' dtype inside the convolution
            with torch.autocast(device_type=device_type, enabled=False):
                return self._cached(build)
        if grad:
            value = self._graphed_build() if build == self._build_kernel else None
            if value is None:
                value = build()
            if value.requires_grad:
                # weakly: a hook holding the layer would make layer -> kernel -> hook -> layer a
                # cycle, keeping the layer (and its CUDA-graph memory) alive until a gc pass
                value.register_hook(functools.partial(_drop_cache, weakref.ref(self)))
        else:
            with torch.no_grad():
                value = build()
        # the key after the build: a build may advance a buffer (OSSN's power iteration)
        self._cached_kernel, self._cache_key = value, (self.training, grad, self._state_key())
        return value

    def _graphed_build(self) -> Tensor | None:
        """The kernel from a replayed CUDA graph, or ``None`` where graphs do not apply."""
        if not self.cuda_graphs:
            return None
        spec = self._graph_build()
        if spec is None:
            return None
        fn, params, settings = spec
        if not can_replay(params):
            return None
        key = (settings, tuple((t.data_ptr(), tuple(t.shape), t.dtype, t.device, t.requires_grad) for t in params))
        if self._graph is None or self._graph[0] != key:
            self._graph = None
            try:
                graphed = GraphedBuild(fn, params)
            except Exception as exc:  # an environment where capture fails: build eagerly
                warnings.warn(
                    f"{type(self).__name__}: CUDA graph capture of the kernel construction failed "
                    f"({type(exc).__name__}: {exc}); building the kernel eagerly from now on.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self.cuda_graphs = False
                return None
            self._graph = (key, graphed)
        return self._graph[1]()

    @property
    def weight(self) -> Tensor:
        """The kernel used by forward (see :meth:`_cached` for when it is rebuilt)."""
        return self._cached(self._build_kernel)

    # -- forward ------------------------------------------------------------------------------
    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects input (N, {self.in_channels}, H, W); "
                f"got shape {tuple(x.shape)} (channels {x.shape[1] if x.ndim > 1 else 'missing'})"
            )
        if self.padding_mode == "circular" and max(same_padding(self.kernel_size)) > min(x.shape[-2:]):
            raise ValueError(
                f"{type(self).__name__}: circular padding of {max(same_padding(self.kernel_size))} pixels "
                f"(kernel_size={self.kernel_size}) wraps around an input of only {tuple(x.shape[-2:])} pixels; "
                f"use inputs of at least kernel_size // 2 = {self.kernel_size // 2} pixels per side "
                "or padding_mode='zeros'"
            )

    def _pad(self, x: Tensor) -> Tensor:
        if self.kernel_size == 1:
            return x
        mode = "circular" if self.padding_mode == "circular" else "constant"
        return F.pad(x, same_padding(self.kernel_size), mode=mode)

    def _conv(self, x: Tensor, kernel: Tensor, bias: Tensor | None = None) -> Tensor:
        """``conv(pad(x), kernel) + bias`` (the bias, if given, added inside the convolution); on a
        grid no larger than the kernel, as the operator's matrix (:func:`small_grid_conv`)."""
        if kernel.dtype != x.dtype:
            kernel = kernel.to(x.dtype)
        if bias is not None and bias.dtype != x.dtype:
            bias = bias.to(x.dtype)
        if self.kernel_size > 1 and x.shape[-2] * x.shape[-1] <= self.kernel_size**2:
            return small_grid_conv(x, kernel, bias, self.padding_mode)
        if self.kernel_size % 2:
            p = self.kernel_size // 2
            if self.padding_mode == "zeros":
                # symmetric zero padding inside the convolution: no padded copy of the input
                return F.conv2d(x, kernel, bias, padding=p)
            if 0 < p <= min(x.shape[-2:]) and x.requires_grad and torch.is_grad_enabled():
                # the backward of the padded copy (gathering the wrapped gradient) is what this
                # saves; when the input needs no gradient, one padded copy is as fast
                return _circular_conv_odd(x, kernel, bias, p)
        return F.conv2d(self._pad(x), kernel, bias)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return self._conv(x, self.weight, self.bias)

    def _spatial(self, input_shape: tuple[int, ...]) -> tuple[int, int]:
        shape = tuple(int(s) for s in input_shape)
        if len(shape) == 3 and shape[0] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__}: input_shape {shape} has {shape[0]} channels; expected {self.in_channels}"
            )
        if len(shape) not in (2, 3) or min(shape[-2:]) < 1:
            raise ValueError(f"{type(self).__name__}: input_shape must be (C, H, W) or (H, W); got {shape}")
        return shape[-2], shape[-1]

    # -- export -------------------------------------------------------------------------------
    def eval_kernel(self) -> Tensor:
        """A detached copy of the kernel the eval-mode forward uses, whatever the current mode
        (the mode is restored; no training-mode side effect such as OSSN's power iteration)."""
        was_training = self.training
        if was_training:
            self.eval()
        try:
            with torch.no_grad():
                return self.weight.detach().clone()
        finally:
            if was_training:
                self.train(True)

    def _plain_conv(self, in_channels: int, out_channels: int, kernel: Tensor, bias: Tensor | None) -> nn.Conv2d:
        """``nn.Conv2d`` with this layer's padding (``padding="same"``: ``(k - 1) // 2`` before and
        ``k // 2`` after, in the layer's padding mode) and the given fixed weights."""
        conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel.shape[-1],
            padding="same",
            padding_mode=self.padding_mode,
            bias=bias is not None,
            device=kernel.device,
            dtype=kernel.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(kernel)
            if bias is not None:
                conv.bias.copy_(bias)
        return conv.train(self.training)

    def export(self) -> nn.Module:
        """This layer as a plain ``nn.Conv2d`` with the eval-mode kernel and the bias.

        ``padding="same"`` with the layer's ``padding_mode`` pads exactly as the layer does (for
        even kernels one more pixel after than before), so the module computes the eval-mode
        layer's function (to float rounding; bit for bit where both run the same convolution),
        and :func:`critics.certify` gives it the layer's certificate (same kernel, same grid).
        Subclasses whose forward is not one convolution override this.
        """
        kernel = self.eval_kernel()
        bias = None if self.bias is None else self.bias.detach().to(kernel.dtype)
        return self._plain_conv(self.in_channels, self.out_channels, kernel, bias)

    # -- certificate --------------------------------------------------------------------------
    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """Float64 certificate of the kernel used in the current mode (see subclasses): the FFT norm
        (exact) for circular padding; for zero padding the operator matrix's largest singular value
        (exact) on small grids, else the FFT bound (:func:`critics.norms.same_conv_operator_norm`)."""
        with torch.no_grad():
            kernel = self.weight
        return same_conv_operator_norm(kernel, self._spatial(input_shape), padding_mode=self.padding_mode)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"padding_mode={self.padding_mode!r}, bias={self.bias is not None}"
        )
