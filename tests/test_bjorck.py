"""BjorckLinear and the BjorckOrthonormal parametrisation: orthogonality, cache, export, state."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from critics.functional import orthogonality_error
from critics.layers import BjorckLinear
from critics.parametrizations import BjorckOrthonormal, remove_bjorck
from critics.vanilla import vanilla_export

TOL = 1e-5
SHAPES = [(32, 32), (64, 64), (16, 48), (48, 16)]  # (in, out): square, out > in, out < in


def _adam_steps(layer: nn.Module, steps: int = 5, lr: float = 0.05) -> None:
    """A few large steps on a nonsense loss, so the raw weight leaves its orthogonal init."""
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    for _ in range(steps):
        x = torch.randn(32, layer.in_features, dtype=layer.bias.dtype)
        loss = (layer(x) ** 3).mean() + layer(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _semi_orthogonality(w: torch.Tensor) -> float:
    """||W^T W - I|| if out >= in (orthonormal columns), else ||W W^T - I|| (orthonormal rows)."""
    return float(orthogonality_error(w))


@pytest.mark.parametrize("in_f,out_f", SHAPES)
def test_orthonormal_at_init_and_after_adam_steps(in_f: int, out_f: int) -> None:
    layer = BjorckLinear(in_f, out_f)
    w = layer.weight.detach().double()
    eye = torch.eye(min(in_f, out_f), dtype=torch.float64)
    gram = w.T @ w if out_f >= in_f else w @ w.T
    assert torch.linalg.matrix_norm(gram - eye, ord=2) < TOL
    raw_before = layer.parametrizations.weight.original.detach().clone()
    _adam_steps(layer)
    raw_after = layer.parametrizations.weight.original.detach()
    assert (raw_after - raw_before).abs().max() > 1e-2, "the raw weight did not move"
    assert _semi_orthogonality(layer.weight) < TOL
    layer.eval()
    assert _semi_orthogonality(layer.weight) < TOL
    bound = layer.lipschitz_bound((in_f,))
    assert abs(bound - 1.0) < TOL


def test_orientation_of_rectangular_weights() -> None:
    wide = BjorckLinear(48, 16).weight.detach().double()  # out < in: rows orthonormal
    tall = BjorckLinear(16, 48).weight.detach().double()  # out > in: columns orthonormal
    assert torch.allclose(wide @ wide.T, torch.eye(16, dtype=torch.float64), atol=TOL)
    assert torch.allclose(tall.T @ tall, torch.eye(16, dtype=torch.float64), atol=TOL)
    # the other product is a rank-16 projection, far from the identity
    assert (tall @ tall.T - torch.eye(48, dtype=torch.float64)).abs().max() > 0.5


def test_orthonormalises_a_random_raw_weight() -> None:
    layer = BjorckLinear(32, 32)
    with torch.no_grad():
        layer.parametrizations.weight.original.copy_(torch.randn(32, 32) + 2 * torch.eye(32))
    assert _semi_orthogonality(layer.weight) < TOL


def test_eval_cache_matches_train_and_is_invalidated_by_a_step() -> None:
    layer = BjorckLinear(24, 24)
    x = torch.randn(8, 24)
    y_train = layer(x).detach()
    layer.eval()
    with torch.no_grad():
        y_eval = layer(x)
        y_eval2 = layer(x)
    param = layer.parametrizations.weight[0]
    assert isinstance(param, BjorckOrthonormal)
    assert param.cached_weight.numel() == 24 * 24, "eval mode did not cache"
    torch.testing.assert_close(y_eval, y_train, rtol=0, atol=0)
    torch.testing.assert_close(y_eval2, y_train, rtol=0, atol=0)
    # an optimiser step in eval mode must invalidate the cache
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    loss = layer(torch.randn(8, 24)).pow(3).sum()  # grad enabled: bypasses the cache
    opt.zero_grad()
    loss.backward()
    assert layer.parametrizations.weight.original.grad is not None
    assert layer.parametrizations.weight.original.grad.abs().sum() > 0
    opt.step()
    with torch.no_grad():
        y_after = layer(x)
        w_cached = layer.weight.clone()
    layer.train()
    assert param.cached_weight.numel() == 0, "train() did not clear the cache"
    with torch.no_grad():
        w_fresh = layer.weight
    assert not torch.allclose(y_after, y_eval)
    torch.testing.assert_close(w_cached, w_fresh, rtol=0, atol=0)


def test_state_dict_round_trip_gives_identical_outputs() -> None:
    layer = BjorckLinear(20, 12)
    _adam_steps(layer, steps=3)
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    clone = BjorckLinear(20, 12)
    clone.load_state_dict(torch.load(buf))
    assert "parametrizations.weight.original" in layer.state_dict()
    assert not any("cached" in k for k in layer.state_dict())
    x = torch.randn(16, 20)
    for mode in (True, False):
        layer.train(mode)
        clone.train(mode)
        with torch.no_grad():
            torch.testing.assert_close(clone(x), layer(x), rtol=0, atol=0)


def test_load_state_dict_invalidates_eval_cache() -> None:
    a, b = BjorckLinear(10, 10).eval(), BjorckLinear(10, 10).eval()
    x = torch.randn(4, 10)
    with torch.no_grad():
        a(x)  # fill the cache
        a.load_state_dict(b.state_dict())
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


@pytest.mark.parametrize("in_f,out_f", SHAPES)
def test_remove_and_vanilla_export_give_identical_outputs(in_f: int, out_f: int) -> None:
    layer = BjorckLinear(in_f, out_f)
    _adam_steps(layer, steps=3)
    x = torch.randn(16, in_f)
    with torch.no_grad():
        expected = layer(x)
    model = nn.Sequential(layer, nn.ReLU())
    plain = vanilla_export(model)
    assert parametrize.is_parametrized(layer), "vanilla_export modified its input"
    assert type(plain[0]) is nn.Linear
    assert not parametrize.is_parametrized(plain[0])
    with torch.no_grad():
        torch.testing.assert_close(plain(x), torch.relu(expected), rtol=0, atol=1e-6)
    remove_bjorck(layer)
    assert not parametrize.is_parametrized(layer)
    assert isinstance(layer.weight, nn.Parameter)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-6)


def test_fixed_iteration_count_without_tolerance() -> None:
    layer = BjorckLinear(16, 16, bjorck_iters=40, bjorck_tol=None)
    with torch.no_grad():
        layer.parametrizations.weight.original.add_(0.3 * torch.randn(16, 16))
    assert _semi_orthogonality(layer.weight) < TOL


def test_lipschitz_bound_checks_input_shape() -> None:
    with pytest.raises(ValueError, match="7"):
        BjorckLinear(8, 4).lipschitz_bound((7,))


def test_double_precision() -> None:
    layer = BjorckLinear(16, 8, dtype=torch.float64)
    _adam_steps(layer, steps=2)
    assert _semi_orthogonality(layer.weight) < 1e-8  # early stop at tol=1e-6 on entries


def test_remove_on_a_deep_copy_leaves_the_original_working() -> None:
    import copy

    layer = BjorckLinear(6, 6)
    twin = copy.deepcopy(layer)
    remove_bjorck(twin)
    x = torch.randn(3, 6)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), twin(x), rtol=0, atol=1e-6)
    assert parametrize.is_parametrized(layer)


@pytest.mark.parametrize("scale", [1e30, 1e-30, 1.0, 0.0])
def test_spectral_norm_upper_bound_holds_at_extreme_scales_in_float32(scale: float) -> None:
    """The Gram-iteration bound stays a bound (>= sigma_max, and tight) where W^T W would
    overflow or underflow in float32: W is pre-scaled by its largest entry."""
    from critics.functional import spectral_norm_upper_bound

    w = torch.randn(5, 16, 40) * scale
    bound = spectral_norm_upper_bound(w, gram_iters=6).double()
    exact = torch.linalg.matrix_norm(w.double(), ord=2)
    assert torch.isfinite(bound).all()
    assert (bound >= exact * (1 - 1e-6)).all()
    assert (bound <= exact * 1.02 + 1e-300).all()


def test_spectral_norm_upper_bound_gradient_is_the_top_singular_pair() -> None:
    """Differentiable: with enough squarings its gradient is u_1 v_1^T (the gradient of sigma_max)."""
    from critics.functional import spectral_norm_upper_bound

    w = torch.randn(16, 40, dtype=torch.float64, requires_grad=True)
    spectral_norm_upper_bound(w, gram_iters=10).backward()
    u, _, vh = torch.linalg.svd(w.detach())
    assert torch.allclose(w.grad, torch.outer(u[:, 0], vh[0]), atol=1e-6)
