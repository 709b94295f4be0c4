"""Convex Potential Layer (CPL): the residual block x - 2/||W||^2 W relu(W^T x + b)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from critics.layers.sll import SLLConv2d
from critics.norms import reshaped_kernel_norm_bound
from critics.ortho import OrthoConfig, resolve
from critics.rules import register_certificate_rule

__all__ = ["CPLConv2d"]


class CPLConv2d(SLLConv2d):
    r"""Convex potential layer (Meunier et al. 2022): SLL's block with :math:`T = \bar s^2 I`.

    .. math::

        h(x) = x - \frac{2}{\bar s^{\,2}}\, W \sigma(W^\top x + b), \qquad
        \bar s \ge \|\mathcal{C}_K\|_2

    :math:`h` is the gradient step of a convex potential with step :math:`2/\bar s^2`, hence
    1-Lipschitz when :math:`\bar s` bounds the operator norm. The published layer takes
    :math:`\bar s` from power iteration, an estimate from below; here it is
    :func:`~critics.norms.reshaped_kernel_norm_bound` (Gram iteration on the reshaped kernel, an
    upper bound for any input size at every step). Not gradient-norm preserving.

    The forward is SLL's symmetric form with :math:`V = K / \bar s`:
    :math:`h(x) = x - 2\, \mathcal{C}_V^\top \sigma(\mathcal{C}_V x + b / \bar s)`.

    Lipschitz bound: as for :class:`~critics.layers.SLLConv2d`, :math:`\max(1, 2\rho - 1)` with
    :math:`\rho = \|\mathcal{C}_V\|_2^2` from the float64 FFT of the kernel :math:`V` the
    forward uses (zero padding, :math:`(n + k - 1)` grid), checked rather than assumed; L2.
    Conditions: stride 1, odd kernel, zero padding.

    Shape
    -----
    (N, C, H, W) -> (N, C, H, W)

    Parameters
    ----------
    channels, hidden_channels, kernel_size, bias
        As for :class:`~critics.layers.SLLConv2d` (no ``q_param``).
    ortho : OrthoConfig or None
        Keyword only. ``gram_iters`` of the norm bound (``None``: ``OrthoConfig.SOC``, 6).

    References
    ----------
    .. [1] Meunier, Delattre, Araujo & Allauzen, "A dynamical system perspective for Lipschitz
       neural networks", ICML 2022, arXiv:2110.12690.
    """

    default_ortho: ClassVar[OrthoConfig] = OrthoConfig.SOC

    def __init__(
        self,
        channels: int,
        hidden_channels: int | None = None,
        kernel_size: int = 3,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        ortho: OrthoConfig | None = None,
    ) -> None:
        super().__init__(channels, hidden_channels, kernel_size, bias, device, dtype)
        self.ortho = resolve("CPLConv2d", ortho, self.default_ortho)
        self.q_param = None  # T is a multiple of the identity: no per-channel weights

    def _scales(self, kernel: Tensor, *q_param: Tensor) -> Tensor:
        s = reshaped_kernel_norm_bound(kernel, gram_iters=self.ortho.gram_iters, reshapings="TU")
        return (s * s).expand(kernel.shape[0])

    def _settings(self) -> tuple:
        return (self.ortho,)


register_certificate_rule(CPLConv2d, CPLConv2d.lipschitz_bound, user_asserted=False)
