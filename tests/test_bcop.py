"""BCOPConv2d: orthogonality (norm, Jacobian), exact certificate, caching, gradients, errors."""

from __future__ import annotations

import io

import pytest
import torch
from layer_helpers import N, assert_refused, jacobian, norm_change, train_steps

from critics.layers import BCOPConv2d, RKOConv2d, SOCConv2d

KERNELS = [1, 2, 3, 4, 5]
CHANNELS = [(4, 4), (2, 4), (5, 3)]  # equal, in < out, in > out
DTYPES = [torch.float32, torch.float64]


def rounding(dtype: torch.dtype) -> float:
    return 1e-5 if dtype == torch.float32 else 1e-10


@pytest.mark.parametrize("k", KERNELS)
@pytest.mark.parametrize("cin,cout", [(4, 4), (3, 6)])
def test_norm_preserved_float64(k: int, cin: int, cout: int, device: torch.device) -> None:
    layer = train_steps(BCOPConv2d(cin, cout, k, dtype=torch.float64, device=device), cin, cout).eval()
    rel = norm_change(layer, torch.randn(5, cin, 11, 9, dtype=torch.float64, device=device))
    assert rel < 1e-5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", KERNELS)
@pytest.mark.parametrize("cin,cout", CHANNELS)
def test_jacobian_orthogonal_and_certificate_exact(
    k: int, cin: int, cout: int, dtype: torch.dtype, device: torch.device
) -> None:
    layer = train_steps(BCOPConv2d(cin, cout, k, dtype=dtype, device=device), cin, cout).eval()
    sv = torch.linalg.svdvals(jacobian(layer, cin))
    if cin == cout:
        assert sv.min() >= 1 - 1e-4 and sv.max() <= 1 + 1e-4
    else:  # the semi-orthogonal corner: min(cin, cout) * N * N unit singular values, none above 1
        assert sv.max() <= 1 + 1e-4
        assert sv[: min(cin, cout) * N * N].min() >= 1 - 1e-4
    cert = layer.lipschitz_bound((cin, N, N))
    assert cert >= sv.max() - rounding(dtype)
    assert abs(cert - sv.max()) <= 1e-4


@pytest.mark.parametrize("k", [2, 4])
def test_even_kernel_zero_padding_is_bounded(k: int, device: torch.device) -> None:
    layer = train_steps(BCOPConv2d(4, 4, k, padding_mode="zeros", dtype=torch.float64, device=device), 4, 4).eval()
    sv = torch.linalg.svdvals(jacobian(layer, 4))
    cert = layer.lipschitz_bound((4, N, N))
    assert sv.max() <= cert + 1e-10 <= 1 + 1e-4


def test_every_projector_is_used(device: torch.device) -> None:
    """The published code reused the first projector pair for k > 2; every one must matter."""
    layer = BCOPConv2d(4, 4, 4, device=device)
    layer(torch.randn(2, 4, N, N, device=device)).square().sum().backward()
    per_matrix = layer.proj_param.grad.flatten(1).norm(dim=1)
    assert per_matrix.shape[0] == 6 and (per_matrix > 0).all()
    with torch.no_grad():
        k0 = layer.weight.clone()
        for j in range(6):
            layer.proj_param[j] += 0.3 * torch.randn_like(layer.proj_param[j])
            k1 = layer.weight.clone()
            assert not torch.allclose(k0, k1), f"projector {j} does not change the kernel"
            k0 = k1


@pytest.mark.parametrize("k", [1, 3])
def test_gradients_reach_every_parameter(k: int, device: torch.device) -> None:
    layer = BCOPConv2d(3, 5, k, device=device)
    layer(torch.randn(2, 3, N, N, device=device)).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_eval_cache_matches_train_and_invalidates(device: torch.device) -> None:
    layer = train_steps(BCOPConv2d(4, 4, 3, device=device), 4, 4)
    x = torch.randn(3, 4, N, N, device=device)
    with torch.no_grad():
        y_train = layer(x)
    layer.eval()
    with torch.no_grad():
        y_eval = layer(x)
    assert torch.allclose(y_train, y_eval, atol=1e-6)
    assert layer.weight is layer.weight  # cached object reused
    cached = layer.weight
    with torch.no_grad():
        layer.ortho_param.add_(0.1)
    assert layer.weight is not cached  # a parameter change invalidates the cache
    cached = layer.weight
    layer.train().eval()
    assert layer.weight is not cached  # train() invalidates it


