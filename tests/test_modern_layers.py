"""AOC, Cayley, AOL, SLL and CPL: explicit float64 Jacobians after training steps against wdist's own
certificates, eval-mode caches after load_state_dict and in-place edits, export, and bad input."""

from __future__ import annotations

import io
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from layer_helpers import N, jacobian
from torch import nn

from critics.layers import AOCConv2d, AOLConv2d, CayleyConv2d, CPLConv2d, SLLConv2d
from critics.layers.sll import hidden_gram_abs_sums
from critics.norms import polyphase_kernel, residual_sdp_bound, round_up, strided_conv_operator_norm

ROUNDING = 1e-10  # float64
F64 = {"dtype": torch.float64}

# (factory, gradient-norm preserving, certificate exact): linear layers, checked on 8 x 8 inputs
LINEAR: dict[str, tuple[Callable[..., nn.Module], bool, bool]] = {
    "aoc-4-4-k3": (lambda **f: AOCConv2d(4, 4, 3, **f), True, True),
    "aoc-3-5-k2": (lambda **f: AOCConv2d(3, 5, 2, **f), True, True),
    "aoc-4-8-k4-s2": (lambda **f: AOCConv2d(4, 8, 4, stride=2, **f), True, True),
    "aoc-3-16-k4-s2": (lambda **f: AOCConv2d(3, 16, 4, stride=2, **f), True, True),
    "aoc-8-4-k4-s2": (lambda **f: AOCConv2d(8, 4, 4, stride=2, **f), True, True),
    "aoc-4-6-k2-s2": (lambda **f: AOCConv2d(4, 6, 2, stride=2, **f), True, True),
    "aoc-4-8-k4-s2-zeros": (lambda **f: AOCConv2d(4, 8, 4, stride=2, padding_mode="zeros", **f), False, False),
    "cayley-4-4-k3": (lambda **f: CayleyConv2d(4, 4, 3, **f), True, True),
    "cayley-3-6-k3": (lambda **f: CayleyConv2d(3, 6, 3, **f), True, True),
    "cayley-6-3-k2": (lambda **f: CayleyConv2d(6, 3, 2, **f), True, True),
    "aol-4-4-k3-circular": (lambda **f: AOLConv2d(4, 4, 3, padding_mode="circular", **f), False, True),
    "aol-6-3-k2-circular": (lambda **f: AOLConv2d(6, 3, 2, padding_mode="circular", **f), False, True),
    "aol-3-6-k3-zeros": (lambda **f: AOLConv2d(3, 6, 3, **f), False, False),
}
RESIDUAL: dict[str, Callable[..., nn.Module]] = {
    "sll-4-h4-k3": lambda **f: SLLConv2d(4, 4, 3, **f),
    "sll-3-h6-k3": lambda **f: SLLConv2d(3, 6, 3, **f),
    "sll-4-h4-k1": lambda **f: SLLConv2d(4, 4, 1, **f),
    "cpl-4-h4-k3": lambda **f: CPLConv2d(4, 4, 3, **f),
    "cpl-3-h5-k5": lambda **f: CPLConv2d(3, 5, 5, **f),
}
ALL = {**{k: v[0] for k, v in LINEAR.items()}, **RESIDUAL}


def trained(layer: nn.Module, steps: int = 4, lr: float = 0.05) -> nn.Module:
    """A few Adam steps on a random objective, so the parameters leave their initialisation."""
    p = next(layer.parameters())
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    layer.train()
    for _ in range(steps):
        y = layer(torch.randn(2, layer.in_channels, N, N, dtype=p.dtype, device=p.device))
        loss = (y * torch.randn_like(y)).sum() + y.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return layer


