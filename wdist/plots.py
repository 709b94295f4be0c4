"""Plots: the bound curve of one run (the select split, with the reported test bound), the overlaid
curves of a comparison, a track.

Every plot of a W1 lower bound uses the vocabulary of :mod:`wdist.report`: the curve is the
certified lower bound (estimate / L), its band the interval, a lower end below 0 drawn at 0
(:data:`~wdist.report.CLIPPED_NOTE`, said in the legend). The y-axis spans the curves and the exact
W1; an empirical-OT reference far above them is named in the legend instead of squeezing the curves.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Iterable, Optional, Sequence

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from wdist.report import LABELS

__all__ = [
    "plot_bound_curve",
    "plot_comparison",
    "comparison_figure",
    "plot_tightness",
    "plot_track",
    "BOUND_AXIS_LABEL",
    "OFF_SCALE",
]

#: The y-axis of every plot of a lower bound.
BOUND_AXIS_LABEL = f"{LABELS['lower_bound']} (estimate / L)\nW1: L2, in the stated domain"
#: A reference higher than this multiple of the top of the curves (and of the exact W1) is not drawn
#: as a line but named in the legend.
OFF_SCALE = 1.6
#: Line styles of the seeds of one critic (its colour is the critic's).
_SEED_STYLES = ("-", "--", ":", "-.")


def _figure(size: tuple[float, float]) -> tuple[Figure, Axes]:
    """A figure not attached to pyplot: no window, no backend switch, fine inside notebooks."""
    fig = Figure(figsize=size)
    return fig, fig.subplots()


def _save(fig: Figure, path: os.PathLike | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def _title(ax: Axes, text: str, width_inches: float) -> None:
    """A title wrapped to the figure's width (about 13 characters per inch at 9 pt), at most 3 lines."""
    lines = textwrap.wrap(text, width=max(20, int(13 * width_inches)))
    if len(lines) > 3:
        lines = lines[:3]
        lines[-1] = lines[-1][: max(0, len(lines[-1]) - 3)] + "..."
    ax.set_title("\n".join(lines), fontsize=9)


def _band(ax: Axes, steps: Sequence[float], lo: Sequence[float], hi: Sequence[float], **kwargs) -> bool:
    """The interval band of a lower bound, its ends below 0 drawn at 0; whether any was."""
    ax.fill_between(steps, [max(v, 0.0) for v in lo], [max(v, 0.0) for v in hi], lw=0, **kwargs)
    return any(v < 0 for v in lo)


def _clipped_legend(ax: Axes) -> None:
    """A legend entry saying that band ends below 0 are drawn at 0 (W1 >= 0)."""
    ax.plot([], [], " ", label="interval ends below 0 drawn at 0 (W1 >= 0)")


def _references(
    ax: Axes,
    exact_w1: Optional[float],
    empirical_ot: Optional[float],
    floor: Optional[float],
    top: Optional[float] = None,
) -> None:
    """The exact W1 and the empirical-OT references as horizontal lines, and the y-axis from 0 to
    the curves' ``top``: a reference above :data:`OFF_SCALE` times the highest of ``top`` and the
    exact W1 is named in the legend ("above the plotted range") instead of drawn."""
    if exact_w1 is not None:
        ax.axhline(exact_w1, color="k", lw=1.5, label=f"exact W1 = {exact_w1:.3g}")
    shown = max([v for v in (top, exact_w1) if v is not None], default=None)
    highest = shown
    for value, style, text in (
        (empirical_ot, dict(color="0.4", ls="--", lw=1.2), "empirical OT (upper ref.)"),
        (floor, dict(color="0.6", ls=":", lw=1.2), "empirical OT floor, P vs P"),
    ):
        if value is None:
            continue
        if shown is not None and shown > 0 and value > OFF_SCALE * shown:
            ax.add_line(Line2D([], [], **style, label=f"{text} = {value:.3g}, above the plotted range"))
        else:
            ax.axhline(value, **style, label=f"{text} = {value:.3g}")
            highest = value if highest is None else max(highest, value)
    if highest is not None and highest > 0:
        ax.set_ylim(0.0, 1.08 * highest)


