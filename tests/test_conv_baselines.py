"""Baselines RKOConv2d, OSSNConv2d and plain nn.Conv2d: certificates vs exact Jacobians, caching, errors."""

from __future__ import annotations

import io

import pytest
import torch
from layer_helpers import N, assert_refused, jacobian, train_steps
from torch import nn

import critics
from critics.layers import OSSNConv2d, RKOConv2d

DTYPES = [torch.float32, torch.float64]


def make(
    kind: str, cin: int, cout: int, k: int, padding_mode: str, dtype: torch.dtype, device: torch.device
) -> nn.Module:
    if kind == "rko":
        return RKOConv2d(cin, cout, k, padding_mode=padding_mode, dtype=dtype, device=device)
    if kind == "ossn":
        return OSSNConv2d(cin, cout, k, padding_mode=padding_mode, dtype=dtype, device=device)
    pad = "same" if padding_mode == "zeros" else (k - 1) // 2
    if padding_mode == "circular" and k % 2 == 0:
        pytest.skip("nn.Conv2d has no asymmetric circular padding")
    return nn.Conv2d(cin, cout, k, padding=pad, padding_mode=padding_mode, dtype=dtype, device=device)


def bound(layer: nn.Module, shape: tuple[int, int, int]) -> float:
    return critics.certify(nn.Sequential(layer), shape)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kind", ["rko", "ossn", "conv"])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("padding_mode", ["circular", "zeros"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_certificate_bounds_jacobian(
    kind: str, k: int, padding_mode: str, dtype: torch.dtype, device: torch.device
) -> None:
    cin, cout = (4, 6) if k % 2 else (5, 3)
    layer = train_steps(make(kind, cin, cout, k, padding_mode, dtype, device), cin, cout).eval()
    sv_max = float(torch.linalg.svdvals(jacobian(layer, cin)).max())
    cert = bound(layer, (cin, N, N))
    slack = 1e-5 if dtype == torch.float32 else 1e-10
    assert cert >= sv_max - slack
    if padding_mode == "circular":
        assert cert == pytest.approx(sv_max, abs=1e-4)
    if kind == "rko":
        assert cert <= 1 + 1e-4


def test_ossn_certificate_exceeds_one() -> None:
    """Spectral normalisation of the reshaped kernel is not a bound on the convolution."""
    exceeded = 0
    for seed in range(4):
        torch.manual_seed(seed)
        layer = train_steps(OSSNConv2d(4, 4, 3, dtype=torch.float64), 4, 4, steps=10).eval()
        layer.power_iteration(50)  # even a converged power iteration does not help
        layer.clear_cache()
        cert = layer.lipschitz_bound((4, N, N))
        sv_max = float(torch.linalg.svdvals(jacobian(layer, 4)).max())
        assert cert >= sv_max - 1e-10
        exceeded += cert > 1.05
    assert exceeded >= 1


@pytest.mark.parametrize("cls", [RKOConv2d, OSSNConv2d])
def test_gradients_cache_state_dict(cls: type, device: torch.device) -> None:
    layer = cls(3, 5, 3, device=device)
    x = torch.randn(2, 3, N, N, device=device)
    y = layer(x)
    y.square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with torch.no_grad():
        y_train = layer(x)  # (OSSN: after this step's power iteration, as eval will use)
    layer.eval()
    with torch.no_grad():
        y_eval = layer(x)
    if cls is RKOConv2d:
        assert torch.allclose(y_eval, y_train, atol=1e-6)
    assert layer.weight is layer.weight
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    other = cls(3, 5, 3, device=device).eval()
    other.load_state_dict(torch.load(buf))
    with torch.no_grad():
        assert torch.equal(other(x), y_eval)


def test_ossn_eval_does_not_update_u() -> None:
    layer = OSSNConv2d(3, 3, 3).eval()
    u = layer.u.clone()
    layer(torch.randn(2, 3, N, N))
    layer.lipschitz_bound((3, N, N))
    assert torch.equal(u, layer.u)
    layer.train()
    layer(torch.randn(2, 3, N, N))
    assert not torch.equal(u, layer.u)


@pytest.mark.parametrize("cls", [RKOConv2d, OSSNConv2d])
def test_bad_input_errors_name_the_value(cls: type) -> None:
    cases = [
        ((0, 4, 3), {}, "in_channels.*0"),
        ((4, 4, 0), {}, "kernel_size.*0"),
        ((4, 4, 4), {"padding_mode": "replicate"}, "padding_mode='replicate'.*kernel_size=4"),
    ]
    assert_refused(cls, cases, channels=2, says="channels 2")


def test_ossn_one_power_iteration_per_step_shared_by_the_forwards_of_the_step() -> None:
    """The P and Q forwards of one step use one kernel (one sigma estimate); u advances once per
    step, not once per forward."""
    layer = OSSNConv2d(4, 4, 3).train()
    x = torch.randn(2, 4, N, N)
    u0 = layer.u.clone()
    k1 = layer.weight
    y = layer(x) + layer(x)
    assert layer.weight is k1
    assert torch.equal(y, 2 * layer(x))
    u1 = layer.u.clone()
    assert not torch.equal(u0, u1)
    y.sum().backward()  # the backward ends the step; the next forward rebuilds, one more iteration
    layer(x)
    assert not torch.equal(layer.u, u1)
