"""Toy sources and problems: shapes, determinism, descriptions, and their exact W1."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate, stats

from wdist.ot import exact_w1
from wdist.problems import (
    TOY_PROBLEMS,
    GaussianMixtures,
    OneDimensional,
    PointVsSphere,
    ThreeCones,
    ToyProblem,
    Translation,
)
from wdist.sources import (
    SOURCES,
    Distribution1D,
    Gaussian,
    GaussianMixture,
    PointMass,
    Source,
    SourceError,
    Sphere,
    Uniform,
    check_compatible,
)

PROBLEMS = [
    Translation(),
    Translation(base="uniform", dim=5, shift=[1.0, -1.0]),
    Translation(base="sphere", dim=3, shift=[0.0, 0.0, 0.5]),
    PointVsSphere(),
    ThreeCones(),
    GaussianMixtures(dim=3),
    OneDimensional(),
    OneDimensional(p="uniform", q="normal", p_params={"low": -1.0, "high": 2.0}),
]
SOURCES_ALONE = [
    Gaussian(dim=4, mean=[1.0], std=0.5),
    Uniform(dim=3, low=0.0, high=2.0),
    PointMass(dim=2, points=[[1.0, 2.0], [3.0, 4.0]], weights=[1.0, 3.0]),
    Sphere(dim=6, radius=2.0),
    GaussianMixture(means=[[0.0, 0.0], [5.0, 5.0]], std=0.1),
    Distribution1D("laplace", {"loc": 1.0, "scale": 0.5}),
]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: type(p).__name__)
def test_problem_sources_shape_determinism_description(problem: ToyProblem) -> None:
    check_compatible(problem.p, problem.q)
    for src in (problem.p, problem.q):
        x = src.sample(7, _gen(0))
        assert x.shape == (7, *src.shape) and x.dtype == torch.float32
        assert torch.isfinite(x).all()
        assert torch.equal(x, src.sample(7, _gen(0)))
        assert src.dim == math.prod(src.shape)
        assert isinstance(src.describe(), str) and src.describe()
    assert isinstance(problem.describe(), str) and type(problem).__name__ in problem.describe()
    w = problem.exact_w1()
    if w is None:
        assert problem.exact_w1_method() is None
    else:
        assert w > 0 and problem.exact_w1_method()


@pytest.mark.parametrize("src", SOURCES_ALONE, ids=lambda s: type(s).__name__)
def test_plain_sources(src: Source) -> None:
    x = src.sample(11, _gen(5))
    assert x.shape == (11, *src.shape) and x.dtype == torch.float32
    assert torch.equal(x, src.sample(11, _gen(5)))
    assert not torch.equal(x, src.sample(11, _gen(6)))
    assert src.domain is None


def test_plain_source_distributions() -> None:
    g = _gen(0)
    x = Gaussian(dim=4, mean=[1.0], std=0.5).sample(20000, g).double()
    assert torch.allclose(x.mean(0), torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64), atol=0.02)
    assert torch.allclose(x.std(0), torch.full((4,), 0.5, dtype=torch.float64), atol=0.02)
    s = Sphere(dim=6, radius=2.0).sample(1000, g)
    assert torch.allclose(s.norm(dim=1), torch.full((1000,), 2.0), atol=1e-5)
    u = Uniform(dim=3, low=0.0, high=2.0).sample(1000, g)
    assert u.min() >= 0.0 and u.max() <= 2.0
    pm = PointMass(dim=2, points=[[1.0, 2.0], [3.0, 4.0]], weights=[1.0, 3.0]).sample(4000, g)
    assert (pm[:, 0] == 3.0).float().mean() == pytest.approx(0.75, abs=0.03)


def test_translation_samples_are_the_base_shifted() -> None:
    # Same generator state for P and Q: Q's sample is P's sample + v, so POT gives ||v||.
    t = Translation(dim=3, shift=[1.0, 2.0, 2.0])
    assert t.exact_w1() == pytest.approx(3.0)
    x, y = t.p.sample(300, _gen(4)), t.q.sample(300, _gen(4))
    assert torch.allclose(y - x, torch.tensor([1.0, 2.0, 2.0]), atol=1e-6)
    assert exact_w1(x, y).value == pytest.approx(3.0, abs=1e-5)


@pytest.mark.parametrize("base", ["gaussian", "uniform"])
def test_translation_exact_within_sampling_error(base: str) -> None:
    # Independent samples: |W1(P_n, Q_n) - ||v||| <= W1(P_n, P'_n) (triangle inequality, with
    # Q_n = P'_n + v), where P'_n is the base sample Q was built from: a deterministic check.
    t = Translation(base=base, dim=2, shift=[1.5, 0.0])
    x = t.p.sample(400, _gen(1))
    y = t.q.sample(400, _gen(2))
    x2 = t.p.sample(400, _gen(2))  # the same draw as y, unshifted
    floor = exact_w1(x, x2).value
    assert abs(exact_w1(x, y).value - 1.5) <= floor + 1e-5
    assert floor < 0.3  # and that error is small at n = 400 in 2-D


def test_point_vs_sphere() -> None:
    pr = PointVsSphere(dim=128, radius=1.5)
    assert pr.exact_w1() == 1.5
    x, y = pr.p.sample(200, _gen(0)), pr.q.sample(200, _gen(1))
    assert torch.equal(x, torch.zeros(200, 128))
    # Every pair is at distance r, so the empirical OT equals r up to float32 rounding.
    assert exact_w1(x, y).value == pytest.approx(1.5, abs=1e-5)


def test_three_cones() -> None:
    pr = ThreeCones()
    assert pr.exact_w1() == 1.0 and pr.p.shape == (2,)
    x, y = pr.p.sample(500, _gen(0)), pr.q.sample(500, _gen(1))
    assert set(x[:, 0].tolist()) == {-2.0, 0.0, 2.0} and (x[:, 1] == 0).all()
    d = torch.cdist(y.double(), torch.tensor([[-2.0, 0.0], [0.0, 0.0], [2.0, 0.0]], dtype=torch.float64))
    assert torch.allclose(d.min(dim=1).values, torch.ones(500, dtype=torch.float64), atol=1e-6)
    # Every Q point is at distance >= 1 from every atom, so W1(P_n, Q_n) >= 1; the excess comes
    # from unequal cluster counts in the two samples (about sqrt(n)/n of the mass moved ~2 further).
    w = exact_w1(x, y).value
    assert 1.0 - 1e-5 <= w <= 1.1
    with pytest.raises(SourceError, match="radius <= spacing / 2"):
        ThreeCones(radius=1.5)


def test_gaussian_mixtures_has_no_closed_form() -> None:
    pr = GaussianMixtures(dim=4, std=0.1)
    assert pr.exact_w1() is None and pr.exact_w1_method() is None
    assert pr.p.shape == pr.q.shape == (4,)
    x = pr.p.sample(400, _gen(0))
    assert torch.allclose(x[:, :2].norm(dim=1).mean(), torch.tensor(2.0), atol=0.05)


def test_one_dimensional_closed_form_normal_pair() -> None:
    # P = N(0, 1), Q = N(1, 4): W1 = E|1 + Z| = 2 phi(1) + 1 - 2 Phi(-1).
    pr = OneDimensional()
    want = 2 * stats.norm.pdf(1.0) + 1 - 2 * stats.norm.cdf(-1.0)
    assert pr.exact_w1() == pytest.approx(want, abs=1e-10)
    assert "quad" in pr.exact_w1_method()
    # Logistic(0.5, 0.3) vs Uniform(0, 3): the CDFs cross only at x = 3 (beyond it F_P < 1 = F_Q), so
    # W1 = (mean difference 1) + 2 * int_3^inf (1 - F_P) = 1 + 2 * 0.3 * log(1 + exp(-2.5 / 0.3)).
    lu = OneDimensional(
        p="logistic", q="uniform", p_params={"loc": 0.5, "scale": 0.3}, q_params={"low": 0.0, "high": 3.0}
    )
    assert lu.exact_w1() == pytest.approx(1 + 0.6 * math.log1p(math.exp(-2.5 / 0.3)), abs=1e-10)
    shift = OneDimensional(p_params={"loc": 0.0}, q_params={"loc": 2.5})
    assert shift.exact_w1() == 2.5 and "closed form" in shift.exact_w1_method()


PAIRS_1D = [
    ("normal", "normal", {"loc": 0.0, "scale": 1.0}, {"loc": 1.0, "scale": 2.0}),
    ("uniform", "normal", {"low": -1.0, "high": 2.0}, None),
    ("exponential", "laplace", {"scale": 2.0}, {"loc": 1.0}),
    ("logistic", "uniform", {"loc": 0.5, "scale": 0.3}, {"low": 0.0, "high": 3.0}),
]


@pytest.mark.parametrize("p,q,pp,qp", PAIRS_1D)
def test_one_dimensional_matches_quantile_formula_and_large_samples(p, q, pp, qp) -> None:
    pr = OneDimensional(p=p, q=q, p_params=pp, q_params=qp)
    # Independent exact formula: W1 = int_0^1 |F_P^-1(u) - F_Q^-1(u)| du.
    # (break points towards both ends so quad sees the tails where the quantiles may cross)
    ends = [10.0**-k for k in range(1, 13)]
    pts = sorted(ends + [1 - e for e in ends] + [0.5])
    want, _ = integrate.quad(
        lambda u: abs(pr.p.dist.ppf(u) - pr.q.dist.ppf(u)), 0, 1, points=pts, limit=1000, epsabs=1e-12
    )
    assert pr.exact_w1() == pytest.approx(want, abs=1e-6)
    # Large samples: the empirical 1-D W1 converges at rate ~ n^-1/2 (sd ~ 3e-3 here).
    n = 200_000
    x = pr.p.sample(n, _gen(10)).numpy().ravel()
    y = pr.q.sample(n, _gen(11)).numpy().ravel()
    assert stats.wasserstein_distance(x, y) == pytest.approx(pr.exact_w1(), abs=0.02)


def test_validation_errors_name_the_value() -> None:
    with pytest.raises(SourceError, match="shift has 2 entries, more than dim=1"):
        Translation(dim=1, shift=[1.0, 2.0])
    with pytest.raises(SourceError, match="base 'cube'"):
        Translation(base="cube")  # type: ignore[arg-type]
    with pytest.raises(SourceError, match="std=-1"):
        Gaussian(std=-1.0)
    with pytest.raises(SourceError, match="cauchy"):
        Distribution1D("cauchy")
    with pytest.raises(SourceError, match=r"unknown \['mu'\]"):
        OneDimensional(p_params={"mu": 1.0})
    with pytest.raises(SourceError, match="low < high"):
        Uniform(low=1.0, high=0.0)
    with pytest.raises(SourceError, match="weights"):
        PointMass(points=[[0.0], [1.0]], weights=[1.0])


def test_jsonargparse_builds_every_toy_class() -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(ToyProblem, "toy")
    parser.add_subclass_arguments(Source, "p")
    for name in TOY_PROBLEMS:
        cfg = parser.parse_args(["--toy", name, "--p", "Gaussian"])
        built = _instantiate(parser, cfg)
        assert type(built.toy).__name__ == name
    cfg = parser.parse_args(
        ["--toy", '{"class_path": "Translation", "init_args": {"dim": 3, "shift": [0, 1]}}', "--p", "Gaussian"]
    )
    assert _instantiate(parser, cfg).toy.exact_w1() == pytest.approx(1.0)
    assert {"Gaussian", "Uniform", "PointMass", "Sphere", "Digits", "CIFAR10", "Generator"} <= set(SOURCES)


def _instantiate(parser, cfg):
    # jsonargparse >= 4.49 renamed instantiate_classes to instantiate.
    return (getattr(parser, "instantiate", None) or parser.instantiate_classes)(cfg)