def plot_bound_curve(
    curve: Sequence[dict],
    path: os.PathLike | str,
    exact_w1: Optional[float] = None,
    empirical_ot: Optional[float] = None,
    empirical_ot_floor: Optional[float] = None,
    one_lipschitz: bool = True,
    title: str = "",
    reported: Optional[tuple[int, float, float, float]] = None,
) -> Path:
    """Select-split certified lower bound (estimate / certificate) against training step, with its CI
    band; when the critic is not 1-Lipschitz (``one_lipschitz`` false) the raw estimate is drawn
    dashed beside it (not a bound). ``reported = (step, bound, lo, hi)`` marks the reported bound
    (the test split, evaluated once on the selected state) at its step, with its interval.

    When the curve points carry the train-subset diagnosis (``train``: its bound record,
    :meth:`wdist.evaluation.Evaluation.point`), its curve is drawn beside the bound (dashed: not a
    bound) and a lower panel shows the gap ``train - select`` (W1 units): a gap above zero beyond
    the bands means the bound is limited by generalisation.
    """
    with_train = bool(curve) and all(c.get("train") is not None for c in curve)
    if with_train:
        fig = Figure(figsize=(6.4, 5.4))
        ax, gap_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    else:
        fig, ax = _figure((6.4, 4.0))
    top: Optional[float] = None
    clipped = False
    if curve:
        steps = [c["step"] for c in curve]
        los, his = [c["lower_bound_lo"] for c in curve], [c["lower_bound_hi"] for c in curve]
        clipped = _band(ax, steps, los, his, alpha=0.25)
        label = f"{LABELS['lower_bound']} (select split)" + ("" if one_lipschitz else ", loosened by 1/L")
        ax.plot(steps, [c["lower_bound"] for c in curve], marker="o", ms=3, label=label)
        top = max(c["lower_bound_hi"] for c in curve)
        if not one_lipschitz:
            raw = f"{LABELS['estimate']} (not a bound: L > 1)"
            ax.plot(steps, [c["estimate"] for c in curve], ls="--", lw=1, label=raw)
            top = max(top, max(c["estimate"] for c in curve))
    if reported is not None:
        step, bound, lo, hi = reported
        ax.errorbar(
            [step], [bound], yerr=[[bound - lo], [hi - bound]], color="tab:red", marker="D", ms=5, capsize=3,
            label=f"reported: test split at step {step} = {bound:.3g}",
        )  # fmt: skip
        top = max(top or hi, hi)
    if with_train:
        color = "tab:orange"
        ax.fill_between(
            steps, [c["train"]["lower_bound_lo"] for c in curve], [c["train"]["lower_bound_hi"] for c in curve],
            color=color, alpha=0.15, lw=0,
        )  # fmt: skip
        ax.plot(
            steps, [c["train"]["lower_bound"] for c in curve], color=color, ls="--", marker="s", ms=3,
            label="same on the train subset (diagnosis, not a bound)",
        )  # fmt: skip
        gap_ax.axhline(0.0, color="0.5", lw=0.8)
        gaps = [c["train"]["lower_bound"] - c["lower_bound"] for c in curve]
        gap_ax.plot(steps, gaps, color=color, marker="s", ms=3)
        gap_ax.set_ylabel("train - select", fontsize=8)
        gap_ax.set_xlabel("training step")
        gap_ax.grid(alpha=0.3)
        top = max(top or 0.0, max(c["train"]["lower_bound_hi"] for c in curve))
    else:
        ax.set_xlabel("training step")
    if clipped:
        _clipped_legend(ax)
    _references(ax, exact_w1, empirical_ot, empirical_ot_floor, top)
    ax.set_ylabel(BOUND_AXIS_LABEL)
    _title(ax, title or "bound curve (select split)", fig.get_figwidth())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def comparison_figure(
    runs: Iterable[tuple[str, int, Sequence[dict]]],
    exact_w1: Optional[float] = None,
    empirical_ot: Optional[float] = None,
    empirical_ot_floor: Optional[float] = None,
    title: str = "",
) -> Figure:
    """Bound curves of several critics and seeds, ``(critic label, seed, curve)``, overlaid: one
    colour per critic, one line style per seed (solid, dashed, dotted, dash-dot), CI bands shaded."""
    fig, ax = _figure((7.2, 4.4))
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    critic_colors: dict[str, str] = {}
    seed_styles: dict[int, str] = {}
    top: Optional[float] = None
    clipped = False
    for label, seed, curve in runs:
        if not curve:
            continue
        color = critic_colors.setdefault(label, colors[len(critic_colors) % len(colors)])
        style = seed_styles.setdefault(int(seed), _SEED_STYLES[len(seed_styles) % len(_SEED_STYLES)])
        steps = [c["step"] for c in curve]
        his = [c["lower_bound_hi"] for c in curve]
        clipped |= _band(ax, steps, [c["lower_bound_lo"] for c in curve], his, color=color, alpha=0.12)
        ax.plot(steps, [c["lower_bound"] for c in curve], color=color, ls=style, lw=1.3, label=f"{label} seed {seed}")
        top = max(his) if top is None else max(top, max(his))
    if clipped:
        _clipped_legend(ax)
    _references(ax, exact_w1, empirical_ot, empirical_ot_floor, top)
    ax.set_xlabel("training step")
    ax.set_ylabel(BOUND_AXIS_LABEL)
    _title(ax, title or "critic comparison", fig.get_figwidth())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def plot_comparison(
    runs: Iterable[tuple[str, int, Sequence[dict]]],
    path: os.PathLike | str,
    exact_w1: Optional[float] = None,
    empirical_ot: Optional[float] = None,
    empirical_ot_floor: Optional[float] = None,
    title: str = "",
) -> Path:
    """:func:`comparison_figure`, saved to ``path`` (PNG); returns the path."""
    return _save(comparison_figure(runs, exact_w1, empirical_ot, empirical_ot_floor, title), path)


