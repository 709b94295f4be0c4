"""SDP-based Lipschitz Layer (SLL): a residual convolutional block, certified from its SDP condition."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from critics._checks import check_int
from critics.functional import kernel_gram
from critics.layers.conv_base import LipschitzConv2d
from critics.layers.residual import Residual
from critics.norms import conv_operator_norm, residual_sdp_bound, round_up
from critics.rules import register_certificate_rule

__all__ = ["SLLConv2d", "hidden_gram_abs_sums"]


def hidden_gram_abs_sums(kernel: Tensor) -> Tensor:
    r""":math:`S_{ij} = \sum_\delta |\Gamma_{ij}(\delta)|` with :math:`\Gamma` the kernel of
    :math:`\mathcal{C}_K \mathcal{C}_K^\top` on the output ("hidden") channels of ``kernel``:

    .. math::

        \Gamma[i, j, \delta] = \sum_c \sum_p K[i, c, p]\, K[j, c, p + \delta].

    ``kernel``: (C_hidden, C, k, k); returns (C_hidden, C_hidden), non-negative
    (:func:`~critics.functional.kernel_gram`: one matrix product).
    """
    return kernel_gram(kernel).abs().sum(dim=0)


def _adjoint(kernel: Tensor) -> Tensor:
    r""":math:`K^*[i, j, p, q] = K[j, i, k-1-p, k-1-q]`: for an odd kernel, the "same" zero-padded
    convolution with :math:`K^*` is the adjoint of the one with :math:`K`."""
    return kernel.transpose(0, 1).flip(-2, -1)


class SLLConv2d(LipschitzConv2d):
    r"""SDP-based Lipschitz residual block (Araujo et al. 2023), zero padding, odd kernels.

    .. math::

        h(x) = x - 2\, W T^{-1} \sigma(W^\top x + b), \qquad
        W^\top x = \mathcal{C}_K x \ (C \to C_h), \quad W = \mathcal{C}_K^\top,

    with :math:`\sigma` = ReLU, :math:`K` a free kernel and :math:`T = \operatorname{diag}(t)`,

    .. math::

        t_i = \sum_j S_{ij}\, \frac{q_j}{q_i}, \qquad q = e^{\text{q\_param}} > 0

    (:math:`S` from :func:`hidden_gram_abs_sums`, the absolute row sums of
    :math:`G = W^\top W`'s kernel). Then :math:`Q^{-1}(T - G)Q` (:math:`Q = \operatorname{diag}(q)`)
    is diagonally dominant, so :math:`T \succeq G` and the block is 1-Lipschitz (proof in
    :func:`~critics.norms.residual_sdp_bound`). It is *not* gradient-norm preserving.

    The forward computes the same map in its symmetric form: ReLU is positively homogeneous, so
    :math:`T^{-1/2} \sigma(u) = \sigma(T^{-1/2} u)` and, with :math:`V = W T^{-1/2}` (the kernel
    :math:`K` scaled by :math:`t_i^{-1/2}` per hidden channel) and :math:`b' = T^{-1/2} b`,

    .. math::

        h(x) = x - 2\, V \sigma(V^\top x + b'), \qquad
        V^\top x = \mathcal{C}_{K T^{-1/2}}\, x, \quad -2 V = \mathcal{C}_{-2 (K T^{-1/2})^*}

    two convolutions with one kernel (:math:`K^*` the flipped transposed kernel, whose "same"
    zero-padded convolution is the adjoint for odd kernels; :math:`-2` is exact in floating
    point), a ReLU in place and the residual add: no division, scaling or subtraction pass over
    the activations.

    The library flag is never taken: the certificate checks the condition on the weights
    actually used. With :math:`\rho = \lambda_{\max}(T^{-1/2} G T^{-1/2})
    = \|\mathcal{C}_V\|_2^2`, computed in float64 by the FFT of the kernel :math:`V` the forward
    uses (zero padding: on the :math:`(n + k - 1)` grid, an upper bound), the bound is
    :math:`\max(1, 2\rho - 1)` (:func:`~critics.norms.residual_sdp_bound` with :math:`T = I`),
    valid whether or not the condition holds.

    Written here rather than wrapped from orthogonium (``SDPBasedLipschitzResBlock``): the block
    is short, its certificate needs the kernel exactly as the forward uses it, and it shares
    wdist's cache and CUDA-graph replay.

    Lipschitz bound: :math:`\max(1, 2\rho - 1)` as above, L2; 1 whenever the SDP condition holds
    (always, up to rounding, by construction of :math:`t`). Conditions: stride 1, odd kernel,
    zero padding.

    Shape
    -----
    (N, C, H, W) -> (N, C, H, W)

    Parameters
    ----------
    channels : int
        C (input = output channels).
    hidden_channels : int or None
        :math:`C_h` (default C).
    kernel_size : int
        Odd.
    bias : bool
        The hidden bias :math:`b` (``hidden_bias``).

    Notes
    -----
    The eval-mode cache holds :math:`V` and :math:`t^{-1/2}` packed in one tensor (:meth:`unpack`).

    References
    ----------
    .. [1] Araujo, Havens, Delattre, Allauzen & Hu, "A unified algebraic perspective on Lipschitz
       neural networks", ICLR 2023, arXiv:2303.03169.
    """

    padding_modes = ("zeros",)

    def __init__(
        self,
        channels: int,
        hidden_channels: int | None = None,
        kernel_size: int = 3,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        name = type(self).__name__
        if isinstance(kernel_size, int) and kernel_size >= 1 and kernel_size % 2 == 0:
            raise ValueError(
                f"{name} needs an odd kernel_size (its adjoint convolution must pad like the forward one); "
                f"got kernel_size={kernel_size}"
            )
        super().__init__(channels, channels, kernel_size, "zeros", False, device, dtype)
        hidden = self.in_channels if hidden_channels is None else check_int(name, "hidden_channels", hidden_channels)
        self.hidden_channels = hidden
        k = self.kernel_size
        factory = {"device": device, "dtype": dtype}
        self.kernel_param = nn.Parameter(torch.empty(hidden, self.in_channels, k, k, **factory))
        self.q_param = nn.Parameter(torch.zeros(hidden, **factory))
        self.hidden_bias = nn.Parameter(torch.zeros(hidden, **factory)) if bias else None
        self.reset_parameters()

    def _init_free(self) -> None:
        """Kaiming-uniform kernel, unit ``q``; zero hidden bias."""
        nn.init.kaiming_uniform_(self.kernel_param, a=math.sqrt(5))
        if self.q_param is not None:
            self.q_param.zero_()
        if self.hidden_bias is not None:
            self.hidden_bias.zero_()

    # -- kernel and scales ----------------------------------------------------------------------
    def _scales(self, kernel: Tensor, *q_param: Tensor) -> Tensor:
        """The diagonal :math:`t` of :math:`T` for ``kernel`` (subclasses change the rule)."""
        q = q_param[0].exp()
        return (hidden_gram_abs_sums(kernel) * q[None, :]).sum(dim=1) / q

    def _free(self) -> tuple[Tensor, ...]:
        return tuple(p for p in (self.kernel_param, self.q_param) if p is not None)

    def _packed(self, kernel_param: Tensor, *rest: Tensor) -> Tensor:
        r""":math:`V = K T^{-1/2}` and :math:`t^{-1/2}`, flattened into one tensor."""
        work = torch.float32 if kernel_param.dtype in (torch.float16, torch.bfloat16) else kernel_param.dtype
        kernel = kernel_param.to(work)
        t = self._scales(kernel, *(r.to(work) for r in rest)).clamp_min(torch.finfo(work).tiny)
        inv_sqrt_t = t.rsqrt()
        branch = kernel * inv_sqrt_t[:, None, None, None]
        return torch.cat((branch.reshape(-1), inv_sqrt_t)).to(kernel_param.dtype)

    def _build_kernel(self) -> Tensor:
        return self._packed(*self._free())

    def _graph_build(self) -> tuple:
        return self._packed, self._free(), (type(self).__name__, self._settings())

    def unpack(self, packed: Tensor) -> tuple[Tensor, Tensor]:
        r"""``(V, t^{-1/2})`` from the packed tensor :attr:`weight` (views, no copy): the kernel
        :math:`V = K T^{-1/2}` both convolutions of the forward use, and the per-hidden-channel
        scale that made it (the hidden bias is scaled by it too)."""
        n = self.kernel_param.numel()
        return packed[:n].view(self.kernel_param.shape), packed[n:]

    # -- forward ------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        branch, inv_sqrt_t = self.unpack(self.weight)
        if branch.dtype != x.dtype:
            branch, inv_sqrt_t = branch.to(x.dtype), inv_sqrt_t.to(x.dtype)
        bias = None if self.hidden_bias is None else self.hidden_bias.to(x.dtype) * inv_sqrt_t
        p = self.kernel_size // 2
        # relu_ and add_ act on convolution outputs, which the convolutions' backward never reads
        z = F.conv2d(x, branch, bias, padding=p).relu_()
        return F.conv2d(z, _adjoint(-2.0 * branch), padding=p).add_(x)

    def sdp_ratio(self, input_shape: tuple[int, ...]) -> float:
        r""":math:`\rho \ge \lambda_{\max}(V^\top V) = \|\mathcal{C}_V\|_2^2` on ``input_shape`` inputs,
        float64, from the kernel :math:`V = K T^{-1/2}` the current mode's forward uses (``<= 1``:
        the SDP condition holds)."""
        with torch.no_grad():
            branch, _ = self.unpack(self.weight)
        # the norm is rounded up; its square adds one rounding
        norm = conv_operator_norm(branch.detach().to(torch.float64), self._spatial(input_shape), padding_mode="zeros")
        return round_up(norm**2, 1)

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """``max(1, 2 rho - 1)`` with ``rho`` = :meth:`sdp_ratio` (see :func:`~critics.norms.residual_sdp_bound`)."""
        return residual_sdp_bound(self.sdp_ratio(input_shape))

    def export(self) -> Residual:
        r""":class:`~critics.layers.residual.Residual` of ``Conv2d(V, b') -> ReLU -> Conv2d(-2 V^*)``
        (:math:`V^*` the flipped transposed kernel, whose "same" zero-padded convolution is the adjoint
        for odd kernels), with the eval-mode weights: the forward's own convolutions. Certified as
        ``1 + product`` (valid, looser than the block's own certificate)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                branch, inv_sqrt_t = (v.detach().clone() for v in self.unpack(self.weight))
        finally:
            self.train(was_training)
        bias = None if self.hidden_bias is None else self.hidden_bias.detach().to(branch.dtype) * inv_sqrt_t
        branch_net = nn.Sequential(
            self._plain_conv(self.in_channels, self.hidden_channels, branch, bias),
            nn.ReLU(),
            self._plain_conv(self.hidden_channels, self.in_channels, _adjoint(-2.0 * branch), None),
        )
        return Residual(branch_net).train(self.training)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, hidden_channels={self.hidden_channels}, kernel_size={self.kernel_size}, "
            f"bias={self.hidden_bias is not None}"
        )


register_certificate_rule(SLLConv2d, SLLConv2d.lipschitz_bound, user_asserted=False)
