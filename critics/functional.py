"""Stateless operations behind the Lipschitz layers: Björck orthonormalisation and its error, the
Gram kernel of a convolution.

Everything here is a pure function of tensors, batched over leading dimensions, so that a layer
can orthonormalise all of its matrices in one call per step. The norm bounds it relies on
(:func:`spectral_norm_upper_bound`, re-exported here) live in :mod:`critics.norms`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from critics.norms import spectral_norm_upper_bound
from critics.ortho import OrthoConfig

_D = OrthoConfig.DEFAULT  # the defaults below are those of the default configuration

__all__ = [
    "spectral_norm_upper_bound",
    "bjorck_orthonormalize",
    "orthogonality_error",
    "bjorck_iterations_needed",
    "kernel_gram",
    "working_dtype",
]


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a kernel is built in from parameters of ``dtype``: float32 for the half-precision
    types (orthogonality to :math:`10^{-5}` needs float32 at least), else ``dtype`` itself."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def orthogonality_error(w: Tensor) -> Tensor:
    r"""Spectral distance of each matrix from (semi-)orthogonality.

    :math:`\|W^\top W - I\|_2` for tall or square matrices, :math:`\|W W^\top - I\|_2` for wide
    ones, batched over leading dimensions (float64 internally, exact SVD).
    """
    w64 = w.detach().to(torch.float64)
    g = w64.mT @ w64 if w.shape[-2] >= w.shape[-1] else w64 @ w64.mT
    eye = torch.eye(g.shape[-1], dtype=g.dtype, device=g.device)
    return torch.linalg.matrix_norm(g - eye, ord=2)


def bjorck_orthonormalize(
    w: Tensor,
    iters: int = _D.bjorck_iters,
    tol: float | None = _D.bjorck_tol,
    check_every: int = _D.check_every,
    beta: float = _D.bjorck_beta,
    gram_iters: int = _D.gram_iters,
) -> Tensor:
    r"""Orthonormalise a batch of matrices by first-order Björck–Bowie iteration.

    .. math::

        W_0 = W / \bar\sigma(W), \qquad W_{k+1} = (1 + \beta) W_k - \beta W_k W_k^\top W_k

    with :math:`\bar\sigma` the Gram-iteration upper bound on :math:`\sigma_{\max}`, so every
    singular value starts in :math:`(0, 1]` and the iteration converges to the orthogonal polar
    factor (semi-orthogonal for rectangular matrices: orthonormal columns if tall, rows if wide).
    Each singular value :math:`s` maps to :math:`(1+\beta) s - \beta s^3`.

    Parameters
    ----------
    w : (..., m, n) tensor
        Unconstrained matrices; a batch is orthonormalised in one call.
    iters : int
        Maximum number of iterations.
    tol : float or None
        Stop early once every matrix has :math:`\max_{ij} |W^\top W - I|_{ij} < tol`. The test
        reuses the Gram matrix of the next step (no extra matmul) and costs one device
        synchronisation; it runs before the first step, then after the number of iterations that
        quadratic convergence predicts from the current error (never more than ``check_every``).
        ``None`` runs all ``iters`` iterations.
    check_every : int
        At most this many iterations between two convergence tests.
    beta : float
        Step, 0.5 for the classical iteration.
    gram_iters : int
        Gram squarings of the initial scaling :math:`\bar\sigma`.

    The defaults are the fields of :attr:`critics.ortho.OrthoConfig.DEFAULT`; a layer passes its
    own configuration (``**ortho.bjorck_options()``).

    Returns
    -------
    (..., m, n) tensor
        Differentiable (the iteration is unrolled for autograd).

    References
    ----------
    .. [1] Björck & Bowie, "An iterative algorithm for computing the best estimate of an
       orthogonal matrix", SIAM J. Numer. Anal. 8 (1971).
    .. [2] Anil, Lucas & Grosse, "Sorting out Lipschitz function approximation", ICML 2019.
    """
    return _bjorck(w, iters, tol, check_every, beta, gram_iters)[0]


def bjorck_iterations_needed(
    w: Tensor,
    tol: float,
    max_iters: int = _D.bjorck_iters,
    beta: float = _D.bjorck_beta,
    gram_iters: int = _D.gram_iters,
) -> int:
    r"""Björck iterations :func:`bjorck_orthonormalize` needs to bring every matrix of ``w`` to
    :math:`\max_{ij} |W^\top W - I|_{ij} < tol` (testing after every iteration; ``max_iters``
    if it never does). No gradient; one device synchronisation per iteration. Used to size a
    fixed-iteration build (a CUDA graph cannot hold the convergence test)."""
    with torch.no_grad():
        return _bjorck(w.detach(), max_iters, tol, 1, beta, gram_iters)[1]


def _bjorck(
    w: Tensor, iters: int, tol: float | None, check_every: int, beta: float, gram_iters: int
) -> tuple[Tensor, int]:
    """:func:`bjorck_orthonormalize`, also returning the number of iterations run."""
    if w.ndim < 2:
        raise ValueError(f"bjorck_orthonormalize expects matrices (..., m, n); got shape {tuple(w.shape)}")
    if iters < 0 or check_every < 1:
        raise ValueError(f"bjorck_orthonormalize needs iters >= 0 and check_every >= 1; got {iters}, {check_every}")
    if w.dtype in (torch.float16, torch.bfloat16) or torch.is_autocast_enabled(w.device.type):
        # Orthogonality to 1e-5 needs float32 at least: never iterate in half precision, even
        # under mixed-precision autocast (the certificate is computed on this float32 result).
        with torch.autocast(device_type=w.device.type, enabled=False):
            return _bjorck(w.float(), iters, tol, check_every, beta, gram_iters)
    wide = w.shape[-2] < w.shape[-1]
    x = w.mT if wide else w  # work on tall matrices: the Gram matrix is the small n x n one
    if x.numel() == 0:
        return w, 0
    # The polar factor is invariant to a positive rescaling, so the scale is a constant for
    # autograd: no backward through the Gram iteration.
    with torch.no_grad():
        scale = spectral_norm_upper_bound(x, gram_iters)
    x = x / scale[..., None, None].clamp_min(torch.finfo(x.dtype).tiny)
    batch_shape = x.shape[:-2]
    x = x.reshape(-1, *x.shape[-2:])  # (B, m, n): one fused baddbmm per step below
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    next_check = 0
    done = iters
    for k in range(iters):
        g = torch.bmm(x.mT, x)
        if tol is not None and k >= next_check:
            with torch.no_grad():
                err = float((g - eye).abs().amax())
            if err < tol:
                done = k
                break
            next_check = k + (1 if check_every == 1 else _iterations_to_tol(err, tol, beta, check_every))
        x = torch.baddbmm(x, x, g, beta=1.0 + beta, alpha=-beta)  # (1 + b) X - b X X^T X
    x = x.reshape(*batch_shape, *x.shape[-2:])
    return (x.mT if wide else x), done


def _iterations_to_tol(err: float, tol: float, beta: float, check_every: int) -> int:
    r"""Iterations until the next convergence check, predicted from the current Gram error.

    For the classical step (``beta = 0.5``) and singular values :math:`1 - d` the iteration maps
    :math:`d \mapsto \tfrac32 d^2`, so the Gram error :math:`e \approx 2d` becomes about
    :math:`\tfrac34 e^2`; we predict :math:`e \mapsto e^2` (slightly pessimistic) once
    :math:`e < 1/2` and check again when the prediction drops below ``tol`` (at most
    ``check_every`` iterations later). This saves both wasted iterations and device syncs.
    """
    if beta != 0.5 or not (err < 0.5):
        return check_every
    n = 1
    while n < check_every:
        err = err * err
        if err < tol:
            break
        n += 1
    return n


class _SelfGram(torch.autograd.Function):
    r""":math:`G = X X^\top` with the backward of a symmetric product: :math:`\bar X = (\bar G +
    \bar G^\top) X`, one matrix product where autograd's ``mm`` backward runs two."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x @ x.mT

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return (grad + grad.mT) @ x


