"""Latents as users' generators take them: any shape, four distributions, class labels beside z,
and errors that name the latent shape a generator refused and the one it runs on."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
from torch import nn

import generators
from generators import GeneratorLoadError, LabelSpec, LatentSpec
from wdist.config import ConfigError, load_config

MODULE = "_wdist_test_latent_generators"
N = 20000


class DCGANLike(nn.Module):
    """z (N, 8, 1, 1) -> (N, 1, 8, 8) in [0, 1]: transposed convolutions, batch norm, sigmoid."""

    def __init__(self, nz: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, 8, 4, 1, 0), nn.BatchNorm2d(8), nn.ReLU(),
            nn.ConvTranspose2d(8, 1, 4, 2, 1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class LabelEcho(nn.Module):
    """forward(z, y): an image whose pixels are the class index (so tests can read the label back)."""

    def __init__(self, one_hot: bool = False) -> None:
        super().__init__()
        self.one_hot = one_hot
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        label = y.argmax(1) if self.one_hot else y
        return (self.scale * label.float() + 0.0 * z.flatten(1).sum(1)).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)


class Scaled(nn.Module):
    """forward(z, *, scale): needs a fixed keyword argument beside z."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, z: torch.Tensor, *, scale: float) -> torch.Tensor:
        return scale * torch.sigmoid(self.fc(z)).view(-1, 1, 2, 2)


