"""Exact OT (POT emd2, Euclidean cost) and the sliced approximation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import wdist.ot as wot
from wdist.ot import EXACT_METHOD, SLICED_METHOD, OTError, OTResult, exact_w1, sliced_w1


def test_translated_sample_gives_norm_of_shift() -> None:
    # W1(P_n, P_n + v) = ||v|| exactly: the same 500 points, shifted.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 3, generator=g, dtype=torch.float64)
    v = torch.tensor([0.3, -1.2, 0.5], dtype=torch.float64)
    res = exact_w1(x, x + v)
    assert isinstance(res, OTResult)
    assert res.value == pytest.approx(float(v.norm()), abs=1e-9)
    assert (res.n_x, res.n_y) == (500, 500)
    assert res.method == EXACT_METHOD
    assert "Euclidean" in res.method and res.seconds >= 0


def test_cost_is_euclidean_not_squared() -> None:
    # One point each, at distance 3: Euclidean gives 3, squared Euclidean would give 9.
    res = exact_w1(torch.zeros(1, 2), torch.tensor([[3.0, 0.0]]))
    assert res.value == pytest.approx(3.0, abs=1e-12)


@pytest.mark.parametrize("n,m", [(300, 300), (200, 317)])
def test_one_dimensional_matches_scipy(n: int, m: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, n)
    y = rng.laplace(0.5, 2.0, m)
    want = stats.wasserstein_distance(x, y)
    assert exact_w1(x, y).value == pytest.approx(want, abs=1e-9)
    # In 1-D every projection is +-identity, so the sliced value is the exact one too
    # (this checks the quantile-function formula for unequal sizes).
    assert sliced_w1(x, y, n_projections=4).value == pytest.approx(want, abs=1e-9)


def test_zero_for_identical_samples() -> None:
    x = torch.randn(200, 5)
    assert exact_w1(x, x).value == pytest.approx(0.0, abs=1e-12)
    assert sliced_w1(x, x).value == pytest.approx(0.0, abs=1e-12)


def test_image_shaped_inputs_are_flattened() -> None:
    x = torch.rand(20, 3, 4, 4)
    y = torch.rand(25, 3, 4, 4)
    flat = exact_w1(x.reshape(20, -1), y.reshape(25, -1)).value
    assert exact_w1(x, y).value == pytest.approx(flat, abs=1e-12)


def test_refuses_too_large_problem_naming_sizes_and_bytes() -> None:
    x, y = torch.zeros(1000, 2), torch.zeros(1200, 2)
    with pytest.raises(OTError) as err:
        exact_w1(x, y, max_cost_bytes=10_000)
    msg = str(err.value)
    assert "n=1000" in msg and "m=1200" in msg
    assert str(2 * 8 * 1000 * 1200) in msg and "max_cost_bytes=10000" in msg


def test_refuses_problem_larger_than_memory() -> None:
    avail = wot._available_memory_bytes()
    if avail is None or avail > 10**12:
        pytest.skip("cannot read available memory, or the machine has more than 1 TB")
    x = torch.zeros(300_000, 1)  # the 300k x 300k cost matrix alone would need 720 GB
    with pytest.raises(OTError, match="available memory"):
        exact_w1(x, x)


def test_solver_failure_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import ot

    def not_optimal(a, b, M, **kwargs):
        return 0.0, {"result_code": 3, "warning": "numItermax reached before optimality"}

    monkeypatch.setattr(ot, "emd2", not_optimal)
    with pytest.raises(OTError, match="result_code=3"):
        exact_w1(torch.randn(5, 2), torch.randn(5, 2))


def test_bad_inputs() -> None:
    with pytest.raises(OTError, match="same sample dimension"):
        exact_w1(torch.zeros(4, 2), torch.zeros(4, 3))
    x = torch.zeros(4, 2)
    x[1, 0] = math.nan
    with pytest.raises(OTError, match="1 non-finite"):
        exact_w1(x, torch.zeros(4, 2))
    with pytest.raises(OTError, match="n_projections"):
        sliced_w1(torch.zeros(4, 2), torch.zeros(4, 2), n_projections=0)


@pytest.mark.parametrize("m", [150, 173])
def test_sliced_is_below_exact_and_labelled(m: int) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(150, 8, generator=g)
    y = 0.5 * torch.randn(m, 8, generator=g) + 0.7
    ex, sl = exact_w1(x, y), sliced_w1(x, y, n_projections=128, seed=1)
    assert 0.0 < sl.value <= ex.value + 1e-12
    assert sl.method == SLICED_METHOD
    assert "lower bound" in sl.method and "not W1" in sl.method
    # Deterministic in the seed.
    assert sliced_w1(x, y, n_projections=128, seed=1).value == sl.value
