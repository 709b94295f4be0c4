"""Intervals for the held-out mean difference E_P f - E_Q f: two independent samples (the default)
and the paired one-sample form; coverage checked by simulation at unequal sizes."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pytest
import torch
from scipy import stats

from wdist.stats import Interval, StatsError, mean_difference_interval, scale_interval

Draw = Callable[[np.random.Generator, int, int], np.ndarray]

# (P sampler, Q sampler, true E_P f - E_Q f); each sampler returns (draws, n) values.
DISTRIBUTIONS: dict[str, tuple[Draw, Draw, float]] = {
    "normal": (
        lambda rng, k, n: rng.normal(1.0, 1.0, (k, n)),
        lambda rng, k, n: rng.normal(0.5, 2.0, (k, n)),  # unequal variances too
        0.5,
    ),
    "exponential": (  # skewness 2 on both sides
        lambda rng, k, n: rng.exponential(1.0, (k, n)),
        lambda rng, k, n: rng.exponential(0.5, (k, n)),
        0.5,
    ),
}


def _coverage(
    name: str, n_p: int, n_q: int, draws: int, seed: int, chunk: int = 400, **kwargs
) -> tuple[float, list[Interval]]:
    """Fraction of ``draws`` simulated data sets whose interval covers the true difference; the
    samples of each chunk of draws are drawn at once (a (chunk, n) matrix per side)."""
    draw_p, draw_q, truth = DISTRIBUTIONS[name]
    rng = np.random.default_rng(seed)
    hits, intervals = 0, []
    for start in range(0, draws, chunk):
        k = min(chunk, draws - start)
        xp, xq = draw_p(rng, k, n_p), draw_q(rng, k, n_q)
        for a, b in zip(xp, xq):
            iv = mean_difference_interval(a, b, **kwargs)
            hits += iv.lo <= truth <= iv.hi
            intervals.append(iv)
    return hits / draws, intervals


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_welch_interval_covers_in_400_draws_at_unequal_sizes(name: str) -> None:
    """The default interval at the digits default's sizes (500 P, 5000 Q), 400 simulated draws."""
    coverage, intervals = _coverage(name, 500, 5000, 400, seed=0)
    assert coverage >= 0.93, f"{name}: 95% Welch intervals covered the truth in only {coverage:.1%} of 400 draws"
    assert coverage <= 0.99  # nominal, not grossly conservative
    assert {(iv.n_p, iv.n_q) for iv in intervals} == {(500, 5000)}
    assert all("Welch" in iv.method for iv in intervals[:1])


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_welch_coverage_is_nominal_over_4000_draws(name: str) -> None:
    """A sharper check (standard error of the coverage 0.35%): within 1.5 points of 95%."""
    coverage, _ = _coverage(name, 200, 2000, 4000, seed=1)
    assert abs(coverage - 0.95) <= 0.015, f"{name}: coverage {coverage:.2%} over 4000 draws"


def test_welch_interval_equals_scipy() -> None:
    """Independently: scipy's Welch test (ttest_ind, equal_var=False) and its confidence interval."""
    rng = np.random.default_rng(2)
    fp, fq = rng.exponential(1.0, 37), rng.normal(0.0, 3.0, 410)
    iv = mean_difference_interval(torch.from_numpy(fp), torch.from_numpy(fq), confidence=0.9)
    ref = stats.ttest_ind(fp, fq, equal_var=False)
    lo, hi = ref.confidence_interval(0.9)
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi), rel=1e-12)
    assert iv.estimate == pytest.approx(fp.mean() - fq.mean(), rel=1e-12)
    assert iv.stderr == pytest.approx(math.sqrt(fp.var(ddof=1) / 37 + fq.var(ddof=1) / 410), rel=1e-12)
    assert f"df = {ref.df:.1f}" in iv.method
    assert (iv.n_p, iv.n_q, iv.confidence) == (37, 410, 0.9)


def test_larger_q_sample_narrows_the_interval() -> None:
    """Ten times more Q samples divide Q's share of the variance by ten."""
    rng = np.random.default_rng(3)
    fp, fq = rng.normal(0.0, 1.0, 500), rng.normal(0.0, 1.0, 5000)
    equal = mean_difference_interval(fp, fq[:500])
    more_q = mean_difference_interval(fp, fq)
    ratio = (more_q.hi - more_q.lo) / (equal.hi - equal.lo)
    assert ratio == pytest.approx(math.sqrt(1.1 / 2.0), rel=0.05)


