"""The MinFunnel pairs of Korotin et al. (2022): the move, its exact W1, independent sides, the
paper's recipe, published parameter files and the published table beside ``wdist bench tightness``."""

from __future__ import annotations

import json
from pathlib import Path

import ot
import pytest
import torch

from wdist.bench import tightness as bench_tightness
from wdist.bench.korotin2022 import PUBLISHED, published_row
from wdist.config import ConfigError, load_config
from wdist.problems import FunnelPair
from wdist.problems.funnels import MinFunnels, recipe_parameters
from wdist.sources import Digits, SourceError


def _funnels(dim: int = 8, n: int = 16, deg: float = 8.0, seed: int = 987) -> MinFunnels:
    centres, biases = recipe_parameters(n, dim, 2.5, seed)
    return MinFunnels(centres, biases, 2.5, deg)


def _cube(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1) * 2.5


@pytest.mark.parametrize("dim,n,deg", [(2, 4, 8.0), (8, 16, 8.0), (32, 256, 8.0), (16, 4, 100.0)])
def test_each_pair_is_moved_down_its_funnel_at_unit_rate(dim: int, n: int, deg: float) -> None:
    """u(y) - u(T(y)) = ||y - T(y)|| for every pair (so the critic -u attains the coupling's cost), and the
    critic f = -u satisfies f(x) - f(y) <= ||x - y|| on the paired items (and on unrelated ones)."""
    funnels = _funnels(dim, n, deg)
    y = _cube(3000, dim)
    x = funnels.move(y)
    uy, active_y = funnels.values(y)
    ux, active_x = funnels.values(x)
    cost = (x - y).norm(dim=1)
    torch.testing.assert_close(uy - ux, cost, rtol=0, atol=1e-9)
    f_x, f_y = -ux, -uy
    assert bool((f_x - f_y <= cost + 1e-9).all())
    assert bool((x.abs() <= 2.5 + 1e-12).all())  # T stays in the cube
    c = funnels.centres[active_y]
    assert bool(((x - c).norm(dim=1) <= (y - c).norm(dim=1) + 1e-12).all())  # toward the apex
    perm = torch.randperm(3000, generator=torch.Generator().manual_seed(1))
    assert bool(((f_x - f_y[perm]).abs() <= (x - y[perm]).norm(dim=1) + 1e-9).all())  # 1-Lipschitz
    assert float(cost.mean()) > 0.05  # something moved


def test_paired_items_are_an_optimal_plan() -> None:
    """Between the N base points and their N moves the identity plan is optimal (the critic -u
    certifies it): POT's exact emd2 equals the mean move."""
    funnels = _funnels(4, 8)
    y = _cube(150, 4, seed=3)
    x = funnels.move(y)
    m = ot.dist(x.numpy(), y.numpy(), metric="euclidean")
    w = torch.full((150,), 1 / 150, dtype=torch.float64).numpy()
    assert ot.emd2(w, w, m) == pytest.approx(float((x - y).norm(dim=1).mean()), abs=1e-9)


def test_recipe_reproduces_the_published_cifar_parameters() -> None:
    """16 funnels around 3 x 32 x 32 images, seed 295, centres in [-1, 1]: the values of the paper's
    published file benchmarks/cifar/width_16/deg_100_seed_295.pt (read from justkolesov/Wasserstein1Benchmark)."""
    centres, biases = recipe_parameters(16, 3072, 1.0, 295)
    expected_first = [-0.4574928283691406, 0.7403258085250854, 0.7640212774276733, 0.879955530166626]
    expected_last = [-0.6119780540466309, -0.8464511632919312, -0.5331542491912842]
    assert centres[0, :4].tolist() == expected_first and centres[15, -3:].tolist() == expected_last
    assert biases[:4].tolist() == [0.023962359875440598, 0.201350599527359, 0.20095697045326233, -0.23608601093292236]
    assert float(centres.double().sum()) == pytest.approx(-108.94232630729675, abs=1e-9)


def test_finite_sides_come_from_independent_base_samples() -> None:
    """With items, no Q item is one of the base samples behind P's items (counted), and W1 is the
    mean move of P's own pairs."""
    pair = FunnelPair(dim=6, funnels=4, items=500)
    q = pair.q.data.double()
    u = torch.rand(500, 6, generator=torch.Generator().manual_seed(7_000_019), dtype=torch.float64)
    y_p = (2.5 * (2 * u - 1)).float().double()  # the base samples behind P (the cube samples in float32)
    torch.testing.assert_close(pair.p.data, pair.funnels.move(y_p).float(), rtol=0, atol=0)
    assert int((torch.cdist(q, y_p) == 0).sum()) == 0
    assert pair.exact_w1() == pytest.approx(float(pair.funnels.cost(y_p).mean()), rel=1e-12)
    assert pair.p.domain == pair.q.domain == (-2.5, 2.5)
    assert "Q: 500 independent base samples" in pair.exact_w1_method()


