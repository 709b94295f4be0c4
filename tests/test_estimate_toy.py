"""End to end on the analytic toys: the certified critic recovers closed-form W1, honestly labelled."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import pytorch_lightning as pl

import wdist
from wdist.results import Result

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "toy"
#: Every section of result.json, and the keys each one must hold.
REQUIRED = {
    "bound": {"estimate", "lipschitz_certificate", "lower_bound", "stderr", "ci95_lo", "ci95_hi", "certified",
              "one_lipschitz", "n_eval_p", "n_eval_q", "split", "step", "kind"},
    "exact": {"w1", "method"},
    "references": {"empirical_ot_w1", "empirical_ot_floor"},
    "diagnosis": {"train", "generalisation_gap", "limited_by", "text"},
    "run": {"steps", "seconds", "device", "versions", "split", "config", "critic", "shape", "domain"},
    "certificate": {"layers", "user_asserted", "empirical_lipschitz"},
    "selection": set(),
    "curve": set(),
    "verdict": set(),
    "notes": set(),
}  # fmt: skip


def _recovers(result: Result, exact: float) -> None:
    ratio = result.lower_bound / exact
    lo, hi = result.ci95
    assert result.certified, result.verdict
    assert result.lipschitz_certificate <= 1 + 1e-4
    # "lower bound / exact in [0.97, 1.0] up to the CI": the point estimate recovers 97% of W1 and
    # the interval does not lie entirely above the truth (that would break the bound).
    assert ratio >= 0.97, f"lower bound {result.lower_bound:.4f} recovers only {ratio:.3f} of W1 = {exact}"
    assert lo <= exact, f"the whole CI [{lo:.4f}, {hi:.4f}] lies above the exact W1 {exact}"
    assert result.empirical_lipschitz is not None and result.empirical_lipschitz <= result.lipschitz_certificate * (
        1 + 1e-6
    )


def test_translation_2d_recovers_norm_of_shift(tmp_path: Path) -> None:
    result = wdist.estimate(CONFIGS / "translation-2d.yaml", out=tmp_path, quiet=True)
    assert result.exact.w1 == pytest.approx(2.0)
    _recovers(result, 2.0)
    # infinite sources: training items are statistically fresh ones, so no generalisation gap
    assert result.diagnosis.limited_by == "optimisation or capacity", result.diagnosis.text
    # every number is written, and written completely
    data = json.loads((tmp_path / "result.json").read_text())
    assert set(REQUIRED) <= set(data)
    for section, keys in REQUIRED.items():
        assert keys <= set(data[section] if keys else ()), section
    assert Result.from_dict(data).to_dict() == data  # read back unchanged
    assert data["bound"]["lower_bound"] == pytest.approx(
        data["bound"]["estimate"] / data["bound"]["lipschitz_certificate"]
    )
    assert data["bound"]["split"] == "test" and data["selection"]["split"] == "select"
    assert data["bound"]["step"] == data["selection"]["step"] in [c["step"] for c in data["curve"]]
    assert (tmp_path / "bound_curve.png").stat().st_size > 1000
    with open(tmp_path / "metrics.csv") as fh:
        header = next(csv.reader(fh))
    assert {"select/lower_bound", "select/lower_bound_lo", "select/lower_bound_hi"} <= set(header)
    assert [c["step"] for c in result.curve] == sorted(c["step"] for c in result.curve)
    assert result.curve[-1]["step"] == result.run.steps == result.selection["last_step"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_three_cones_recovers_one(tmp_path: Path) -> None:
    result = wdist.estimate(CONFIGS / "three-cones.yaml", out=tmp_path, quiet=True)
    assert result.exact.w1 == pytest.approx(1.0)
    _recovers(result, 1.0)
    # the empirical OT is an upper reference: at or above the certified bound's point estimate
    assert result.references.empirical_ot_w1 >= result.lower_bound - 3 * result.bound.stderr


def test_gp_critic_is_reported_as_not_one_lipschitz(tmp_path: Path) -> None:
    """A GP critic's bound estimate / L is certified (loose); its raw estimate is not a bound."""
    result = wdist.estimate(
        CONFIGS / "translation-2d.yaml",
        [
            "--critic.name",
            "gp-mlp",
            "--critic.options",
            "{width: 32, depth: 2}",
            "--train.loss",
            "wgan-gp",
            "--train.steps",
            "60",
            "--train.eval_every",
            "30",
            "--eval.n_eval",
            "1024",
            "--eval.ot_samples",
            "200",
        ],
        quiet=True,
    )
    assert result.lipschitz_certificate > 1 + 1e-3  # an unconstrained MLP's product of norms
    assert result.one_lipschitz is False and result.certified is True
    assert result.lower_bound == pytest.approx(result.estimate / result.lipschitz_certificate)
    assert result.ci95[0] == pytest.approx(result.bound.estimate_lo / result.lipschitz_certificate)
    assert result.verdict.startswith("certified: ") and "loosened by 1/L" in result.verdict
    assert "not 1-Lipschitz" in result.verdict and "NOT a bound" in result.verdict
    assert "NOT a bound" in result.format_table()
    # the empirical (lower) estimate of Lip(f) never exceeds the certificate
    assert result.empirical_lipschitz <= result.lipschitz_certificate


