"""Cayley orthogonal convolution: the Cayley transform of a skew-Hermitian operator, per frequency (FFT)."""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Iterator, NamedTuple

import torch
from torch import Tensor, nn

from critics._checks import check_stride_one
from critics._docstrings import fill_doc
from critics.functional import working_dtype
from critics.layers.conv_base import LipschitzConv2d
from critics.norms import round_up
from critics.rules import register_certificate_rule

__all__ = ["CayleyConv2d", "cayley_spectrum", "RfftFrequencies", "rfft_frequencies"]


class RfftFrequencies(NamedTuple):
    """The ``rfft2`` frequencies of an ``h x w`` grid, split by the conjugate symmetry of real signals.

    ``u``, ``v``: the distinct frequencies (all of them but the conjugate partners
    :math:`(h - u, v)` of the columns :math:`v = 0` and :math:`v = w/2`, which ``rfft2`` keeps
    both of); ``index``: their flat row-major ``rfft2`` positions. ``order``: for every ``rfft2``
    frequency in row-major ``(h, w // 2 + 1)`` order, its position in ``cat(distinct, partners)``.
    ``partners``: for each partner, the distinct frequency whose conjugate it is."""

    u: Tensor
    v: Tensor
    index: Tensor
    order: Tensor
    partners: Tensor