def test_a_data_set_base_is_split_into_two_disjoint_halves() -> None:
    digits = Digits()
    pair = FunnelPair(source=digits, funnels=16, deg=100.0, half_width=1.2, seed=295)
    assert len(pair.p) == len(pair.q) == len(digits) // 2
    q = pair.q.data.flatten(1).double()
    base = digits.data.flatten(1).double()
    # every Q item is a digit; the digits behind P are the other half: no Q item is one of them
    behind_p = base[~(torch.cdist(base, q) == 0).any(1)]
    assert len(behind_p) == len(digits) - len(q)
    assert pair.p.domain == (-1.2, 1.2)
    assert "centres in [-1, 1]" in pair.exact_w1_method()
    with pytest.raises(SourceError, match="items=1000 is more than half the 1797 items"):
        FunnelPair(source=digits, funnels=4, items=1000, half_width=1.2)


def test_infinite_pair_samples_and_monte_carlo_w1() -> None:
    pair = FunnelPair(dim=4, funnels=4, samples=4000)
    gen = torch.Generator().manual_seed(0)
    x, y = pair.p.sample(100, gen), pair.q.sample(100, gen)
    assert x.shape == y.shape == (100, 4) and bool((x.abs() <= 2.5).all())
    assert "Monte-Carlo mean over 4000 base samples" in pair.exact_w1_method()
    assert 0 < pair.exact_w1() < 5


def test_published_parameter_file_and_its_refusals(tmp_path: Path) -> None:
    centres, biases = recipe_parameters(4, 8, 2.5, 11)
    good = tmp_path / "deg_8_seed_987.pt"
    torch.save({"net.centers": centres, "net.bias": biases}, good)
    pair = FunnelPair(dim=8, funnels=4, items=200, parameters=str(good))
    torch.testing.assert_close(pair.funnels.centres, centres.double())
    assert str(good) in pair.exact_w1_method()
    with pytest.raises(SourceError, match=r"holds centres \(4, 8\) .* needs \(4, 6\)"):
        FunnelPair(dim=6, funnels=4, parameters=str(good))
    bad = tmp_path / "other.pt"
    torch.save({"weight": centres}, bad)
    with pytest.raises(SourceError, match=r"must hold 'net.centers' and 'net.bias'.*\['weight'\]"):
        FunnelPair(dim=8, funnels=4, parameters=str(bad))
    with pytest.raises(SourceError, match="does not exist"):
        FunnelPair(dim=8, funnels=4, parameters=str(tmp_path / "missing.pt"))


def test_bad_settings_are_named() -> None:
    with pytest.raises(SourceError, match="funnels must be a positive whole number; got funnels=0"):
        FunnelPair(funnels=0)
    with pytest.raises(SourceError, match="deg must be >= 1"):
        FunnelPair(dim=2, deg=0.5)
    with pytest.raises(SourceError, match=r"reaches 1, outside the cube \[-0\.5, 0\.5\]"):
        FunnelPair(source=Digits(), funnels=2, half_width=0.5, centre_range=0.5)
    with pytest.raises(ConfigError, match="FunnelPair"):
        load_config({"toy": {"class_path": "FunnelPair", "init_args": {"funnel": 3}}})


def test_the_published_table_is_complete_and_labelled() -> None:
    for dim in (2, 4, 8, 16, 32, 64, 128):
        for funnels in (4, 16, 64, 256):
            row = published_row("vectors", dim, funnels)
            assert row is not None and "true" in row and "sort-out" in row and "wgan-gp" in row
    assert published_row("vectors", 64, 4)["wgan-gp"] == pytest.approx(1.378, abs=1e-3)
    assert published_row("vectors", 128, 256)["sort-out"] == pytest.approx(0.647, abs=1e-3)
    assert published_row("cifar", 3072, 1)["true"] == pytest.approx(29.66, abs=1e-2)
    assert len(PUBLISHED) == 32 and published_row("vectors", 3, 4) is None


def test_bench_tightness_funnels_beside_the_published_numbers(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    out = tmp_path / "funnels"
    code = bench_tightness.cli(
        ["--source", "cube", "--dim", "8", "--funnels", "4", "--items", "600", "--constructions", "funnels",
         "--critics", "cones", "--steps", "3", "--n-eval", "100", "--batch-size", "32", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    (row,) = json.loads((out / "tightness.json").read_text())
    assert row["construction"] == "funnels" and row["critic"] == "cones" and row["certified"]
    assert row["published"] == {"kind": "vectors", "dim": 8, "funnels": 4}
    assert row["ratio"] == pytest.approx(row["lower_bound"] / row["exact_w1"])
    text = capsys.readouterr().out
    assert "| funnels | cones |" in text
    assert "| vectors D=8, 4 funnels | 1.882 | 1.998 (1.06)" in text and "NOT certified, NOT bounds" in text
    with pytest.raises(ValueError, match="--source cube .* funnels construction only"):
        bench_tightness.cli(["--source", "cube", "--constructions", "anchors", "--steps", "1"])
    with pytest.raises(ValueError, match="--funnels must be a positive integer; got 0"):
        bench_tightness.cli(["--source", "cube", "--constructions", "funnels", "--funnels", "0"])
