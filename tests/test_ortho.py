"""OrthoConfig: validation, presets, each layer's default, keyword overrides, and cache keys."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from layer_helpers import N, train_steps

from critics.functional import bjorck_orthonormalize, orthogonality_error
from critics.layers import BCOPConv2d, BjorckLinear, OSSNConv2d, RKOConv2d, SOCConv2d
from critics.ortho import PRESETS, OrthoConfig


def test_defaults_and_presets() -> None:
    assert OrthoConfig() == OrthoConfig.DEFAULT
    assert dataclasses.asdict(OrthoConfig.DEFAULT) == {
        "bjorck_iters": 30,
        "bjorck_tol": 1e-6,
        "bjorck_beta": 0.5,
        "check_every": 4,
        "gram_iters": 3,
        "power_iters": 1,
    }
    assert OrthoConfig.CONV == OrthoConfig.DEFAULT.replace(gram_iters=5)
    assert OrthoConfig.SOC == OrthoConfig.DEFAULT.replace(gram_iters=6)
    assert OrthoConfig.TEST.bjorck_tol is None and OrthoConfig.TEST.bjorck_iters > OrthoConfig.DEFAULT.bjorck_iters
    assert PRESETS == {
        "default": OrthoConfig.DEFAULT,
        "conv": OrthoConfig.CONV,
        "soc": OrthoConfig.SOC,
        "test": OrthoConfig.TEST,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        OrthoConfig.DEFAULT.bjorck_iters = 3  # type: ignore[misc]
    assert hash(OrthoConfig()) == hash(OrthoConfig.DEFAULT)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("bjorck_iters", 0, "bjorck_iters must be a positive integer; got 0"),
        ("bjorck_iters", 2.5, "bjorck_iters must be a positive integer; got 2.5"),
        ("bjorck_iters", True, "bjorck_iters must be a positive integer; got True"),
        ("bjorck_tol", 0.0, "bjorck_tol must be None or a finite float > 0; got 0.0"),
        ("bjorck_tol", float("nan"), "bjorck_tol must be None or a finite float > 0; got nan"),
        ("bjorck_tol", "1e-6", "bjorck_tol must be None or a finite float > 0; got '1e-6'"),
        ("bjorck_beta", 1.0, r"bjorck_beta must be a float in \(0, 1\) for Björck to converge; got 1.0"),
        ("bjorck_beta", 0, r"bjorck_beta must be a float in \(0, 1\).*got 0"),
        ("check_every", 0, "check_every must be a positive integer; got 0"),
        ("gram_iters", -1, "gram_iters must be an integer >= 0; got -1"),
        ("power_iters", 0, "power_iters must be a positive integer; got 0"),
    ],
)
def test_invalid_values_are_refused_naming_them(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"OrthoConfig: {message}"):
        OrthoConfig(**{field: value})


def test_each_layer_keeps_its_effective_default() -> None:
    assert BjorckLinear(4, 4).ortho == OrthoConfig.DEFAULT
    assert BCOPConv2d(4, 4, 3).ortho == OrthoConfig.CONV  # BCOP scales with 5 Gram squarings
    assert RKOConv2d(4, 4, 3).ortho == OrthoConfig.CONV
    assert SOCConv2d(4, 4, 3).ortho == OrthoConfig.SOC
    assert OSSNConv2d(4, 4, 3).ortho.power_iters == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: BjorckLinear(6, 6, **kw),
        lambda **kw: BCOPConv2d(4, 4, 3, **kw),
        lambda **kw: RKOConv2d(4, 4, 3, **kw),
    ],
    ids=["linear", "bcop", "rko"],
)
def test_keyword_options_override_the_configuration(make) -> None:
    layer = make(bjorck_iters=7, bjorck_tol=None, ortho=OrthoConfig.TEST)
    assert layer.ortho == OrthoConfig.TEST.replace(bjorck_iters=7, bjorck_tol=None)
    assert (layer.bjorck_iters, layer.bjorck_tol) == (7, None)
    layer = make(bjorck_tol=1e-4)
    assert layer.ortho == type(layer).default_ortho.replace(bjorck_tol=1e-4)
    layer.bjorck_iters = 12  # the attribute writes through to the configuration
    assert layer.ortho.bjorck_iters == 12 and layer.ortho.bjorck_tol == 1e-4
    with pytest.raises(ValueError, match="bjorck_iters must be a positive integer; got 0"):
        layer.bjorck_iters = 0
    with pytest.raises(ValueError, match="bjorck_tol must be None or a finite float > 0; got -1"):
        make(bjorck_tol=-1)
    with pytest.raises(TypeError, match="ortho must be an OrthoConfig or None; got 'test'"):
        make(ortho="test")


def test_a_new_configuration_rebuilds_the_cached_weight() -> None:
    """The eval caches are keyed on the configuration: assigning one changes the weight used."""
    x = torch.randn(2, 4, N, N)
    bcop = BCOPConv2d(4, 4, 3).eval()
    with torch.no_grad():
        bcop.proj_param.mul_(3.0)  # far from orthonormal: the iteration count matters
        before = bcop(x)
    bcop.ortho = OrthoConfig(bjorck_iters=1, bjorck_tol=None)
    with torch.no_grad():
        assert not torch.allclose(bcop(x), before)

    lin = BjorckLinear(8, 8).eval()
    with torch.no_grad():
        lin.parametrizations.weight.original.mul_(3.0).add_(torch.randn(8, 8))
        w_default = lin.weight.clone()
    lin.ortho = OrthoConfig(bjorck_iters=1, bjorck_tol=None)
    assert lin.parametrizations.weight[0].ortho == lin.ortho
    with torch.no_grad():
        assert not torch.allclose(lin.weight, w_default)
    lin.ortho = None  # back to the layer's default
    with torch.no_grad():
        torch.testing.assert_close(lin.weight, w_default, rtol=0, atol=0)

    soc = train_steps(SOCConv2d(4, 4, 3), 4, 4, steps=3, lr=0.5).eval()
    soc.max_norm = 2.0  # the bound, not max_norm, sets the scale: gram_iters then matters
    with torch.no_grad():
        six = soc(x)
        soc.ortho = OrthoConfig(gram_iters=0)  # the Frobenius bound: a smaller scale
        assert not torch.allclose(soc(x), six)


def test_ossn_power_iterations_per_step_follow_the_configuration() -> None:
    torch.manual_seed(3)
    one = OSSNConv2d(4, 4, 3)
    three = OSSNConv2d(4, 4, 3, ortho=OrthoConfig(power_iters=3))
    three.load_state_dict(one.state_dict())
    ref = OSSNConv2d(4, 4, 3)
    ref.load_state_dict(one.state_dict())
    x = torch.randn(1, 4, N, N)
    one(x), three(x)  # one training-mode build each
    ref.power_iteration(3)
    assert not torch.equal(one.u, three.u)
    torch.testing.assert_close(three.u, ref.u, rtol=0, atol=0)


@pytest.mark.parametrize("dtype,bound", [(torch.float32, 2e-6), (torch.float64, 1e-13)])
def test_test_preset_reaches_its_documented_tolerance(dtype: torch.dtype, bound: float) -> None:
    torch.manual_seed(0)
    for m, n in [(32, 32), (16, 48), (96, 40)]:
        q = torch.linalg.qr(torch.randn(max(m, n), max(m, n), dtype=torch.float64))[0][:m, :n]
        w = (q + 0.05 * torch.randn(m, n, dtype=torch.float64)).to(dtype)
        strict = float(orthogonality_error(bjorck_orthonormalize(w, **OrthoConfig.TEST.bjorck_options())))
        default = float(orthogonality_error(bjorck_orthonormalize(w, **OrthoConfig.DEFAULT.bjorck_options())))
        assert strict < bound
        assert default < (1e-5 if dtype == torch.float32 else 1e-6)
