"""Norms and certified bounds of the linear maps the layers are made of (math only).

Every function here is a pure function of tensors: spectral-norm bounds of matrices (Gram
iteration, SVD) and of 2-D convolutions (FFT over the frequencies of the kernel, reshaped-kernel
bounds). The layers use them to scale their weights and to certify themselves;
:mod:`critics.certificates` uses them to certify plain ``nn.Linear`` / ``nn.Conv2d`` modules.
All norms are L2 -> L2 operator norms, in the units of the weights.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

__all__ = [
    "ROUNDING_C",
    "rounding_margin",
    "round_up",
    "spectral_norm_upper_bound",
    "dense_lipschitz_bound",
    "reshaped_kernel_norm_bound",
    "fold_kernel",
    "frequency_grid",
    "conv_operator_norm",
    "same_conv_operator_norm",
    "EXACT_MATRIX_ENTRIES",
    "conv_frequency_norm_bound",
    "conv_grid_norm_bound",
    "conv_grid_norm_plan",
    "crop_to_reach",
    "conv_matrix",
    "tap_shifts",
    "conv2d_lipschitz_bound",
    "conv2d_frequency_singular_values",
    "polyphase_kernel",
    "strided_conv_operator_norm",
    "residual_sdp_bound",
]


#: The constant :math:`c` of the floating-point margin :math:`c\,n\,\varepsilon` that every
#: certified norm carries (:func:`rounding_margin`).
ROUNDING_C = 4.0


def rounding_margin(n: int, dtype: torch.dtype = torch.float64) -> float:
    r"""Relative floating-point margin :math:`c\,n\,\varepsilon` of a norm computed by a computation
    of size :math:`n` in ``dtype`` (:math:`\varepsilon` its machine epsilon, :math:`c` =
    :data:`ROUNDING_C`).

    The backward-stable routines behind every certificate (SVD, symmetric eigenvalues, FFT, Gram
    products, sums of positive terms) return a largest singular value within
    :math:`p(n)\,\varepsilon\,\sigma_{\max}` of the exact one, :math:`p` a modestly growing
    function of the size (LAPACK Users' Guide, "Error bounds for the singular value
    decomposition"; Higham, "Accuracy and Stability of Numerical Algorithms", ch. 3 and 24).
    :math:`n` is chosen per computation, generously: the largest matrix dimension plus the
    length of the sums that form its entries (FFT length, folded taps). In float64 the margin is
    about :math:`10^{-13}` to :math:`10^{-11}` for the sizes of a critic: far below the
    certificate tolerance :math:`10^{-3}` and below the float32 rounding of the held-out
    evaluation itself, but it makes the certificate an upper bound on the exact norm of the
    operator as used, on any CPU or BLAS, instead of a value a few ulps either side of it.
    """
    return ROUNDING_C * max(int(n), 1) * torch.finfo(dtype).eps


def round_up(value: float, n: int, dtype: torch.dtype = torch.float64) -> float:
    r"""``value`` raised by its rounding margin: :math:`\mathrm{next}_{+\infty}\big(v\,(1 + c\,n\,
    \varepsilon)\big)` (:func:`rounding_margin`), the multiplication's own rounding covered by one
    more step toward :math:`+\infty`. Zero (an exactly zero operator) and non-finite values are
    returned as they are. The units of ``value``."""
    v = float(value)
    if v == 0.0 or not math.isfinite(v):
        return v
    return math.nextafter(v * (1.0 + rounding_margin(n, dtype)), math.inf)


def spectral_norm_upper_bound(w: Tensor, gram_iters: int = 3) -> Tensor:
    r"""Guaranteed upper bound on the spectral norm of each matrix in a batch (Gram iteration).

    .. math::

        G_0 = W^\top W, \quad G_{t+1} = G_t^2 / \|G_t\|_F^2 \ (\text{rescaled}), \quad
        \sigma_{\max}(W) \le \|G_t\|_F^{1 / 2^{t+1}} \cdot (\text{accumulated scale})

    Since :math:`\|A\|_2 \le \|A\|_F` and :math:`\sigma_{\max}(G_t) = \sigma_{\max}(W)^{2^{t+1}}`,
    every iterate gives a valid bound, and it tightens geometrically towards
    :math:`\sigma_{\max}(W)` (Delattre et al., 2023). With ``gram_iters=0`` it is the Frobenius
    norm.

    Parameters
    ----------
    w : (..., m, n) tensor
        Matrices, real or complex (then :math:`W^H W`), batched over leading dimensions.
    gram_iters : int
        Number of squarings.

    Returns
    -------
    (...,) tensor
        Upper bounds :math:`\ge \sigma_{\max}`, in the units of ``w``. Differentiable.
    """
    tiny = torch.finfo(w.dtype).tiny
    # W / max|W_ij| first: the Gram matrix of a very large (small) W would overflow (underflow to
    # zero, and a zero bound is no bound); sigma_max scales linearly, so the factor is put back.
    peak = w.detach().abs().amax(dim=(-2, -1)).clamp_min(tiny)
    w = w / peak[..., None, None]
    if w.shape[-2] < w.shape[-1]:
        g = w @ w.mH
    else:
        g = w.mH @ w
    # Each G_t is rescaled to unit Frobenius norm before squaring (no overflow or underflow in
    # the squarings); the log of the accumulated scale is summed once at the end (four ops per
    # squaring: few kernel launches on a GPU, where this runs at every step).
    norms = []
    for _ in range(gram_iters):
        f = torch.linalg.matrix_norm(g).clamp_min(tiny)
        norms.append(f)
        g = g / f[..., None, None]
        g = g @ g
    norms.append(torch.linalg.matrix_norm(g).clamp_min(tiny))
    # sigma_max(W) <= prod_t f_t^(1 / 2^(t+1)) * f_last^(1 / 2^(gram_iters+1))
    exponents = _gram_exponents(gram_iters, peak.dtype, w.device)
    return peak * torch.exp((torch.log(torch.stack(norms, dim=-1)) * exponents).sum(dim=-1))


@functools.lru_cache(maxsize=64)
def _gram_exponents(gram_iters: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``[2^-1, ..., 2^-gram_iters, 2^-(gram_iters+1)]`` (cached: no host-to-device copy per call)."""
    powers = [0.5 ** (t + 1) for t in range(gram_iters)] + [0.5 ** (gram_iters + 1)]
    return torch.tensor(powers, dtype=dtype, device=device)


def dense_lipschitz_bound(weight: Tensor) -> float:
    r"""L2 Lipschitz constant of :math:`x \mapsto W x`: :math:`\sigma_{\max}(W)` in float64, rounded up.

    .. math::

        L = \sigma_{\max}(W)\,(1 + c\,\max(m, n)\,\varepsilon_{64})

    (:func:`round_up`; the SVD's backward error for an :math:`m \times n` matrix). A weight with
    more than two dimensions is read as the matrix ``W.reshape(W.shape[0], -1)``; an empty weight
    has norm 0. In the units of ``weight``.
    """
    w = weight.detach().to(torch.float64)
    if w.ndim != 2:
        w = w.reshape(w.shape[0], -1)
    if not w.numel():
        return 0.0
    return round_up(float(torch.linalg.svdvals(w)[0]), max(w.shape))


def reshaped_kernel_norm_bound(kernel: Tensor, gram_iters: int = 6, reshapings: str = "TURS") -> Tensor:
    r"""Guaranteed, input-size-independent upper bound on the L2 norm of a 2-D convolution.

    .. math::

        \|\mathcal{C}_K\|_2 \le \sqrt{k_h k_w}\,
        \min\big(\|R\|_2, \|S\|_2, \|T\|_2, \|U\|_2\big)

    with :math:`T \in \mathbb{R}^{c_o \times c_i k_h k_w}`,
    :math:`U \in \mathbb{R}^{c_o k_h k_w \times c_i}`,
    :math:`R \in \mathbb{R}^{c_o k_h \times k_w c_i}` and
    :math:`S \in \mathbb{R}^{c_o k_w \times k_h c_i}` the four reshapings of the kernel
    (Singla & Feizi 2021, "Fantastic Four"), for zero or circular padding, any input size and
    stride. Each matrix norm is itself bounded from above by Gram iteration
    (:func:`spectral_norm_upper_bound`), so the result is a bound at every step, never an
    estimate. Differentiable.

    Parameters
    ----------
    kernel : (C_out, C_in, k_h, k_w) tensor
    gram_iters : int
        Gram squarings per reshaping (the bound tightens geometrically with it).
    reshapings : str
        Which of ``"T"``, ``"U"``, ``"R"``, ``"S"`` to use (any subset gives a valid bound).
        ``T`` and ``U`` cost :math:`k^2 C^3` plus :math:`C^3` per squaring; ``R`` and ``S``
        :math:`k^3 C^3` per squaring, usually 10-30% tighter.

    Returns
    -------
    0-d tensor, in the units of ``kernel``.

    References
    ----------
    .. [1] Singla & Feizi, "Fantastic four: differentiable bounds on singular values of
       convolution layers", ICLR 2021, arXiv:1911.10258.
    .. [2] Delattre, Barthélemy, Araujo & Allauzen, "Efficient bound of Lipschitz constant for
       convolutional layers by Gram iteration", ICML 2023.
    """
    co, ci, kh, kw = kernel.shape
    if not reshapings or set(reshapings) - set("TURS"):
        raise ValueError(f"reshapings must be a non-empty subset of 'TURS'; got {reshapings!r}")
    if kh * kw == 1:
        reshapings = "T"  # all four are the same matrix (up to transposition)
    views = {
        "T": lambda: kernel.reshape(co, ci * kh * kw),
        "U": lambda: kernel.permute(0, 2, 3, 1).reshape(co * kh * kw, ci),
        "R": lambda: kernel.permute(0, 2, 3, 1).reshape(co * kh, kw * ci),
        "S": lambda: kernel.permute(0, 3, 2, 1).reshape(co * kw, kh * ci),
    }
    mats = [views[r]() for r in dict.fromkeys(reshapings)]
    bounds = torch.stack([spectral_norm_upper_bound(m, gram_iters) for m in mats])
    return math.sqrt(kh * kw) * bounds.min()


def fold_kernel(kernel: Tensor, grid: tuple[int, int]) -> Tensor:
    r"""The kernel's taps wrapped modulo an ``h x w`` grid: ``K'[:, :, p mod h, q mod w] += K[:, :, p, q]``.

    The circular convolution with ``K'`` on that grid is the one with ``K``, so a kernel larger
    than the grid is handled exactly. Returns ``kernel`` itself when it fits, else a
    ``(C_out, C_in, min(k_h, h), min(k_w, w))`` tensor (``index_add_`` per axis, no Python loop
    over taps).
    """
    h, w = int(grid[0]), int(grid[1])
    kh, kw = kernel.shape[-2:]
    if kh > h:
        rows = torch.arange(kh, device=kernel.device) % h
        kernel = kernel.new_zeros(*kernel.shape[:-2], h, kw).index_add_(-2, rows, kernel)
    if kw > w:
        cols = torch.arange(kw, device=kernel.device) % w
        kernel = kernel.new_zeros(*kernel.shape[:-1], w).index_add_(-1, cols, kernel)
    return kernel


def frequency_grid(kernel: Tensor, input_size: tuple[int, int], padding_mode: str) -> tuple[int, int]:
    r"""The grid on which a stride-1 convolution's spectrum is taken: :math:`n_h \times n_w` for
    circular padding (exact), :math:`(n_h + k_h - 1) \times (n_w + k_w - 1)` for zero padding (a
    zero-padded convolution is a restriction of the circular one on that grid)."""
    h, w = int(input_size[0]), int(input_size[1])
    kh, kw = kernel.shape[-2:]
    return (h, w) if padding_mode == "circular" else (h + kh - 1, w + kw - 1)


def conv_operator_norm(kernel: Tensor, input_size: tuple[int, int], padding_mode: str = "zeros") -> float:
    r"""Certified L2 norm of a stride-1 convolution on ``input_size`` images (float64, FFT).

    .. math::

        \|\mathcal{C}_K\|_2 = \max_{u, v} \sigma_{\max}\big(\hat K(u, v)\big), \qquad
        \sigma_{\max}(\hat K)^2 = \lambda_{\max}(\hat K^{H} \hat K)

    over the :math:`n_h \times n_w` grid for circular padding (exact, whatever the shift of an
    asymmetric padding), over the :math:`(n_h + k - 1) \times (n_w + k - 1)` grid for zero
    padding (an upper bound: the zero-padded convolution is a restriction of that circular
    one; see :func:`frequency_grid`). The same quantity as the largest value of
    :func:`conv2d_frequency_singular_values`, computed faster: a real kernel has
    :math:`\hat K(-\omega) = \overline{\hat K(\omega)}`, so half the frequencies suffice
    (``rfft2``), and the largest eigenvalue of the smaller Gram matrix (batched ``eigvalsh``)
    replaces a full SVD. Taps beyond the grid are wrapped modulo it (:func:`fold_kernel`).
    Rounded up by :func:`round_up` with :math:`n = h w + c_{out} + c_{in}` (the FFT's sums, the
    Gram products and the eigenvalue problem). Returns a float in the units of ``kernel``.
    """
    h, w = frequency_grid(kernel, input_size, padding_mode)
    k = fold_kernel(kernel.detach().to(torch.float64), (h, w))
    spec = torch.fft.rfft2(k, s=(h, w)).permute(2, 3, 0, 1)  # (h, w//2+1, C_out, C_in)
    gram = spec.mH @ spec if spec.shape[-1] <= spec.shape[-2] else spec @ spec.mH
    norm = float(torch.linalg.eigvalsh(gram).amax().clamp_min(0.0).sqrt())
    return round_up(norm, h * w + kernel.shape[0] + kernel.shape[1])


def crop_to_reach(kernel: Tensor, input_size: tuple[int, int]) -> Tensor:
    r"""The taps of a zero-padded stride-1 "same" convolution that can meet an ``n_h x n_w`` image.

    Tap :math:`p` (padding :math:`\lfloor (k - 1)/2 \rfloor` before) reads pixel :math:`i + p -
    \lfloor (k-1)/2 \rfloor` for output :math:`i`; with both in :math:`[0, n)`, only offsets
    :math:`|p - \lfloor (k-1)/2 \rfloor| \le n - 1` are ever used, so the zero-padded operator
    is the same with the other taps removed. Returns ``kernel`` itself when every tap is used.
    """
    spans = []
    for size, n in zip(kernel.shape[-2:], input_size):
        before = (int(size) - 1) // 2
        spans.append((max(0, before - (int(n) - 1)), min(int(size), before + int(n))))
    (top, bottom), (left, right) = spans
    if (top, bottom, left, right) == (0, kernel.shape[-2], 0, kernel.shape[-1]):
        return kernel
    return kernel[..., top:bottom, left:right]


@functools.lru_cache(maxsize=64)
def tap_shifts(n: int, kernel_size: int, circular: bool, dtype: torch.dtype, device: torch.device) -> Tensor:
    r"""The 0/1 matrices :math:`S_a` (shape ``(k, n, n)``) of a stride-1 "same" convolution along one
    axis of ``n`` pixels: :math:`S_a[i, j] = 1` when output pixel ``i`` reads input pixel ``j``
    through tap ``a``, i.e. :math:`j = i + a - \lfloor (k - 1)/2 \rfloor` (modulo ``n`` for circular
    padding; no ``j`` when it falls outside for zero padding). Cached (read only): the same few
    matrices serve every training step."""
    before = (kernel_size - 1) // 2
    pixels = torch.arange(n, device=device)
    source = pixels[None, :, None] + torch.arange(kernel_size, device=device)[:, None, None] - before
    read = pixels[None, None, :]
    hit = (source % n == read) if circular else (source == read)
    return hit.to(dtype)


def conv_matrix(kernel: Tensor, input_size: tuple[int, int], padding_mode: str = "zeros") -> Tensor:
    r"""The matrix of the stride-1 "same" convolution on ``n_h x n_w`` images.

    .. math::

        A_{(o, i, k), (c, j, l)} = \sum_{a, b} K_{o c a b}\, S^{(h)}_a[i, j]\, S^{(w)}_b[k, l]

    with :math:`S_a` the tap matrices of :func:`tap_shifts` (padding :math:`\lfloor (k-1)/2
    \rfloor` before, the cross-correlation ``nn.Conv2d`` computes; circular padding wraps, and
    taps beyond a small grid add up). Shape :math:`(c_{out} n_h n_w, c_{in} n_h n_w)`, rows and
    columns in ``(channel, row, column)`` order; differentiable in ``kernel``.
    """
    h, w = int(input_size[0]), int(input_size[1])
    circular = padding_mode == "circular"
    kh, kw = kernel.shape[-2:]
    return torch.einsum(
        "ocab,aij,bkl->oikcjl",
        kernel,
        tap_shifts(h, int(kh), circular, kernel.dtype, kernel.device),
        tap_shifts(w, int(kw), circular, kernel.dtype, kernel.device),
    ).reshape(kernel.shape[0] * h * w, kernel.shape[1] * h * w)


#: Largest operator matrix (entries, :math:`c_{out} n_h n_w \times c_{in} n_h n_w`) from which
#: :func:`same_conv_operator_norm` certifies a zero-padded convolution exactly (a 512 x 512 float64
#: SVD: milliseconds); larger operators get the FFT bound.
EXACT_MATRIX_ENTRIES = 2**18


def same_conv_operator_norm(kernel: Tensor, input_size: tuple[int, int], padding_mode: str = "zeros") -> float:
    r"""Certified L2 norm of a stride-1 "same" convolution (:math:`\lfloor (k-1)/2 \rfloor` pixels
    padded before, :math:`\lfloor k/2 \rfloor` after) on ``input_size`` images, float64.

    Circular padding: :func:`conv_operator_norm`, exact. Zero padding: when the operator's matrix
    :math:`A` (:func:`conv_matrix`) has at most :data:`EXACT_MATRIX_ENTRIES` entries,

    .. math::

        \|\mathcal{C}_K\|_2 = \sigma_{\max}(A)

    exactly (float64 SVD): on small grids, where the FFT bound on the :math:`(n + k - 1)` grid counts
    taps that never meet the image and frequencies the image cannot hold, this is what the layer
    is. Larger operators: the FFT bound of :func:`conv_operator_norm` on the taps that can meet
    the image (:func:`crop_to_reach`). Only for "same" padding: a plain convolution that pads more
    is not a restriction of this operator. Both rounded up (:func:`round_up`; for the matrix,
    :math:`n` = its larger dimension plus the taps summed into an entry). Returns a float in the
    units of ``kernel``.
    """
    if padding_mode == "circular":
        return conv_operator_norm(kernel, input_size, padding_mode="circular")
    h, w = int(input_size[0]), int(input_size[1])
    k64 = kernel.detach().to(torch.float64)
    if kernel.shape[0] * kernel.shape[1] * (h * w) ** 2 <= EXACT_MATRIX_ENTRIES:
        norm = float(torch.linalg.matrix_norm(conv_matrix(k64, (h, w), "zeros"), ord=2))
        size = max(kernel.shape[0], kernel.shape[1]) * h * w + kernel.shape[-2] * kernel.shape[-1]
        return round_up(norm, size)
    return conv_operator_norm(crop_to_reach(k64, (h, w)), (h, w), padding_mode="zeros")


def conv_frequency_norm_bound(
    kernel: Tensor, input_size: tuple[int, int], padding_mode: str = "zeros", gram_iters: int = 6
) -> Tensor:
    r"""Differentiable, guaranteed upper bound on the L2 norm of a stride-1 convolution on
    ``input_size`` images: Gram iteration on each frequency's matrix (Delattre et al. 2023).

    .. math::

        \|\mathcal{C}_K\|_2 \le \max_{u, v} \overline{\sigma}_g\big(\hat K(u, v)\big)

    with :math:`\overline\sigma_g \ge \sigma_{\max}` the Gram-iteration bound of
    :func:`spectral_norm_upper_bound` (``gram_iters`` squarings) of every per-frequency matrix,
    over the grid of :func:`frequency_grid`: :math:`n_h \times n_w` for circular padding (the
    maximum of the exact :math:`\sigma_{\max}` there is the operator norm), the
    :math:`(n_h + k' - 1) \times (n_w + k' - 1)` grid for zero padding, :math:`k'` the size
    after :func:`crop_to_reach` (an upper bound: a restriction of that circular convolution).
    Half the frequencies suffice (``rfft2``: :math:`\hat K(-\omega) = \overline{\hat K(\omega)}`
    for a real kernel). Unlike :func:`conv_operator_norm` (float64 ``eigvalsh``, no gradient), this
    is a bound at every iterate, in the kernel's dtype, and differentiable; it costs
    :math:`(g + 1)` batched complex :math:`C^3` products per frequency, versus about
    :math:`(g + 1 + k^2) C^3` in all for :func:`reshaped_kernel_norm_bound`, which exceeds the
    exact norm 1.8 times (:math:`k = 3`) to 2.6 times (:math:`k = 5`) on trained skew-symmetric
    kernels, where this one is within 1% with 6 squarings. Returns a 0-d tensor in the units of
    ``kernel``: at most the operator norm times the Gram factor
    :math:`\operatorname{rank}^{2^{-g-2}}`, up to float rounding in the kernel's dtype.
    """
    return spectral_norm_upper_bound(_frequency_matrices(kernel, input_size, padding_mode), gram_iters).amax()


def _frequency_matrices(kernel: Tensor, input_size: tuple[int, int], padding_mode: str) -> Tensor:
    """``(F, C_out, C_in)``: the kernel's ``rfft2`` matrices on the grid of :func:`frequency_grid`
    (taps cropped by :func:`crop_to_reach` for zero padding, wrapped by :func:`fold_kernel`)."""
    if padding_mode != "circular":
        kernel = crop_to_reach(kernel, input_size)
    h, w = frequency_grid(kernel, input_size, padding_mode)
    return torch.fft.rfft2(fold_kernel(kernel, (h, w)), s=(h, w)).permute(2, 3, 0, 1).flatten(0, 1)


def conv_grid_norm_plan(
    kernel_shape: tuple[int, ...], input_size: tuple[int, int], padding_mode: str = "zeros", gram_iters: int = 6
) -> tuple[str, float]:
    r"""Which bound :func:`conv_grid_norm_bound` computes, and its cost in real floating-point
    operations (forward pass, one bound).

    ``("dense", (g + 2) \cdot 2 (c n_h n_w)^3)`` for zero padding when the explicit matrix costs at
    most twice the frequency route (:math:`(n_h n_w)^3 \le 8 F`), else
    ``("frequency", (g + 2) \cdot 8 F c^3)`` with :math:`F` the ``rfft2`` frequencies of the grid
    of :func:`frequency_grid` (after :func:`crop_to_reach` for zero padding), :math:`c` the larger
    channel count and a complex product counted as 8 real operations per multiply-add.
    """
    co, ci, kh, kw = (int(v) for v in kernel_shape)
    c, n_h, n_w = max(co, ci), int(input_size[0]), int(input_size[1])
    if padding_mode != "circular":
        kh, kw = min(kh, 2 * n_h - 1), min(kw, 2 * n_w - 1)
        h, w = n_h + kh - 1, n_w + kw - 1
    else:
        h, w = n_h, n_w
    freqs = h * (w // 2 + 1)
    pixels = n_h * n_w
    if padding_mode != "circular" and pixels**3 <= 8 * freqs:
        return "dense", float((gram_iters + 2) * 2 * (c * pixels) ** 3)
    return "frequency", float((gram_iters + 2) * 8 * freqs * c**3)


def conv_grid_norm_bound(
    kernel: Tensor, input_size: tuple[int, int], padding_mode: str = "zeros", gram_iters: int = 6
) -> Tensor:
    r"""Differentiable, guaranteed upper bound on the L2 norm of a stride-1 "same" convolution on
    ``input_size`` images: one of two Gram-iteration bounds, chosen by cost (:func:`conv_grid_norm_plan`).

    * :func:`conv_frequency_norm_bound`: the per-frequency matrices (exact grid for circular
      padding; for zero padding the circular convolution on the larger grid, which can be far
      above the zero-padded norm on tiny grids: 0.70 against 0.30-0.36 on 2 x 2 for trained
      skew-symmetric kernels);
    * zero padding, when it costs at most twice as much (grids of up to 2 x 2 pixels for 3 x 3
      kernels): the Gram bound of the explicit matrix :func:`conv_matrix` (taps cropped by
      :func:`crop_to_reach`), whose norm is the operator's.

    The value is computed without autograd (a forward-only Gram iteration per matrix: its
    backward would cost twice as much again); the gradient is that of :math:`\sigma_{\max}` of
    the matrix with the largest bound, :math:`\operatorname{Re}(u^H \hat K(\omega^*) v)` with
    :math:`u, v` its top singular vectors from 64 power iterations (a subgradient of the maximum,
    exact where that singular value is simple). Returns a 0-d tensor in the units of ``kernel``.
    """
    route, _ = conv_grid_norm_plan(tuple(kernel.shape), input_size, padding_mode, gram_iters)
    if route == "dense":
        mats = conv_matrix(crop_to_reach(kernel, input_size), input_size)[None]
    else:
        mats = _frequency_matrices(kernel, input_size, padding_mode)
    with torch.no_grad():
        bounds = spectral_norm_upper_bound(mats, gram_iters)
        value = bounds.amax()
        top = mats.index_select(0, bounds.argmax().reshape(1))[0]
        v = torch.ones(top.shape[-1], dtype=top.dtype, device=top.device)
        for _ in range(64):  # power iteration on top^H top, rescaled (no host synchronisation)
            v = top.mH @ (top @ v)
            v = v / torch.linalg.vector_norm(v).clamp_min(torch.finfo(value.dtype).tiny)
        u = top @ v
        u = u / torch.linalg.vector_norm(u).clamp_min(torch.finfo(value.dtype).tiny)
    chosen = mats.index_select(0, bounds.argmax().reshape(1))[0]
    sigma = (u.conj() @ chosen @ v).real
    return value + (sigma - sigma.detach())  # the certified value; sigma_max's gradient


def conv2d_lipschitz_bound(kernel: Tensor, input_size: tuple[int, int], padding_mode: str = "zeros") -> float:
    r"""Certified L2 Lipschitz bound of a 2-D convolution acting on ``input_size`` images.

    :math:`\max_{u, v} \sigma_{\max}(\hat K(u, v))` over the grid of :func:`frequency_grid`:
    ``padding_mode='circular'`` with stride 1 gives the exact operator norm (n x n grid); zero
    padding the (n + k - 1) grid, an upper bound. A stride only subsamples the output (a
    coordinate projection), which cannot increase the norm, so the stride-1 value bounds every
    stride. Computed by :func:`conv_operator_norm`; :func:`conv2d_frequency_singular_values` is
    the full-SVD reference it is tested against. A float in the units of ``kernel``.
    """
    return conv_operator_norm(kernel, (int(input_size[0]), int(input_size[1])), padding_mode=padding_mode)


def conv2d_frequency_singular_values(kernel: Tensor, grid: tuple[int, int]) -> Tensor:
    r"""Singular values of the circular convolution with ``kernel`` on an ``h x w`` grid.

    .. math::

        \hat K(u, v) = \sum_{p, q} K[:, :, p, q]\, e^{-2\pi i (p u / h + q v / w)}, \qquad
        \sigma(\mathcal{C}_K) = \bigcup_{u, v} \sigma(\hat K(u, v))

    computed in float64 with one batched ``svdvals`` over the stacked ``C_out x C_in`` matrices
    (the slow, full reference for :func:`conv_operator_norm`).

    Parameters
    ----------
    kernel : (C_out, C_in, k_h, k_w) tensor
    grid : (h, w)

    Returns
    -------
    (h * w * min(C_out, C_in),) tensor of float64 singular values, in the units of ``kernel``.
    """
    k = fold_kernel(kernel.detach().to(torch.float64), grid)
    spec = torch.fft.fft2(k, s=tuple(grid))  # (C_out, C_in, h, w), complex128
    mats = spec.permute(2, 3, 0, 1).reshape(-1, k.shape[0], k.shape[1])
    return torch.linalg.svdvals(mats).reshape(-1)


def polyphase_kernel(kernel: Tensor, stride: int, offset: int = 0) -> Tensor:
    r"""The stride-1 kernel on pixel-unshuffled inputs equivalent to a stride-``s`` convolution.

    .. math::

        K'[o, (c, r_h, r_w), q_h, q_w] = K[o, c, s q_h + r_h - e, s q_w + r_w - e],
        \qquad e = \text{offset} \bmod s

    (zero where the index falls outside the kernel). With :math:`U_s` the pixel unshuffle, the
    stride-``s`` correlation with :math:`K` of an input padded by ``offset`` pixels before equals,
    up to a circular shift by whole unshuffled pixels and a permutation of the input channels,
    the stride-1 correlation with :math:`K'` of :math:`U_s x`: tap :math:`a` of :math:`K` reads
    pixel :math:`s i + a - \text{offset}`, i.e. phase :math:`(a - \text{offset}) \bmod s` of
    unshuffled pixel :math:`i + \lfloor (a - \text{offset}) / s \rfloor`. Prepending
    :math:`e` zero taps makes the phase of tap :math:`a + e` that of :math:`a - \text{offset}`.

    Parameters
    ----------
    kernel : (C_out, C_in, k, k) tensor
    stride : int
        s >= 1.
    offset : int
        Padding before the input, in pixels (only its residue modulo s matters).

    Returns
    -------
    (C_out, C_in s^2, ceil((k + e) / s), ceil((k + e) / s)) tensor (a view-free copy).
    """
    s = int(stride)
    e = (-int(offset)) % s
    co, ci, kh, kw = kernel.shape
    qh, qw = -(-(kh + e) // s), -(-(kw + e) // s)
    padded = torch.nn.functional.pad(kernel, (e, qw * s - kw - e, e, qh * s - kh - e))
    # (co, ci, qh, s, qw, s) -> (co, ci, s, s, qh, qw): phase (r_h, r_w) becomes an input channel
    return padded.reshape(co, ci, qh, s, qw, s).permute(0, 1, 3, 5, 2, 4).reshape(co, ci * s * s, qh, qw)


def strided_conv_operator_norm(
    kernel: Tensor,
    stride: int,
    input_size: tuple[int, int],
    padding: tuple[int, int] = (0, 0),
    padding_mode: str = "zeros",
) -> float:
    r"""Certified L2 norm of a stride-``s`` convolution (float64, FFT of the polyphase kernel).

    A stride-``s`` correlation is a stride-1 correlation of the pixel-unshuffled input with the
    polyphase kernel :math:`K'` (:func:`polyphase_kernel`; the unshuffle is orthogonal), so

    * circular padding, ``n_h`` and ``n_w`` divisible by ``s``: the norm is exactly
      :func:`conv_operator_norm` of :math:`K'` on the :math:`(n_h / s) \times (n_w / s)` grid
      (whatever the padding amount: it only shifts the output circularly);
    * zero padding (``padding = (before, after)`` pixels per side): the zero-padded map is a
      restriction (input embedded in a zero grid, an isometry) followed by a selection of outputs
      of the circular one on an :math:`N \times N` grid with :math:`N \ge n + k - 1` (no tap
      wraps around onto the image) rounded up to a multiple of ``s``; its norm is at most that
      circular one's, computed as above.

    Parameters
    ----------
    kernel : (C_out, C_in, k, k) tensor
    stride : int
    input_size : (n_h, n_w)
    padding : (before, after)
        Pixels padded before and after, in both spatial dimensions.
    padding_mode : ``"zeros"`` or ``"circular"``

    Returns
    -------
    float, in the units of ``kernel``: exact for circular padding, an upper bound for zeros.
    """
    s = int(stride)
    h, w = int(input_size[0]), int(input_size[1])
    before, after = int(padding[0]), int(padding[1])
    k = kernel.detach().to(torch.float64)
    if padding_mode == "circular":
        if h % s or w % s:
            raise ValueError(
                f"strided_conv_operator_norm: circular padding needs the input size {(h, w)} divisible by "
                f"the stride {s}"
            )
        grid = (h // s, w // s)
    else:
        span = max(before, after) + k.shape[-1] - 1
        grid = (-(-(h + span) // s), -(-(w + span) // s))
    return conv_operator_norm(polyphase_kernel(k, s, before), grid, padding_mode="circular")


def residual_sdp_bound(rho: float) -> float:
    r"""Lipschitz bound of :math:`h(x) = x - 2 W T^{-1} \sigma(W^\top x + b)` from
    :math:`\rho = \lambda_{\max}(T^{-1/2} W^\top W T^{-1/2})` (:math:`T` positive diagonal,
    :math:`\sigma` slope-restricted in :math:`[0, 1]`, e.g. ReLU): :math:`\max(1, 2\rho - 1)`.

    Derivation. The Jacobian is :math:`J = I - 2 W T^{-1} \Lambda W^\top` with
    :math:`\Lambda` diagonal in :math:`[0, 1]` (almost everywhere). With :math:`G = W^\top W`,

    .. math::

        J^\top J - I = -4 W T^{-1} (\Lambda T - \Lambda G \Lambda) T^{-1} W^\top
        \preceq -4 W T^{-1} \Lambda (T - G) \Lambda T^{-1} W^\top,

    since :math:`\Lambda T - \Lambda T \Lambda = T \Lambda (I - \Lambda) \succeq 0`. So
    :math:`G \preceq T` (i.e. :math:`\rho \le 1`) gives :math:`\|J\| \le 1`. Otherwise
    :math:`G \preceq \rho T`, so with :math:`T' = \rho T` the block
    :math:`h'(x) = x - 2 W T'^{-1} \sigma(W^\top x + b)` is 1-Lipschitz and
    :math:`h = (1 - \rho)\,\mathrm{id} + \rho h'`, whence
    :math:`\mathrm{Lip}(h) \le |1 - \rho| + \rho = 2\rho - 1` (rounded up by one operation).
    """
    rho = float(rho)
    if not rho >= 0.0:
        raise ValueError(f"residual_sdp_bound: rho must be a non-negative number; got {rho!r}")
    return 1.0 if rho <= 1.0 else round_up(2.0 * rho - 1.0, 1)