def jacobian_at(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Explicit Jacobian of a (nonlinear) layer at one input, (out_dim, in_dim), float64."""
    shape = x.shape
    return torch.autograd.functional.jacobian(lambda z: layer(z.reshape(1, *shape)).reshape(-1), x.reshape(-1))


@pytest.mark.parametrize("name", list(LINEAR))
def test_linear_layers_jacobian_and_certificate(name: str, device: torch.device) -> None:
    make, gnp, exact = LINEAR[name]
    layer = trained(make(device=device, **F64)).eval()
    sv = torch.linalg.svdvals(jacobian(layer, layer.in_channels))  # min(out, in) values
    cert = layer.lipschitz_bound((layer.in_channels, N, N))
    assert sv.max() <= 1 + 1e-4
    if gnp:  # (semi-)orthogonal: every singular value is 1
        assert sv.min() >= 1 - 1e-4, f"{name}: smallest singular value {float(sv.min())}"
    assert cert >= float(sv.max()) - ROUNDING
    if exact:
        assert cert - float(sv.max()) <= 1e-3
    assert cert <= 1 + 1e-4


@pytest.mark.parametrize("name", list(RESIDUAL))
def test_residual_blocks_jacobian_and_certificate(name: str, device: torch.device) -> None:
    layer = trained(RESIDUAL[name](device=device, **F64), steps=5, lr=0.1).eval()
    c = layer.in_channels
    cert = layer.lipschitz_bound((c, N, N))
    # the condition holds by construction: 1 up to the certificate's rounding margin
    assert layer.sdp_ratio((c, N, N)) <= 1 + 1e-9 and 1.0 <= cert <= 1 + 1e-12
    for _ in range(3):  # several activation patterns
        x = torch.randn(c, N, N, device=device, **F64) + 0.3 * torch.randn(c, 1, 1, device=device, **F64)
        s = float(torch.linalg.svdvals(jacobian_at(layer, x)).max())
        assert s <= 1 + 1e-4 and cert >= s - ROUNDING


class _UnderscaledSLL(SLLConv2d):
    """An SLL block whose T violates the SDP condition (t / 3): what a wrong library flag would hide."""

    def _scales(self, kernel: torch.Tensor, *q: torch.Tensor) -> torch.Tensor:
        return super()._scales(kernel, *q) / 3.0


def test_violated_sdp_condition_is_detected_and_still_certified(device: torch.device) -> None:
    layer = trained(_UnderscaledSLL(4, 4, 3, device=device, **F64)).eval()
    rho = layer.sdp_ratio((4, N, N))
    cert = layer.lipschitz_bound((4, N, N))
    assert rho > 1 and cert == pytest.approx(2 * rho - 1)
    worst = 0.0
    for _ in range(8):
        x = torch.randn(4, N, N, device=device, **F64)
        worst = max(worst, float(torch.linalg.svdvals(jacobian_at(layer, x)).max()))
    assert 1.0 < worst <= cert + ROUNDING  # no longer 1-Lipschitz, and the certificate says so


def test_residual_sdp_bound_formula() -> None:
    assert residual_sdp_bound(0.0) == 1.0 and residual_sdp_bound(1.0) == 1.0
    assert 2.0 < residual_sdp_bound(1.5) <= round_up(2.0, 1)  # 2 rho - 1, rounded up
    with pytest.raises(ValueError, match="rho"):
        residual_sdp_bound(float("nan"))


def test_sll_scales_make_the_condition_diagonally_dominant() -> None:
    layer = SLLConv2d(4, 6, 3, **F64)
    with torch.no_grad():
        layer.q_param.normal_()
    branch, inv_sqrt_t = layer.unpack(layer.weight)
    kernel, t = layer.kernel_param.detach(), inv_sqrt_t.detach() ** -2
    q = layer.q_param.exp()
    s = hidden_gram_abs_sums(kernel)
    assert torch.allclose(t, (s * q[None]).sum(1) / q)
    assert torch.allclose(branch, kernel * inv_sqrt_t[:, None, None, None])  # V = K T^{-1/2}, used as such
    gram = F.conv2d(kernel, kernel, padding=2)[:, :, 2, 2]  # the zero-offset block of W^T W
    assert (t >= gram.diagonal() - 1e-12).all()


@pytest.mark.parametrize(
    "co,ci,k,s,n,mode,pad",
    [
        (3, 2, 4, 2, 8, "circular", (1, 1)),
        (3, 2, 3, 2, 8, "circular", (0, 1)),
        (2, 3, 5, 3, 9, "circular", (1, 1)),
        (3, 2, 4, 2, 8, "zeros", (1, 1)),
        (3, 2, 3, 2, 7, "zeros", (1, 1)),
        (2, 3, 5, 3, 10, "zeros", (2, 2)),
    ],
)
def test_strided_conv_norm_against_the_jacobian(co, ci, k, s, n, mode, pad) -> None:
    kernel = torch.randn(co, ci, k, k, **F64)
    m = "circular" if mode == "circular" else "constant"

    def conv(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (pad[0], pad[1], pad[0], pad[1]), mode=m), kernel, stride=s)

    d = ci * n * n
    jac = conv(torch.eye(d, **F64).reshape(d, ci, n, n)).reshape(d, -1).mT
    exact = float(torch.linalg.svdvals(jac).max())
    bound = strided_conv_operator_norm(kernel, s, (n, n), pad, mode)
    assert bound >= exact * (1 - 1e-12)
    if mode == "circular":
        assert bound == pytest.approx(exact, rel=1e-10)


def test_polyphase_kernel_is_the_unshuffled_convolution() -> None:
    kernel = torch.randn(3, 2, 4, 4, **F64)
    x = torch.randn(2, 2, 8, 8, **F64)
    strided = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), kernel, stride=2)
    poly = polyphase_kernel(kernel, 2, offset=1)
    unshuffled = F.pixel_unshuffle(x, 2)  # channel (c, r_h, r_w) as polyphase_kernel orders them
    q = poly.shape[-1]
    plain = F.conv2d(F.pad(unshuffled, (1, q - 2, 1, q - 2), mode="circular"), poly)
    assert torch.allclose(plain, strided, atol=1e-12)


@pytest.mark.parametrize("name", list(ALL))
def test_eval_cache_after_load_state_dict_and_in_place_edits(name: str) -> None:
    """The cached eval-mode weight equals a fresh rebuild after load_state_dict and after in-place
    parameter changes under no_grad (the ways an optimiser or a checkpoint changes weights)."""
    make = ALL[name]
    source = trained(make()).eval()
    layer = make().eval()
    x = torch.randn(3, layer.in_channels, N, N)
    with torch.no_grad():
        layer(x)  # fill the cache, which loading must invalidate
        buf = io.BytesIO()
        torch.save(source.state_dict(), buf)
        buf.seek(0)
        layer.load_state_dict(torch.load(buf))
        assert torch.equal(layer(x), source(x))
        fresh = make().eval()
        fresh.load_state_dict(layer.state_dict())
        assert torch.equal(layer(x), fresh(x))
        for p in layer.parameters():
            p.mul_(1.1).add_(0.05)
        fresh = make().eval()
        fresh.load_state_dict(layer.state_dict())
        assert torch.equal(layer(x), fresh(x))
        assert not torch.equal(layer(x), source(x))


@pytest.mark.parametrize("name", list(ALL))
def test_gradients_reach_every_parameter_and_eval_matches_train(name: str) -> None:
    layer = ALL[name]().train()
    x = torch.randn(2, layer.in_channels, N, N)
    y = layer(x)
    (y.square().sum() + y.sum()).backward()
    for pname, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient for {pname}"
    layer.eval()
    with torch.no_grad():
        assert torch.allclose(layer(x), y, atol=1e-5)
    assert layer.weight is layer.weight  # cached in eval mode


@pytest.mark.parametrize("name", list(ALL))
def test_export_computes_the_same_function(name: str) -> None:
    layer = trained(ALL[name]())
    with torch.no_grad():
        for b in ("bias", "hidden_bias"):
            if getattr(layer, b, None) is not None:
                getattr(layer, b).normal_()
    plain = layer.export()
    assert {type(m).__module__.split(".")[0] for m in plain.modules()} <= {"torch", "critics"}
    assert all(type(m).__module__.startswith("torch.") or type(m).__name__ == "Residual" for m in plain.modules())
    x = torch.randn(4, layer.in_channels, N, N)
    layer.eval()
    # Cayley's export is one n x n convolution (64 taps per channel pair here): more float32 rounding
    atol = 1e-5 if name.startswith("cayley") else 2e-6
    with torch.no_grad():
        torch.testing.assert_close(plain(x), layer(x), rtol=0, atol=atol)


def test_bad_arguments_name_the_value() -> None:
    with pytest.raises(ValueError, match="kernel_size=3 with stride=2"):
        AOCConv2d(4, 4, 3, stride=2)
    with pytest.raises(ValueError, match="kernel_size=1 with stride=2"):
        AOCConv2d(4, 4, 1, stride=2)
    with pytest.raises(ValueError, match="stride must be a positive integer; got 0"):
        AOCConv2d(4, 4, 3, stride=0)
    with pytest.raises(ValueError, match=r"divisible by 2.*\(7, 8\)"):
        AOCConv2d(4, 4, 4, stride=2)(torch.randn(1, 4, 7, 8))
    with pytest.raises(ValueError, match="odd kernel_size.*kernel_size=2"):
        SLLConv2d(4, 4, 2)
    with pytest.raises(ValueError, match="hidden_channels must be a positive integer; got 0"):
        SLLConv2d(4, 0, 3)
    with pytest.raises(ValueError, match="stride=2"):
        CayleyConv2d(4, 4, 3, stride=2)
    with pytest.raises(ValueError, match="no input size"):
        CayleyConv2d(4, 4, 3).export()
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\).*\(1, 3, 8, 8\)"):
        CayleyConv2d(4, 4, 3)(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="AOLConv2d: padding_mode='reflect'"):
        AOLConv2d(4, 4, 3, padding_mode="reflect")