@functools.lru_cache(maxsize=64)
def rfft_frequencies(grid: tuple[int, int], device: torch.device = torch.device("cpu")) -> RfftFrequencies:
    r"""The distinct ``rfft2`` frequencies of an ``h x w`` grid (:class:`RfftFrequencies`).

    For a real signal :math:`\hat x(h - u, v) = \overline{\hat x(u, v)}`; where :math:`v` and
    :math:`-v` are the same column (:math:`v = 0`, and :math:`v = w/2` for even :math:`w`),
    ``rfft2`` holds both :math:`(u, v)` and :math:`(h - u, v)`. The distinct ones are the others
    plus :math:`u \le h/2` in those columns: :math:`h(\lfloor w/2 \rfloor + 1) - 2(h - 1 - \lfloor
    h/2 \rfloor)` of them for even :math:`w` (130 of 144 on 16 x 16). Cached per grid and device.
    """
    h, w = int(grid[0]), int(grid[1])
    wr = w // 2 + 1
    u = torch.arange(h)[:, None].expand(h, wr).reshape(-1)
    v = torch.arange(wr)[None, :].expand(h, wr).reshape(-1)
    self_paired = (v == 0) | (2 * v == w)
    partner = self_paired & (u > h // 2)  # (h - u, v) with h - u < h/2: the conjugate of a distinct one
    distinct = ~partner
    position = torch.empty(h * wr, dtype=torch.long)
    n_distinct = int(distinct.sum())
    position[distinct] = torch.arange(n_distinct)
    position[partner] = n_distinct + torch.arange(int(partner.sum()))
    source = ((h - u[partner]) % h) * wr + v[partner]  # flat rfft index of each partner's conjugate
    index = torch.arange(h * wr)[distinct]
    return RfftFrequencies(*(t.to(device) for t in (u[distinct], v[distinct], index, position, position[source])))


@functools.lru_cache(maxsize=64)
def _dft_matrix(
    grid: tuple[int, int], kernel_size: tuple[int, int], dtype: torch.dtype, device: torch.device
) -> Tensor:
    r""":math:`E[f, (p, q)] = e^{-2\pi i (p u_f / h + q v_f / w)}` over the distinct frequencies
    :math:`f` of :func:`rfft_frequencies` and the taps :math:`(p, q)`, computed in float64 and
    rounded once to ``dtype``; taps beyond the grid wrap around by the periodicity of the
    exponential. (F, k_h k_w), complex."""
    h, w = grid
    freqs = rfft_frequencies(grid)
    p, q = torch.arange(kernel_size[0]), torch.arange(kernel_size[1])
    # the phase in units of 1 / (h w), exact in integers; quarter turns get exact values
    turns = (freqs.u[:, None, None] * p[:, None] * w + freqs.v[:, None, None] * q[None, :] * h) % (h * w)
    dft = torch.polar(torch.ones(turns.shape, dtype=torch.float64), -2 * math.pi * turns.double() / (h * w))
    quarter = (4 * turns) % (h * w) == 0
    exact = torch.tensor([1, -1j, -1, 1j], dtype=torch.complex128)[(4 * turns // (h * w)) % 4]
    return torch.where(quarter, exact, dft).flatten(1).to(dtype=dtype, device=device)


def _skew_spectrum(kernel: Tensor, alpha: Tensor, grid: tuple[int, int]) -> Tensor:
    r""":math:`A = \hat V - \hat V^H` of :func:`cayley_spectrum` at the distinct frequencies of
    :func:`rfft_frequencies` only, (F, C, C): one matrix product of the taps with the DFT matrix."""
    v = alpha * kernel / kernel.norm().clamp_min(torch.finfo(kernel.dtype).tiny)
    cdtype = torch.complex128 if kernel.dtype == torch.float64 else torch.complex64
    dft = _dft_matrix(tuple(grid), tuple(kernel.shape[-2:]), cdtype, kernel.device)
    taps = v.flatten(0, 1).flatten(1).to(cdtype)  # (C * C, k_h k_w)
    spec = (dft @ taps.mT).unflatten(-1, kernel.shape[:2])  # (F, C, C)
    return spec - spec.mH


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Inside: torch's CPU thread count is 1 when ``device`` is the CPU (the caller's count is back on
    the way out).

    The batched LU factorisations and solves of the Cayley transform run in it: on the project's
    CPU (torch 2.14.1, oneMKL 2024.2) a batched ``lu_factor_ex`` of 512 x 512 matrices with two
    threads returned pivots out of range (0, -1, ...) in some runs and oneMKL reported "Parameter 6
    was incorrect on entry to CLASWP", so ``lu_solve`` refused them; with one thread every run gave
    valid pivots. The factors feed the training forward, so they are computed where they are right."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _cayley(a: Tensor) -> Tensor:
    """:math:`Q = (I + A)^{-1} (I - A) = 2 (I + A)^{-1} - I`: one batched inverse, no second operand."""
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    with _one_cpu_thread(a.device):
        return 2 * torch.linalg.inv_ex(eye + a)[0] - eye


class _CayleySolve(torch.autograd.Function):
    r""":math:`y = Q x = 2 (I + A)^{-1} x - x` per frequency, by triangular solves with the LU factors
    of :math:`I + A` (computed once per training step), and its exact gradient:

    .. math::

        r = (I + A)^{-1} x, \qquad \bar r = 2 (I + A)^{-H} \bar y, \qquad
        \bar A = -\bar r\, r^H, \qquad \bar x = \bar r - \bar y.

    Two solves and one outer product per call, against an explicit inverse (LU and :math:`C`
    right-hand sides), its product with :math:`x` and, in the backward, two :math:`C^3` products."""

    @staticmethod
    def forward(ctx, a: Tensor, lu: Tensor, pivots: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        with _one_cpu_thread(x.device):
            r = torch.linalg.lu_solve(lu, pivots, x)
        ctx.save_for_backward(lu, pivots, r)
        return 2 * r - x

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None, None, Tensor | None]:  # type: ignore[override]
        lu, pivots, r = ctx.saved_tensors
        with _one_cpu_thread(grad.device):
            grad_r = torch.linalg.lu_solve(lu, pivots, 2 * grad, adjoint=True)
        grad_a = -grad_r @ r.mH if ctx.needs_input_grad[0] else None
        grad_x = grad_r - grad if ctx.needs_input_grad[3] else None
        return grad_a, None, None, grad_x


def _all_frequencies(distinct: Tensor, grid: tuple[int, int]) -> Tensor:
    """Values at the distinct frequencies (F, ...) -> at every ``rfft2`` frequency, (h * (w // 2 + 1), ...),
    the conjugate partners filled in."""
    freqs = rfft_frequencies(tuple(grid), distinct.device)
    return torch.cat((distinct, distinct[freqs.partners].conj())).index_select(0, freqs.order)


def cayley_spectrum(kernel: Tensor, alpha: Tensor, grid: tuple[int, int]) -> Tensor:
    r"""The unitary matrices :math:`Q(\omega)` of the Cayley convolution on an ``h x w`` grid.

    .. math::

        V = \alpha\, K / \|K\|_F, \qquad
        \hat V(\omega) = \sum_{p} V[:, :, p]\, e^{-2\pi i \langle p, \omega\rangle / n},
        \qquad A = \hat V - \hat V^{H}, \qquad Q = (I + A)^{-1} (I - A) = 2 (I + A)^{-1} - I

    for the :math:`h \times (\lfloor w/2 \rfloor + 1)` frequencies of ``rfft2`` (taps beyond the
    grid wrapped). :math:`A` is skew-Hermitian, so :math:`I + A` is always invertible
    (eigenvalues :math:`1 + i\lambda`) and :math:`Q` is unitary. :math:`\hat V` is one matrix
    product of the taps with the DFT matrix of the distinct frequencies
    (:func:`rfft_frequencies`), the inverse one batched ``linalg.inv_ex`` over those (no error
    check, hence no host synchronisation: the system is never singular); their conjugate
    partners are the conjugates. Returns (h, w // 2 + 1, C, C), complex.
    """
    h, w = grid
    q = _all_frequencies(_cayley(_skew_spectrum(kernel, alpha, grid)), grid)
    return q.unflatten(0, (h, w // 2 + 1))


@fill_doc
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

    Computed at the distinct frequencies only (:func:`rfft_frequencies`: a real signal's
    spectrum at :math:`(h - u, v)` is the conjugate of that at :math:`(u, v)`), the spectrum of
    the kernel as one matrix product with the DFT matrix. In eval mode (and without gradients)
    the explicit :math:`Q` is built by one batched inverse, cached, and applied by one batched
    product; the certificate is taken from it. Training with gradients applies the same operator
    by solves, :math:`Q x = 2 (I + A)^{-1} x - x` with the LU factors of :math:`I + A` computed
    once per step, and differentiates it in closed form (:class:`_CayleySolve`): about half the
    work of inverting, multiplying and differentiating the inverse, and the same function and
    gradients up to float rounding (``tests/test_fast_forms.py``: 1e-12 in float64).

    The published layer creates :math:`\alpha` in its first forward (absent from the state dict
    and the optimiser until then); here it is a parameter from construction, initialised to
    :math:`\|K\|_F`. Not wrapped from orthogonium, whose Cayley convolution is in its ``legacy``
    package.

    Lipschitz bound: :math:`\max_\omega \sigma_{\max}(Q_{[:c_{out}, :c_{in}]}(\omega))` in float64
    over the distinct frequencies of the explicit matrices the eval-mode forward uses (exact: the
    real operator's per-frequency matrices are these, their conjugates, or at self-conjugate
    frequencies their Hermitian parts, whose norms are no larger); :math:`1 + O(10^{-6})` in
    float32. L2. Conditions: circular padding, stride 1.

    %(conv_shape_and_channels)s
    bias : bool
    stride : int
        Must be 1 (downsample with :class:`~critics.layers.InvertibleDownsample`).
    input_size : (H, W) or None
        The grid :meth:`export` writes its kernel for (default: that of the last forward).

    Notes
    -----
    No CUDA-graph replay: batched complex solves may synchronise the host on some backends, and
    the build is one matrix product and one batched factorisation per step.

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
        self._factors = None
        self.reset_parameters()

    def _init_free(self) -> None:
        """Kaiming-uniform kernel, :math:`\\alpha = \\|K\\|_F`."""
        nn.init.kaiming_uniform_(self.kernel_param, a=math.sqrt(5))
        self.alpha.copy_(self.kernel_param.norm())

    def _settings(self) -> tuple:
        return (self._grid,)

    def _check_input(self, x: Tensor) -> None:
        # channels only: the FFT needs no padded copy, so any grid size is fine (taps wrap around it)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"CayleyConv2d expects input (N, {self.in_channels}, H, W); got shape {tuple(x.shape)}")

    def set_input_size(self, input_size: tuple[int, int]) -> None:
        """The grid :meth:`export` writes its kernel for (a forward sets it to its input's)."""
        self._grid = (int(input_size[0]), int(input_size[1]))

    def clear_cache(self) -> None:
        super().clear_cache()
        self._factors: tuple[Tensor, Tensor, Tensor] | None = None

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_factors"] = None
        return state

    def _solves(self) -> bool:
        """Whether the forward solves with :math:`I + A` (training with gradients) rather than
        applying the explicit :math:`Q`."""
        return self.training and torch.is_grad_enabled()

    def _build_kernel(self) -> Tensor:
        """At the distinct frequencies of the current grid (:func:`rfft_frequencies`): the
        skew-Hermitian :math:`A` when training with gradients, else :math:`Q_{[:c_{out}, :c_{in}]}`
        (:func:`cayley_spectrum`)."""
        if self._grid is None:
            raise ValueError("CayleyConv2d: no input size yet; call it on an input or pass input_size")
        k = self.kernel_param
        work = working_dtype(k.dtype)
        a = _skew_spectrum(k.to(work), self.alpha.to(work), self._grid)
        return a if self._solves() else _cayley(a)[..., : self.out_channels, : self.in_channels]

    def spectrum(self, grid: tuple[int, int]) -> Tensor:
        """The per-frequency matrices the current mode uses on an ``h x w`` grid, at its distinct
        ``rfft2`` frequencies (:func:`rfft_frequencies`; the others are their conjugates), cached:
        :math:`Q_{[:c_{out}, :c_{in}]}(\\omega)`, (F, c_out, c_in), in eval mode or without
        gradients; the skew-Hermitian :math:`A(\\omega)`, (F, C, C), when training with them."""
        self.set_input_size(grid)
        return self.weight

    def _lu_factors(self, a: Tensor) -> tuple[Tensor, Tensor]:
        """LU factors of :math:`I + A`, computed once per training step (the forwards on P and on Q
        share them; dropped with the cached :math:`A` after the backward)."""
        if self._factors is None or self._factors[0] is not a:
            with torch.no_grad(), _one_cpu_thread(a.device):
                eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
                lu, pivots, _ = torch.linalg.lu_factor_ex(a.detach() + eye)
            self._factors = (a, lu, pivots)
        return self._factors[1], self._factors[2]

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        grid = (int(x.shape[-2]), int(x.shape[-1]))
        mats = self.spectrum(grid)
        freqs = rfft_frequencies(grid, x.device)
        xf = torch.fft.rfft2(x.to(mats.real.dtype)).flatten(2)  # (N, c_in, h * (w // 2 + 1))
        xd = xf.permute(2, 1, 0).index_select(0, freqs.index)  # (F, c_in, N), the distinct frequencies
        if self._solves():  # Q x = 2 (I + A)^{-1} x - x, by solves
            if self.in_channels < self.channels:
                xd = torch.cat((xd, xd.new_zeros(xd.shape[0], self.channels - self.in_channels, xd.shape[2])), 1)
            yd = _CayleySolve.apply(mats, *self._lu_factors(mats), xd)[:, : self.out_channels]
        else:  # one batched product, each (c_out x c_in) @ (c_in x N)
            yd = torch.bmm(mats, xd)
        yf = _all_frequencies(yd, grid).permute(2, 1, 0).unflatten(-1, (grid[0], grid[1] // 2 + 1))
        y = torch.fft.irfft2(yf, s=grid).to(x.dtype)
        return y if self.bias is None else y + self.bias.to(x.dtype)[:, None, None]

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """Largest singular value, in float64, of the per-frequency matrices used on ``input_shape``
        (the distinct ones: a conjugate has the same singular values), rounded up
        (:func:`~critics.norms.round_up`, :math:`n` = the matrices' larger dimension)."""
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
                q = _all_frequencies(self.spectrum((h, w)).detach(), (h, w)).unflatten(0, (h, w // 2 + 1))
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
