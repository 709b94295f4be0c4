"""Invertible (orthogonal) downsampling, and strided Lipschitz convolutions built from it."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch.nn.functional as F
from torch import Tensor, nn

from critics._checks import check_int
from critics.rules import register_certificate_rule

__all__ = ["InvertibleDownsample", "PadToMultiple", "strided_conv"]


class InvertibleDownsample(nn.PixelUnshuffle):
    r"""Pixel unshuffle: each :math:`f \times f` spatial block becomes :math:`f^2` channels.

    .. math::

        y[c f^2 + f i + j, h, w] = x[c, f h + i, f w + j]

    A permutation of the coordinates, hence orthogonal (norm preserving and invertible, the
    inverse being ``nn.PixelShuffle``).

    Lipschitz bound: 1 in L2, exact (it is an isometry), for H and W divisible by ``factor``.

    Shape
    -----
    (N, C, H, W) -> (N, C f^2, H / f, W / f)

    Parameters
    ----------
    factor : int
        Downsampling factor f >= 1.

    References
    ----------
    .. [1] Li et al., arXiv:1911.00937 (invertible downsampling in the BCOP critic);
       Jacobsen, Smeulders & Oyallon, "i-RevNet", ICLR 2018.
    """

    def __init__(self, factor: int = 2) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"InvertibleDownsample: factor must be a positive integer; got {factor!r}")
        super().__init__(factor)

    def forward(self, x: Tensor) -> Tensor:
        f = self.downscale_factor
        if x.ndim != 4 or x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(
                f"InvertibleDownsample({f}) needs (N, C, H, W) with H and W divisible by {f}; "
                f"got shape {tuple(x.shape)}"
            )
        return super().forward(x)

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """1.0 (a permutation of coordinates)."""
        return 1.0

    def export(self) -> nn.PixelUnshuffle:
        """The plain ``nn.PixelUnshuffle`` with the same factor (the same map, without the check)."""
        return nn.PixelUnshuffle(self.downscale_factor).train(self.training)


class PadToMultiple(nn.Module):
    r"""Zero-pad the bottom and right edges so H and W become multiples of ``multiple``.

    .. math::

        y = \begin{pmatrix} x & 0 \\ 0 & 0 \end{pmatrix}

    An isometric embedding (it only appends zeros).

    Lipschitz bound: 1 in L2, exact, no conditions.

    Shape
    -----
    (N, C, H, W) -> (N, C, ceil(H / m) m, ceil(W / m) m)

    Parameters
    ----------
    multiple : int
        m >= 1.
    """

    def __init__(self, multiple: int = 2) -> None:
        super().__init__()
        self.multiple = check_int("PadToMultiple", "multiple", multiple)

    def forward(self, x: Tensor) -> Tensor:
        m = self.multiple
        ph, pw = (-x.shape[-2]) % m, (-x.shape[-1]) % m
        return F.pad(x, (0, pw, 0, ph)) if ph or pw else x

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """1.0 (appending zeros is an isometry)."""
        return 1.0

    def extra_repr(self) -> str:
        return f"multiple={self.multiple}"


def strided_conv(
    conv: Callable[..., nn.Module],
    in_channels: int,
    out_channels: int,
    kernel_size: int = 4,
    stride: int = 2,
    **conv_kwargs: Any,
) -> nn.Sequential:
    r"""A strided Lipschitz convolution as ``InvertibleDownsample(stride)`` + stride-1 conv.

    .. math::

        \text{conv}_{k, s}(x) \;\rightsquigarrow\; \mathcal{C}_{K'}(\operatorname{unshuffle}_s(x)),
        \qquad K' \in \mathbb{R}^{c_{out} \times s^2 c_{in} \times \lceil k/s \rceil \times \lceil k/s \rceil}

    so a kernel-4 stride-2 convolution becomes unshuffle + kernel-2 convolution on 4x the
    channels, as in the published BCOP critic. The receptive field matches; the operator is not
    the same one (it is stride-1 after the unshuffle), but it is Lipschitz with the same constant
    as the stride-1 layer.

    Lipschitz bound: that of ``conv`` on the unshuffled input (the unshuffle is orthogonal).

    Parameters
    ----------
    conv : callable
        ``conv(in_channels, out_channels, kernel_size, **conv_kwargs)``, e.g. ``BCOPConv2d``.
    in_channels, out_channels, kernel_size, stride : int
        Of the strided convolution being replaced.

    Returns
    -------
    ``nn.Sequential(InvertibleDownsample(stride), conv(stride**2 * in_channels, out_channels,
    ceil(kernel_size / stride)))``.
    """
    check_int("strided_conv", "kernel_size", kernel_size)
    check_int("strided_conv", "stride", stride)
    k = max(1, math.ceil(int(kernel_size) / int(stride)))
    return nn.Sequential(
        InvertibleDownsample(int(stride)), conv(int(stride) ** 2 * in_channels, out_channels, k, **conv_kwargs)
    )


register_certificate_rule(InvertibleDownsample, InvertibleDownsample.lipschitz_bound, user_asserted=False)
register_certificate_rule(PadToMultiple, PadToMultiple.lipschitz_bound, user_asserted=False)