class KeywordLabels(LabelEcho):
    def forward(self, z: torch.Tensor, *, class_idx: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(z, class_idx)


@pytest.fixture()
def module_spec(monkeypatch: pytest.MonkeyPatch) -> str:
    """``python:MODULE:`` prefix of importable factories of the networks above."""
    mod = types.ModuleType(MODULE)
    mod.dcgan = DCGANLike
    mod.echo = LabelEcho
    mod.echo_one_hot = lambda: LabelEcho(one_hot=True)
    mod.keyword = KeywordLabels
    mod.scaled = Scaled
    monkeypatch.setitem(sys.modules, MODULE, mod)
    return f"python:{MODULE}:"


DCGAN_OPTS = dict(latent="normal", output_shape=(1, 8, 8), output_range=(0.0, 1.0))
ECHO_OPTS = dict(latent_dim=3, latent="normal", output_shape=(1, 2, 2), output_range=(0.0, 10.0))


# -- distributions ------------------------------------------------------------------------------


def _draw(latent: str, truncation: float | None = None, shape: tuple[int, ...] = (4, 1, 1)) -> torch.Tensor:
    return LatentSpec(shape, latent, truncation).sample(N // 4, torch.Generator().manual_seed(0))


def test_normal_latent() -> None:
    z = _draw("normal")
    assert z.shape == (N // 4, 4, 1, 1) and z.dtype == torch.float32
    assert abs(z.mean().item()) < 0.03 and abs(z.std().item() - 1) < 0.02 and z.min() < -3 and z.max() > 3


def test_uniform_latent_is_on_zero_one() -> None:
    z = _draw("uniform")
    assert 0.0 <= z.min() and z.max() < 1.0 and z.min() < 0.001 and z.max() > 0.999
    assert abs(z.mean().item() - 0.5) < 0.01 and abs(z.var().item() - 1 / 12) < 0.003


def test_symmetric_uniform_latent_is_on_minus_one_one() -> None:
    z = _draw("uniform-symmetric")
    assert -1.0 <= z.min() and z.max() < 1.0 and z.min() < -0.998 and z.max() > 0.998
    assert abs(z.mean().item()) < 0.02 and abs(z.var().item() - 1 / 3) < 0.01


@pytest.mark.parametrize("t", [0.5, 2.0])
def test_truncated_normal_latent_stays_within_the_truncation_with_the_truncated_variance(t: float) -> None:
    z = _draw("truncated-normal", t)
    assert z.abs().max() <= t and z.abs().max() > 0.98 * t
    # Var of N(0, 1) conditioned on |z| <= t: 1 - 2 t phi(t) / (2 Phi(t) - 1)
    phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    var = 1 - 2 * t * phi / math.erf(t / math.sqrt(2))
    assert abs(z.var().item() / var - 1) < 0.03 and abs(z.mean().item()) < 0.02 * t


def test_latents_are_deterministic_in_the_generator() -> None:
    for latent, t in (("normal", None), ("uniform", None), ("uniform-symmetric", None), ("truncated-normal", 1.0)):
        spec = LatentSpec((5,), latent, t)
        a, b = (spec.sample(7, torch.Generator().manual_seed(3)) for _ in range(2))
        assert torch.equal(a, b) and not torch.equal(a, spec.sample(7, torch.Generator().manual_seed(4)))


def test_flat_latents_are_drawn_as_before() -> None:
    """A flat normal/uniform latent is the same draw as ``torch.randn``/``torch.rand`` of (n, dim)."""
    g = generators.load("digits/wgan-gp-8")
    z = g.sample_latent(6, torch.Generator().manual_seed(1))
    assert torch.equal(z, torch.randn(6, 32, generator=torch.Generator().manual_seed(1)))


def test_truncation_is_stated_and_only_with_the_truncated_normal() -> None:
    with pytest.raises(ValueError, match="truncation t > 0"):
        LatentSpec((4,), "truncated-normal")
    with pytest.raises(ValueError, match="only to latent 'truncated-normal'"):
        LatentSpec((4,), "normal", 0.5)
    with pytest.raises(ValueError, match="latent must be one of"):
        LatentSpec((4,), "gaussian")
    with pytest.raises(ValueError, match="positive integers"):
        LatentSpec((4, 0), "normal")


def test_registered_normal_generator_takes_the_truncation_trick_but_no_other_law() -> None:
    g = generators.load("digits/wgan-gp-8", latent="truncated-normal", truncation=0.7)
    z = g.sample_latent(500, torch.Generator().manual_seed(0))
    assert g.latent == "truncated-normal" and g.truncation == 0.7 and z.abs().max() <= 0.7
    assert g(z).shape == (500, 1, 8, 8)
    with pytest.raises(GeneratorLoadError, match="latent 'normal', fixed by its architecture"):
        generators.load("digits/wgan-gp-8", latent="uniform-symmetric")
    with pytest.raises(GeneratorLoadError, match="latent_shape"):
        generators.load("digits/wgan-gp-8", latent_shape=[32, 1, 1])


# -- latent shape -------------------------------------------------------------------------------


def test_latent_shape_feeds_a_dcgan_without_a_wrapper(module_spec: str) -> None:
    torch.manual_seed(0)
    g = generators.load(module_spec + "dcgan", latent_shape=[8, 1, 1], **DCGAN_OPTS)
    assert g.latent_dim == 8 and g.latent_shape == (8, 1, 1)
    z = g.sample_latent(5, torch.Generator().manual_seed(0))
    assert z.shape == (5, 8, 1, 1)
    x = g(z)
    assert x.shape == (5, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(g(z.flatten(1)), x)  # flat latents are reshaped to latent_shape
    with torch.no_grad():
        assert torch.equal(x, g.module(z))
    assert not g.random_weights  # a user's callable may build trained weights itself: nothing is claimed
    assert generators.load(
        module_spec + "dcgan", latent_shape=[8, 1, 1], random_weights=True, **DCGAN_OPTS
    ).random_weights
    # latent_dim and latent_shape together must agree
    with pytest.raises(GeneratorLoadError, match=r"latent_shape \[8, 1, 1\] has 8 coordinates but latent_dim is 16"):
        generators.load(module_spec + "dcgan", latent_dim=16, latent_shape=[8, 1, 1], **DCGAN_OPTS)


def test_a_refused_flat_latent_names_both_shapes_and_the_latent_shape_that_runs(module_spec: str) -> None:
    g = generators.load(module_spec + "dcgan", latent_dim=8, **DCGAN_OPTS)
    with pytest.raises(ValueError) as info:
        g.sample(4, seed=0)
    msg = str(info.value)
    assert f"'{module_spec}dcgan' refused latents of shape (4, 8)" in msg
    assert "runs on latents of shape (N, 8, 1, 1): set latent_shape: [8, 1, 1]." in msg
    # a latent of the wrong size: the first layer's input size is tried too
    g = generators.load(module_spec + "dcgan", latent_dim=5, **DCGAN_OPTS)
    with pytest.raises(
        ValueError, match=r"refused latents of shape \(4, 5\).*set latent_shape: \[8, 1, 1\] \(8 coordinates, not 5\)"
    ):
        g.sample(4, seed=0)


def test_latents_of_another_shape_are_refused_naming_what_is_taken(module_spec: str) -> None:
    g = generators.load(module_spec + "dcgan", latent_shape=[8, 1, 1], **DCGAN_OPTS)
    with pytest.raises(ValueError, match=r"takes z of shape \(N, 8, 1, 1\) or flat \(N, 8\); got \(3, 7\)"):
        g(torch.zeros(3, 7))


def test_a_generator_that_needs_labels_is_told_to_use_the_label_options(module_spec: str) -> None:
    g = generators.load(module_spec + "echo", **ECHO_OPTS)
    with pytest.raises(ValueError, match="give n_classes and labels"):
        g.sample(4, seed=0)


# -- labels -------------------------------------------------------------------------------------


def _labels_of(g: generators.FrozenGenerator, n: int = 4000) -> torch.Tensor:
    """The class each sample was generated with, read back from LabelEcho's output."""
    return g.sample(n, seed=0)[:, 0, 0, 0].round().long()


def test_uniform_labels_cover_the_classes_evenly(module_spec: str) -> None:
    g = generators.load(module_spec + "echo", n_classes=10, **ECHO_OPTS)
    y = _labels_of(g)
    counts = torch.bincount(y, minlength=10)
    assert len(counts) == 10 and counts.min() > 330 and counts.max() < 470  # 400 expected, sd 19
    z = g.sample_latent(8, torch.Generator().manual_seed(0))
    assert z.shape == (8, 4)  # 3 coordinates of z, then the label
    zz, yy = g.split_latent(z)
    assert zz.shape == (8, 3) and yy.dtype == torch.int64 and torch.equal(yy.float(), z[:, -1])


def test_a_fixed_label_and_a_list_of_labels(module_spec: str) -> None:
    assert set(_labels_of(generators.load(module_spec + "echo", n_classes=10, labels=7, **ECHO_OPTS)).tolist()) == {7}
    y = _labels_of(generators.load(module_spec + "echo", n_classes=10, labels=[2, 5, 5], **ECHO_OPTS))
    assert set(y.tolist()) == {2, 5} and 0.6 < (y == 5).float().mean() < 0.73  # 5 listed twice: 2/3


def test_labels_by_keyword_and_one_hot(module_spec: str) -> None:
    g = generators.load(module_spec + "keyword", n_classes=4, labels=3, label_arg="class_idx", **ECHO_OPTS)
    assert set(_labels_of(g, 50).tolist()) == {3}
    g = generators.load(module_spec + "echo_one_hot", n_classes=4, labels=[1], label_format="one-hot", **ECHO_OPTS)
    assert set(_labels_of(g, 50).tolist()) == {1}


def test_bad_label_options_name_the_value(module_spec: str) -> None:
    with pytest.raises(GeneratorLoadError, match=r"class indices in \[0, 10\).*got 12"):
        generators.load(module_spec + "echo", n_classes=10, labels=12, **ECHO_OPTS)
    with pytest.raises(GeneratorLoadError, match="without n_classes"):
        generators.load(module_spec + "echo", labels="uniform", **ECHO_OPTS)
    with pytest.raises(GeneratorLoadError, match="not conditional"):
        generators.load("digits/wgan-gp-8", n_classes=10)
    with pytest.raises(ValueError, match="label_format"):
        LabelSpec(3, format="onehot")


def test_latent_and_label_options_through_the_config(module_spec: str) -> None:
    """The options reach the source from YAML/CLI overrides, with their types checked."""
    base = {
        "p": {"class_path": "Digits", "init_args": {"limit": 20}},
        "q": {"class_path": "Generator", "init_args": {"name": module_spec + "echo", **ECHO_OPTS}},
    }
    base["q"]["init_args"]["output_shape"] = [1, 2, 2]
    for given, expected in ((["uniform"], set(range(5))), (["3"], {3}), (["[1, 4]"], {1, 4})):
        cfg = load_config(base, ["--q.init_args.n_classes", "5", "--q.init_args.labels", *given])
        assert set(_labels_of(cfg.q.build().frozen, 500).tolist()) == expected
        assert cfg.q.build().record()["labels"]["n_classes"] == 5
    cfg = load_config(
        base,
        [
            "--q.init_args.n_classes",
            "5",
            "--q.init_args.latent",
            "truncated-normal",
            "--q.init_args.truncation",
            "0.25",
        ],
    )
    rec = cfg.q.build().record()
    assert (rec["latent"], rec["truncation"], rec["latent_shape"]) == ("truncated-normal", 0.25, [3])
    assert "truncated to [-0.25, 0.25]" in cfg.q.build().describe()
    with pytest.raises(ConfigError, match="truncation"):
        load_config(base, ["--q.init_args.latent", "truncated-normal"])


def test_labels_in_half_precision_rows_are_refused_when_they_cannot_be_exact(module_spec: str) -> None:
    g = generators.load(module_spec + "echo", n_classes=300, labels=299, **ECHO_OPTS)
    z = g.sample_latent(4, torch.Generator().manual_seed(0))
    assert _labels_of(g, 4).tolist() == [299] * 4
    with pytest.raises(ValueError, match="exactly only up to 256, but there are 300 classes"):
        g(z.to(torch.bfloat16))
    assert g(z.to(torch.float16))[:, 0, 0, 0].tolist() == [299.0] * 4  # float16 holds integers up to 2048


def test_fixed_keyword_arguments_of_forward(module_spec: str) -> None:
    with pytest.raises(ValueError, match="forward_kwargs"):
        generators.load(module_spec + "scaled", **ECHO_OPTS).sample(2, seed=0)
    torch.manual_seed(0)
    half = generators.load(module_spec + "scaled", forward_kwargs={"scale": 0.5}, **ECHO_OPTS).sample(50, seed=0)
    torch.manual_seed(0)
    full = generators.load(module_spec + "scaled", forward_kwargs={"scale": 1.0}, **ECHO_OPTS).sample(50, seed=0)
    assert torch.allclose(half, 0.5 * full) and half.max() <= 0.5
    base = {
        "p": {"class_path": "Digits", "init_args": {"limit": 20}},
        "q": {"class_path": "Generator", "init_args": {"name": module_spec + "scaled", **ECHO_OPTS}},
    }
    cfg = load_config(base, ["--q.init_args.forward_kwargs", "{scale: 0.25}"])
    q = cfg.q.build()
    assert q.record()["forward_kwargs"] == {"scale": 0.25} and "forward(scale=0.25)" in q.describe()
    assert cfg.q.build().frozen.sample(20, seed=0).max() <= 0.25
