"""Dense critics: gradient-norm preservation, and for every registered critic that takes vector
inputs: shape, finiteness, gradients, and certificate >= measured gradient norms.

Image-only critics are skipped: by contract their entrypoints raise ``ValueError`` with
"input_shape" in the message when given a vector ``input_shape``.
"""

from __future__ import annotations

import math

import pytest
import torch
from layer_helpers import certifies_exactly
from torch import nn

import critics
from critics.empirical import empirical_lipschitz, max_gradient_norm

SMALL = {"width": 16, "depth": 2}
D_IN = 8


def _train_steps(model: nn.Module, shape: tuple[int, ...], steps: int = 4, lr: float = 1e-2) -> None:
    """A few Adam steps on the Kantorovich–Rubinstein objective between two Gaussians."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        p = torch.randn(32, *shape) + 1.0
        q = torch.randn(32, *shape)
        loss = model(q).mean() - model(p).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _build_small(name: str, shape: tuple[int, ...]) -> nn.Module:
    opts = {k: v for k, v in SMALL.items() if k in critics.critic_options(name)}
    try:
        return critics.build(name, shape, **opts)
    except ValueError as err:
        if "input_shape" in str(err):
            pytest.skip(f"{name} does not take vector inputs: {err}")
        raise


@pytest.mark.parametrize("name", critics.available())
def test_every_vector_critic_forward_backward_and_certificate(name: str) -> None:
    shape = (D_IN,)
    model = _build_small(name, shape)
    x = torch.randn(32, *shape)
    out = model(x)
    assert out.shape == (32, 1)
    assert torch.isfinite(out).all()
    out.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    for p in model.parameters():
        p.grad = None

    _train_steps(model, shape)
    cert = critics.certify(model, shape)
    points = torch.randn(512, *shape) * 2
    measured = max(max_gradient_norm(model, points), empirical_lipschitz(model, points, points + 1.0, 512))
    # float32 gradients may exceed the float64 certificate by rounding only
    assert measured <= cert * (1 + 1e-5), f"{name}: measured {measured} > certificate {cert}"
    if name == "bjorck-mlp":
        assert cert <= 1 + 1e-4


@pytest.mark.parametrize("name", ["bjorck-mlp", "gp-mlp", "sn-mlp"])
def test_dense_critics_flatten_image_inputs(name: str) -> None:
    model = critics.build(name, (1, 4, 4), width=8, depth=1)
    assert model(torch.randn(3, 1, 4, 4)).shape == (3, 1)
    assert critics.certify(model, (1, 4, 4)) > 0


@pytest.mark.parametrize("activation", ["maxmin", "groupsort4"])
def test_hidden_part_preserves_vjp_norms(activation: str) -> None:
    """Square orthogonal layers and sorting activations: ||J^T g|| = ||g|| for every g."""
    model = critics.build("bjorck-mlp", (16,), width=16, depth=3, activation=activation)
    _train_steps(model, (16,))
    hidden = model[1:-1].eval()  # BjorckLinear(16, 16) -> act, three times
    x = torch.randn(64, 16, requires_grad=True)
    g = torch.randn(64, 16)
    (vjp,) = torch.autograd.grad(hidden(x), x, g)
    torch.testing.assert_close(vjp.norm(dim=1), g.norm(dim=1), rtol=1e-4, atol=0)


@pytest.mark.parametrize("d_in", [16, 48])
def test_bjorck_maxmin_critic_has_unit_gradient_norm_when_input_at_least_width(d_in: int) -> None:
    model = critics.build("bjorck-mlp", (d_in,), width=16, depth=3, activation="maxmin")
    _train_steps(model, (d_in,))
    model.eval()
    x = torch.randn(256, d_in, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x).sum(), x)
    torch.testing.assert_close(grad.norm(dim=1), torch.ones(256), rtol=0, atol=1e-4)


def test_gradient_norm_drops_when_input_narrower_than_width() -> None:
    """The first layer then has orthonormal columns: W^T only keeps part of the gradient."""
    model = critics.build("bjorck-mlp", (4,), width=16, depth=2).eval()
    x = torch.randn(256, 4, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x).sum(), x)
    norms = grad.norm(dim=1)
    assert norms.max() <= 1 + 1e-4
    assert norms.min() < 0.99


def test_sn_mlp_certify_does_not_change_the_weight() -> None:
    model = critics.build("sn-mlp", (D_IN,), width=16, depth=2)
    _train_steps(model, (D_IN,))
    model.eval()
    x = torch.randn(16, D_IN)
    with torch.no_grad():
        before = model(x)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()  # certify must not run power iteration even when called in training mode
    cert = critics.certify(model, (D_IN,))
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, buffers[k]), f"certify changed {k}"
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=0, atol=0)
    expected = math.prod(
        float(torch.linalg.svdvals(m.weight.detach().double())[0]) for m in model if isinstance(m, nn.Linear)
    )
    assert certifies_exactly(cert, expected * (1 - 1e-13), 64, 2e-13)  # a product of float64 SVDs, rounded up


def test_empirical_estimates_are_lower_bounds_of_a_known_constant() -> None:
    lin = nn.Linear(5, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 0.0, 4.0, 0.0, 0.0]]))
    x = torch.randn(10, 5)
    assert max_gradient_norm(lin, x) == pytest.approx(5.0, rel=1e-6)
    assert empirical_lipschitz(lin, x, torch.randn(7, 5), n_interpolates=5) == pytest.approx(5.0, rel=1e-6)
    relu_net = nn.Sequential(nn.Linear(5, 1), nn.ReLU())
    assert max_gradient_norm(relu_net, x) <= critics.certify(relu_net, (5,)) * (1 + 1e-6)
    with pytest.raises(ValueError, match="one scalar per sample"):
        max_gradient_norm(nn.Linear(5, 2), x)
