"""``wdist compare``: several critics on the same P and Q, the same budget and seeds.

A comparison file is an estimate config (P, Q, train, eval, ...) plus two keys::

    critics:
      - {label: bcop, name: bcop-dcgan, options: {width: 0.25}}
      - {label: gp,   name: gp-dcgan,   options: {width: 0.25}, loss: wgan-gp}
    seeds: [0, 1, 2]

Every critic runs once per seed; the table reports mean ± std over seeds of the raw held-out
estimate and of the lower bound (estimate / certificate), side by side, so an uncertified
critic's raw number is never mistaken for a bound.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import yaml
from jsonargparse import ArgumentParser
from jsonargparse.typing import NonNegativeInt, PositiveFloat

from wdist.config import ConfigError, _explain, check_critic
from wdist.files import atomic_write_text, prepare_output_dir
from wdist.loggers import finish_wandb, make_loggers
from wdist.pipeline import estimate
from wdist.plots import plot_comparison
from wdist.results import Result

__all__ = ["CompareEntry", "CompareSpec", "Comparison", "compare"]


@dataclass
class CompareEntry:
    """One critic of a comparison: a label for the table, a registry name, options, its loss
    (``None``: the one the critic family is made for, see ``critics.default_loss``)."""

    label: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    loss: Optional[Literal["kr", "wgan-gp"]] = None
    lr: Optional[PositiveFloat] = None


@dataclass
class CompareSpec:
    critics: list[CompareEntry]
    seeds: list[NonNegativeInt] = field(default_factory=lambda: [0])


@dataclass
class Comparison:
    """Results of every critic and seed, the aggregated rows and the rendered markdown table."""

    results: dict[str, list[Result]]
    rows: list[dict[str, Any]]
    markdown: str
    files: dict[str, str]


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    return (statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def _parse_spec(data: dict) -> CompareSpec:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(CompareSpec, None)
    try:
        ns = parser.parse_object({k: data[k] for k in ("critics", "seeds") if k in data})
        init = parser.instantiate(ns)
    except Exception as err:
        raise ConfigError(_explain(parser, str(err.__cause__ or err))) from None
    spec = CompareSpec(critics=init["critics"], seeds=init["seeds"])
    if not spec.critics:
        raise ConfigError("Invalid comparison: 'critics' is empty; list at least one {label, name} entry.")
    labels = [c.label for c in spec.critics]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"Invalid comparison: critic labels must be distinct; got {labels}.")
    for i, entry in enumerate(spec.critics):  # every entry checked before the first run trains
        check_critic(entry.name, entry.options, where=f"critics[{i}] ({entry.label!r})")
    return spec


def _rows(results: dict[str, list[Result]]) -> list[dict[str, Any]]:
    rows = []
    for label, runs in results.items():
        est = _mean_std([r.estimate for r in runs])
        lb = _mean_std([r.lower_bound for r in runs])
        cert = [r.lipschitz_certificate for r in runs]
        certified = all(r.certified for r in runs)
        rows.append(
            {
                "label": label,
                "critic": runs[0].critic,
                "loss": runs[0].loss,
                "certified": certified,
                "estimate_mean": est[0],
                "estimate_std": est[1],
                "certificate_max": max(cert),
                "lower_bound_mean": lb[0],
                "lower_bound_std": lb[1],
                "ci95_lo_mean": statistics.fmean(r.ci95[0] for r in runs),
                "ci95_hi_mean": statistics.fmean(r.ci95[1] for r in runs),
                "ci95_lo_min": min(r.ci95[0] for r in runs),
                "empirical_lipschitz_max": max((r.empirical_lipschitz or 0.0) for r in runs),
                "seeds": len(runs),
                "seconds_mean": statistics.fmean(r.seconds for r in runs),
            }
        )
    return rows


def _markdown(rows: list[dict[str, Any]], ref: Result) -> str:
    lines = [
        f"P = {ref.p}; Q = {ref.q}; shape {tuple(ref.shape)}, range {ref.domain}, L2 distance; "
        f"{ref.steps} steps, {ref.n_eval_p} + {ref.n_eval_q} held-out samples (P + Q), mean ± std over seeds.",
        "",
        "| critic | loss | certified | W1 lower bound (estimate / L) "
        "| per-seed 95% CI, ends averaged (smallest lower end) | raw estimate E_P f - E_Q f | certificate L (max) "
        "| largest grad norm seen | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        raw = f"{r['estimate_mean']:.4f} ± {r['estimate_std']:.4f}"
        if not r["certified"]:
            raw += " (not a bound)"
        lines.append(
            f"| {r['label']} ({r['critic']}) | {r['loss']} | {'yes' if r['certified'] else '**no: uncertified**'} | "
            f"{r['lower_bound_mean']:.4f} ± {r['lower_bound_std']:.4f} "
            f"| [{r['ci95_lo_mean']:.4f}, {r['ci95_hi_mean']:.4f}] ({r['ci95_lo_min']:.4f}) | "
            f"{raw} | {r['certificate_max']:.4g} | {r['empirical_lipschitz_max']:.4g} | {r['seeds']} |"
        )
    refs = []
    if ref.exact_w1 is not None:
        refs.append(f"exact W1 = {ref.exact_w1:.4f} ({ref.exact_w1_method})")
    if ref.empirical_ot_w1 is not None:
        refs.append(
            f"empirical OT (upper reference, biased up) = {ref.empirical_ot_w1:.4f} "
            f"on {ref.empirical_ot_n} samples each"
        )
    if ref.empirical_ot_floor is not None:
        refs.append(
            f"empirical OT floor (P vs P) = {ref.empirical_ot_floor:.4f} on {ref.empirical_ot_floor_n} samples each"
        )
    if refs:
        lines += ["", "References: " + "; ".join(refs) + "."]
    return "\n".join(lines)


def compare(
    config: Union[str, os.PathLike, dict],
    overrides: Sequence[str] = (),
    *,
    out: Union[str, os.PathLike, None] = None,
    quiet: bool = False,
) -> Comparison:
    """Run every critic of a comparison file for every seed; write ``comparison.{md,json,png}``.

    ``overrides`` apply to the shared estimate config (e.g. ``["--train.steps", "100"]``).
    """
    if isinstance(config, dict):
        data = dict(config)
        name = "comparison"
    else:
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"Comparison file {str(path)!r} does not exist (e.g. configs/compare/digits.yaml).")
        data = yaml.safe_load(path.read_text()) or {}
        name = path.stem
    spec = _parse_spec(data)
    base = {k: v for k, v in data.items() if k not in ("critics", "seeds")}
    base.setdefault("logger", {})
    out_dir = prepare_output_dir(out if out is not None else base.get("out") or f"runs/compare-{name}")
    base["out"] = None
    results: dict[str, list[Result]] = {}
    for entry in spec.critics:
        for seed in spec.seeds:
            run_cfg = json.loads(json.dumps(base))
            run_cfg["critic"] = {"name": entry.name, "options": json.loads(json.dumps(entry.options))}
            if entry.loss is not None:  # else the critic family's own loss
                run_cfg.setdefault("train", {})["loss"] = entry.loss
            if entry.lr is not None:
                run_cfg["train"]["lr"] = float(entry.lr)
            run_cfg["seed"] = int(seed)
            run_cfg["logger"] = {
                **run_cfg.get("logger", {}),
                "group": run_cfg.get("logger", {}).get("group") or name,
                "name": f"{entry.label}-seed{seed}",
            }
            res = estimate(run_cfg, overrides, out=out_dir / entry.label / f"seed{seed}", quiet=quiet)
            results.setdefault(entry.label, []).append(res)
    rows = _rows(results)
    ref = next(iter(results.values()))[0]
    md = _markdown(rows, ref)
    png = plot_comparison(
        [
            (f"{label} seed{r.config.get('seed', i)}", r.curve)
            for label, runs in results.items()
            for i, r in enumerate(runs)
        ],
        out_dir / "comparison.png",
        exact_w1=ref.exact_w1,
        empirical_ot=ref.empirical_ot_w1,
        empirical_ot_floor=ref.empirical_ot_floor,
        title=f"{name}: {ref.p} vs {ref.q}",
    )
    payload = {
        "name": name,
        "rows": rows,
        "runs": {label: [r.to_dict() for r in runs] for label, runs in results.items()},
    }
    atomic_write_text(out_dir / "comparison.json", json.dumps(payload, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / "comparison.md", md + "\n")
    if base.get("logger", {}).get("kind") == "wandb" or "wandb" in overrides:
        _log_comparison_image(out_dir, name, png, base)
    return Comparison(
        results=results,
        rows=rows,
        markdown=md,
        files={k: str(out_dir / f"comparison.{k}") for k in ("md", "json", "png")},
    )


def _log_comparison_image(out_dir: Path, name: str, png: Path, base: dict) -> None:
    """One extra run in the comparison's W&B group holding the overlaid plot and the table."""
    lg = base.get("logger", {})
    loggers = make_loggers(
        out_dir / "wandb-summary", "wandb", lg.get("project", "wdist"), lg.get("group") or name, f"{name}-summary"
    )
    finish_wandb(loggers, images={"comparison": png})
