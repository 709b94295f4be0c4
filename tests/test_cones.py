"""Cone heads and the cone critics: exact evaluation, certificates from the structure, placement from
training items only, per-group learning rates, and the mixture choosing its best part."""

from __future__ import annotations

import math

import pytest
import torch
from layer_helpers import kr_steps

import critics
from critics.distances import _candidates, cone_error_bound, min_of_cones
from critics.empirical import max_gradient_norm
from critics.layers import ConeHead, LinearUnitHead, PotentialHead
from critics.layers.cones import SAMPLE_ITEMS


def _reference(z: torch.Tensor, c: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """min_j ||z - c_j|| + b_j in float64 by the direct (non-matmul) form."""
    d = torch.cdist(z.double(), c.double(), compute_mode="donot_use_mm_for_euclid_dist")
    return (d + b.double()).min(dim=1).values


def test_exact_path_is_within_its_stated_bound_where_the_matmul_form_is_not() -> None:
    """3 x 32 x 32 points next to the centres: the float32 matmul form is off by ~1e-2, the exact path
    (in float64) by less than its bound gamma_{D+3} max(||z - c|| + |b|)."""
    gen = torch.Generator().manual_seed(0)
    d = 3072
    c = torch.rand(64, d, generator=gen, dtype=torch.float64) * 2 - 1
    z = c[torch.randint(64, (256,), generator=gen)] + 1e-3 * torch.randn(256, d, generator=gen, dtype=torch.float64)
    b = 0.1 * torch.randn(64, generator=gen, dtype=torch.float64)
    ref = _reference(z, c, b)
    values, index = min_of_cones(z, c, b, exact=True)
    largest = float((torch.cdist(z, c).max() + b.abs().max()))
    assert float((values - ref).abs().max()) <= cone_error_bound(d, largest)
    assert torch.equal(index, (torch.cdist(z, c, compute_mode="donot_use_mm_for_euclid_dist") + b).argmin(1))
    z32, c32, b32 = z.float(), c.float(), b.float()
    matmul = ((z32 * z32).sum(1, keepdim=True) - 2 * z32 @ c32.T + (c32 * c32).sum(1)).clamp_min(0).sqrt() + b32
    assert float((matmul.min(1).values.double() - ref).abs().max()) > 1e-3  # the error the exact path avoids
    exact32, _ = min_of_cones(z32, c32, b32, exact=True)  # float32 in, float32 out: only the final rounding
    ref32 = _reference(z32, c32, b32)
    assert float(((exact32.double() - ref32).abs() / ref32.abs().clamp_min(1)).max()) <= 2**-23


def test_ties_and_duplicate_centres_take_every_candidate() -> None:
    """Twenty copies of one centre and equal offsets: more candidates than the fast selection keeps,
    so those points are evaluated against every centre, and the value is still the minimum."""
    gen = torch.Generator().manual_seed(1)
    c = torch.cat([torch.zeros(20, 5), torch.randn(30, 5, generator=gen) + 4]).double()
    b = torch.zeros(50, dtype=torch.float64)
    z = 0.1 * torch.randn(40, 5, generator=gen, dtype=torch.float64)
    _, complete = _candidates(z, c, b)
    assert not bool(complete.any())  # every point needs more candidates than the fast selection keeps
    values, _ = min_of_cones(z, c, b, exact=True)
    torch.testing.assert_close(values, _reference(z, c, b), rtol=0, atol=1e-12)


def test_training_path_never_below_the_minimum_and_differentiable() -> None:
    gen = torch.Generator().manual_seed(2)
    c = torch.randn(200, 16, generator=gen, requires_grad=True)
    b = torch.zeros(200, requires_grad=True)
    z = torch.randn(500, 16, generator=gen, requires_grad=True)
    values, _ = min_of_cones(z, c, b, exact=False)
    assert bool((values.double() >= _reference(z.detach(), c.detach(), b.detach()) - 1e-5).all())
    values.sum().backward()
    assert z.grad is not None and c.grad is not None and b.grad is not None
    torch.testing.assert_close(z.grad.norm(dim=1), torch.ones(500), rtol=0, atol=1e-5)  # unit slope


@pytest.mark.parametrize("orientation", ["up", "down"])
def test_cone_head_has_unit_gradients_and_certificate_one(orientation: str) -> None:
    head = ConeHead(8, centres=32, orientation=orientation).eval()
    x = torch.randn(300, 8)
    norms = []
    for chunk in x.split(100):
        chunk = chunk.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(head(chunk).sum(), chunk)
        norms.append(g.norm(dim=1))
    torch.testing.assert_close(torch.cat(norms), torch.ones(300), rtol=0, atol=1e-5)
    assert head.lipschitz_bound((8,)) == 1.0
    with pytest.raises(ValueError, match="expects 8 features"):
        head.lipschitz_bound((9,))


def test_potential_head_certificate_is_the_weighted_sum_and_bounds_its_gradients() -> None:
    head = PotentialHead(6, centres=16)
    with torch.no_grad():
        head.logits.copy_(torch.tensor([2.0, -1.0, 0.5, 0.0, -3.0]))
    head.eval()
    w = head.weights().detach().double()
    cert = head.lipschitz_bound((6,))
    parts = sum(float(w[i]) * head.heads[p].lipschitz_bound((6,)) for i, p in enumerate(head.parts))
    assert parts <= cert <= parts * (1 + 1e-12)
    assert max_gradient_norm(head, torch.randn(2000, 6)) <= cert * (1 + 1e-6)
    linear = LinearUnitHead(6)
    assert 1 - 1e-6 <= linear.lipschitz_bound((6,)) <= 1 + 1e-6


def test_bad_parts_and_init_are_named() -> None:
    with pytest.raises(ValueError, match=r"parts must be distinct names .*'cone'"):
        critics.build("cones", (4,), parts=["linear", "cone"])
    inits = r"\('kmeans', 'samples', 'kmeans-all', 'kmeans-both'\)"
    with pytest.raises(ValueError, match=rf"init must be one of {inits}; got 'random'"):
        critics.build("cones", (4,), init="random")
    with pytest.raises(ValueError, match="centre_lr must be a positive multiplier of train.lr; got 0"):
        critics.build("cones", (4,), centre_lr=0)
    with pytest.raises(ValueError, match="centres must be a positive integer; got 2.5"):
        critics.build("cones", (4,), centres=2.5)


def test_placement_from_samples_once_and_saved_with_the_weights() -> None:
    """Upward cones sit near Q's items, downward ones near P's, the linear part points from Q's mean to
    P's; a second call (a resumed or warm-started critic) changes nothing."""
    gen = torch.Generator().manual_seed(3)
    p = torch.randn(400, 4, generator=gen) + torch.tensor([5.0, 0, 0, 0])
    q = torch.randn(400, 4, generator=gen) - torch.tensor([5.0, 0, 0, 0])
    critic = critics.build("cones", (4,), centres=8)
    assert critic.init_from_samples(p, q) is True
    head = critic.head
    assert bool(head.initialised)
    with torch.no_grad():
        assert float(head.heads["up"].centres[:, 0].mean()) < -3 and float(head.heads["down"].centres[:, 0].mean()) > 3
        assert float(head.heads["linear"].unit()[0]) > 0.9
    torch.testing.assert_close(head.heads["radial-up"].centres[0], q.mean(0))
    before = {k: v.clone() for k, v in critic.state_dict().items()}
    assert critic.init_from_samples(q, p) is False
    assert all(torch.equal(before[k], v) for k, v in critic.state_dict().items())
    fresh = critics.build("cones", (4,), centres=8)
    fresh.load_state_dict(before)
    assert bool(fresh.head.initialised) and fresh.init_from_samples(p, q) is False


def test_param_groups_scale_the_head_learning_rates() -> None:
    critic = critics.build("bjorck-cones", (6,), width=8, depth=1, centre_lr=10, offset_lr=2, weight_lr=20)
    groups = critic.param_groups(1e-3)
    by_lr = {round(g["lr"], 12): sum(p.numel() for p in g["params"]) for g in groups}
    n_centres = sum(critic.head.heads[p].centres.numel() for p in critic.head.parts if p != "linear")
    n_offsets = sum(critic.head.heads[p].offsets.numel() for p in critic.head.parts if p != "linear")
    assert by_lr[0.01] == n_centres and by_lr[0.002] == n_offsets and by_lr[0.02] == critic.head.logits.numel()
    assert sum(by_lr.values()) == sum(p.numel() for p in critic.parameters())


@pytest.mark.parametrize("name,shape", [("cones", (2,)), ("cones", (1, 6, 6)), ("bjorck-cones", (5,))])
def test_mixture_moves_to_the_best_part(name: str, shape: tuple[int, ...]) -> None:
    """On a translation (optimal critic linear, W1 = ||v|| = 1) the mixture's weight goes to the linear
    part and the critic recovers W1 on fresh samples; the certificate stays at 1."""
    gen = torch.Generator().manual_seed(4)
    v = torch.zeros(math.prod(shape))
    v[0] = 1.0
    options = {"width": 16, "depth": 1} if name == "bjorck-cones" else {}
    critic = critics.build(name, shape, centres=16, weight_lr=20.0, **options)
    q = torch.rand(512, *shape, generator=gen)
    critic.init_from_samples(q + v.reshape(shape), q)
    opt = torch.optim.Adam(critic.param_groups(5e-3))
    for _ in range(150):
        y = torch.rand(128, *shape, generator=gen)
        loss = critic(y).mean() - critic(y + v.reshape(shape)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    critic.eval()
    weights = dict(zip(critic.head.parts, critic.head.weights().tolist()))
    assert weights["linear"] > 0.9, weights
    y = torch.rand(4000, *shape, generator=gen)
    with torch.no_grad():
        gap = float(critic(y + v.reshape(shape)).mean() - critic(y).mean())
    assert 0.95 <= gap / critics.certify(critic, shape) <= 1.0 + 1e-6


def test_inputs_listing_names_vectors_and_images() -> None:
    assert critics.critic_inputs("cones") == "any" and critics.critic_inputs("bcop-cones") == "images"
    assert {"cones", "bjorck-cones", "bjorck-mlp"} <= set(critics.available("vectors"))
    assert "bcop-cones" not in critics.available("vectors") and "bcop-cones" in critics.available("images")
    assert "cones (any)" in critics.listing() and "bcop-cones (images)" in critics.listing()
    with pytest.raises(ValueError, match="'pixels'"):
        critics.available("pixels")
    with pytest.raises(ValueError, match=r"bcop-cones \(images\)"):
        critics.build("bcop-cone", (1, 8, 8))


@pytest.mark.parametrize("name", [n for n in critics.available() if "cones" in n])
def test_cone_critics_certificate_bounds_gradients_before_and_after_training(name: str) -> None:
    """Built, placed from samples, and trained: at every stage no gradient norm, at many inputs, exceeds
    the certificate (which stays 1 + O(1e-5))."""
    images = critics.critic_inputs(name) == "images"
    shape = (1, 8, 8) if images else (6,)
    dense = {"width": 8, "depth": 1} if "width" in critics.critic_options(name) else {}
    options = {"width": 0.25} if images else dense
    critic = critics.build(name, shape, centres=16, **options)
    gen = torch.Generator().manual_seed(5)
    p = torch.rand(256, *shape, generator=gen) * 2 - 1
    q = (0.5 * torch.randn(256, *shape, generator=gen)).clamp(-1, 1)
    points = torch.cat([torch.rand(512, *shape, generator=gen) * 2 - 1, p, q])
    opt = None
    for stage in ("built", "placed", "trained"):
        if stage == "placed":
            critic.init_from_samples(p, q)
            opt = torch.optim.Adam(critic.param_groups(0.01))
        if stage == "trained":
            kr_steps(critic, opt, p, q, steps=10, batch=64, gen=gen)
        cert = critics.certify(critic, shape)
        worst = max_gradient_norm(critic, points)
        assert 0 < worst <= cert * (1 + 1e-6), f"{name} {stage}: gradient norm {worst} above {cert}"
        assert cert <= 1 + 1e-4


def test_kmeans_both_places_twins_on_every_item_and_equals_kmeans_on_small_sides() -> None:
    """``kmeans-both`` places ``up`` / ``down`` exactly as ``kmeans`` does on the first 4096 items and
    twins on all of them; a side of at most 4096 items switches its twin off (weight exactly 0), so
    there the critic computes the same function as with ``kmeans``, with the same certificate."""
    gen = torch.Generator().manual_seed(5)
    p = torch.randn(SAMPLE_ITEMS + 600, 3, generator=gen) + 2
    q = torch.randn(300, 3, generator=gen)
    both = critics.build("cones", (3,), centres=6, init="kmeans-both")
    plain = critics.build("cones", (3,), centres=6, init="kmeans")
    assert both.init_all_items and both.head.parts[-2:] == ("up-all", "down-all")
    both.init_from_samples(p, q)
    plain.init_from_samples(p[:SAMPLE_ITEMS], q)
    with torch.no_grad():
        for part in ("up", "down"):
            torch.testing.assert_close(both.head.heads[part].centres, plain.head.heads[part].centres)
        twin = both.head.heads["down-all"].centres
        assert not torch.allclose(twin, plain.head.heads["down"].centres)
        assert float(twin[:, 0].mean()) > 1  # placed on P's items
        weights = dict(zip(both.head.parts, both.head.weights().tolist()))
    assert weights["up-all"] == 0.0 and weights["down-all"] > 0
    small = critics.build("cones", (3,), centres=6, init="kmeans-both")
    small.init_from_samples(p[:SAMPLE_ITEMS], q)
    small.eval(), plain.eval()
    x = torch.randn(200, 3, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(small(x), plain(x))
    assert critics.certify(small, (3,)) == pytest.approx(critics.certify(plain, (3,)), abs=1e-6)
    loss = small.train()(x).mean()
    loss.backward()
    twin_grad = small.head.heads["up-all"].centres.grad  # zero, not None: DDP needs every parameter in the loss
    assert small.head.logits.grad[-2:].abs().max() == 0 and twin_grad is not None and not twin_grad.any()


def test_weights_saved_without_twins_load_as_the_same_function() -> None:
    """A critic saved with ``init: kmeans`` (no twins) loads into the default (``kmeans-both``) and
    computes the same function with the same certificate; a mismatched state is still refused."""
    gen = torch.Generator().manual_seed(6)
    p, q = torch.randn(300, 3, generator=gen) + 2, torch.randn(300, 3, generator=gen)
    old = critics.build("cones", (3,), centres=5, init="kmeans")
    old.init_from_samples(p, q)
    with torch.no_grad():
        old.head.logits.copy_(torch.randn(5, generator=gen))
    new = critics.build("cones", (3,), centres=5)
    new.load_state_dict(old.state_dict())
    old.eval(), new.eval()
    x = torch.randn(100, 3, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x))
    assert critics.certify(new, (3,)) == pytest.approx(critics.certify(old, (3,)), abs=1e-6)
    with pytest.raises(RuntimeError, match="size mismatch"):
        critics.build("cones", (3,), centres=4).load_state_dict(old.state_dict())
