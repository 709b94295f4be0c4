"""One-sided spectral normalisation (OSSN) of a convolution kernel: the SN-GAN baseline."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from critics._docstrings import fill_doc
from critics.layers.conv_base import LipschitzConv2d
from critics.ortho import OrthoConfig, resolve
from critics.rules import register_certificate_rule

__all__ = ["OSSNConv2d"]


@fill_doc
class OSSNConv2d(LipschitzConv2d):
    r"""Convolution divided by a power-iteration estimate of its *reshaped* kernel's norm.

    .. math::

        K = V / \hat\sigma, \qquad \hat\sigma = u^\top T_V\, v, \quad
        v = \frac{T_V^\top u}{\|T_V^\top u\|}, \qquad T_V = \operatorname{reshape}(V) \in
        \mathbb{R}^{c_{out} \times c_{in} k^2}

    as in spectral-normalised GANs (Miyato et al. 2018): ``ortho.power_iters`` power iterations
    (default one) per training step update the buffer ``u``; eval mode uses ``u`` as it is. Two
    approximations make this *not* a 1-Lipschitz guarantee: :math:`\hat\sigma \le
    \sigma_{\max}(T_V)` (an estimate from below), and :math:`\|\mathcal{C}_K\|` can be up to
    :math:`k\,\sigma_{\max}(T_K)`, not :math:`\sigma_{\max}(T_K)`. Provided as the published
    baseline; its certificate shows it.

    Lipschitz bound: the float64 FFT norm of the kernel actually used (exact for circular
    padding on the :math:`n \times n` grid; for zero padding exact from the operator's matrix on
    small grids, else an upper bound on the :math:`(n+k-1)` grid); L2; frequently above 1 (up to
    about :math:`k`).

    %(conv_shape_and_channels)s
        Positive; even kernels pad one more pixel after than before.
    padding_mode : str
        ``"zeros"`` (default) or ``"circular"``.
    bias : bool
        Learnable bias.
    ortho : OrthoConfig or None
        Keyword only. Only ``power_iters`` is used: power iterations per training step
        (``None``: ``default_ortho``, :attr:`OrthoConfig.DEFAULT <critics.ortho.OrthoConfig.DEFAULT>`,
        one).

    References
    ----------
    .. [1] Miyato, Kataoka, Koyama & Yoshida, "Spectral normalization for generative adversarial
       networks", ICLR 2018.
    .. [2] Li, Haddadi, Jacobsen, Grosse et al., arXiv:1911.00937 (OSSN baseline).
    """

    default_ortho: ClassVar[OrthoConfig] = OrthoConfig.DEFAULT

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding_mode: str = "zeros",
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        ortho: OrthoConfig | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding_mode, bias, device, dtype)
        self.ortho = resolve("OSSNConv2d", ortho, self.default_ortho)
        k = self.kernel_size
        factory = {"device": device, "dtype": dtype}
        self.kernel_param = nn.Parameter(torch.empty(self.out_channels, self.in_channels, k, k, **factory))
        self.register_buffer("u", torch.empty(self.out_channels, **factory))
        self.reset_parameters()

    def _init_free(self) -> None:
        """``nn.Conv2d``'s initialisation of the kernel and a random unit ``u``."""
        nn.init.kaiming_uniform_(self.kernel_param, a=math.sqrt(5))
        self.u.copy_(F.normalize(torch.randn_like(self.u), dim=0))

    def _matrix(self) -> Tensor:
        return self.kernel_param.reshape(self.out_channels, -1)

    @torch.no_grad()
    def power_iteration(self, steps: int | None = None) -> None:
        r"""Update the buffer ``u`` in place by ``steps`` power iterations (``None``:
        ``ortho.power_iters``): :math:`v = T_V^\top u / \|T_V^\top u\|`, :math:`u = T_V v / \|T_V v\|`."""
        t = self._matrix()
        for _ in range(self.ortho.power_iters if steps is None else steps):
            v = F.normalize(t.mT @ self.u, dim=0)
            self.u.copy_(F.normalize(t @ v, dim=0))

    def _build_kernel(self) -> Tensor:
        if self.training:
            # power iteration once per rebuilt kernel, i.e. per training step (as SN-GAN does): the
            # forwards of one step (P and Q) share the kernel and its sigma estimate
            self.power_iteration()
        t = self._matrix()
        u = self.u.clone().to(t.dtype)  # a later power step must not alter this graph
        v = F.normalize(t.mT @ u, dim=0).detach()
        sigma = u @ (t @ v)
        return self.kernel_param / sigma.clamp_min(torch.finfo(t.dtype).tiny)

    def _settings(self) -> tuple:
        return (self.ortho,)


register_certificate_rule(OSSNConv2d, OSSNConv2d.lipschitz_bound, user_asserted=False)
