"""Adaptive Orthogonal Convolution (AOC): a strided orthogonal convolution with an explicit kernel."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from critics._checks import check_int
from critics.functional import working_dtype
from critics.layers._cuda_graphs import FixedBjorckGraph
from critics.layers.bcop import block_orthogonal_kernel
from critics.layers.conv_base import LipschitzConv2d
from critics.norms import conv_operator_norm, strided_conv_operator_norm
from critics.ortho import UNSET, BjorckOptions, OrthoConfig, Tol, resolve
from critics.rules import register_certificate_rule

__all__ = ["AOCConv2d", "compose_kernels"]


def compose_kernels(outer: Tensor, inner: Tensor) -> Tensor:
    r"""Kernel of the composition "correlate with ``inner`` (stride 1), then with ``outer``".

    .. math::

        K[o, i, t] = \sum_m \sum_{r + a = t} \mathrm{outer}[o, m, r]\, \mathrm{inner}[m, i, a]

    (a full 2-D convolution of the two kernels, summed over the middle channels), so that
    correlating with ``outer`` at stride ``s`` after ``inner`` at stride 1 is correlating with
    :math:`K` at stride ``s``, the paddings adding up. One ``conv2d`` call: the inner kernel's
    input channels are the batch, the flipped outer kernel the filters.

    Parameters
    ----------
    outer : (C_out, C_mid, k_o, k_o) tensor
    inner : (C_mid, C_in, k_i, k_i) tensor

    Returns
    -------
    (C_out, C_in, k_o + k_i - 1, k_o + k_i - 1) tensor.
    """
    k_o = outer.shape[-1]
    full = F.conv2d(inner.transpose(0, 1), outer.flip(-2, -1), padding=k_o - 1)  # (C_in, C_out, k, k)
    return full.transpose(0, 1)


class AOCConv2d(FixedBjorckGraph, BjorckOptions, LipschitzConv2d):
    r"""Orthogonal convolution with native stride and an explicit kernel (Boissin et al. 2025).

    A stride-``s`` convolution of kernel size :math:`k \ge s` is the composition of a stride-1
    BCOP convolution of size :math:`k - s + 1` (:math:`c_{in} \to c_{mid}`,
    :func:`~critics.layers.bcop.block_orthogonal_kernel`) and a stride-``s`` RKO convolution of
    size :math:`s` whose reshaped kernel :math:`R \in \mathbb{R}^{c_{out} \times c_{mid} s^2}` is
    Björck-orthonormalised (no :math:`1/k` scale: an :math:`s \times s` stride-:math:`s`
    convolution is a pixel unshuffle followed by the matrix :math:`R`, so it is orthogonal when
    :math:`R` is), merged into one kernel (:func:`compose_kernels`):

    .. math::

        K = R \circledast B, \qquad y = \mathcal{C}^{(s)}_K(\operatorname{pad}(x)) + b,
        \qquad c_{mid} = \max(c_{in}, \lfloor c_{out} / s^2 \rfloor)

    With circular padding both factors are (semi-)orthogonal, hence so is the layer: an
    isometry or a co-isometry (orthonormal columns or rows of its Jacobian), gradient-norm
    preserving. ``stride=1`` is BCOP alone. Padding is :math:`(k - s) / 2` pixels per side
    (``stride > 1`` needs :math:`k - s` even); the output has :math:`\lfloor n / s \rfloor`
    pixels per side.

    Written here rather than wrapped from orthogonium 0.0.4 (``AdaptiveOrthoConv2d``). Its layer
    is correct where we checked it (explicit float64 Jacobian after 5 Adam steps, kernel 4 /
    stride 2 / 8 -> 16 channels and kernel 3 / stride 1: every singular value 1 to 6 digits),
    but it orthogonalises through ``torch.nn.utils.parametrize`` chains (a power-iteration
    normaliser, a fixed Björck count) with their own caching; this layer reuses wdist's BCOP
    construction, batched convergence-tested Björck (:class:`~critics.ortho.OrthoConfig`), and
    the eval-mode kernel cache and CUDA-graph replay of :class:`~critics.layers.LipschitzConv2d`,
    so no second dependency is needed. The certificate below relies on neither.

    Lipschitz bound: the float64 norm of the strided convolution with the kernel actually used,
    from the FFT of its polyphase kernel (:func:`~critics.norms.strided_conv_operator_norm`):
    exact for circular padding (input sides divisible by ``s``), an upper bound for zero
    padding; :math:`1 + O(10^{-6})` in float32 once Björck has converged. L2.

    Shape
    -----
    (N, c_in, H, W) -> (N, c_out, floor(H / s), floor(W / s))

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
        :math:`k \ge s`; with ``stride > 1``, :math:`k - s` even (e.g. 4 with stride 2).
    stride : int
        s >= 1.
    bjorck_iters, bjorck_tol : int or None, float or None
        Björck settings (override ``ortho``'s fields).
    padding_mode : str
        ``"circular"`` (default, orthogonal; H and W divisible by ``s``) or ``"zeros"``
        (1-Lipschitz, not orthogonal near the border).
    bias : bool
    ortho : OrthoConfig or None
        Keyword only. Björck and Gram settings (``None``: ``OrthoConfig.CONV``).

    Notes
    -----
    Eval mode caches the kernel (see :class:`~critics.layers.LipschitzConv2d`); on CUDA the
    training-mode build replays a CUDA graph with a fixed Björck count (two more than the
    parameters need, re-measured every ``graph_recheck_every`` builds), as BCOP does.

    References
    ----------
    .. [1] Boissin, Mamalet, Fel, Picard, Massena & Serrurier, "An adaptive orthogonal
       convolution scheme for efficient and flexible CNN architectures", arXiv:2501.07930 (2025).
    .. [2] Li et al., "Preventing gradient attenuation in Lipschitz constrained convolutional
       networks", NeurIPS 2019 (BCOP, RKO).
    """

    padding_modes = ("circular", "zeros")
    default_ortho: ClassVar[OrthoConfig] = OrthoConfig.CONV

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bjorck_iters: int | None = None,
        bjorck_tol: Tol = UNSET,
        padding_mode: str = "circular",
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        ortho: OrthoConfig | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding_mode, bias, device, dtype)
        s = check_int("AOCConv2d", "stride", stride)
        k = self.kernel_size
        if k < s or (s > 1 and (k - s) % 2):
            raise ValueError(
                f"AOCConv2d: kernel_size={k} with stride={s} is not supported; need kernel_size >= stride "
                "and, for stride > 1, kernel_size - stride even (symmetric padding), e.g. kernel_size=4, stride=2"
            )
        self.stride = s
        self.ortho = resolve("AOCConv2d", ortho, self.default_ortho, bjorck_iters, bjorck_tol)
        self.mid_channels = max(self.in_channels, self.out_channels // (s * s)) if s > 1 else self.out_channels
        self.inner_size = k - s + 1
        c = max(self.in_channels, self.mid_channels)
        factory = {"device": device, "dtype": dtype}
        self.ortho_param = nn.Parameter(torch.empty(c, c, **factory))
        if self.inner_size > 1:
            self.proj_param = nn.Parameter(torch.empty(2 * (self.inner_size - 1), c, max(1, c // 2), **factory))
        else:
            self.register_parameter("proj_param", None)
        if s > 1:
            self.rko_param = nn.Parameter(torch.empty(self.out_channels, self.mid_channels * s * s, **factory))
        else:
            self.register_parameter("rko_param", None)
        self.reset_parameters()

    def _init_free(self) -> None:
        """Orthogonal initialisation of every free matrix (Björck starts at its fixed point)."""
        for p in self._free():
            if p.ndim == 3:
                for m in p:
                    nn.init.orthogonal_(m)
            else:
                nn.init.orthogonal_(p)

    def _free(self) -> tuple[Tensor, ...]:
        return tuple(p for p in (self.ortho_param, self.proj_param, self.rko_param) if p is not None)

    # -- kernel -------------------------------------------------------------------------------
    def _kernel_from(self, *params: Tensor, tol: float | None = None, iters: int | None = None) -> Tensor:
        """The kernel from the free parameters (in the order of :meth:`_free`): Björck until ``tol``,
        or with ``tol=None`` exactly ``iters`` iterations (no host synchronisation)."""
        dtype = params[0].dtype
        work = working_dtype(dtype)
        it = iter(params)
        h = self._orthonormalize(next(it).to(work), tol, iters)
        if self.proj_param is not None:
            inner = block_orthogonal_kernel(h, self._orthonormalize(next(it).to(work), tol, iters))
        else:
            inner = h[:, :, None, None]
        inner = inner[: self.mid_channels, : self.in_channels]
        if self.rko_param is None:
            return inner.to(dtype)
        s = self.stride
        rko = self._orthonormalize(next(it).to(work), tol, iters).reshape(self.out_channels, self.mid_channels, s, s)
        return compose_kernels(rko, inner).to(dtype)

    def _build_kernel(self) -> Tensor:
        return self._kernel_from(*self._free(), tol=self.bjorck_tol)

    def _settings(self) -> tuple:
        return (self.ortho,)

    def _bjorck_matrices(self) -> tuple[Tensor, ...]:
        return self._free()

    def _graph_settings(self) -> tuple:
        return (self.stride,)

    # -- forward ------------------------------------------------------------------------------
    def _padding(self) -> tuple[int, int]:
        total = self.kernel_size - self.stride
        return total // 2, total - total // 2

    def _check_input(self, x: Tensor) -> None:
        super()._check_input(x)
        if self.padding_mode == "circular" and (x.shape[-2] % self.stride or x.shape[-1] % self.stride):
            raise ValueError(
                f"AOCConv2d: circular padding with stride={self.stride} needs H and W divisible by {self.stride}; "
                f"got an input of {tuple(x.shape[-2:])} pixels (pad it first, e.g. critics.layers.PadToMultiple)"
            )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            return super().forward(x)
        self._check_input(x)
        kernel, bias = self.weight, self.bias
        if kernel.dtype != x.dtype:
            kernel = kernel.to(x.dtype)
        if bias is not None and bias.dtype != x.dtype:
            bias = bias.to(x.dtype)
        before, after = self._padding()
        if self.padding_mode == "zeros":
            return F.conv2d(x, kernel, bias, stride=self.stride, padding=before)
        return F.conv2d(F.pad(x, (before, after, before, after), mode="circular"), kernel, bias, stride=self.stride)

    def export(self) -> nn.Module:
        """A plain ``nn.Conv2d`` (stride ``s``, ``(k - s) / 2`` pixels of the layer's padding per side;
        ``padding="same"`` for stride 1) with the eval-mode kernel and the bias.

        :func:`critics.certify` certifies a strided ``nn.Conv2d`` by its stride-1 norm (a valid but
        looser bound, up to about ``s`` times this layer's); certify the layer, not its export.
        """
        if self.stride == 1:
            return super().export()
        kernel = self.eval_kernel()
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self._padding()[0],
            padding_mode=self.padding_mode,
            bias=self.bias is not None,
            device=kernel.device,
            dtype=kernel.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(kernel)
            if self.bias is not None:
                conv.bias.copy_(self.bias.detach().to(kernel.dtype))
        return conv.train(self.training)

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """Float64 norm of the strided convolution with the kernel used in the current mode (exact
        for circular padding)."""
        with torch.no_grad():
            kernel = self.weight
        spatial = self._spatial(input_shape)
        if self.stride == 1:
            return conv_operator_norm(kernel, spatial, padding_mode=self.padding_mode)
        return strided_conv_operator_norm(kernel, self.stride, spatial, self._padding(), self.padding_mode)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", stride={self.stride}, mid_channels={self.mid_channels}"


register_certificate_rule(AOCConv2d, AOCConv2d.lipschitz_bound, user_asserted=False)
