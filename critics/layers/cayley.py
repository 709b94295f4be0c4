"""Cayley orthogonal convolution: the Cayley transform of a skew-Hermitian operator, per frequency (FFT)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from critics._checks import check_stride_one
from critics.layers.conv_base import LipschitzConv2d
from critics.norms import fold_kernel, round_up
from critics.rules import register_certificate_rule

__all__ = ["CayleyConv2d", "cayley_spectrum"]


def cayley_spectrum(kernel: Tensor, alpha: Tensor, grid: tuple[int, int]) -> Tensor:
    r"""The unitary matrices :math:`Q(\omega)` of the Cayley convolution on an ``h x w`` grid.

    .. math::

        V = \alpha\, K / \|K\|_F, \qquad
        \hat V(\omega) = \sum_{p} V[:, :, p]\, e^{-2\pi i \langle p, \omega\rangle / n},
        \qquad A = \hat V - \hat V^{H}, \qquad Q = (I + A)^{-1} (I - A)

    for the :math:`h \times (\lfloor w/2 \rfloor + 1)` frequencies of ``rfft2`` (taps beyond the
    grid wrapped, :func:`~critics.norms.fold_kernel`). :math:`A` is skew-Hermitian, so
    :math:`I + A` is always invertible (eigenvalues :math:`1 + i\lambda`) and :math:`Q` is
    unitary. Solved with ``linalg.solve_ex`` (no error check, hence no host synchronisation: the
    system is never singular). Returns (h, w // 2 + 1, C, C), complex.
    """
    h, w = grid
    v = alpha * kernel / kernel.norm().clamp_min(torch.finfo(kernel.dtype).tiny)
    spec = torch.fft.rfft2(fold_kernel(v, (h, w)), s=(h, w)).permute(2, 3, 0, 1)  # (h, w//2+1, C, C)
    a = spec - spec.mH
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return torch.linalg.solve_ex(eye + a, eye - a, check_errors=False)[0]


class CayleyConv2d(LipschitzConv2d):
    r"""Orthogonal circular convolution by the Cayley transform in the Fourier domain (Trockman & Kolter 2021).

    A circular convolution is diagonalised by the 2-D DFT into one :math:`C \times C` matrix per
    frequency. With :math:`C = \max(c_{in}, c_{out})` and a free kernel
    :math:`K \in \mathbb{R}^{C \times C \times k \times k}` and scale :math:`\alpha`, each
    frequency gets the unitary :math:`Q(\omega)` of :func:`cayley_spectrum`, and

    .. math::

        y = \mathcal{F}^{-1}\big(Q_{[:c_{out}, :c_{in}]}(\omega)\, \mathcal{F}x(\omega)\big) + b

    (``rfft2`` / ``irfft2``): a real circular convolution (with an :math:`n \times n` kernel) that
    is orthogonal, semi-orthogonal when the channel counts differ (first rows or columns).
    Gradient-norm preserving. The operator depends on the input size: :math:`Q` is built for the
    grid of each input (cached in eval mode per size).

    The published layer creates :math:`\alpha` in its first forward (absent from the state dict
    and the optimiser until then); here it is a parameter from construction, initialised to
    :math:`\|K\|_F`. Not wrapped from orthogonium, whose Cayley convolution is in its ``legacy``
    package.

    Lipschitz bound: :math:`\max_\omega \sigma_{\max}(Q_{[:c_{out}, :c_{in}]}(\omega))` in float64
    over the frequencies of the matrices actually used (exact: the real operator's per-frequency
    matrices are these, or at self-conjugate frequencies their Hermitian parts, whose norms are
    no larger); :math:`1 + O(10^{-6})` in float32. L2. Conditions: circular padding, stride 1.

    Shape
    -----
    (N, c_in, H, W) -> (N, c_out, H, W)

    Parameters
    ----------
    in_channels, out_channels, kernel_size : int
    bias : bool
    stride : int
        Must be 1 (downsample with :class:`~critics.layers.InvertibleDownsample`).
    input_size : (H, W) or None
        The grid :meth:`export` writes its kernel for (default: that of the last forward).

    Notes
    -----
    No CUDA-graph replay: batched complex solves may synchronise the host on some backends, and
    the build is a few FFTs and one batched solve per step.

    References
    ----------
    .. [1] Trockman & Kolter, "Orthogonalizing convolutional layers with the Cayley transform",
       ICLR 2021, arXiv:2104.07167.
    """

    padding_modes = ("circular",)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        bias: bool = True,
        stride: int = 1,
        input_size: tuple[int, int] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_stride_one("CayleyConv2d", stride)
        super().__init__(in_channels, out_channels, kernel_size, "circular", bias, device, dtype)
        c = max(self.in_channels, self.out_channels)
        self.channels = c
        factory = {"device": device, "dtype": dtype}
        self.kernel_param = nn.Parameter(torch.empty(c, c, self.kernel_size, self.kernel_size, **factory))
        self.alpha = nn.Parameter(torch.empty((), **factory))
        self._grid: tuple[int, int] | None = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform kernel, :math:`\\alpha = \\|K\\|_F`, zero bias."""
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.kernel_param, a=math.sqrt(5))
            self.alpha.copy_(self.kernel_param.norm())
            if self.bias is not None:
                self.bias.zero_()
        self.clear_cache()

    def _settings(self) -> tuple:
        return (self._grid,)

    def _check_input(self, x: Tensor) -> None:
        # channels only: the FFT needs no padded copy, so any grid size is fine (taps wrap around it)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"CayleyConv2d expects input (N, {self.in_channels}, H, W); got shape {tuple(x.shape)}")

    def set_input_size(self, input_size: tuple[int, int]) -> None:
        """The grid :meth:`export` writes its kernel for (a forward sets it to its input's)."""
        self._grid = (int(input_size[0]), int(input_size[1]))

    def _build_kernel(self) -> Tensor:
        """The spectrum :math:`Q_{[:c_{out}, :c_{in}]}` on the current grid (see :func:`cayley_spectrum`)."""
        if self._grid is None:
            raise ValueError("CayleyConv2d: no input size yet; call it on an input or pass input_size")
        k = self.kernel_param
        work = torch.float32 if k.dtype in (torch.float16, torch.bfloat16) else k.dtype
        q = cayley_spectrum(k.to(work), self.alpha.to(work), self._grid)
        return q[..., : self.out_channels, : self.in_channels]

    def spectrum(self, grid: tuple[int, int]) -> Tensor:
        """:math:`Q(\\omega)` of the current mode for an ``h x w`` grid (cached in eval mode)."""
        self.set_input_size(grid)
        return self.weight

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        q = self.spectrum(tuple(x.shape[-2:]))
        work = q.real.dtype
        xf = torch.fft.rfft2(x.to(work))  # (N, c_in, h, w//2+1)
        yf = torch.einsum("uvoi,niuv->nouv", q, xf)
        y = torch.fft.irfft2(yf, s=tuple(x.shape[-2:])).to(x.dtype)
        return y if self.bias is None else y + self.bias.to(x.dtype)[:, None, None]

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """Largest singular value, in float64, of the per-frequency matrices used on ``input_shape``,
        rounded up (:func:`~critics.norms.round_up`, :math:`n` = the matrices' larger dimension)."""
        with torch.no_grad():
            q = self.spectrum(self._spatial(input_shape))
        norm = float(torch.linalg.matrix_norm(q.to(torch.complex128), ord=2).max())
        return round_up(norm, max(q.shape[-2:]))

    def export(self) -> nn.Conv2d:
        r"""A plain circular ``nn.Conv2d`` with an :math:`H \times W` kernel computing the eval-mode layer
        on :math:`H \times W` inputs (``input_size``, or the last forward's): the kernel is
        :math:`g = \mathcal{F}^{-1} Q` flipped and shifted from convolution to the correlation
        ``nn.Conv2d`` computes with ``padding="same"`` (:math:`\lfloor (H-1)/2 \rfloor` pixels before).
        Valid for that input size only; certified by :func:`critics.certify` as a circular convolution
        (its exact FFT norm)."""
        if self._grid is None:
            raise ValueError("CayleyConv2d.export: no input size known; pass input_size or run the layer once")
        h, w = self._grid
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                q = self.spectrum((h, w)).detach().clone()
        finally:
            self.train(was_training)
        g = torch.fft.irfft2(q.permute(2, 3, 0, 1), s=(h, w))  # (c_out, c_in, h, w): y = g (*) x, circularly
        kernel = torch.roll(g.flip(-2, -1), shifts=(1 + (h - 1) // 2, 1 + (w - 1) // 2), dims=(-2, -1))
        dtype = self.kernel_param.dtype
        bias = None if self.bias is None else self.bias.detach().to(dtype)
        conv = nn.Conv2d(
            self.in_channels, self.out_channels, (h, w), padding="same", padding_mode="circular",
            bias=bias is not None, device=kernel.device, dtype=dtype,
        )  # fmt: skip
        with torch.no_grad():
            conv.weight.copy_(kernel)
            if bias is not None:
                conv.bias.copy_(bias)
        return conv.train(self.training)


register_certificate_rule(CayleyConv2d, CayleyConv2d.lipschitz_bound, user_asserted=False)
