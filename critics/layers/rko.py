"""Reshaped Kernel Orthogonalisation (RKO): a Björck-orthonormalised reshaped kernel, scaled by 1/k."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from critics._docstrings import fill_doc
from critics.functional import bjorck_orthonormalize, working_dtype
from critics.layers.conv_base import LipschitzConv2d
from critics.ortho import UNSET, BjorckOptions, OrthoConfig, Tol, resolve
from critics.rules import register_certificate_rule

__all__ = ["RKOConv2d"]


@fill_doc
class RKOConv2d(BjorckOptions, LipschitzConv2d):
    r"""Convolution whose reshaped kernel is (semi-)orthogonal, scaled by :math:`1/k` (baseline).

    .. math::

        K = \tfrac{1}{k}\, \operatorname{reshape}\big(\operatorname{Bj\ddot{o}rck}(V)\big),
        \qquad V \in \mathbb{R}^{c_{out} \times c_{in} k^2}

    The :math:`k^2` shifted copies of a zero- or circularly-padded image have total norm
    :math:`k \|x\|`, and the convolution applies the reshaped kernel :math:`T` (norm 1) to them
    pixel by pixel, so :math:`\|\mathcal{C}_K\| \le k \cdot \|T\| / k = 1`. The bound is
    usually far from tight (the operator is not orthogonal, which is why BCOP was introduced).

    Lipschitz bound: the float64 FFT norm of the kernel actually used, on the
    :math:`n \times n` grid (circular padding, exact) or, for zero padding, the operator matrix's
    largest singular value on small grids (exact) and the :math:`(n+k-1)` grid's FFT norm otherwise
    (an upper bound); <= 1 up to the Björck error; L2; stride 1.

    %(conv_shape_and_channels)s
        Positive; even kernels pad one more pixel after than before.
    bjorck_iters : int or None
        Maximum Björck iterations per training step, convergence-tested (``None``: from
        ``ortho``, 30 by default).
    bjorck_tol : float or None
        Björck convergence tolerance (default: from ``ortho``, 1e-6; ``None`` runs every
        iteration).
    padding_mode : str
        ``"zeros"`` (default) or ``"circular"``.
    bias : bool
        Learnable bias.
    ortho : OrthoConfig or None
        Keyword only. Björck and Gram-iteration settings (``None``: ``default_ortho``,
        :attr:`OrthoConfig.CONV <critics.ortho.OrthoConfig.CONV>`); ``bjorck_iters`` and
        ``bjorck_tol`` override its fields.

    References
    ----------
    .. [1] Li, Haddadi, Jacobsen, Grosse et al., "Preventing gradient attenuation in Lipschitz
       constrained convolutional networks", NeurIPS 2019, arXiv:1911.00937 (RKO baseline).
    .. [2] Cissé et al., "Parseval networks", ICML 2017.
    """

    default_ortho: ClassVar[OrthoConfig] = OrthoConfig.CONV

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bjorck_iters: int | None = None,
        bjorck_tol: Tol = UNSET,
        padding_mode: str = "zeros",
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        ortho: OrthoConfig | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding_mode, bias, device, dtype)
        self.ortho = resolve("RKOConv2d", ortho, self.default_ortho, bjorck_iters, bjorck_tol)
        k = self.kernel_size
        factory = {"device": device, "dtype": dtype}
        self.kernel_param = nn.Parameter(torch.empty(self.out_channels, self.in_channels * k * k, **factory))
        self.reset_parameters()

    def _init_free(self) -> None:
        """Orthogonal reshaped kernel."""
        nn.init.orthogonal_(self.kernel_param)

    def _build_kernel(self) -> Tensor:
        v = self.kernel_param
        work = working_dtype(v.dtype)
        t = bjorck_orthonormalize(v.to(work), **self.ortho.bjorck_options())
        k = self.kernel_size
        return (t / k).reshape(self.out_channels, self.in_channels, k, k).to(v.dtype)

    def _settings(self) -> tuple:
        return (self.ortho,)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bjorck_iters={self.bjorck_iters}"


register_certificate_rule(RKOConv2d, RKOConv2d.lipschitz_bound, user_asserted=False)