def plot_track(points: Sequence[dict], path: os.PathLike | str, title: str = "") -> Path:
    """Held-out certified W1 lower bound of each generator checkpoint against its GAN step, with the
    interval band (the run's confidence); points of critics that are not 1-Lipschitz (loosened by
    1/L) drawn hollow. The step axis is logarithmic when the steps are positive and span more than
    a decade."""
    fig, ax = _figure((6.4, 4.0))
    if points:
        steps = [p["gan_step"] for p in points]
        clipped = _band(
            ax, steps, [p["lower_bound_lo"] for p in points], [p["lower_bound_hi"] for p in points], alpha=0.25,
            label=f"{100 * points[0]['confidence']:.0f}% interval (held-out)",
        )  # fmt: skip
        ax.plot(steps, [p["lower_bound"] for p in points], lw=1.3, label=LABELS["lower_bound"])
        for p in points:
            ax.plot(p["gan_step"], p["lower_bound"], "o", ms=5, color="C0", mfc="C0" if p["one_lipschitz"] else "white")
        if not all(p["one_lipschitz"] for p in points):
            ax.plot([], [], "o", ms=5, color="C0", mfc="white", label="critic not 1-Lipschitz: loosened by 1/L")
        if clipped:
            _clipped_legend(ax)
        ax.set_ylim(0.0, 1.08 * max(max(p["lower_bound_hi"] for p in points), 1e-12))
        if min(steps) > 0 and max(steps) > 10 * min(steps):
            ax.set_xscale("log")
    ax.set_xlabel("GAN training step (checkpoint)")
    ax.set_ylabel(BOUND_AXIS_LABEL)
    _title(ax, title or "W1 through training", fig.get_figwidth())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def plot_tightness(rows: Sequence[dict], path: os.PathLike | str) -> Path:
    """Bars of certified bound / exact W1 (mean over seeds; the error bar spans from the lowest to
    the highest end of the seeds' 95% intervals of bound / W1, one seed's interval when there is
    one seed) and of the train-subset value / W1, per construction and critic."""
    import numpy as np

    constructions = list(dict.fromkeys(r["construction"] for r in rows))
    names = list(dict.fromkeys(r["critic"] for r in rows))
    fig, ax = _figure((max(5.0, 1.6 * len(constructions) * max(1, len(names)) ** 0.5), 3.6))
    width = 0.8 / max(1, len(names))
    for k, critic in enumerate(names):
        xs, ys, lo, hi, train = [], [], [], [], []
        for i, c in enumerate(constructions):
            group = [r for r in rows if r["construction"] == c and r["critic"] == critic]
            if not group:
                continue
            ratio = float(np.mean([r["ratio"] for r in group]))
            xs.append(i + (k - (len(names) - 1) / 2) * width)
            ys.append(ratio)
            lo.append(max(0.0, ratio - min(r["ratio_ci95"][0] for r in group)))
            hi.append(max(0.0, max(r["ratio_ci95"][1] for r in group) - ratio))
            t = [r["train_ratio"] for r in group if r.get("train_ratio") is not None]
            train.append(float(np.mean(t)) if t else np.nan)
        ax.bar(xs, ys, width=width * 0.9, yerr=[lo, hi], capsize=3, label=critic)
        ax.scatter(xs, train, marker="_", s=200, color="k", zorder=3, label="train subset" if k == 0 else None)
    ax.axhline(1.0, color="k", lw=1)
    ax.set_xticks(range(len(constructions)), constructions, fontsize=8)
    ax.set_ylabel("certified bound / exact W1")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _title(ax, "How tight is the bound? Known-W1 pairs Q = T(P)", 6.0)
    return _save(fig, path)
