"""One vocabulary everywhere: "certified" is said only of estimate / L, the same keys and labels in
``estimate``, ``compare``, ``track`` and ``W1Monitor``, negative interval ends shown as 0 with one
note, advice that follows the curve, and plots that say the same.

Evaluations are made by :func:`wdist.evaluation.evaluate` on a one-layer critic f(x) = a x_1 whose
certificate is ``a`` rounded up (a = 1: the usual 1 < L <= 1 + 1e-3 of an orthogonal critic).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import pytest
import torch
from torch import nn

from wdist.advice import advice, trend
from wdist.bound import KINDS, Bound
from wdist.compare import _markdown, _rows
from wdist.evaluation import Evaluation, evaluate
from wdist.plots import BOUND_AXIS_LABEL, comparison_figure
from wdist.references import References
from wdist.report import CLIPPED_NOTE, KEYS, LABELS, format_interval
from wdist.results import Result, RunRecord, verdict
from wdist.tracking import TrackResult, _point


def _evaluation(scale: float, shift: float = 1.0, step: int = 10, n: int = 400, seed: int = 0) -> Evaluation:
    """The evaluation of f(x) = scale * x_1 on P = N((shift, 0), I) against Q = N(0, I)."""
    f = nn.Sequential(nn.Linear(2, 1))
    with torch.no_grad():
        f[0].weight.copy_(torch.tensor([[scale, 0.0]]))
        f[0].bias.zero_()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen) + torch.tensor([shift, 0.0])
    y = torch.randn(n, 2, generator=gen)
    with torch.no_grad():
        return evaluate(f, (2,), f(x)[:, 0], f(y)[:, 0], step=step)


def _result(evaluations: list[Evaluation], empirical_lipschitz: Optional[float] = None) -> Result:
    run = RunRecord(
        critic="toy-critic", loss="kr", p="P = N((1, 0), I)", q="Q = N(0, I)", shape=[2], domain=None,
        steps=evaluations[-1].step, seconds=1.0, device="cpu (test, 1 thread)", versions={}, config={"seed": 0},
    )  # fmt: skip
    return Result.from_evaluation(evaluations[-1], run, evaluations, References(), None, None, empirical_lipschitz)


# -- the verdict follows L exactly ----------------------------------------------------------------------


def test_just_above_one_only_estimate_over_l_is_certified() -> None:
    """1 < L <= 1 + 1e-3 (every orthogonal critic, its certificate rounded up): the verdict certifies
    estimate / L, says the raw estimate is not itself certified, and never calls it the bound."""
    ev = _evaluation(1.0)
    assert 1.0 < ev.certificate <= 1.0 + 1e-3
    text = verdict(ev, None)
    assert text.startswith("certified: Lip(f) <= L = 1 + ")  # not "L = 1", which would hide L > 1
    assert f"estimate / L = {ev.bound.estimate:.6g} is a lower bound on W1" in text
    assert "not itself certified (L > 1)" in text
    assert "the held-out estimate is a lower bound" not in text


def test_at_most_one_the_raw_estimate_is_a_bound_too() -> None:
    ev = _evaluation(0.5)
    assert ev.certificate <= 1.0
    text = verdict(ev, None)
    assert text.startswith("certified: ") and "estimate / L" in text and "is a lower bound too" in text


def test_above_tolerance_the_bound_is_certified_and_loose() -> None:
    ev = _evaluation(3.0)
    text = verdict(ev, None)
    assert text.startswith("certified: ") and "loosened by 1/L" in text
    assert f"raw estimate {ev.interval.estimate:.4g} is NOT a bound on W1" in text
    record = Bound.from_evaluation(ev, "test").to_dict()
    assert record["certified"] is True and record["one_lipschitz"] is False and record["kind"] == KINDS[0]


def test_a_gradient_above_l_is_inconsistent_and_not_certified() -> None:
    ev = _evaluation(1.0)
    assert verdict(ev, 2.0).startswith("INCONSISTENT")
    res = _result([ev], empirical_lipschitz=2.0)
    assert res.certified is False and "NOT certified" in res.format_table()
    assert res.to_dict()["bound"]["kind"] == KINDS[1]


# -- the summary ----------------------------------------------------------------------------------------


def _rows_of(table: str) -> dict[str, str]:
    return {line[:33].strip(): line[33:].strip() for line in table.splitlines()}


def test_summary_names_the_point_value_an_estimate_and_the_bound_certified() -> None:
    res = _result([_evaluation(1.0)])
    table = res.format_table()
    head = next(line for line in table.splitlines() if line.startswith(LABELS["lower_bound"]))
    assert "(point estimate, estimate / L)" in head and "95% CI [" in head
    assert "the value above is an estimate" not in table and "(certified)" not in table
    assert "W1 at least" in table and "lower end of the certified bound's CI" in table
    raw = next(line for line in table.splitlines() if line.startswith(f"held-out {LABELS['estimate']}"))
    assert "before dividing by L" in raw and "bound" not in raw.replace("before dividing", "")
    assert "1 + " in next(line for line in table.splitlines() if line.startswith(LABELS["lipschitz_certificate"]))


def test_summary_of_a_loose_critic_still_states_the_certified_bound() -> None:
    res = _result([_evaluation(3.0)])
    table = res.format_table()
    head = next(line for line in table.splitlines() if line.startswith(LABELS["lower_bound"]))
    assert "loosened by 1/L, L = 3" in head
    assert "W1 at least" in table  # the interval of estimate / L is valid for any critic
    raw = next(line for line in table.splitlines() if line.startswith(f"held-out {LABELS['estimate']}"))
    assert "NOT a bound: L > 1" in raw
    assert f"{LABELS['one_lipschitz']}: no" in table


# -- the same keys and labels in estimate, compare, track and W1Monitor ----------------------------------


def test_estimate_compare_track_and_monitor_use_the_same_names() -> None:
    res = _result([_evaluation(1.0)])
    flat = [k for k in KEYS if k != "ci95"] + ["ci95_lo", "ci95_hi"]
    assert set(flat) <= set(res.to_dict()["bound"])  # result.json
    assert set(flat) <= set(Bound.from_evaluation(_evaluation(1.0), "test").to_dict())  # W1Monitor.history rows
    assert set(flat) <= set(res.curve[0])  # curve points
    point = _point(100, "G_step100.pt", res, False, Path("/t/runs/step_100"))
    assert set(flat) <= set(point)  # track.json points / track.csv columns
    assert point["ci95_lo"] == res.ci95[0] and point["lipschitz_certificate"] == res.lipschitz_certificate
    (row,) = _rows({"a": [res]})  # comparison.json rows: the same keys, taken over seeds
    for key in ("estimate_mean", "lower_bound_mean", "ci95_lo_mean", "ci95_hi_mean", "lipschitz_certificate_max"):
        assert key in row
    assert row["certified"] is True and row["one_lipschitz"] is True
    # the printed labels
    estimate_table, compare_table = res.format_table(), _markdown([row], res)
    track_table = TrackResult([point], {"warm_start": False}, None).format_table()  # type: ignore[arg-type]
    for table in (estimate_table, compare_table, track_table):
        assert LABELS["lower_bound"] in table and LABELS["ci95"] in table
    for label in ("estimate", "lipschitz_certificate", "one_lipschitz"):
        assert LABELS[label] in estimate_table and LABELS[label] in compare_table
    assert "uncertified" not in compare_table and "**no" not in compare_table


def test_a_loose_critic_is_marked_the_same_way_in_compare_and_track() -> None:
    res = _result([_evaluation(3.0)])
    (row,) = _rows({"gp": [res]})
    line = next(x for x in _markdown([row], res).splitlines() if x.startswith("| gp"))
    assert "| no (L = 3) |" in line and "(not a bound: L > 1)" in line and "NOT certified" not in line
    point = _point(5, "G.pt", res, False, Path("/t/runs/step_5"))
    table = TrackResult([point], {"warm_start": False}, None).format_table()  # type: ignore[arg-type]
    assert "not 1-Lipschitz: loosened by 1/L, L = 3" in table


# -- negative interval ends: shown as 0 with one note, everywhere ------------------------------------------


def test_negative_interval_ends_are_clipped_with_the_same_note_everywhere() -> None:
    ev = _evaluation(1.0, shift=0.0, seed=3)  # P = Q
    assert ev.bound95.lo < 0 < ev.bound95.hi
    res = _result([ev])
    assert res.ci95[0] < 0 and res.bound.lower_bound_lo < 0  # the computed ends are kept
    shown = format_interval(*res.ci95)
    assert shown.startswith("[0*, ") and format_interval(0.1, 0.2) == "[0.1000, 0.2000]"
    (row,) = _rows({"a": [res]})
    point = _point(1, "G.pt", res, False, Path("/t/runs/step_1"))
    tables = {
        "estimate": res.format_table(),
        "compare": _markdown([row], res),
        "track": TrackResult([point], {"warm_start": False}, None).format_table(),  # type: ignore[arg-type]
    }
    for name, table in tables.items():
        assert "[0*, " in table and CLIPPED_NOTE in table, name
    head = next(line for line in tables["estimate"].splitlines() if line.startswith(LABELS["lower_bound"]))
    assert "CI [0*, " in head
    assert any(note.startswith(CLIPPED_NOTE) for note in res.notes)  # result.json and W&B carry it
    fig = comparison_figure([("a", 0, res.curve)])
    band = fig.axes[0].collections[0]
    assert min(v[1] for path in band.get_paths() for v in path.vertices) >= 0.0
    assert any("below 0 drawn at 0" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


# -- "what limits the bound" follows the steps run and the curve ----------------------------------------


def _curve(points: list[tuple[int, float]], half_width: float = 0.05) -> list[dict[str, Any]]:
    hw = half_width
    return [{"step": s, "lower_bound": b, "lower_bound_lo": b - hw, "lower_bound_hi": b + hw} for s, b in points]


def test_advice_follows_the_trend() -> None:
    rising = _curve([(25, 0.07), (50, 0.10)])  # 50 steps, still rising: never "fewer steps"
    assert trend(rising)[0] == "rising"
    assert "more steps may still raise it" in advice("generalisation", rising)
    assert "fewer steps" not in advice("generalisation", rising)
    assert "more steps should raise it" in advice("optimisation or capacity", rising)
    fell = _curve([(100, 0.30), (200, 0.36), (300, 0.33), (400, 0.31)])
    assert trend(fell)[0] == "falling" and "peaked at step 200" in advice("generalisation", fell)
    assert "fewer steps" in advice("generalisation", fell)
    flat = _curve([(100, 0.2), (200, 0.3), (300, 0.301), (400, 0.302)])
    assert trend(flat)[0] == "flat" and "more steps are unlikely to help" in advice("optimisation or capacity", flat)
    assert trend(_curve([(600, 0.3)]))[0] == "unknown"


def test_result_diagnosis_carries_the_advice() -> None:
    res = _result([_evaluation(1.0, shift=0.5, step=25), _evaluation(1.0, shift=1.0, step=50)])
    assert "still rising at the last step" in res.diagnosis.text and "fewer steps" not in res.diagnosis.text


# -- plots ------------------------------------------------------------------------------------------------


def test_comparison_plot_tells_seeds_apart_and_keeps_the_curves_readable() -> None:
    curve = _curve([(10, 0.2), (20, 0.3)])
    other = _curve([(10, 0.25), (20, 0.35)])
    fig = comparison_figure(
        [("bcop", 0, curve), ("bcop", 1, other), ("gp", 0, curve)], exact_w1=None, empirical_ot=2.96,
        empirical_ot_floor=2.55,
    )  # fmt: skip
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    a, b, c = lines["bcop seed 0"], lines["bcop seed 1"], lines["gp seed 0"]
    assert a.get_color() == b.get_color() != c.get_color()  # one colour per critic
    assert a.get_linestyle() != b.get_linestyle()  # and one line style per seed
    assert ax.get_ylim()[1] < 1.0  # not squeezed under the references at 2.5-3
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "empirical OT (upper ref.) = 2.96, above the plotted range" in legend
    assert ax.get_ylabel() == BOUND_AXIS_LABEL and "certified W1 lower bound" in BOUND_AXIS_LABEL
    assert "when certified" not in BOUND_AXIS_LABEL


# -- small slips ------------------------------------------------------------------------------------------


def test_a_generator_error_ending_in_a_period_is_not_doubled() -> None:
    from wdist.sources.base import SourceError, decode_latents

    class Refuses(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            raise ValueError("it runs on latents of shape (N, 64, 1, 1): set latent_shape: [64, 1, 1].")

    with pytest.raises(SourceError) as err:
        decode_latents(Refuses(), torch.zeros(2, 64), chunk=2)
    assert "[64, 1, 1]. Expected" in str(err.value) and ".." not in str(err.value)


def test_tightness_footer_describes_the_source_when_only_translations_ran() -> None:
    from wdist.bench.tightness import format_table

    row = {
        "construction": "translation", "critic": "bcop-dcgan", "seed": 0, "exact_w1": 3.0, "lower_bound": 2.9,
        "ci95": [2.8, 3.0], "certified": True, "one_lipschitz": True, "ratio": 2.9 / 3, "estimate": 2.9,
        "train_ratio": 0.97, "limited_by": "optimisation or capacity", "seconds": 1.0, "steps": 3, "width": 0.25,
        "batch_size": 16, "lr": 0.002, "n_eval": 40, "p": "digits (200 images, 1x8x8 in [-0.5, 0.5], rescaled)",
        "shape": [1, 8, 8], "device": "cpu",
    }  # fmt: skip
    assert "P: digits (200 images" in format_table([row])
    assert math.isclose(row["ratio"], 2.9 / 3)