def test_two_sample_bernstein_is_conservative() -> None:
    """Values in [0, 1] (a-priori range 1), skewed Beta samples, unequal sizes: the finite-sample
    bound covers in every one of 400 draws and is wider than Welch's every time."""
    rng = np.random.default_rng(4)
    xp, xq = rng.beta(0.5, 4.0, (400, 500)), rng.beta(2.0, 2.0, (400, 5000))
    truth = 0.5 / 4.5 - 0.5
    hits = 0
    for a, b in zip(xp, xq):
        brn = mean_difference_interval(a, b, method="bernstein", value_range=1.0)
        nrm = mean_difference_interval(a, b)
        assert brn.lo < nrm.lo and brn.hi > nrm.hi and brn.estimate == nrm.estimate
        hits += brn.lo <= truth <= brn.hi
    assert hits == 400
    assert "a-priori range b = 1" in brn.method and "union bound" in brn.method


def test_two_sample_bernstein_half_width_formula() -> None:
    """Half-width = h_P + h_Q with delta = (1 - c) / 4 (Maurer & Pontil's bound on each side)."""
    fp, fq = np.array([0.0, 0.5, 1.0, 0.25]), np.array([0.1, 0.2, 0.9])
    iv = mean_difference_interval(fp, fq, confidence=0.9, method="bernstein", value_range=2.0)
    log_term = math.log(2.0 / (0.1 / 4.0))

    def h(v: np.ndarray) -> float:
        return math.sqrt(2.0 * v.var(ddof=1) * log_term / len(v)) + 7.0 * 2.0 * log_term / (3.0 * (len(v) - 1))

    assert iv.hi - iv.estimate == pytest.approx(h(fp) + h(fq), rel=1e-12)
    assert iv.estimate - iv.lo == pytest.approx(h(fp) + h(fq), rel=1e-12)


def test_bernstein_with_observed_range_says_so() -> None:
    rng = np.random.default_rng(5)
    for paired in (False, True):
        iv = mean_difference_interval(
            rng.exponential(1.0, 300), rng.normal(0, 1, 300), method="bernstein", paired=paired
        )
        assert "taken from the data" in iv.method and "heuristic" in iv.method
        assert iv.hi - iv.lo > 0


def test_bernstein_rejects_range_smaller_than_observed() -> None:
    fp = torch.tensor([0.0, 3.0, 1.0])
    fq = torch.zeros(3)
    with pytest.raises(StatsError, match="smaller than the observed range of the critic values"):
        mean_difference_interval(fp, fq, method="bernstein", value_range=2.0)
    with pytest.raises(StatsError, match="smaller than half the observed range"):
        mean_difference_interval(fp, fq, method="bernstein", value_range=1.0, paired=True)
    with pytest.raises(StatsError, match="value_range"):
        mean_difference_interval(fp, fq, method="bernstein", value_range=-1.0)


def test_two_sample_bootstrap_covers_and_resamples_each_side() -> None:
    coverage, intervals = _coverage("normal", 100, 1000, 400, seed=6, method="bootstrap", n_boot=400)
    # the percentile bootstrap is only asymptotically exact: a slightly lower floor than Welch's
    assert coverage >= 0.92, f"bootstrap coverage {coverage:.1%}"
    assert all((iv.n_p, iv.n_q) == (100, 1000) for iv in intervals)
    assert "each side resampled independently" in intervals[0].method


def test_bootstrap_close_to_welch_for_large_n() -> None:
    rng = np.random.default_rng(7)
    fp, fq = rng.exponential(1.0, 3000), rng.normal(0.5, 2.0, 6000)
    nrm = mean_difference_interval(fp, fq)
    bts = mean_difference_interval(fp, fq, method="bootstrap", n_boot=2000, seed=0)
    half = nrm.hi - nrm.estimate
    assert bts.estimate == nrm.estimate
    assert abs(bts.lo - nrm.lo) < 0.1 * half and abs(bts.hi - nrm.hi) < 0.1 * half
    assert bts.stderr == pytest.approx(nrm.stderr, rel=0.1)
    again = mean_difference_interval(fp, fq, method="bootstrap", n_boot=2000, seed=0)
    assert (again.lo, again.hi) == (bts.lo, bts.hi)


