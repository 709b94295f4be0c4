"""Helpers shared by the layer and critic tests: explicit Jacobians, a few training steps, refusals."""

from __future__ import annotations

from typing import Any, Sequence

import pytest
import torch
from torch import nn

N = 8  # Jacobians on 8 x 8 inputs


def jacobian(layer: nn.Module, c: int, n: int = N) -> torch.Tensor:
    """Exact Jacobian of an affine layer on (c, n, n) inputs: the identity basis pushed through,
    minus f(0); (out_dim, in_dim), float64."""
    p = next(layer.parameters())
    d = c * n * n
    basis = torch.eye(d, dtype=p.dtype, device=p.device).reshape(d, c, n, n)
    with torch.no_grad():
        return (layer(basis) - layer(torch.zeros_like(basis[:1]))).reshape(d, -1).to(torch.float64).mT


def train_steps(layer: nn.Module, cin: int, cout: int, steps: int = 3, lr: float = 0.05) -> nn.Module:
    """A few Adam steps on a random linear objective, so the parameters leave their initialisation."""
    p = next(layer.parameters())
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    layer.train()
    for _ in range(steps):
        x = torch.randn(2, cin, N, N, dtype=p.dtype, device=p.device)
        target = torch.randn(2, cout, N, N, dtype=p.dtype, device=p.device)
        loss = (layer(x) * target).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return layer


def kr_steps(
    critic: nn.Module, opt: torch.optim.Optimizer, p: torch.Tensor, q: torch.Tensor, steps: int, batch: int,
    gen: torch.Generator,
) -> None:
    """``steps`` optimiser steps of the dual objective in training mode: minimise
    :math:`\\frac1B \\sum_i f(q_i) - f(p_i)` over ``batch`` indices drawn with ``gen`` (the same for
    ``p`` and ``q``)."""
    critic.train()
    for _ in range(steps):
        idx = torch.randint(len(p), (batch,), generator=gen)
        loss = critic(q[idx]).mean() - critic(p[idx]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def norm_change(layer: nn.Module, x: torch.Tensor) -> float:
    """The largest relative change of norm, :math:`\\max_i | \\|f(x_i) - b\\| / \\|x_i\\| - 1 |`, that the
    layer's linear part (its output less its bias ``b``) makes on the batch ``x``: 0 for an
    orthogonal layer."""
    with torch.no_grad():
        y = layer(x) - layer.bias[:, None, None]
    return float((y.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1) - 1).abs().max())


def assert_refused(cls: type, cases: Sequence[tuple[tuple, dict[str, Any], str]], channels: int, says: str) -> None:
    """Bad input to the layer class ``cls`` is refused with a ``ValueError`` that names the value: each
    ``(args, kwargs, pattern)`` of ``cases`` as the arguments of ``cls(*args, **kwargs)``, and a batch
    of ``channels`` channels given to ``cls(4, 4, 3)`` (its message matching ``says``)."""
    for args, kwargs, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            cls(*args, **kwargs)
    layer = cls(4, 4, 3)
    with pytest.raises(ValueError, match=says):
        layer(torch.randn(1, channels, 8, 8))


def certifies_exactly(cert: float, reference: float, n: int, tol: float = 0.0) -> bool:
    """A certificate of an operator whose exact norm ``reference`` is known (a float64 SVD of its
    Jacobian or matrix): never below it, above it by at most the rounding margin of a computation of
    size ``n`` (:func:`critics.norms.rounding_margin`) plus ``tol`` relative (the reference's own
    rounding, or the looseness a test states)."""
    from critics.norms import rounding_margin

    return reference <= cert <= reference * (1 + rounding_margin(n) + tol) + 1e-300
