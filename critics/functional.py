"""Stateless operations behind the Lipschitz layers: orthonormalisation and norm bounds.

Everything here is a pure function of tensors, batched over leading dimensions, so that a layer
can orthonormalise all of its matrices in one call per step.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "spectral_norm_upper_bound",
    "bjorck_orthonormalize",
    "orthogonality_error",
]


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
        Matrices, batched over leading dimensions.
    gram_iters : int
        Number of squarings.

    Returns
    -------
    (...,) tensor
        Upper bounds :math:`\ge \sigma_{\max}`, in the units of ``w``. Differentiable.
    """
    if w.shape[-2] < w.shape[-1]:
        g = w @ w.mT
    else:
        g = w.mT @ w
    # log of the accumulated rescaling, so that large or tiny norms neither overflow nor underflow
    log_scale = torch.zeros(w.shape[:-2], dtype=w.dtype, device=w.device)
    for t in range(gram_iters):
        f = torch.linalg.matrix_norm(g).clamp_min(torch.finfo(w.dtype).tiny)
        g = g / f[..., None, None]
        log_scale = log_scale + torch.log(f) / (2 ** (t + 1))
        g = g @ g
    f = torch.linalg.matrix_norm(g).clamp_min(torch.finfo(w.dtype).tiny)
    return torch.exp(log_scale + torch.log(f) / (2 ** (gram_iters + 1)))


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
    iters: int = 30,
    tol: float | None = 1e-6,
    check_every: int = 4,
    beta: float = 0.5,
    gram_iters: int = 3,
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
        Stop early once every matrix has :math:`\max_{ij} |W^\top W - I|_{ij} < tol` (checked every
        ``check_every`` iterations, which costs one device synchronisation). ``None`` runs all
        ``iters`` iterations.
    beta : float
        Step, 0.5 for the classical iteration.

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
    if w.ndim < 2:
        raise ValueError(f"bjorck_orthonormalize expects matrices (..., m, n); got shape {tuple(w.shape)}")
    wide = w.shape[-2] < w.shape[-1]
    x = w.mT if wide else w  # work on tall matrices: the Gram matrix is the small n x n one
    scale = spectral_norm_upper_bound(x.detach() if not x.requires_grad else x, gram_iters)
    x = x / scale[..., None, None].clamp_min(torch.finfo(x.dtype).tiny)
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    for k in range(iters):
        g = x.mT @ x
        if tol is not None and k % check_every == 0 and k > 0:
            if (g - eye).abs().amax() < tol:
                break
        x = (1.0 + beta) * x - beta * (x @ g)
    return x.mT if wide else x