def test_paired_interval_is_the_one_sample_t_on_differences() -> None:
    fp = torch.tensor([1.0, 2.0, 3.0, 4.0])
    fq = torch.tensor([0.0, 0.0, 1.0, 1.0])
    iv = mean_difference_interval(fp, fq, confidence=0.9, paired=True)
    d = np.array([1.0, 2.0, 2.0, 3.0])
    half = stats.t.ppf(0.95, df=3) * d.std(ddof=1) / 2.0
    assert iv.estimate == pytest.approx(2.0)
    assert iv.stderr == pytest.approx(d.std(ddof=1) / 2.0)
    assert (iv.lo, iv.hi) == pytest.approx((2.0 - half, 2.0 + half))
    assert (iv.n_p, iv.n_q) == (4, 4) and "paired" in iv.method
    # the two-sample interval of the same values has the same centre, another stderr
    two = mean_difference_interval(fp, fq, confidence=0.9)
    assert two.estimate == iv.estimate and two.stderr != iv.stderr
    with pytest.raises(StatsError, match="same length for a paired interval.*5 and 4"):
        mean_difference_interval(torch.zeros(5), torch.ones(4), paired=True)
    for method in ("bernstein", "bootstrap"):
        assert "paired" in mean_difference_interval(fp, fq, method=method, value_range=10.0, paired=True).method


def test_paired_normal_still_covers() -> None:
    rng = np.random.default_rng(8)
    hits = 0
    for a, b in zip(rng.exponential(1.0, (200, 200)), rng.normal(0.5, 2.0, (200, 200))):
        iv = mean_difference_interval(a, b, paired=True)
        hits += iv.lo <= 0.5 <= iv.hi
    assert 0.90 <= hits / 200 <= 0.99


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1])
def test_confidence_outside_unit_interval(confidence: float) -> None:
    with pytest.raises(StatsError, match="confidence"):
        mean_difference_interval(torch.zeros(5), torch.ones(5), confidence=confidence)


def test_bad_inputs() -> None:
    with pytest.raises(StatsError, match="at least 2 values of fq.*n=1"):
        mean_difference_interval(torch.zeros(3), torch.ones(1))
    with pytest.raises(StatsError, match="fp contains 1 non-finite"):
        mean_difference_interval(torch.tensor([0.0, math.nan, 1.0]), torch.ones(3))
    with pytest.raises(StatsError, match="unknown method"):
        mean_difference_interval(torch.zeros(3), torch.ones(3), method="wald")  # type: ignore[arg-type]
    with pytest.raises(StatsError, match="1-D"):
        mean_difference_interval(torch.zeros(3, 2), torch.ones(3, 2))
    with pytest.raises(StatsError, match="n_boot"):
        mean_difference_interval(torch.arange(4.0), torch.ones(3), method="bootstrap", n_boot=1)


def test_unequal_sizes_and_column_vectors_are_accepted() -> None:
    a = mean_difference_interval(torch.arange(6.0)[:, None], torch.zeros(9, 1) + torch.arange(9.0)[:, None])
    b = mean_difference_interval(torch.arange(6.0), torch.arange(9.0))
    assert a == b and (a.n_p, a.n_q) == (6, 9)
    assert a.estimate == pytest.approx(2.5 - 4.0)


def test_identical_values_give_a_point_interval() -> None:
    iv = mean_difference_interval(torch.ones(4), torch.zeros(7))
    assert (iv.estimate, iv.stderr, iv.lo, iv.hi) == (1.0, 0.0, 1.0, 1.0)


def test_interval_records_of_one_size_are_paired() -> None:
    old = {"estimate": 1.0, "stderr": 0.1, "lo": 0.8, "hi": 1.2, "confidence": 0.95, "method": "m", "n": 7}
    iv = Interval.from_dict(old)
    assert (iv.n_p, iv.n_q) == (7, 7)


def test_scale_interval_divides_by_certificate() -> None:
    iv = mean_difference_interval(torch.tensor([1.0, 2.0, 3.0, 5.0]), torch.zeros(4))
    s = scale_interval(iv, 2.0)
    assert (s.estimate, s.stderr, s.lo, s.hi) == pytest.approx((iv.estimate / 2, iv.stderr / 2, iv.lo / 2, iv.hi / 2))
    assert (s.n_p, s.n_q) == (iv.n_p, iv.n_q) and s.confidence == iv.confidence
    assert "certificate L = 2" in s.method
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(StatsError, match="certificate"):
            scale_interval(iv, bad)
