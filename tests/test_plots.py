"""Plots: the bound curve and the comparison, readable as saved."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread

from wdist import plots

LONG = (
    "bcop-dcgan: Digits (sklearn 8x8 digits, 1797 items, 1x8x8 in [-1, 1]) vs generator digits/wgan-gp-8 "
    "(normal latent of 16, 1x8x8 in [-1, 1] from [-1, 1], batch-norm on batch statistics, checkpoint "
    "/a/long/path/to/a/checkpoint/file/of/the/generator.pt)"
)
CURVE = [
    {"step": s, "estimate": 0.3, "lower_bound": 0.3, "lower_bound_lo": 0.25, "lower_bound_hi": 0.35} for s in (10, 20)
]


def test_long_titles_are_wrapped_inside_the_figure(tmp_path: Path) -> None:
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    plots._title(ax, LONG, fig.get_figwidth())
    renderer = FigureCanvasAgg(fig).get_renderer()
    box = ax.title.get_window_extent(renderer)
    assert 1 < len(ax.title.get_text().splitlines()) <= 3
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width  # no line runs off the figure


def test_plots_are_written(tmp_path: Path) -> None:
    a = plots.plot_bound_curve(CURVE, tmp_path / "a.png", exact_w1=0.4, title=LONG)
    b = plots.plot_comparison([("x", 0, CURVE)], tmp_path / "b.png", exact_w1=0.4, title=LONG)
    assert a.stat().st_size > 1000 and b.stat().st_size > 1000


def test_bound_curve_shows_the_train_subset_and_the_gap(tmp_path: Path) -> None:
    train = {"train": {"lower_bound": 0.5, "lower_bound_lo": 0.45, "lower_bound_hi": 0.55}}
    plain = plots.plot_bound_curve(CURVE, tmp_path / "plain.png")
    both = plots.plot_bound_curve([{**c, **train} for c in CURVE], tmp_path / "both.png")
    # a second panel (the gap) makes the figure taller
    assert imread(both).shape[0] > imread(plain).shape[0]


def test_bound_curve_marks_the_reported_test_bound(tmp_path: Path) -> None:
    plain = imread(plots.plot_bound_curve(CURVE, tmp_path / "plain.png"))
    step = CURVE[0]["step"]
    marked = imread(plots.plot_bound_curve(CURVE, tmp_path / "marked.png", reported=(step, 0.3, 0.25, 0.35)))
    assert plain.shape == marked.shape and not (plain == marked).all()
    red = (marked[..., 0] > 0.8) & (marked[..., 1] < 0.3) & (marked[..., 2] < 0.3)  # tab:red, the test point
    assert red.sum() > 20 and not ((plain[..., 0] > 0.8) & (plain[..., 1] < 0.3) & (plain[..., 2] < 0.3)).any()
