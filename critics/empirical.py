"""Empirical Lipschitz estimates: largest observed input-gradient norms (LOWER estimates).

These numbers are *lower* bounds on :math:`\\mathrm{Lip}(f)` (a maximum over finitely many
points), reported beside the certificate of :mod:`critics.certificates`, never instead of it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["max_gradient_norm", "empirical_lipschitz"]


def _gradient_norms(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    norms = []
    for chunk in x.split(batch_size):
        xi = chunk.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = model(xi)
            if out.numel() != xi.shape[0]:
                raise ValueError(
                    f"empirical Lipschitz estimates need one scalar per sample; the model maps a batch "
                    f"of {xi.shape[0]} to shape {tuple(out.shape)}"
                )
            (grad,) = torch.autograd.grad(out.sum(), xi)
        norms.append(grad.detach().flatten(1).to(torch.float64).norm(dim=1))
    return torch.cat(norms)


def max_gradient_norm(model: nn.Module, x: Tensor, batch_size: int = 1024) -> float:
    r"""Largest input-gradient norm over a batch: :math:`\max_i \|\nabla_x f(x_i)\|_2`.

    All per-sample gradients come from one backward pass of :math:`\sum_i f(x_i)` per chunk (valid
    because samples do not interact in eval mode). The model is evaluated in eval mode (the mode
    it is certified in) and its mode is restored afterwards; parameter ``.grad`` fields are not
    touched.

    This is an empirical **lower** estimate of :math:`\mathrm{Lip}(f)`, never a certificate.

    Parameters
    ----------
    model : nn.Module
        Maps ``(N, *shape)`` to ``N`` scalars (``(N,)`` or ``(N, 1)``).
    x : (N, *shape) tensor
        Points at which to differentiate.
    batch_size : int
        Chunk size (memory).

    Returns
    -------
    float
    """
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"max_gradient_norm needs a non-empty batch; got shape {tuple(x.shape)}")
    was_training = model.training
    model.eval()
    try:
        return float(_gradient_norms(model, x, batch_size).max())
    finally:
        model.train(was_training)


def empirical_lipschitz(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None = None,
    n_interpolates: int = 1024,
    generator: torch.Generator | None = None,
    batch_size: int = 1024,
) -> float:
    r"""Empirical **lower** estimate of :math:`\mathrm{Lip}(f)` from gradients at sample points.

    .. math::

        \hat L = \max_{z \in Z} \|\nabla f(z)\|_2 \le \mathrm{Lip}(f), \qquad
        Z = \{x_i\} \cup \{y_j\} \cup \{t_k x_{a_k} + (1 - t_k) y_{b_k}\}

    with :math:`t_k \sim U(0, 1)` and random pairs :math:`(a_k, b_k)`: the interpolates are where
    an optimal critic's gradient has norm 1 (Gulrajani et al., 2017). Since it is a maximum over
    finitely many points it can only under-estimate the Lipschitz constant.

    Parameters
    ----------
    model : nn.Module
        Scalar critic, ``(N, *shape) -> (N, 1)``.
    x : (N, *shape) tensor
        Samples (e.g. from P).
    y : (M, *shape) tensor or None
        Samples from Q; without it only ``x`` is used.
    n_interpolates : int
        Number of random interpolates between ``x`` and ``y``.
    generator : torch.Generator or None
        For the interpolation pairs and weights (on ``x``'s device).
    batch_size : int
        Chunk size (memory).

    Returns
    -------
    float
    """
    points = [x]
    if y is not None:
        if tuple(y.shape[1:]) != tuple(x.shape[1:]):
            raise ValueError(f"x and y differ in sample shape: {tuple(x.shape[1:])} vs {tuple(y.shape[1:])}")
        points.append(y)
        if n_interpolates > 0:
            a = torch.randint(x.shape[0], (n_interpolates,), generator=generator, device=x.device)
            b = torch.randint(y.shape[0], (n_interpolates,), generator=generator, device=x.device)
            t = torch.rand((n_interpolates,) + (1,) * (x.ndim - 1), generator=generator, device=x.device, dtype=x.dtype)
            points.append(t * x[a] + (1 - t) * y[b].to(x.dtype))
    return max_gradient_norm(model, torch.cat([p.to(x.dtype) for p in points]), batch_size=batch_size)
