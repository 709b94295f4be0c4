"""Every registered critic, built small and trained a few steps, has no gradient norm above its certificate.

Parametrised over ``critics.available()``, so a family registered later is checked too. A
piecewise-linear critic's gradient is constant on each linear region, so the check samples many
regions: uniform points in the domain [-1, 1]^D, the training samples themselves, and random
interpolates between training samples of P and Q (where a critic's gradient matters most).
"""

from __future__ import annotations

import pytest
import torch
from layer_helpers import kr_steps

import critics

POINTS = 768  # per kind of point


def small(name: str) -> tuple[tuple[int, ...], dict]:
    """Input shape and options of a small build of ``name``: critics of any shape on R^6 (dense width 16,
    16 cones), image critics on 1 x 8 x 8 (width 0.25)."""
    options = critics.critic_options(name)
    small_options = {"centres": 16} if "centres" in options else {}
    if critics.critic_inputs(name) != "images":
        if "width" in options:
            small_options.update(width=16, depth=2 if options.get("depth", 0) else 0)
        return (6,), small_options
    return (1, 8, 8), {"width": 0.25, **small_options}


def gradient_norms(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).sum(), x)
    return g.flatten(1).norm(dim=1)


@pytest.mark.parametrize("name", critics.available())
def test_no_gradient_norm_exceeds_the_certificate(name: str) -> None:
    shape, options = small(name)
    model = critics.build(name, shape, **options)
    gen = torch.Generator().manual_seed(1)
    p_train = torch.rand(64, *shape, generator=gen) * 2 - 1
    q_train = (0.5 * torch.randn(64, *shape, generator=gen) + 0.3).clamp(-1, 1)
    if hasattr(model, "init_from_samples"):  # cone critics: centres placed from the training items
        model.init_from_samples(p_train, q_train)
    kr_steps(model, torch.optim.Adam(model.parameters(), lr=0.02), p_train, q_train, steps=6, batch=16, gen=gen)
    model.eval()
    cert = critics.certify(model, shape)
    t = torch.rand(POINTS, *([1] * len(shape)), generator=gen)
    a, b = torch.randint(64, (POINTS,), generator=gen), torch.randint(64, (POINTS,), generator=gen)
    points = torch.cat(
        (
            torch.rand(POINTS, *shape, generator=gen) * 2 - 1,  # random in the domain
            t * p_train[a] + (1 - t) * q_train[b],  # between training samples
            p_train,
            q_train,
        )
    )
    worst = float(gradient_norms(model, points).max())
    assert worst > 0, f"{name}: zero gradient everywhere: nothing was checked"
    assert worst <= cert * (1 + 1e-5), f"{name}: gradient norm {worst} above its certificate {cert}"
