"""``wdist compare``: several critics on the same P and Q, the same budget and seeds.

The comparison file (:mod:`wdist.compare_spec`) is an estimate config plus ``critics`` and
``seeds``. Every critic runs once per seed; the table reports, in the vocabulary of
:mod:`wdist.report`, the mean ± std over seeds of the certified lower bound (estimate / L, a
bound for every critic) beside the raw estimate (a bound only when L <= 1), and whether each
critic is 1-Lipschitz (L <= 1 + 1e-3; otherwise dividing by L loosens its bound). Every number is
its run's test split, at the step that run selected on its select split (:mod:`wdist.selection`).

Each test bound is valid on its own. For each seed the critic whose selected state has the highest
select-split bound (the choice ``critic.name: auto`` makes, :func:`wdist.auto.choose`) is marked
"chosen on the select split": that choice reads no test item, so the marked row's test interval
keeps its confidence, whereas picking the row with the best *test* bound would not.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from wdist.auto import CandidateRecord, choose
from wdist.compare_spec import CompareEntry, CompareSpec, parse_comparison, run_config
from wdist.config import EstimateConfig
from wdist.files import atomic_write_text, prepare_output_dir
from wdist.loggers import finish_wandb, make_loggers
from wdist.pipeline import estimate
from wdist.plots import plot_comparison
from wdist.report import CLIPPED_NOTE, LABELS, clipped, format_interval, one_lipschitz_text
from wdist.results import Result

__all__ = ["CompareEntry", "CompareSpec", "Comparison", "compare", "chosen_on_select", "format_table", "CHOSEN_MARK"]


@dataclass
class Comparison:
    """Results of every critic and seed, the aggregated rows, the rendered markdown table, the
    files written and the folder they are in."""

    results: dict[str, list[Result]]
    rows: list[dict[str, Any]]
    markdown: str
    files: dict[str, str]
    out: Path


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    return (statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


#: What the mark of the critic chosen on the select split says (table, JSON).
CHOSEN_MARK = "chosen on the select split"


def chosen_on_select(results: dict[str, list[Result]], seeds: Sequence[int]) -> dict[int, str]:
    """For each seed, the label of the certified critic whose selected state has the highest
    select-split bound (the first label of the file among equals)."""
    chosen: dict[int, str] = {}
    for i, seed in enumerate(seeds):
        runs = [
            CandidateRecord(label, r.run.critic, {}, 1.0, r.run.steps, r.run.steps, float(r.selection["value"]),
                            int(r.selection["step"]), r.run.seconds)
            for label, by_seed in results.items()
            for r in [by_seed[i]] if r.certified and r.selection.get("value") is not None
        ]  # fmt: skip
        if runs:
            chosen[int(seed)] = runs[choose(runs)].label
    return chosen


def _rows(results: dict[str, list[Result]], chosen: Optional[dict[int, str]] = None) -> list[dict[str, Any]]:
    """One row per critic over its seeds, with the keys of result.json (:data:`wdist.report.KEYS`)
    suffixed by what is taken over seeds (``_mean``, ``_std``, ``_min``, ``_max``), and
    ``chosen_on_select_split``: the seeds for which the critic was chosen on the select split."""
    chosen = chosen or {}
    rows = []
    for label, runs in results.items():
        select = [float(r.selection["value"]) for r in runs if r.selection.get("value") is not None]
        est = _mean_std([r.estimate for r in runs])
        lb = _mean_std([r.lower_bound for r in runs])
        rows.append(
            {
                "label": label,
                "critic": runs[0].run.critic,
                "loss": runs[0].run.loss,
                "certified": all(r.certified for r in runs),
                "one_lipschitz": all(r.one_lipschitz for r in runs),
                "estimate_mean": est[0],
                "estimate_std": est[1],
                "lipschitz_certificate_max": max(r.lipschitz_certificate for r in runs),
                "lower_bound_mean": lb[0],
                "lower_bound_std": lb[1],
                "ci95_lo_mean": statistics.fmean(r.ci95[0] for r in runs),
                "ci95_hi_mean": statistics.fmean(r.ci95[1] for r in runs),
                "ci95_lo_min": min(r.ci95[0] for r in runs),
                "empirical_lipschitz_max": max((r.empirical_lipschitz or 0.0) for r in runs),
                "seeds": len(runs),
                "seconds_mean": statistics.fmean(r.run.seconds for r in runs),
                "select_bound_mean": statistics.fmean(select) if select else None,
                "chosen_on_select_split": sorted(seed for seed, picked in chosen.items() if picked == label),
            }
        )
    return rows


def _markdown(rows: list[dict[str, Any]], ref: Result) -> str:
    run, refs_of = ref.run, ref.references
    lines = [
        f"P = {run.p}; Q = {run.q}; shape {tuple(run.shape)}, range {run.domain}, L2 distance; "
        f"{run.steps} steps, {ref.bound.n_eval_p} + {ref.bound.n_eval_q} test samples (P + Q), mean ± std over seeds.",
        "",
        f"| critic | loss | {LABELS['lower_bound']} (estimate / L) | {LABELS['ci95']} per seed, ends averaged "
        f"(smallest lower end) | {LABELS['estimate']} | {LABELS['lipschitz_certificate']} (max) "
        f"| {LABELS['one_lipschitz']} | largest grad norm seen | seeds | select bound (mean) | {CHOSEN_MARK} |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    n_seeds = max((r["seeds"] for r in rows), default=0)
    for r in rows:
        bound = f"{r['lower_bound_mean']:.4f} ± {r['lower_bound_std']:.4f}"
        if not r["certified"]:
            bound += " **NOT certified: INCONSISTENT** (see the runs' verdicts)"
        raw = f"{r['estimate_mean']:.4f} ± {r['estimate_std']:.4f}"
        if r["lipschitz_certificate_max"] > 1.0 and not r["one_lipschitz"]:
            raw += " (not a bound: L > 1)"
        smallest = "0*" if clipped(r["ci95_lo_min"]) else f"{r['ci95_lo_min']:.4f}"
        lines.append(
            f"| {r['label']} ({r['critic']}) | {r['loss']} | {bound} "
            f"| {format_interval(r['ci95_lo_mean'], r['ci95_hi_mean'])} ({smallest}) | {raw} "
            f"| {r['lipschitz_certificate_max']:.4g} "
            f"| {one_lipschitz_text(r['one_lipschitz'], r['lipschitz_certificate_max'])} "
            f"| {r['empirical_lipschitz_max']:.4g} | {r['seeds']} "
            f"| {'–' if r['select_bound_mean'] is None else format(r['select_bound_mean'], '.4f')} "
            f"| {_chosen_cell(r['chosen_on_select_split'], n_seeds)} |"
        )
    notes = [
        f"{CHOSEN_MARK}: for each seed, the critic whose selected state has the highest select-split bound (the "
        "choice of --critic.name auto). Each row's test bound is valid on its own; the marked one is valid as the "
        "result of that choice too, since the choice read no test item (picking the best test bound would not be)."
    ]
    if any(clipped(r["ci95_lo_min"]) for r in rows):
        notes.append(f"{CLIPPED_NOTE}.")
    if not all(r["one_lipschitz"] for r in rows):
        notes.append(
            "Every row's bound is certified (estimate / L); for a critic that is not 1-Lipschitz dividing by L "
            "loosens it, and its raw estimate is not a bound."
        )
    refs = []
    if ref.exact is not None:
        refs.append(f"exact W1 = {ref.exact.w1:.4f} ({ref.exact.method})")
    if refs_of.empirical_ot_w1 is not None:
        refs.append(
            f"empirical OT (upper reference, biased up) = {refs_of.empirical_ot_w1:.4f} "
            f"on {refs_of.empirical_ot_n} samples each"
        )
    if refs_of.empirical_ot_floor is not None:
        refs.append(
            f"empirical OT floor (P vs P) = {refs_of.empirical_ot_floor:.4f} on {refs_of.empirical_ot_floor_n} "
            "samples each"
        )
    if refs:
        notes.append("References: " + "; ".join(refs) + ".")
    return "\n".join(lines + [line for note in notes for line in ("", note)])


def format_table(payload: dict[str, Any]) -> str:
    """The table of ``comparison.md`` from the content of ``comparison.json`` (its ``rows``, and its
    first run for the problem's description and references), as ``wdist compare`` wrote it."""
    return _markdown(payload["rows"], Result.from_dict(next(iter(payload["runs"].values()))[0]))


def _chosen_cell(seeds: Sequence[int], n_seeds: int) -> str:
    if not seeds:
        return ""
    if n_seeds == 1:
        return f"**{CHOSEN_MARK}**"
    return f"**{CHOSEN_MARK}** (seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))} of {n_seeds})"


def compare(
    config: Union[str, os.PathLike, dict],
    overrides: Sequence[str] = (),
    *,
    out: Union[str, os.PathLike, None] = None,
    quiet: bool = False,
) -> Comparison:
    """Run every critic of a comparison file for every seed; write ``comparison.{md,json,png}``.

    ``overrides`` are those of the file's keys (``--seeds '[0]'``, ``--critics '[...]'``) and of
    the shared estimate config (``--train.steps 100``); see :func:`wdist.compare_spec.read_comparison`.
    """
    name, spec, shared, overrides = parse_comparison(config, overrides)
    out_dir = prepare_output_dir(out if out is not None else shared.out or f"runs/compare-{name}")
    results: dict[str, list[Result]] = {}
    for entry in spec.critics:  # one parsed configuration; every run shares its sources, built once
        for seed in spec.seeds:
            run_cfg = run_config(shared, entry, seed, name)
            res = estimate(run_cfg, out=out_dir / entry.label / f"seed{seed}", quiet=quiet)
            results.setdefault(entry.label, []).append(res)
    chosen = chosen_on_select(results, spec.seeds)
    rows = _rows(results, chosen)
    ref = next(iter(results.values()))[0]
    md = _markdown(rows, ref)
    png = plot_comparison(
        [(label, int(r.run.config.get("seed", i)), r.curve) for label, rs in results.items() for i, r in enumerate(rs)],
        out_dir / "comparison.png",
        exact_w1=None if ref.exact is None else ref.exact.w1,
        empirical_ot=ref.references.empirical_ot_w1,
        empirical_ot_floor=ref.references.empirical_ot_floor,
        title=f"{name}: {ref.run.p} vs {ref.run.q}",
    )
    payload = {
        "name": name,
        "rows": rows,
        "chosen_on_select_split": {str(seed): label for seed, label in chosen.items()},
        "runs": {label: [r.to_dict() for r in runs] for label, runs in results.items()},
    }
    atomic_write_text(out_dir / "comparison.json", json.dumps(payload, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / "comparison.md", md + "\n")
    if shared.logger.kind == "wandb":
        _log_comparison_image(out_dir, name, png, shared, rows)
    return Comparison(
        results=results,
        rows=rows,
        markdown=md,
        files={k: str(out_dir / f"comparison.{k}") for k in ("md", "json", "png")},
        out=out_dir,
    )


def _log_comparison_image(
    out_dir: Path, name: str, png: Path, shared: EstimateConfig, rows: Sequence[dict[str, Any]] = ()
) -> None:
    """One extra run in the comparison's W&B group holding the overlaid plot and the rows (as the
    summary ``<label>/<key>``, with the keys of comparison.json)."""
    lg = shared.logger
    loggers = make_loggers(out_dir / "wandb-summary", "wandb", lg.project, lg.group or name, f"{name}-summary")
    summary = {f"{r['label']}/{k}": v for r in rows for k, v in r.items() if k != "label"}
    finish_wandb(loggers, summary=summary, images={"comparison": png})
