"""The certificate-rule registry: a rule is applied only to modules it describes.

The two reproductions of a false certificate (a subclass that rescales its weight inside forward,
a hook that rescales a layer's output) must be refused with a message naming the module; wrappers
and supported parametrisations are certified on what they run; a user's rule is applied and its use
recorded as user-asserted, down to result.json.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import orthogonal, spectral_norm, weight_norm

import critics
from critics import rules
from critics.certificates import certificate_report, certify, dense_lipschitz_bound
from critics.layers import BCOPConv2d, BjorckLinear, GroupSort, MaxMin, Residual, RKOConv2d

TOY = Path(__file__).resolve().parent.parent / "configs" / "toy" / "translation-2d.yaml"


def _jacobian_norm(model: nn.Module, x: torch.Tensor) -> float:
    jac = torch.autograd.functional.jacobian(lambda z: model(z.unsqueeze(0)).flatten(), x)
    return float(torch.linalg.matrix_norm(jac.reshape(jac.shape[0], -1), ord=2))


def _assert_refused(model: nn.Module, shape: tuple[int, ...], *parts: str) -> None:
    """``certify(model, shape)`` raises a CertificationError whose message holds every one of ``parts``."""
    with pytest.raises(critics.CertificationError) as info:
        certify(model, shape)
    for part in parts:
        assert part in str(info.value), str(info.value)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules and parametrisations registered by a test are gone after it."""
    monkeypatch.setattr(rules, "_RULES", dict(rules._RULES))
    monkeypatch.setattr(rules, "_PARAMETRIZATIONS", dict(rules._PARAMETRIZATIONS))


