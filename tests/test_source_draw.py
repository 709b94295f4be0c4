"""Each source draws the samples of a measurement apart from training (the exact-OT references):
``Source.draw`` and ``Source.disjoint_pair``."""

from __future__ import annotations

import torch
from torch import nn

from generators.latents import LatentSpec
from wdist.sources import Gaussian, ModuleGenerator, TensorSource


def _rows(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r.tolist()) for r in x.flatten(1)}


def test_a_finite_set_draws_distinct_items_and_all_of_a_small_set() -> None:
    data = torch.arange(40, dtype=torch.float32).reshape(20, 2)  # 20 distinct items
    src = TensorSource(data)
    x = src.draw(8, torch.Generator().manual_seed(0), chunk=4)
    assert x.shape == (8, 2) and len(_rows(x)) == 8 and _rows(x) <= _rows(data)
    assert torch.equal(x, src.draw(8, torch.Generator().manual_seed(0), chunk=4))  # deterministic
    everything = src.draw(100, torch.Generator().manual_seed(1), chunk=4)
    assert everything.shape == (20, 2) and _rows(everything) == _rows(data)  # without replacement


def test_a_finite_sets_disjoint_pair_shares_no_item() -> None:
    data = torch.arange(42, dtype=torch.float32).reshape(21, 2)
    a, b = TensorSource(data).disjoint_pair(50, torch.Generator().manual_seed(0), chunk=4)
    assert a.shape == b.shape == (10, 2)  # at most half of the 21 items each
    assert not _rows(a) & _rows(b) and len(_rows(a)) == len(_rows(b)) == 10


def test_an_analytic_source_draws_what_it_samples_and_a_pair_is_two_independent_draws() -> None:
    src = Gaussian(dim=3)
    drawn = src.draw(16, torch.Generator().manual_seed(2), chunk=4)
    assert torch.equal(drawn, src.sample(16, torch.Generator().manual_seed(2)))
    gen = torch.Generator().manual_seed(3)
    a, b = src.disjoint_pair(16, gen, chunk=4)
    again = torch.Generator().manual_seed(3)
    assert torch.equal(a, src.sample(16, again)) and torch.equal(b, src.sample(16, again))
    assert not torch.equal(a, b)


def test_a_generator_draws_decoded_latents_without_gradients_on_the_cpu() -> None:
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
    latent = LatentSpec((4,))
    src = ModuleGenerator(net, latent, domain=(-1.0, 1.0))
    x = src.draw(10, torch.Generator().manual_seed(0), chunk=3, device=torch.device("cpu"))
    with torch.no_grad():
        expected = net(latent.sample(10, torch.Generator().manual_seed(0)))
    assert x.shape == (10, 6) and x.device.type == "cpu" and not x.requires_grad
    torch.testing.assert_close(x, expected)
