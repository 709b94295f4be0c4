"""Intervals for the held-out mean difference E_P f - E_Q f."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wdist.stats import Interval, StatsError, mean_difference_interval, scale_interval


def _pairs(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Skewed, unequal-variance critic values; true mean difference = 1.0 - 0.5 = 0.5.
    fp = rng.exponential(1.0, n)
    fq = rng.normal(0.5, 2.0, n)
    return torch.from_numpy(fp), torch.from_numpy(fq)


def test_normal_interval_covers_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(0)
    hits = 0
    reps = 200
    for _ in range(reps):
        iv = mean_difference_interval(*_pairs(rng, 200), confidence=0.95)
        hits += iv.lo <= 0.5 <= iv.hi
    assert 0.90 <= hits / reps <= 0.99


def test_normal_interval_fields() -> None:
    fp = torch.tensor([1.0, 2.0, 3.0, 4.0])
    fq = torch.tensor([0.0, 0.0, 1.0, 1.0])
    iv = mean_difference_interval(fp, fq, confidence=0.9)
    d = np.array([1.0, 2.0, 2.0, 3.0])
    assert isinstance(iv, Interval)
    assert iv.estimate == pytest.approx(2.0)
    assert iv.stderr == pytest.approx(d.std(ddof=1) / 2.0)
    assert iv.n == 4 and iv.confidence == 0.9
    assert iv.lo < iv.estimate < iv.hi
    assert iv.hi - iv.estimate == pytest.approx(iv.estimate - iv.lo)
    assert "normal" in iv.method


def test_bernstein_is_wider_than_normal_and_covers() -> None:
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(50):
        fp = torch.from_numpy(rng.uniform(0.0, 1.0, 400))
        fq = torch.from_numpy(rng.uniform(-0.2, 0.8, 400))  # d in [-0.8, 1.2]: a-priori range 2
        nrm = mean_difference_interval(fp, fq)
        brn = mean_difference_interval(fp, fq, method="bernstein", value_range=2.0)
        assert brn.lo < nrm.lo and brn.hi > nrm.hi
        assert brn.estimate == nrm.estimate
        hits += brn.lo <= 0.2 <= brn.hi
    assert hits == 50
    assert "a-priori range" in brn.method


def test_bernstein_with_observed_range_says_so() -> None:
    rng = np.random.default_rng(2)
    fp, fq = _pairs(rng, 300)
    iv = mean_difference_interval(fp, fq, method="bernstein")
    assert "taken from the data" in iv.method and "heuristic" in iv.method
    assert iv.hi - iv.lo > 0


def test_bernstein_rejects_range_smaller_than_observed() -> None:
    fp = torch.tensor([0.0, 3.0, 1.0])
    fq = torch.zeros(3)
    with pytest.raises(StatsError, match="smaller than the observed range"):
        mean_difference_interval(fp, fq, method="bernstein", value_range=1.0)
    with pytest.raises(StatsError, match="value_range"):
        mean_difference_interval(fp, fq, method="bernstein", value_range=-1.0)


def test_bootstrap_close_to_normal_for_large_n() -> None:
    rng = np.random.default_rng(3)
    fp, fq = _pairs(rng, 4000)
    nrm = mean_difference_interval(fp, fq)
    bts = mean_difference_interval(fp, fq, method="bootstrap", n_boot=2000, seed=0)
    half = nrm.hi - nrm.estimate
    assert bts.estimate == nrm.estimate
    assert abs(bts.lo - nrm.lo) < 0.1 * half and abs(bts.hi - nrm.hi) < 0.1 * half
    assert bts.stderr == pytest.approx(nrm.stderr, rel=0.1)
    assert "bootstrap" in bts.method
    again = mean_difference_interval(fp, fq, method="bootstrap", n_boot=2000, seed=0)
    assert (again.lo, again.hi) == (bts.lo, bts.hi)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1])
def test_confidence_outside_unit_interval(confidence: float) -> None:
    with pytest.raises(StatsError, match="confidence"):
        mean_difference_interval(torch.zeros(5), torch.ones(5), confidence=confidence)


def test_bad_inputs() -> None:
    with pytest.raises(StatsError, match="same length.*5 and 4"):
        mean_difference_interval(torch.zeros(5), torch.ones(4))
    with pytest.raises(StatsError, match="n=2.*n=1"):
        mean_difference_interval(torch.zeros(1), torch.ones(1))
    with pytest.raises(StatsError, match="non-finite"):
        mean_difference_interval(torch.tensor([0.0, math.nan, 1.0]), torch.ones(3))
    with pytest.raises(StatsError, match="unknown method"):
        mean_difference_interval(torch.zeros(3), torch.ones(3), method="wald")  # type: ignore[arg-type]
    with pytest.raises(StatsError, match="1-D"):
        mean_difference_interval(torch.zeros(3, 2), torch.ones(3, 2))


def test_column_vectors_are_accepted() -> None:
    a = mean_difference_interval(torch.arange(6.0)[:, None], torch.zeros(6, 1))
    b = mean_difference_interval(torch.arange(6.0), torch.zeros(6))
    assert a == b


def test_scale_interval_divides_by_certificate() -> None:
    iv = mean_difference_interval(torch.tensor([1.0, 2.0, 3.0, 5.0]), torch.zeros(4))
    s = scale_interval(iv, 2.0)
    assert (s.estimate, s.stderr, s.lo, s.hi) == pytest.approx((iv.estimate / 2, iv.stderr / 2, iv.lo / 2, iv.hi / 2))
    assert s.n == iv.n and s.confidence == iv.confidence
    assert "certificate L = 2" in s.method
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(StatsError, match="certificate"):
            scale_interval(iv, bad)
