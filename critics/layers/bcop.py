"""Block Convolution Orthogonal Parametrisation (BCOP): orthogonal convolutions by construction."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from critics._checks import check_stride_one
from critics._docstrings import fill_doc
from critics.layers._cuda_graphs import FixedBjorckGraph
from critics.layers.conv_base import LipschitzConv2d
from critics.ortho import UNSET, BjorckOptions, OrthoConfig, Tol, resolve
from critics.rules import register_certificate_rule

__all__ = ["BCOPConv2d", "block_orthogonal_kernel"]


def _block_kernel_1d(q: Tensor) -> Tensor:
    r"""1-D kernel of the chain of blocks :math:`[P_1, I - P_1] * \cdots * [P_m, I - P_m]`.

    ``q``: (m, C, r) with orthonormal columns, :math:`P_j = Q_j Q_j^\top`. Each block appends one
    tap: :math:`A'_t = A_t P + A_{t-1}(I - P) = A_{t-1} + (A_t - A_{t-1}) Q Q^\top` (all taps
    at once, batched). Returns (m + 1, C, C).
    """
    c = q.shape[-2]
    eye = torch.eye(c, dtype=q.dtype, device=q.device)
    p = q[0] @ q[0].mT
    taps = torch.stack((p, eye - p))
    for j in range(1, q.shape[0]):
        zero = taps.new_zeros(1, c, c)
        prev = torch.cat((zero, taps))  # A_{t-1}
        cur = torch.cat((taps, zero))  # A_t
        taps = prev + ((cur - prev) @ q[j]) @ q[j].mT
    return taps


def block_orthogonal_kernel(h: Tensor, q: Tensor) -> Tensor:
    r"""Kernel :math:`K[:, :, a, b] = H\, V_a W_b` of the BCOP construction.

    Parameters
    ----------
    h : (R, C) matrix with orthonormal rows, R <= C (R = C: an orthogonal matrix).
    q : (2(k-1), C, r) matrices with orthonormal columns: the first ``k - 1`` give the vertical
        blocks, the last ``k - 1`` the horizontal ones (every projector distinct).

    Returns
    -------
    (R, C, k, k) kernel: for R = C its circular convolution is orthogonal on any grid; for R < C
    it is the first R output channels of the orthogonal one of any orthogonal matrix whose first
    R rows are ``h`` (orthonormal rows: a co-isometry).
    """
    m = q.shape[0] // 2
    if m == 0:
        return h[:, :, None, None]
    v = h @ _block_kernel_1d(q[:m])  # (k, C, C): H V_a
    w = _block_kernel_1d(q[m:])  # (k, C, C)
    return torch.einsum("aij,bjl->ilab", v, w)


@fill_doc
class BCOPConv2d(FixedBjorckGraph, BjorckOptions, LipschitzConv2d):
    r"""Orthogonal convolution by block convolution of symmetric projectors (Li et al. 2019).

    With :math:`C = \max(c_{in}, c_{out})`, one orthogonal :math:`H` and :math:`2(k-1)`
    matrices :math:`Q_j \in \mathbb{R}^{C \times r}` (:math:`r = \max(1, \lfloor C/2 \rfloor)`),
    all orthonormalised by Björck iteration (batched: one call for :math:`H`, one for all
    :math:`Q_j`), give symmetric projectors :math:`P_j = Q_j Q_j^\top` and the kernel

    .. math::

        K = H \, \big([P_1, I - P_1]_{\downarrow} * \cdots * [P_{k-1}, I - P_{k-1}]_{\downarrow}\big)
              * \big([P_k, I - P_k]_{\rightarrow} * \cdots * [P_{2k-2}, I - P_{2k-2}]_{\rightarrow}\big)

    (``*``: block convolution; the vertical chain uses the first :math:`k-1` projectors, the
    horizontal one the last :math:`k-1`, all distinct). Each 2-tap block
    :math:`P + (I - P) e^{i\omega}` is unitary at every frequency, so the circular convolution
    with :math:`K` is orthogonal; :math:`c_{in} \ne c_{out}` takes the corner
    ``K[:c_out, :c_in]`` (orthonormal columns or rows). ``k = 1`` gives :math:`K = H`.

    The projectors' factors :math:`Q_j` are parametrised directly as :math:`C \times r` matrices
    rather than as the first :math:`r` columns of an orthonormalised :math:`C \times C` matrix
    (the published parametrisation): the set of projectors reachable is the same (every rank-r
    symmetric projector), and each Björck step costs a quarter as much. Likewise, when
    :math:`c_{out} < c_{in}` only the first :math:`c_{out}` rows of :math:`H` reach the kernel's
    corner, so :math:`H` is parametrised as a :math:`c_{out} \times C` matrix orthonormalised to
    orthonormal rows (every such block is the top of an orthogonal matrix): the same kernels, at
    :math:`c_{out}/C` of the Björck cost for :math:`H`.

    Lipschitz bound: exact L2 operator norm with ``padding_mode="circular"`` (default): the
    largest singular value over the :math:`n_h \times n_w` frequencies of the FFT of the kernel
    actually used (float64), :math:`1 \pm 10^{-5}` in float32 once Björck has converged
    (``bjorck_tol``); with ``padding_mode="zeros"`` the same computation on the
    :math:`(n + k - 1)` grid, an upper bound (<= 1 up to Björck error, no longer orthogonal).
    Conditions: stride 1 (downsample with :class:`critics.layers.InvertibleDownsample`), and for
    circular padding :math:`k // 2 \le \min(H, W)`.

    %(conv_shape_and_channel_counts)s
    kernel_size : int
        Square kernel, >= 1; even sizes pad one more pixel after than before.
    bjorck_iters : int or None
        Maximum Björck iterations per training step (``None``: from ``ortho``, 30 by default; the
        convergence test usually stops after 3-7).
    bjorck_tol : float or None
        Convergence tolerance on :math:`\max_{ij}|Q^\top Q - I|_{ij}` (default: from ``ortho``,
        1e-6; ``None`` runs every iteration).
    padding_mode : str
        ``"circular"`` (default, exactly orthogonal) or ``"zeros"``.
    bias : bool
        Learnable bias.
    stride : int
        Must be 1 (present so that ``stride=2`` fails with a clear message).
    ortho : OrthoConfig or None
        Keyword only. Björck and Gram-iteration settings (``None``: ``default_ortho``,
        :attr:`OrthoConfig.CONV <critics.ortho.OrthoConfig.CONV>`, 5 Gram squarings);
        ``bjorck_iters`` and ``bjorck_tol`` override its fields.

    Notes
    -----
    In eval mode the kernel is built once and cached (detached) until a parameter changes or
    ``train()`` is called; in training mode it is rebuilt (differentiably) once per step: the
    forwards before a backward share it (see :class:`~critics.layers.LipschitzConv2d`). On
    CUDA, training steps replay a captured CUDA graph of the construction; a graph cannot hold
    the convergence test, so it runs a fixed number of Björck iterations, two more than the
    parameters need, re-measured every ``graph_recheck_every`` (50) steps.
    Parameter edits through ``.data`` bypass the version counter and are not noticed; use
    in-place ops under ``torch.no_grad()`` (as optimisers and ``load_state_dict`` do).

    References
    ----------
    .. [1] Li, Haddadi, Jacobsen, Grosse et al., "Preventing gradient attenuation in Lipschitz
       constrained convolutional networks", NeurIPS 2019, arXiv:1911.00937.
    .. [2] Xiao et al., "Dynamical isometry and a mean field theory of CNNs", ICML 2018 (the
       block-convolution construction).
    """

    padding_modes = ("circular", "zeros")
    default_ortho: ClassVar[OrthoConfig] = OrthoConfig.CONV

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bjorck_iters: int | None = None,
        bjorck_tol: Tol = UNSET,
        padding_mode: str = "circular",
        bias: bool = True,
        stride: int = 1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        ortho: OrthoConfig | None = None,
    ) -> None:
        check_stride_one("BCOPConv2d", stride)
        super().__init__(in_channels, out_channels, kernel_size, padding_mode, bias, device, dtype)
        self.ortho = resolve("BCOPConv2d", ortho, self.default_ortho, bjorck_iters, bjorck_tol)
        c = max(self.in_channels, self.out_channels)
        r = max(1, c // 2)
        factory = {"device": device, "dtype": dtype}
        # H's rows that reach the output: all C of them unless c_out < c_in
        self.ortho_param = nn.Parameter(torch.empty(self.out_channels, c, **factory))
        if self.kernel_size > 1:
            self.proj_param = nn.Parameter(torch.empty(2 * (self.kernel_size - 1), c, r, **factory))
        else:
            self.register_parameter("proj_param", None)
        self.reset_parameters()

    def _init_free(self) -> None:
        """Orthogonal initialisation (Björck starts at its fixed point)."""
        nn.init.orthogonal_(self.ortho_param)
        for p in self.proj_param if self.proj_param is not None else ():
            nn.init.orthogonal_(p)

    def _kernel_from(
        self, h_param: Tensor, proj: Tensor | None = None, tol: float | None = None, iters: int | None = None
    ) -> Tensor:
        """The kernel from the free parameters: Björck until ``tol`` (at most ``bjorck_iters``
        iterations), or with ``tol=None`` exactly ``iters`` iterations (no host sync)."""
        dtype = h_param.dtype
        work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
        h = self._orthonormalize(h_param.to(work), tol, iters)
        if proj is None:
            kernel = h[:, :, None, None]
        else:
            kernel = block_orthogonal_kernel(h, self._orthonormalize(proj.to(work), tol, iters))
        return kernel[: self.out_channels, : self.in_channels].to(dtype)

    def _build_kernel(self) -> Tensor:
        return self._kernel_from(self.ortho_param, self.proj_param, self.bjorck_tol)

    def _settings(self) -> tuple:
        return (self.ortho,)

    def _bjorck_matrices(self) -> tuple[Tensor, ...]:
        return (self.ortho_param,) if self.proj_param is None else (self.ortho_param, self.proj_param)

    def _graph_settings(self) -> tuple:
        return (self.in_channels, self.out_channels)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bjorck_iters={self.bjorck_iters}, bjorck_tol={self.bjorck_tol}"


register_certificate_rule(BCOPConv2d, BCOPConv2d.lipschitz_bound, user_asserted=False)