def _tap_offsets(kh: int, kw: int, device: torch.device) -> Tensor:
    """For every pair of taps ``(p', p)`` of a ``kh x kw`` kernel (``p'`` major), the flat index of
    their offset ``p' - p`` on the ``(2 kh - 1) x (2 kw - 1)`` grid of offsets."""
    a, b = torch.arange(kh, device=device), torch.arange(kw, device=device)
    rows = a[:, None, None, None] - a[None, None, :, None] + kh - 1
    cols = b[None, :, None, None] - b[None, None, None, :] + kw - 1
    return (rows * (2 * kw - 1) + cols).reshape(-1)


def kernel_gram(kernel: Tensor) -> Tensor:
    r"""Kernel of :math:`\mathcal{C}_K \mathcal{C}_K^\top` on the output channels of ``kernel``,
    offset first:

    .. math::

        \Gamma[\delta, i, j] = \sum_c \sum_p K[i, c, p + \delta]\, K[j, c, p]

    for every offset :math:`\delta` with :math:`|\delta_h| < k_h`, :math:`|\delta_w| < k_w`
    (row-major on the :math:`(2k_h - 1) \times (2k_w - 1)` grid, :math:`\delta = 0` at its
    centre): the same numbers, up to float rounding, as ``conv2d(K, K, padding=(k_h - 1, k_w - 1))``
    read as :math:`[i, j, \delta]`. Computed as one matrix product of the taps,
    :math:`M_{(p', i), (p, j)} = \sum_c K[i, c, p'] K[j, c, p]`, summed along its tap offsets
    (``index_add_``): :math:`(C_{out} k_h k_w)^2 C_{in}` multiply-adds in one GEMM (and one in the
    backward), which runs several times faster than that small-image convolution. Units: those
    of ``kernel`` squared.

    Parameters
    ----------
    kernel : (C_out, C_in, k_h, k_w) tensor

    Returns
    -------
    ((2 k_h - 1)(2 k_w - 1), C_out, C_out) tensor, differentiable.
    """
    c_out, c_in, kh, kw = kernel.shape
    taps = kernel.permute(2, 3, 0, 1).reshape(kh * kw * c_out, c_in)  # rows (p, i)
    pairs = _SelfGram.apply(taps).view(kh * kw, c_out, kh * kw, c_out).transpose(1, 2).reshape(-1, c_out, c_out)
    gram = pairs.new_zeros((2 * kh - 1) * (2 * kw - 1), c_out, c_out)
    return gram.index_add_(0, _tap_offsets(kh, kw, kernel.device), pairs)