class EqualLinear(nn.Linear):
    """A StyleGAN-style layer scaling its weight inside forward: Linear's rule would give a tenth of its constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * 10.0, self.bias)


# -- the two reproductions --------------------------------------------------------------------------


def test_subclass_that_rescales_its_weight_in_forward_is_refused() -> None:
    f = nn.Sequential(nn.Flatten(), EqualLinear(4, 1)).double()
    # the base class's rule would give a tenth of the true constant
    assert _jacobian_norm(f, torch.randn(4, dtype=torch.float64)) == pytest.approx(
        10 * dense_lipschitz_bound(f[1].weight), rel=1e-9
    )
    says = ("module '1'", "EqualLinear", "subclass of Linear", "defines forward", "register_certificate_rule")
    _assert_refused(f, (4,), *says)


def test_forward_hook_that_rescales_the_output_is_refused() -> None:
    f = nn.Sequential(nn.Flatten(), nn.Linear(4, 1))
    f[1].register_forward_hook(lambda m, i, o: 10 * o)
    _assert_refused(f, (4,), "module '1'", "(Linear)", "forward hook", "<lambda>", ".remove()")


def test_pre_hooks_hooks_inside_a_ruled_module_and_global_hooks_are_refused() -> None:
    f = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    handle = f[1].register_forward_pre_hook(lambda m, args: (2 * args[0],))
    with pytest.raises(critics.CertificationError, match=r"module '1' \(ReLU\).*forward pre-hook"):
        certify(f, (3,))
    handle.remove()
    assert certify(f, (3,)) == pytest.approx(dense_lipschitz_bound(f[0].weight))
    res = nn.Sequential(Residual(nn.Sequential(nn.Linear(3, 3))))
    res[0].branch[0].register_forward_hook(lambda m, i, o: 3 * o)
    with pytest.raises(critics.CertificationError, match=r"forward hook"):
        certify(res, (3,))
    sn = nn.Sequential(spectral_norm(nn.Linear(3, 3)))
    sn[0].parametrizations.weight[0].register_forward_hook(lambda m, i, o: 5 * o)  # rescales the weight
    with pytest.raises(critics.CertificationError, match=r"submodule 'parametrizations.weight.0'"):
        certify(sn, (3,))
    glob = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        with pytest.raises(critics.CertificationError, match="global forward hook"):
            certify(f, (3,))
    finally:
        glob.remove()
    hooked = nn.Sequential(nn.Linear(3, 3))
    hooked.register_forward_hook(lambda m, i, o: 2 * o)  # on the chain itself
    with pytest.raises(critics.CertificationError, match=r"the model \(Sequential\).*forward hook"):
        certify(hooked, (3,))


def test_wdist_own_hooks_pass_and_certify_installs_none() -> None:
    f = critics.build("bjorck-mlp", (3,), width=8, depth=2)  # carries the registry's input-shape check
    before = {m: (dict(m._forward_pre_hooks), dict(m._forward_hooks)) for m in f.modules()}
    certify(f, (3,))
    assert {m: (dict(m._forward_pre_hooks), dict(m._forward_hooks)) for m in f.modules()} == before


# -- what a rule may describe -----------------------------------------------------------------------


def test_a_subclass_that_adds_nothing_to_forward_gets_its_base_rule() -> None:
    class InitOnly(nn.Linear):
        scale = 2.0  # plain class data may differ

        def __init__(self, n: int) -> None:
            super().__init__(n, n)

        def reset_parameters(self) -> None:
            nn.init.eye_(self.weight)

    layer = InitOnly(3)
    (cert,) = certificate_report(layer, (3,)).layers
    assert cert.bound == dense_lipschitz_bound(layer.weight) and cert.user_asserted is False


def test_a_convolution_subclass_with_its_own_initialisation_keeps_the_base_rule() -> None:
    # reset_parameters runs the subclass's _init_free (here rows of norm 0.5) and zeroes the bias;
    # Björck normalises the kernel whatever its scale, so RKO's rule still describes the layer
    half = type("HalfInitRKO", (RKOConv2d,), {"_init_free": lambda self: nn.init.orthogonal_(self.kernel_param, 0.5)})
    layer = half(2, 2, 3)
    gram = layer.kernel_param.detach() @ layer.kernel_param.detach().T
    assert torch.allclose(gram, 0.25 * torch.eye(2), atol=1e-6) and not layer.bias.any()
    (cert,) = certificate_report(layer, (2, 6, 6)).layers
    assert cert.user_asserted is False and cert.bound == RKOConv2d.lipschitz_bound(layer, (2, 6, 6))


@pytest.mark.parametrize(
    "body",
    [
        {"_conv_forward": lambda self, x, w, b: F.conv2d(x, 10 * w, b, self.stride, self.padding)},
        {"__call__": lambda self, x: 10 * nn.Conv2d.__call__(self, x)},
        {"weight_scale": property(lambda self: 10.0)},
    ],
    ids=["_conv_forward", "__call__", "property"],
)
def test_a_subclass_overriding_any_method_or_property_is_refused(body: dict) -> None:
    cls = type("Tweaked", (nn.Conv2d,), body)
    with pytest.raises(critics.CertificationError, match="subclass of Conv2d that defines"):
        certify(cls(1, 1, 3, padding=1), (1, 4, 4))


def test_a_forward_assigned_on_the_instance_is_refused() -> None:
    layer = nn.Linear(3, 3)
    layer.forward = lambda x: 10 * F.linear(x, layer.weight, layer.bias)
    with pytest.raises(critics.CertificationError, match="replaces forward on the instance"):
        certify(layer, (3,))


def test_a_module_with_only_a_lipschitz_bound_method_is_refused_until_registered(registry: None) -> None:
    class Scale(nn.Module):
        def __init__(self, factor: float) -> None:
            super().__init__()
            self.factor = factor

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.factor * x

        def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
            return abs(self.factor)

    f = nn.Sequential(nn.Linear(3, 3), Scale(3.0))
    _assert_refused(f, (3,), "module '1' (Scale)", "lipschitz_bound method", "register_certificate_rule")

    @critics.register_certificate_rule(Scale)
    def scale_rule(module: Scale, input_shape: tuple[int, ...]) -> float:
        return module.lipschitz_bound(input_shape)

    report = certificate_report(f, (3,))
    assert [(c.kind, c.user_asserted) for c in report.layers] == [("Linear", False), ("Scale", True)]
    assert report.as_dict()["user_asserted"] is True and report.as_dict()["layers"][1]["user_asserted"] is True
    assert critics.certificate_rules()[Scale].user_asserted
    with pytest.raises(ValueError, match="already has a certificate rule.*replace=True"):
        critics.register_certificate_rule(Scale, lambda m, s: 1.0)
    critics.register_certificate_rule(Scale, lambda m, s: 7.0, replace=True)
    assert certificate_report(f, (3,)).layers[1].bound == 7.0
    # a user's rule for a user's subclass of a supported type: the refusal's advice works
    critics.register_certificate_rule(EqualLinear, lambda m, s: 10 * dense_lipschitz_bound(m.weight))
    eq = nn.Sequential(nn.Flatten(), EqualLinear(4, 1)).double()
    assert certify(eq, (4,)) >= _jacobian_norm(eq, torch.randn(4, dtype=torch.float64))
    critics.register_certificate_rule(Scale, lambda m, s: float("nan"), replace=True)
    with pytest.raises(critics.CertificationError, match="returned nan"):
        certify(f, (3,))


def test_registration_refuses_what_is_not_a_module_type_or_a_structure() -> None:
    with pytest.raises(TypeError, match="subclass of torch.nn.Module"):
        critics.register_certificate_rule(int, lambda m, s: 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Sequential is certified through what it holds"):
        critics.register_certificate_rule(nn.Sequential, lambda m, s: 1.0)
    with pytest.raises(TypeError, match="callable"):
        critics.register_certificate_rule(nn.GELU, 1.0)  # type: ignore[arg-type]


def test_a_user_rule_inside_a_residual_branch_marks_the_block(registry: None) -> None:
    class Half(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * x

    critics.register_certificate_rule(Half, lambda m, s: 0.5)
    report = certificate_report(nn.Sequential(nn.Linear(3, 3), Residual(nn.Sequential(Half()))), (3,))
    assert [(c.kind, c.user_asserted) for c in report.layers] == [("Linear", False), ("Residual", True)]
    assert report.layers[1].bound == pytest.approx(1.5)


def test_the_registry_holds_wdist_own_rules_for_every_layer() -> None:
    table = critics.certificate_rules()
    for cls in (nn.Linear, nn.Conv2d, nn.ReLU, nn.LeakyReLU, nn.Flatten, BjorckLinear, BCOPConv2d, GroupSort, MaxMin):
        assert cls in table and table[cls].user_asserted is False
    for name in critics.layers.__all__:
        obj = getattr(critics.layers, name)
        if isinstance(obj, type) and obj is not critics.layers.LipschitzConv2d:
            assert obj in table and table[obj].user_asserted is False, name


# -- parametrisations and wrappers ------------------------------------------------------------------


@pytest.mark.parametrize("constrain", [spectral_norm, orthogonal, weight_norm], ids=["spectral", "orthogonal", "norm"])
def test_supported_parametrisations_certify_the_weight_as_used(constrain) -> None:
    layer = constrain(nn.Linear(5, 5).double())
    layer.eval()
    x = torch.randn(5, dtype=torch.float64)
    (cert,) = certificate_report(layer, (5,)).layers
    assert cert.bound == dense_lipschitz_bound(layer.weight) and cert.kind == "Linear"
    assert cert.bound >= _jacobian_norm(layer, x)


def test_an_unknown_parametrisation_is_refused_until_declared(registry: None) -> None:
    class Noisy(nn.Module):
        def forward(self, w: torch.Tensor) -> torch.Tensor:
            return w * (1 + torch.rand(()))  # random: the weight a rule reads is not the one forward uses

    layer = nn.Linear(3, 3)
    parametrize.register_parametrization(layer, "weight", Noisy())
    with pytest.raises(critics.CertificationError, match="parametrisation Noisy on 'weight'.*register_parametrization"):
        certify(layer, (3,))

    class Doubled(nn.Module):
        def forward(self, w: torch.Tensor) -> torch.Tensor:
            return 2 * w

    other = nn.Linear(3, 3)
    parametrize.register_parametrization(other, "weight", Doubled())
    critics.register_parametrization(Doubled)
    layer_cert = certificate_report(other, (3,)).layers[0]
    assert layer_cert.user_asserted and layer_cert.bound == dense_lipschitz_bound(other.weight)


def test_compiled_and_wrapped_modules_are_certified_on_what_they_run() -> None:
    from torch.optim.swa_utils import AveragedModel

    f = nn.Sequential(nn.Linear(4, 6), MaxMin(), nn.Linear(6, 1))
    expected = certify(f, (4,))
    compiled = torch.compile(f, backend="eager")
    assert certify(compiled, (4,)) == expected
    nested = nn.Sequential(torch.compile(nn.Sequential(f[0], f[1]), backend="eager"), f[2])
    report = certificate_report(nested, (4,))
    assert report.total == expected and [c.name for c in report.layers] == ["0.0", "0.1", "1"]
    assert certify(nn.DataParallel(f), (4,)) == expected
    avg = AveragedModel(f)
    assert certify(avg, (4,)) == certify(avg.module, (4,))
    bad = torch.compile(nn.Sequential(nn.Flatten(), EqualLinear(4, 1)), backend="eager")
    with pytest.raises(critics.CertificationError, match="EqualLinear"):
        certify(bad, (4,))


def test_deep_copies_of_parametrised_critics_still_certify() -> None:
    f = critics.build("sn-mlp", (3,), width=8, depth=2)
    g = copy.deepcopy(f)
    assert certify(g, (3,)) == certify(f, (3,))


# -- a user-asserted rule reaches the result -------------------------------------------------------


def test_a_user_asserted_rule_is_recorded_in_the_result(registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from critics import _registry
    from wdist.pipeline import estimate

    class Shrink(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 0.5 * x

    critics.register_certificate_rule(Shrink, lambda m, s: 0.5)

    def shrinking_mlp(input_shape: tuple[int, ...], width: int = 16, depth: int = 1, activation: str = "") -> nn.Module:
        # (depth and activation: the toy config's options, unused)
        return nn.Sequential(nn.Flatten(), BjorckLinear(input_shape[0], width), MaxMin(), Shrink(), nn.Linear(width, 1))

    monkeypatch.setitem(_registry._CRITICS, "test-shrink-mlp", shrinking_mlp)
    monkeypatch.setitem(_registry._LOSSES, "test-shrink-mlp", "kr")
    res = estimate(
        str(TOY),
        ["--critic.name", "test-shrink-mlp", "--train.steps", "4", "--train.eval_every", "4",
         "--eval.n_eval", "64", "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0"],
        quiet=True,
    )  # fmt: skip
    data = res.to_dict()
    assert data["certificate"]["user_asserted"] == ["3"]
    assert [layer["user_asserted"] for layer in data["certificate"]["layers"]] == [False, False, False, True, False]
    notes = [n for n in data["notes"] if "USER-ASSERTED" in n]
    assert len(notes) == 1 and "'3' (Shrink)" in notes[0]
    assert "USER-ASSERTED" in res.format_table()


def test_an_uncertifiable_registered_critic_is_refused_before_training(monkeypatch: pytest.MonkeyPatch) -> None:
    from critics import _registry
    from wdist.errors import ConfigError
    from wdist.pipeline import estimate

    def equal_mlp(input_shape: tuple[int, ...], width: int = 1, depth: int = 1, activation: str = "") -> nn.Module:
        return nn.Sequential(EqualLinear(2, 1))

    monkeypatch.setitem(_registry._CRITICS, "test-equal-mlp", equal_mlp)
    monkeypatch.setitem(_registry._LOSSES, "test-equal-mlp", "kr")
    with pytest.raises(ConfigError, match="critic 'test-equal-mlp' cannot be certified.*EqualLinear"):
        estimate(str(TOY), ["--critic.name", "test-equal-mlp", "--train.steps", "4"], quiet=True)


def test_a_sequential_subclass_is_a_chain_unless_it_changes_how_its_forward_runs() -> None:
    """Helper methods do not change nn.Sequential's forward (the cone critics have some); a new
    forward, or a new way of iterating over the children, does."""

    class WithHelpers(nn.Sequential):
        def features(self, x: torch.Tensor) -> torch.Tensor:
            return self[0](x)

    class OwnIter(nn.Sequential):
        def __iter__(self):
            return iter([*self._modules.values()] * 2)  # runs every layer twice

    class OwnForward(nn.Sequential):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 3 * super().forward(x)

    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    helper = WithHelpers(*plain)
    assert critics.certify(helper, (4,)) == critics.certify(plain, (4,))
    for cls in (OwnIter, OwnForward):
        with pytest.raises(critics.CertificationError, match=f"{cls.__name__}.*not a plain chain"):
            critics.certify(cls(*plain), (4,))
