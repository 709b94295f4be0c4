"""Export to plain torch modules: every layer family and every registered critic computes the same
function after export, with no parametrisation and no wdist layer class left, and (but for SOC,
whose export is a chain of convolutions) the same certificate."""

from __future__ import annotations

import pytest
import torch
from layer_helpers import N, jacobian, train_steps
from torch import nn
from torch.nn.utils import parametrize

import critics
from critics.empirical import max_gradient_norm
from critics.layers import BCOPConv2d, BjorckLinear, OSSNConv2d, RKOConv2d, SOCConv2d
from critics.vanilla import vanilla_export

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")

PADDINGS = ("circular", "zeros")
FAMILIES = {
    **{f"bcop-k{k}-{m}": (lambda k=k, m=m: BCOPConv2d(4, 6, k, padding_mode=m)) for k in (1, 2, 3) for m in PADDINGS},
    **{f"rko-k{k}-{m}": (lambda k=k, m=m: RKOConv2d(5, 4, k, padding_mode=m)) for k in (2, 3) for m in PADDINGS},
    **{f"ossn-k{k}-{m}": (lambda k=k, m=m: OSSNConv2d(4, 4, k, padding_mode=m)) for k in (2, 3) for m in PADDINGS},
    **{f"soc-k{k}-{m}": (lambda k=k, m=m: SOCConv2d(4, 6, k, padding_mode=m)) for k in (1, 3) for m in PADDINGS},
    "soc-cut": lambda: SOCConv2d(6, 4, 3),
    "soc-3-terms": lambda: SOCConv2d(4, 4, 3, eval_terms=3),
    "soc-1-term": lambda: SOCConv2d(4, 5, 3, eval_terms=1),
}


def _wdist_classes(model: nn.Module) -> set[str]:
    return {type(m).__name__ for m in model.modules() if not type(m).__module__.startswith("torch.")}


def _trained(make) -> nn.Module:
    layer = make()
    cin, cout = layer.in_channels, layer.out_channels
    train_steps(layer, cin, cout, steps=3)
    with torch.no_grad():
        layer.bias.normal_()  # a non-zero bias, so that its place in the export is tested
    return layer


@pytest.mark.parametrize("name", list(FAMILIES))
def test_conv_family_export_is_plain_and_computes_the_same(name: str) -> None:
    layer = _trained(FAMILIES[name])
    cin = layer.in_channels
    model = nn.Sequential(layer, nn.ReLU())
    plain = critics.export(model)
    assert _wdist_classes(plain) == set()
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())
    assert isinstance(model[0], type(layer)) and model.training, "export modified its input"
    x = torch.randn(16, cin, N, N)
    layer.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), rtol=0, atol=1e-6)
    original = critics.certify(model, (cin, N, N))
    exported = critics.certify(plain, (cin, N, N))
    if name.startswith("soc"):
        # a chain of convolutions, certified as such (a product of norms): valid, but another
        # number than the layer's own certificate (looser with the default terms)
        sv_max = float(torch.linalg.svdvals(jacobian(plain[0], cin)).max())
        assert sv_max <= original + 1e-5 and sv_max <= exported + 1e-5
        if layer.eval_terms > 3:
            assert exported > original
        assert len(plain[0]) == max(1, 2 * (layer.eval_terms - 1))
    else:
        assert isinstance(plain[0], nn.Conv2d) and plain[0].padding == "same"
        assert exported == pytest.approx(original, abs=1e-6)


@pytest.mark.parametrize("in_f,out_f", [(16, 16), (20, 7), (7, 20)])
def test_bjorck_linear_export(in_f: int, out_f: int) -> None:
    layer = BjorckLinear(in_f, out_f)
    train_steps_dense(layer)
    plain = layer.export()
    assert type(plain) is nn.Linear and not parametrize.is_parametrized(plain)
    x = torch.randn(16, in_f)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), layer(x), rtol=0, atol=1e-6)
    assert critics.certify(plain, (in_f,)) == pytest.approx(critics.certify(layer, (in_f,)), abs=1e-6)


def train_steps_dense(layer: nn.Module, steps: int = 3) -> None:
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    for _ in range(steps):
        loss = (layer(torch.randn(8, layer.in_features)) ** 3).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_export_reads_the_eval_kernel_without_side_effects() -> None:
    """A training-mode OSSN layer is exported with the eval-mode kernel, and exporting runs no
    power iteration on it (nor changes its mode)."""
    layer = _trained(lambda: OSSNConv2d(4, 4, 3)).train()
    u = layer.u.clone()
    plain = layer.export()
    assert torch.equal(layer.u, u) and layer.training
    x = torch.randn(2, 4, N, N)
    layer.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(x), layer(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", critics.available())
def test_registered_critic_export(name: str) -> None:
    vectors = critics.critic_inputs(name) != "images"
    shape = (4,) if vectors else (3, 16, 16)
    accepted = critics.critic_options(name)
    options = {"width": 8, "depth": 1} if vectors else {"width": 0.125}
    options = {k: v for k, v in {**options, "centres": 8}.items() if k in accepted}
    model = critics.build(name, shape, **options)
    if hasattr(model, "init_from_samples"):
        model.init_from_samples(torch.randn(32, *shape), torch.randn(32, *shape))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(2):
        loss = model(torch.randn(4, *shape)).mean() - model(torch.randn(4, *shape)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    # compared in float64: on grids no larger than their kernel the layers multiply by the
    # operator's matrix where the export convolves (another summation order), and float32 rounding
    # of outputs of size ~100 (OSSN) would exceed the tolerance; float64 keeps it absolute and strict
    model.double().eval()
    plain = critics.export(model)
    # only parameter-free activations, padding and the residual connection of this package remain
    # (and the cone heads, which are plain torch operations on their own parameters)
    heads = {"PotentialHead", "ConeHead", "LinearUnitHead"}
    assert _wdist_classes(plain) <= {"MaxMin", "GroupSort", "PadToMultiple", "Residual"} | heads
    x = torch.randn(8, *shape, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), rtol=0, atol=1e-9)
    original, exported = critics.certify(model, shape), critics.certify(plain, shape)
    if name.startswith(("soc", "aoc", "sll", "cpl")):
        # exported as a product of convolutions (SOC), a strided nn.Conv2d certified by its stride-1
        # norm (AOC) or a residual certified as 1 + its branch (SLL, CPL): valid, but looser
        assert exported >= original - 1e-6
        if name.startswith("soc"):
            assert exported > original
        assert exported >= max_gradient_norm(plain, x) - 1e-5 and original >= max_gradient_norm(model, x) - 1e-5
    else:
        assert exported == pytest.approx(original, abs=1e-6)
    if name != "sn-mlp":  # torch's own spectral_norm parametrisation is not this package's to remove
        assert not any(parametrize.is_parametrized(m) for m in plain.modules())


def test_vanilla_export_is_export() -> None:
    assert vanilla_export is critics.export
