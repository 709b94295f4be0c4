"""End to end on the analytic toys: the certified critic recovers closed-form W1, honestly labelled."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

import wdist
from wdist.results import Result

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "toy"
REQUIRED = {
    "estimate", "lipschitz_certificate", "lower_bound", "stderr", "ci95", "certified", "exact_w1",
    "empirical_ot_w1", "n_eval", "steps", "seconds", "device", "versions",
}


def _recovers(result: Result, exact: float) -> None:
    ratio = result.lower_bound / exact
    lo, hi = result.ci95
    assert result.certified, result.verdict
    assert result.lipschitz_certificate <= 1 + 1e-4
    # "lower bound / exact in [0.97, 1.0] up to the CI": the point estimate recovers 97% of W1 and
    # the interval does not lie entirely above the truth (that would break the bound).
    assert ratio >= 0.97, f"lower bound {result.lower_bound:.4f} recovers only {ratio:.3f} of W1 = {exact}"
    assert lo <= exact, f"the whole CI [{lo:.4f}, {hi:.4f}] lies above the exact W1 {exact}"
    assert result.empirical_lipschitz is not None and result.empirical_lipschitz <= result.lipschitz_certificate * (1 + 1e-6)


def test_translation_2d_recovers_norm_of_shift(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    result = wdist.estimate(CONFIGS / "translation-2d.yaml", out=tmp_path, quiet=True)
    assert time.perf_counter() - t0 < 60
    assert result.exact_w1 == pytest.approx(2.0)
    _recovers(result, 2.0)
    # every number is written, and written completely
    data = json.loads((tmp_path / "result.json").read_text())
    assert REQUIRED <= set(data)
    assert data["lower_bound"] == pytest.approx(data["estimate"] / data["lipschitz_certificate"])
    assert (tmp_path / "bound_curve.png").stat().st_size > 1000
    with open(tmp_path / "metrics.csv") as fh:
        header = next(csv.reader(fh))
    assert {"heldout/lower_bound", "heldout/lower_bound_lo", "heldout/lower_bound_hi"} <= set(header)
    assert [c["step"] for c in result.curve] == sorted(c["step"] for c in result.curve)
    assert result.curve[-1]["step"] == result.steps
    assert not list(tmp_path.glob(".*.tmp"))


def test_three_cones_recovers_one(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    result = wdist.estimate(CONFIGS / "three-cones.yaml", out=tmp_path, quiet=True)
    assert time.perf_counter() - t0 < 90  # 60 s on an idle 2-core machine; slack for a busy CI
    assert result.exact_w1 == pytest.approx(1.0)
    _recovers(result, 1.0)
    # the empirical OT is an upper reference: at or above the certified bound's point estimate
    assert result.empirical_ot_w1 >= result.lower_bound - 3 * result.stderr


def test_gp_critic_is_reported_as_uncertified(tmp_path: Path) -> None:
    result = wdist.estimate(
        CONFIGS / "translation-2d.yaml",
        ["--critic.name", "gp-mlp", "--critic.options", "{width: 32, depth: 2}", "--train.loss", "wgan-gp",
         "--train.steps", "60", "--train.eval_every", "30", "--eval.n_eval", "1024", "--eval.ot_samples", "200"],
        quiet=True,
    )
    assert result.lipschitz_certificate > 1 + 1e-3  # an unconstrained MLP's product of norms
    assert result.certified is False
    assert result.lower_bound == pytest.approx(result.estimate / result.lipschitz_certificate)
    assert result.ci95[0] == pytest.approx(result.ci["estimate_lo"] / result.lipschitz_certificate)
    assert "not certified" in result.verdict and "NOT a bound" in result.verdict
    assert "NOT a bound" in result.format_table()
    # the empirical (lower) estimate of Lip(f) never exceeds the certificate
    assert result.empirical_lipschitz <= result.lipschitz_certificate


def test_sphere_and_mixture_configs_run(tmp_path: Path) -> None:
    for name in ("sphere-128d", "gaussian-mixture-2d"):
        result = wdist.estimate(
            CONFIGS / f"{name}.yaml", ["--train.steps", "40", "--train.eval_every", "20", "--eval.n_eval", "1024",
                                       "--eval.ot_samples", "300"], quiet=True,
        )
        assert result.certified
        assert result.steps == 40 and len(result.curve) == 2
        if result.exact_w1 is not None:  # sphere: W1 = 1, and a bound can't beat it beyond sampling error
            assert result.ci95[0] <= result.exact_w1
        else:
            assert result.exact_w1_method is None and result.empirical_ot_w1 > 0


def test_result_roundtrip_and_atomic_write(tmp_path: Path) -> None:
    result = wdist.estimate(
        CONFIGS / "translation-2d.yaml", ["--train.steps", "20", "--train.eval_every", "10", "--eval.n_eval", "512",
                                          "--eval.ot_samples", "0"], out=tmp_path, quiet=True,
    )
    back = Result.load(tmp_path / "result.json")
    assert back.lower_bound == result.lower_bound and back.ci95 == result.ci95
    assert result.empirical_ot_w1 is None  # ot_samples 0 disables the reference
    (tmp_path / "result.json").write_text("old")
    result.save(tmp_path / "result.json")
    assert json.loads((tmp_path / "result.json").read_text())["estimate"] == result.estimate
