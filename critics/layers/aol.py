"""Almost-Orthogonal Lipschitz (AOL) convolution: a free kernel rescaled per input channel."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from critics._docstrings import fill_doc
from critics.functional import kernel_gram, working_dtype
from critics.layers.conv_base import LipschitzConv2d
from critics.rules import register_certificate_rule

__all__ = ["AOLConv2d", "gram_kernel", "aol_scales"]


def gram_kernel(kernel: Tensor) -> Tensor:
    r"""Kernel of :math:`\mathcal{C}_K^\top \mathcal{C}_K` on the input channels.

    .. math::

        \Gamma[j, i, \delta] = \sum_o \sum_p K[o, j, p]\, K[o, i, p + \delta]

    over every offset :math:`\delta` with :math:`|\delta| < k` per axis
    (:func:`~critics.functional.kernel_gram` of the kernel with its channel axes swapped: one
    matrix product). ``kernel``: (C_out, C_in, k, k); returns (C_in, C_in, 2k - 1, 2k - 1), a
    permuted view.
    """
    kh, kw = kernel.shape[-2:]
    gram = kernel_gram(kernel.transpose(0, 1))  # (offsets, C_in, C_in)
    return gram.permute(1, 2, 0).unflatten(-1, (2 * kh - 1, 2 * kw - 1))


def aol_scales(kernel: Tensor) -> Tensor:
    r"""AOL's input-channel scales :math:`d_j = \big(\sum_{i, \delta} |\Gamma[j, i, \delta]|\big)^{-1/2}`
    (:func:`gram_kernel`), so that :math:`\|\mathcal{C}_{K D}\|_2 \le 1` for zero or circular
    padding and any input size (the row sums of :math:`|D \Gamma D|` bound its spectral norm).
    Returns (C_in,), in the inverse units of ``kernel``."""
    row_sums = kernel_gram(kernel.transpose(0, 1)).abs().sum(dim=(0, 2))
    return row_sums.clamp_min(torch.finfo(kernel.dtype).tiny).rsqrt()


@fill_doc
class AOLConv2d(LipschitzConv2d):
    r"""Convolution rescaled per input channel to be 1-Lipschitz (Prach & Lampert 2022).

    .. math::

        K = P\, D, \qquad D = \operatorname{diag}(d), \qquad
        d_j = \Big(\sum_{i} \sum_{\delta} \big|(P^\top \star P)[j, i, \delta]\big|\Big)^{-1/2}

    with :math:`P` the free kernel and :math:`P^\top \star P` the kernel of
    :math:`\mathcal{C}_P^\top \mathcal{C}_P` (:func:`gram_kernel`). Why 1-Lipschitz: the
    operator :math:`D\,\mathcal{C}_P^\top \mathcal{C}_P D` is symmetric with entries
    :math:`d_j \Gamma_{ji}(\delta) d_i`; its spectral norm is at most its largest absolute row sum
    (Schur test with weights :math:`1/d`), which is at most 1 by the choice of :math:`d`, so
    :math:`\|\mathcal{C}_{PD}\|_2^2 \le 1`. This holds for any input size, with zero or circular
    padding. It is *not* gradient-norm preserving: the norm is typically 0.9-1 and smaller
    singular values are unconstrained (the layer can contract).

    Written here rather than wrapped from orthogonium (``AOLConv2D``, a ``parametrize``
    reparametrisation): the rescaling is a few lines, and this class shares wdist's eval-mode
    kernel cache, CUDA-graph replay and export.

    Lipschitz bound: the float64 FFT norm of the kernel :math:`PD` actually used (exact for
    circular padding on the :math:`n \times n` grid; for zero padding exact from the operator's
    matrix on small grids, else an upper bound on the :math:`(n + k - 1)` grid); at most 1 up to
    rounding whatever the weights. L2.

    %(conv_shape_and_channels)s
    padding_mode : str
        ``"zeros"`` (default) or ``"circular"``; even kernels pad one more pixel after.
    bias : bool

    References
    ----------
    .. [1] Prach & Lampert, "Almost-orthogonal layers for efficient general-purpose Lipschitz
       networks", ECCV 2022, arXiv:2208.03160.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding_mode: str = "zeros",
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding_mode, bias, device, dtype)
        k = self.kernel_size
        factory = {"device": device, "dtype": dtype}
        self.kernel_param = nn.Parameter(torch.empty(self.out_channels, self.in_channels, k, k, **factory))
        self.reset_parameters()

    def _init_free(self) -> None:
        """A (semi-)orthogonal centre tap, zero elsewhere (the identity-like initialisation of the
        paper: for equal channel counts AOL leaves it unchanged, norm 1)."""
        self.kernel_param.zero_()
        centre = (self.kernel_size - 1) // 2
        nn.init.orthogonal_(self.kernel_param[:, :, centre, centre])

    @staticmethod
    def _rescaled(p: Tensor) -> Tensor:
        work = working_dtype(p.dtype)
        q = p.to(work)
        return (q * aol_scales(q)[None, :, None, None]).to(p.dtype)

    def _build_kernel(self) -> Tensor:
        return self._rescaled(self.kernel_param)

    def _graph_build(self) -> tuple:
        return self._rescaled, (self.kernel_param,), ("aol",)


register_certificate_rule(AOLConv2d, AOLConv2d.lipschitz_bound, user_asserted=False)
