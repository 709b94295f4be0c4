"""The Generator source: range map, resize, deterministic latents, frozen module."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn
from user_code import SigmoidGenerator

from wdist.sources import Digits, Generator, LatentSource, SourceError, check_compatible

MODULE = "_wdist_test_fake_generators"


@pytest.fixture()
def fake_module(monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable ``python:module:callable`` spec for generators.load (no files, no network)."""
    mod = types.ModuleType(MODULE)
    torch.manual_seed(0)
    net = SigmoidGenerator((1, 8, 8), gain=3.0)  # z (N, 4) -> images (N, 1, 8, 8) in [0, 1]
    mod.build = lambda: net  # the same weights on every load
    monkeypatch.setitem(sys.modules, MODULE, mod)
    return f"python:{MODULE}:build"


def _source(spec: str, **kwargs) -> Generator:
    return Generator(spec, latent_dim=4, latent="normal", output_shape=[1, 8, 8], output_range=(0.0, 1.0), **kwargs)


def test_maps_unit_output_range_onto_minus_one_one(fake_module: str) -> None:
    src = _source(fake_module)
    assert isinstance(src, LatentSource)
    assert src.shape == (1, 8, 8) and src.domain == (-1.0, 1.0) and src.latent_dim == 4
    z = src.sample_latent(64, torch.Generator().manual_seed(0))
    raw = src.frozen(z)
    assert raw.min() >= 0.0 and raw.max() <= 1.0
    x = src.decode(z)
    assert torch.allclose(x, 2.0 * raw - 1.0, atol=1e-6)
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.dtype == torch.float32
    assert not x.requires_grad
    # Same domain and shape as the digits data: usable as Q against P = Digits().
    check_compatible(Digits(limit=10), src)
    assert "from [0, 1]" in src.describe() and "in [-1, 1]" in src.describe()


def test_resize_and_other_range(fake_module: str) -> None:
    src = _source(fake_module, resize=16, range=(0.0, 2.0))
    assert src.shape == (1, 16, 16)
    x = src.sample(10, torch.Generator().manual_seed(1))
    assert x.shape == (10, 1, 16, 16) and x.min() >= 0.0 and x.max() <= 2.0
    with pytest.raises(SourceError, match="not compatible|same domain"):
        check_compatible(Digits(limit=10), src)


def test_latents_are_deterministic(fake_module: str) -> None:
    src = _source(fake_module)
    a = src.sample_latent(8, torch.Generator().manual_seed(3))
    b = src.sample_latent(8, torch.Generator().manual_seed(3))
    c = src.sample_latent(8, torch.Generator().manual_seed(4))
    assert a.shape == (8, 4) and a.device.type == "cpu"
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(src.sample(8, torch.Generator().manual_seed(3)), src.sample(8, torch.Generator().manual_seed(3)))


def test_module_is_frozen_and_stays_in_eval(fake_module: str) -> None:
    src = _source(fake_module)
    holder = nn.Module()
    holder.q = src.module  # as the training LightningModule registers it
    holder.train()
    assert all(not p.requires_grad for p in holder.parameters())
    bn = src.frozen.module.bn
    assert not bn.training  # eval-mode batch norm survives .train() of the owner
    before = bn.running_mean.clone()
    src.sample(32, torch.Generator().manual_seed(0))
    assert torch.equal(before, bn.running_mean)


def test_bad_options_raise_source_error(fake_module: str) -> None:
    with pytest.raises(SourceError, match="latent_dim"):
        Generator(fake_module)  # a user's own network must state its latent etc.
    with pytest.raises(SourceError, match="range"):
        _source(fake_module, range=(1.0, -1.0))


def test_registered_generator_with_random_weights() -> None:
    """Random weights only when asked for; then the description and the record say so."""
    with pytest.raises(SourceError) as info:
        Generator("lconvnet/wgan-gp-32", resize=64)
    msg = str(info.value)
    assert "'lconvnet/wgan-gp-32'" in msg and "init_args.checkpoint" in msg and "random_weights: true" in msg
    src = Generator("lconvnet/wgan-gp-32", resize=64, random_weights=True)
    assert src.latent_dim == 62 and src.shape == (3, 64, 64)
    assert "RANDOMLY INITIALISED" in src.describe() and src.record()["random_weights"] is True
    z = src.sample_latent(4, torch.Generator().manual_seed(0))
    assert z.min() >= 0.0 and z.max() < 1.0  # uniform latents
    x = src.decode(z)
    assert x.shape == (4, 3, 64, 64) and x.min() >= -1.0 and x.max() <= 1.0


def test_bundled_digits_generator() -> None:
    pytest.importorskip("generators")
    try:
        src = Generator("digits/wgan-gp-8")
    except SourceError as err:
        pytest.skip(f"bundled digits generator not available yet: {err}")
    check_compatible(Digits(limit=10), src)
    x = src.sample(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, *src.shape) and x.min() >= -1.0 and x.max() <= 1.0


def test_batch_statistics_generator_heldout_set_does_not_depend_on_eval_batch_size(fake_module: str) -> None:
    """With batch-norm on batch statistics a generator's output depends on its batch; the
    held-out samples are decoded once, in chunks of the training batch size and index order, so
    the held-out estimate is the same whatever eval.batch_size (and number of processes)."""
    from wdist.pipeline import estimate

    def run(eval_batch: int) -> float:
        cfg = {
            "p": {"class_path": "Digits"},
            "q": {"class_path": "Generator", "init_args": {
                "name": fake_module, "latent_dim": 4, "latent": "normal", "output_shape": [1, 8, 8],
                "output_range": [0.0, 1.0], "batchnorm": "batch"}},
            "critic": {"name": "bjorck-mlp", "options": {"width": 16, "depth": 1}},
            "train": {"steps": 6, "batch_size": 32, "eval_every": 6},
            "eval": {"n_eval": 100, "batch_size": eval_batch, "ot_samples": 0, "empirical_lipschitz_samples": 0},
        }  # fmt: skip
        return estimate(cfg, quiet=True).estimate

    assert run(7) == pytest.approx(run(100), rel=1e-6)