def test_state_dict_round_trip(device: torch.device) -> None:
    layer = train_steps(BCOPConv2d(4, 6, 2, device=device), 4, 6).eval()
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    other = BCOPConv2d(4, 6, 2, device=device).eval()
    _ = other.weight  # populate the cache, which loading must invalidate
    other.load_state_dict(torch.load(buf))
    x = torch.randn(2, 4, N, N, device=device)
    with torch.no_grad():
        assert torch.equal(layer(x), other(x))


def test_bad_input_errors_name_the_value() -> None:
    cases = [
        ((4, 4, 3), {"stride": 2}, "stride=2"),
        ((0, 4, 3), {}, "in_channels.*0"),
        ((4, -1, 3), {}, "out_channels.*-1"),
        ((4, 4, 2), {"padding_mode": "reflect"}, "padding_mode='reflect'.*kernel_size=2"),
    ]
    assert_refused(BCOPConv2d, cases, channels=5, says=r"\(N, 4, H, W\).*channels 5")


def test_train_mode_kernel_shared_within_a_step(device: torch.device) -> None:
    """P and Q forwards of one step share the kernel; backward then a new step rebuilds it, and
    the gradients equal those of two separately built kernels."""
    torch.manual_seed(1)
    layer = BCOPConv2d(4, 4, 3, device=device)
    ref = BCOPConv2d(4, 4, 3, device=device)
    ref.load_state_dict(layer.state_dict())
    xp, xq = torch.randn(2, 2, 4, N, N, device=device)
    k1 = layer.weight
    assert layer.weight is k1  # shared until a backward passes through it
    (layer(xp).sum() - layer(xq).square().sum()).backward()
    assert layer.weight is not k1
    ref(xp).sum().backward()
    ref.clear_cache()
    (-ref(xq).square().sum()).backward()
    for a, b in zip(layer.parameters(), ref.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-4)
    layer.zero_grad()
    layer(xp).sum().backward()  # a second step without an optimiser step must not fail
    with torch.no_grad():
        _ = layer.weight  # a no-grad build must not be reused by a grad-enabled forward
    layer(xq).sum().backward()
    assert layer.ortho_param.grad.abs().sum() > 0


@pytest.mark.parametrize("make", [BCOPConv2d, SOCConv2d, RKOConv2d], ids=["bcop", "soc", "rko"])
def test_frozen_then_unfrozen_layer_trains_again(make) -> None:
    """A critic frozen with requires_grad_(False) (a generator step of a GAN loop) and unfrozen
    again must not keep the kernel built without a graph: its parameters get gradients again."""
    layer = make(4, 4, 3).train()
    x = torch.randn(2, 4, N, N)
    layer.requires_grad_(False)
    layer(x).sum()
    layer.requires_grad_(True)
    layer(x).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_changing_a_hyperparameter_rebuilds_the_cached_kernel() -> None:
    """The eval kernel depends on bjorck_iters (BCOP) and max_norm (SOC): changing one on a
    built layer must not keep the old kernel, and SOC's certificate is of the kernel used."""
    soc = train_steps(SOCConv2d(4, 4, 3), 4, 4, steps=3, lr=0.5).eval()
    x = torch.randn(2, 4, N, N)
    before = soc(x)
    soc.max_norm = 0.05
    after = soc(x)
    assert not torch.allclose(before, after)
    sv = torch.linalg.svdvals(jacobian(soc, 4))
    assert sv.max() <= soc.lipschitz_bound((4, N, N)) + 1e-6
    assert soc.operator_norm_bound((4, N, N)) <= 0.05 * (1 + 1e-5)
    bcop = BCOPConv2d(4, 4, 3)
    bcop.proj_param.data.mul_(3.0)  # far from orthonormal: iterations matter
    bcop.clear_cache()
    bcop.eval()
    one = bcop(x)
    bcop.bjorck_iters, bcop.bjorck_tol = 1, None
    assert not torch.allclose(bcop(x), one)


@pytest.mark.parametrize("cls", [BCOPConv2d, RKOConv2d])
@pytest.mark.parametrize("iters", [0, -1, 2.5, True])
def test_bjorck_iters_must_be_a_positive_integer(cls, iters) -> None:
    with pytest.raises(ValueError, match=f"bjorck_iters must be a positive integer; got {iters!r}"):
        cls(4, 4, 3, bjorck_iters=iters)


def test_circular_padding_larger_than_the_input_is_refused_naming_the_sizes() -> None:
    layer = BCOPConv2d(2, 2, 5)  # pads 2 pixels per side
    with pytest.raises(ValueError, match=r"circular padding of 2 pixels \(kernel_size=5\).*\(1, 1\)"):
        layer(torch.zeros(1, 2, 1, 1))
    assert layer(torch.zeros(1, 2, 2, 2)).shape == (1, 2, 2, 2)
