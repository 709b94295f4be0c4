"""Skew-Orthogonal Convolution (SOC): a truncated exponential of a skew-symmetric convolution."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from critics._checks import check_stride_one
from critics.layers.conv_base import LipschitzConv2d
from critics.norms import conv_operator_norm, reshaped_kernel_norm_bound
from critics.ortho import OrthoConfig, resolve

__all__ = ["SOCConv2d", "skew_symmetric_kernel", "exp_tail_bound"]


def skew_symmetric_kernel(w: Tensor) -> Tensor:
    r""":math:`L = W - W^*`, with :math:`W^*[i, j, p, q] = W[j, i, k-1-p, k-1-q]`.

    For odd square kernels and "same" zero (or circular) padding, the convolution with
    :math:`W^*` is the adjoint of the one with :math:`W`, so :math:`\mathcal{C}_L` is exactly
    skew-symmetric. ``w``: (C, C, k, k).
    """
    return w - w.transpose(0, 1).flip(2, 3)


def exp_tail_bound(s: float, terms: int) -> float:
    r""":math:`\sum_{i \ge \text{terms}} s^i / i!` in float64, summed term by term (no cancellation)."""
    s = float(s)
    term = 1.0
    for i in range(1, terms + 1):
        term *= s / i  # s^terms / terms!
    total, i = 0.0, terms
    while term > 0.0 and term >= total * 1e-17:
        total += term
        i += 1
        term *= s / i
    return total


class SOCConv2d(LipschitzConv2d):
    r"""Skew-orthogonal convolution (Singla & Feizi 2021) with a certified, always-valid scale.

    With :math:`C = \max(c_{in}, c_{out})`, a free kernel :math:`W \in \mathbb{R}^{C \times C
    \times k \times k}` (odd :math:`k`) gives the skew-symmetric :math:`L = W - W^*`, rescaled
    so that its certified norm is at most ``max_norm``:

    .. math::

        \tilde L = L \cdot \min\!\Big(1, \frac{s_{\max}}{b(L)}\Big), \qquad
        y = \sum_{i=0}^{K} \frac{\mathcal{C}_{\tilde L}^{\,i}\, x}{i!} + b,
        \qquad K = \text{terms} - 1

    where :math:`b(L) = k\,\overline{\sigma}(T_L)` is the input-size-independent bound of
    :func:`~critics.norms.reshaped_kernel_norm_bound` (:math:`T_L` the
    :math:`C \times C k^2` reshaping, :math:`\overline\sigma` its Gram-iteration upper bound):
    a guaranteed upper bound at every step, not a power-iteration estimate. It is typically
    1.5-2x the true norm, so the layer's actual :math:`\|\mathcal{C}_{\tilde L}\|` sits
    around 0.35-0.5 when the bound is active (the certificate uses the exact FFT value).
    :math:`\mathcal{C}_{\tilde L}` is skew-symmetric, so :math:`\exp(\mathcal{C}_{\tilde L})` is
    orthogonal and only the truncation departs from it.
    ``in_channels < out_channels`` zero-pads the input channels (an isometry);
    ``in_channels > out_channels`` keeps the first ``out_channels`` output channels (a
    projection). Training mode sums ``train_terms`` terms, eval mode ``eval_terms``.

    Lipschitz bound: :math:`1 + \sum_{i > K} s^i / i!` (L2), with :math:`s` the smaller of the
    scaling bound and the float64 FFT norm of :math:`\mathcal{C}_{\tilde L}` on the
    :math:`(n+k-1)` grid (both valid), and :math:`K + 1` the number of terms of the current mode
    (eval: ``eval_terms``). Tight up to that tail (the exact exponential is orthogonal); with
    the defaults (:math:`s \le 0.7`, 12 eval terms) it is at most :math:`1 + 3.1 \cdot 10^{-11}`, and
    :math:`1 + 1.9 \cdot 10^{-4}` with the 6 training terms. Conditions: odd kernel size,
    stride 1, zero padding (circular also allowed; both make the convolution skew).

    Shape
    -----
    (N, c_in, H, W) -> (N, c_out, H, W)

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts (>= 1).
    kernel_size : int
        Odd, >= 1 (even kernels have no centre, so :math:`W^*` is not the adjoint: an error).
    train_terms, eval_terms : int
        Terms of the Taylor series (including the identity) in training and eval mode.
    max_norm : float
        Upper bound :math:`s_{\max}` imposed on the certified norm of :math:`\mathcal{C}_{\tilde L}`
        (default 0.7, in (0, 2]).
    padding_mode : str
        ``"zeros"`` (default) or ``"circular"``.
    bias : bool
        Learnable bias.
    stride : int
        Must be 1.
    ortho : OrthoConfig or None
        Keyword only. Only ``gram_iters`` is used: the Gram squarings of the reshaped-kernel
        bound :math:`b(L)` (``None``: ``default_ortho``,
        :attr:`OrthoConfig.SOC <critics.ortho.OrthoConfig.SOC>`, 6 squarings).

    Notes
    -----
    In eval mode the scaled kernel is built once and cached until a parameter changes or
    ``train()`` is called. The rescaling uses no buffers, so a freshly built layer, a layer
    after large optimiser steps and a reloaded one are all certified alike (the failures of
    the published power-iteration scale; see ``tests/test_soc.py``).

    References
    ----------
    .. [1] Singla & Feizi, "Skew orthogonal convolutions", ICML 2021, arXiv:2105.11417.
    .. [2] Singla & Feizi, "Fantastic four: differentiable bounds on singular values of
       convolution layers", ICLR 2021, arXiv:1911.10258.
    """

    default_ortho: ClassVar[OrthoConfig] = OrthoConfig.SOC

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        train_terms: int = 6,
        eval_terms: int = 12,
        max_norm: float = 0.7,
        padding_mode: str = "zeros",
        bias: bool = True,
        stride: int = 1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        ortho: OrthoConfig | None = None,
    ) -> None:
        check_stride_one("SOCConv2d", stride)
        if isinstance(kernel_size, int) and kernel_size >= 1 and kernel_size % 2 == 0:
            raise ValueError(
                f"SOCConv2d needs an odd kernel_size (the skew-symmetric construction W - W* needs a "
                f"centre tap); got kernel_size={kernel_size}"
            )
        for name, value in (("train_terms", train_terms), ("eval_terms", eval_terms)):
            if int(value) < 1:
                raise ValueError(f"SOCConv2d: {name} must be >= 1; got {value!r}")
        if not 0.0 < float(max_norm) <= 2.0:
            raise ValueError(f"SOCConv2d: max_norm must be in (0, 2]; got {max_norm!r}")
        super().__init__(in_channels, out_channels, kernel_size, padding_mode, bias, device, dtype)
        self.train_terms = int(train_terms)
        self.eval_terms = int(eval_terms)
        self.max_norm = float(max_norm)
        self.ortho = resolve("SOCConv2d", ortho, self.default_ortho)
        c = max(self.in_channels, self.out_channels)
        self.channels = c
        factory = {"device": device, "dtype": dtype}
        self.kernel_param = nn.Parameter(torch.empty(c, c, self.kernel_size, self.kernel_size, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform free kernel (the scale is re-derived at every step); zero bias."""
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.kernel_param, a=math.sqrt(5))
            if self.bias is not None:
                self.bias.zero_()
        self.clear_cache()

    @property
    def terms(self) -> int:
        """Number of Taylor terms used in the current mode."""
        return self.train_terms if self.training else self.eval_terms

    def _scaled(self) -> tuple[Tensor, Tensor]:
        """(scaled skew kernel, its certified norm bound s <= max_norm)."""
        return self._scaled_from(self.kernel_param)

    def _scaled_from(self, w: Tensor) -> tuple[Tensor, Tensor]:
        work = torch.float32 if w.dtype in (torch.float16, torch.bfloat16) else w.dtype
        skew = skew_symmetric_kernel(w.to(work))
        # For a skew kernel U(L) is a row permutation of -T(L)^T, so T alone gives the T/U bound;
        # R and S would cost k^3 C^3 per Gram step for ~20% tightness: not worth it per step.
        bound = reshaped_kernel_norm_bound(skew, gram_iters=self.ortho.gram_iters, reshapings="T")
        factor = torch.clamp(self.max_norm / bound.clamp_min(torch.finfo(work).tiny), max=1.0)
        return skew * factor, bound * factor

    def _scaled_kernel(self, w: Tensor) -> Tensor:
        return self._scaled_from(w)[0]

    def _build_kernel(self) -> Tensor:
        return self._scaled()[0]

    def _settings(self) -> tuple:
        return (self.max_norm, self.ortho)

    def _graph_build(self) -> tuple:
        return self._scaled_kernel, (self.kernel_param,), ("soc", self.max_norm, self.ortho)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        kernel = self.weight
        if self.in_channels < self.channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.channels - self.in_channels))
        # z = sum_i C_L^i x / i!: each term is the previous one convolved with L / i (the
        # division on the small kernel, not on the activations), accumulated in place (add saves
        # nothing for backward); the bias rides on the last convolution when no channel is cut.
        terms = self.terms
        fuse_bias = self.bias is not None and self.out_channels == self.channels and terms > 1
        z = x
        term = x
        for i in range(1, terms):
            term = self._conv(term, kernel / i, self.bias if fuse_bias and i == terms - 1 else None)
            z = x + term if i == 1 else z.add_(term)
        if self.out_channels < self.channels:
            z = z[:, : self.out_channels]
        if self.bias is not None and not fuse_bias:
            z = z + self.bias.to(z.dtype)[:, None, None]
        return z

    def operator_norm_bound(self, input_shape: tuple[int, ...]) -> float:
        r"""Certified :math:`s \ge \|\mathcal{C}_{\tilde L}\|_2` on ``input_shape`` inputs (float64)."""
        spatial = self._spatial(input_shape)
        with torch.no_grad():
            kernel = self.weight  # the kernel the forward of the current mode uses
            s_reshaped = reshaped_kernel_norm_bound(kernel, gram_iters=self.ortho.gram_iters, reshapings="T")
        s_fft = conv_operator_norm(kernel, spatial, padding_mode=self.padding_mode)
        # s_reshaped is computed in the parameter dtype; inflate it by a rounding margin.
        eps = torch.finfo(kernel.dtype).eps
        return min(float(s_reshaped) * (1 + 64 * eps), s_fft)

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """:math:`1 + \\sum_{i \\ge \\text{terms}} s^i/i!` for the current mode's number of terms."""
        return 1.0 + exp_tail_bound(self.operator_norm_bound(input_shape), self.terms)

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", train_terms={self.train_terms}, eval_terms={self.eval_terms}, max_norm={self.max_norm}"
        )