def test_sphere_and_mixture_configs_run(tmp_path: Path) -> None:
    for name in ("sphere-128d", "gaussian-mixture-2d"):
        result = wdist.estimate(
            CONFIGS / f"{name}.yaml",
            ["--train.steps", "40", "--train.eval_every", "20", "--eval.n_eval", "1024", "--eval.ot_samples", "300"],
            quiet=True,
        )
        assert result.certified
        assert result.run.steps == 40 and len(result.curve) == 2
        if result.exact is not None:  # sphere: W1 = 1, and a bound can't beat it beyond sampling error
            assert result.ci95[0] <= result.exact.w1
        else:
            assert result.references.empirical_ot_w1 > 0


def test_result_roundtrip_and_atomic_write(tmp_path: Path) -> None:
    result = wdist.estimate(
        CONFIGS / "translation-2d.yaml",
        ["--train.steps", "20", "--train.eval_every", "10", "--eval.n_eval", "512", "--eval.ot_samples", "0"],
        out=tmp_path,
        quiet=True,
    )
    back = Result.load(tmp_path / "result.json")
    assert back.lower_bound == result.lower_bound and back.ci95 == result.ci95
    assert result.references.empirical_ot_w1 is None  # ot_samples 0 disables the reference
    (tmp_path / "result.json").write_text("old")
    result.save(tmp_path / "result.json")
    assert json.loads((tmp_path / "result.json").read_text())["bound"]["estimate"] == result.estimate


def test_result_fields_are_the_test_evaluation_and_the_selected_point_bit_for_bit(tmp_path: Path) -> None:
    """result.json's interval, bound and certificate are the test evaluation's (of the selected
    state), its diagnosis the selected curve point's: not recomputed."""
    keep = _Keep()
    wdist.estimate(
        CONFIGS / "translation-2d.yaml",
        ["--train.steps", "30", "--train.eval_every", "20", "--eval.n_eval", "512", "--eval.ot_samples", "0",
         "--eval.confidence", "0.9"],
        out=tmp_path, quiet=True, callbacks=[keep],
    )  # fmt: skip
    data = json.loads((tmp_path / "result.json").read_text())
    test = keep.system.test_evaluation.point("test")
    assert [c["step"] for c in data["curve"]] == [20, 30] and data["curve"][-1]["step"] == data["run"]["steps"]
    chosen = next(c for c in data["curve"] if c["step"] == data["selection"]["step"])
    assert data["selection"]["value"] == chosen["lower_bound"] and test["step"] == chosen["step"]
    assert (
        data["bound"]["lipschitz_certificate"] == test["lipschitz_certificate"] == chosen["lipschitz_certificate"]
    )  # the same weights
    assert data["bound"]["estimate"] == test["estimate"] and data["bound"]["stderr"] == test["stderr"]
    assert data["bound"]["lower_bound"] == test["lower_bound"]
    assert (data["bound"]["n_eval_p"], data["bound"]["n_eval_q"]) == (test["n_eval_p"], test["n_eval_q"]) == (512, 512)
    # the train-subset diagnosis: the selected point's (the select split's size, by default min(1024, 512))
    train = data["diagnosis"]["train"]
    assert train == chosen["train"] and train["split"] == "train" and train["certified"] is False
    assert data["diagnosis"]["generalisation_gap"] == chosen["train"]["lower_bound"] - chosen["lower_bound"]
    assert (train["n_eval_p"], train["n_eval_q"]) == (512, 512)
    ci = data["bound"]
    assert ci["confidence"] == 0.9
    assert (ci["estimate_lo"], ci["estimate_hi"]) == (test["estimate_lo"], test["estimate_hi"])
    assert (ci["lower_bound_lo"], ci["lower_bound_hi"]) == (test["lower_bound_lo"], test["lower_bound_hi"])
    # the 95% interval (confidence 0.9 here) is wider and contains the 90% one
    assert data["bound"]["ci95_lo"] < ci["lower_bound_lo"] < ci["lower_bound_hi"] < data["bound"]["ci95_hi"]
    assert sum(layer["bound"] for layer in data["certificate"]["layers"]) > 0


class _Keep(pl.Callback):
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.system = pl_module


def test_progress_shows_the_certified_bound(capsys: pytest.CaptureFixture) -> None:
    """Captured standard output is no terminal: one line per evaluation with the certified bound
    (the bar, with the training gap beside the bound, is for terminals: tests/test_progress_lines.py)."""
    wdist.estimate(
        CONFIGS / "translation-2d.yaml",
        ["--train.steps", "20", "--train.eval_every", "10", "--eval.n_eval", "256", "--eval.ot_samples", "0"],
    )  # fmt: skip
    shown = "".join(capsys.readouterr())
    lines = [line for line in shown.splitlines() if "  select bound " in line]  # the select split during training
    assert [line.split("  ")[0] for line in lines] == ["step 10/20", "step 20/20"]
    assert "train/gap" not in shown and ">=" not in shown
