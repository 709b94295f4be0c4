r"""``wdist bench tightness``: how close the certified bound comes to a known W1 on real images.

For every requested construction (a pair P, Q = T(P) with exact W1, :mod:`wdist.problems.pairs`)
and every requested critic family, one ``wdist estimate`` at the same budget (steps, width, batch,
learning rate, seeds) on one image source, then the ratio ``lower_bound / exact_w1``. Each row also
carries the train-subset value and the diagnosis of the evaluation (is the bound limited by
optimisation/capacity or by generalisation) and the training seconds.

Constructions (``--constructions``): ``translation`` (a constant brightness shift),
``translation-smooth``, ``translation-checkerboard``, ``translation-signs`` (seeded ±c entries: the
high-frequency case), ``dilation`` (about the mean image, factor ``--factor``: every linear critic
scores 0 there, since E(X - c) = 0, so only the radial one counts), ``dilation-middle`` (about the
middle of the domain, where a linear critic already gets (1 - factor) ||E X - c||) and ``anchors`` (each
image moved ``--fraction`` of the way to the nearest of ``--anchors`` anchor images: the optimal
critic is nonlinear). Translations are scaled to ``--norm`` and the base is rescaled into the
range that keeps P + v in [-1, 1] (said in P's description).

``funnels`` is the ray-monotone MinFunnel pair of Korotin, Kolesov & Burnaev (NeurIPS 2022,
:mod:`wdist.problems.funnels`) with the paper's parameters: on ``--source cube`` (vectors, Q uniform
on [-2.5, 2.5]^``--dim``) ``--funnels`` funnels, deg 8, h 2.5, seed 987; around an image source
centres uniform in [-1, 1]^D, h 1.2, deg 10 for one funnel and 100 otherwise, seed 295 (``--deg``
overrides). ``--items N`` makes both sides finite (N items each, from independent base samples);
without it the vector sides are infinite samplers. The paper's published solver results for the same
cell (:mod:`wdist.bench.korotin2022`: uncertified estimates from infinite samplers) are printed
under the table, beside ours. Held-out sets of the funnel pairs are independent (Welch interval).

The held-out Q items are the images of the held-out P items (Q follows P's split), so the
interval is the paired one on ``f(x_i) - f(T(x_i))``. Sizes: ``--n-eval`` held-out items of each
side. Writes ``DIR/tightness.json`` (the rows), ``DIR/tightness.md`` (the table) and
``DIR/tightness.png`` (bound / W1 per construction and critic).

Defaults: the CPU budget on the bundled digits at 32 x 32 (minutes per cell on 2 cores); with CUDA
the GPU budget (wider critics, more steps, larger batches) unless set explicitly.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

import critics
from wdist.bench._provenance import provenance, write_result
from wdist.bench._timing import describe_device
from wdist.bench.korotin2022 import SOURCE, published_row
from wdist.files import atomic_write_text, prepare_output_dir
from wdist.report import format_interval

__all__ = [
    "CONSTRUCTIONS",
    "Budget",
    "Transports",
    "CriticSpec",
    "parse_critic",
    "resolve_critic",
    "construction_config",
    "Funnels",
    "published_lines",
    "source_config",
    "run_tightness",
    "format_table",
    "cli",
]

#: Construction names accepted by ``--constructions``: (pair class, fixed init args).
CONSTRUCTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "translation": ("TranslatedPair", {"pattern": "constant"}),
    "translation-smooth": ("TranslatedPair", {"pattern": "smooth"}),
    "translation-checkerboard": ("TranslatedPair", {"pattern": "checkerboard"}),
    "translation-signs": ("TranslatedPair", {"pattern": "signs"}),
    "dilation": ("DilatedPair", {"center": "mean"}),
    "dilation-middle": ("DilatedPair", {"center": "middle"}),
    "anchors": ("AnchorPair", {}),
    "funnels": ("FunnelPair", {}),
}

#: ``cube`` is the vector base of the funnel pairs (uniform on [-2.5, 2.5]^dim); the others are images.
SOURCES = ("digits", "cifar10", "stl10", "folder", "file", "cube")


@dataclass(frozen=True)
class Funnels:
    """The MinFunnel cell: vector dimension (``cube`` source), number of funnels, finite item count
    (``None``: infinite samplers) and the exponent (``None``: the paper's for the base)."""

    dim: int = 64
    funnels: int = 4
    items: Optional[int] = None
    deg: Optional[float] = None


@dataclass(frozen=True)
class Transports:
    """The transports T of the image constructions: ``norm`` = ||v|| of the translations, the dilation
    ``factor``, and for ``anchors`` the number of anchor images and the ``fraction`` of the way to the
    nearest one each image moves."""

    norm: float = 3.0
    factor: float = 0.8
    anchors: int = 8
    fraction: float = 0.5


@dataclass(frozen=True)
class Budget:
    """What every (construction, critic) cell gets: optimiser steps, critic width, batch, learning
    rate (Adam, cosine schedule to 0), held-out items per side and the seeds."""

    steps: int
    width: float
    batch_size: int
    lr: float
    n_eval: int
    seeds: tuple[int, ...]


#: The CPU budget (bundled digits at 32 x 32, 2 cores) and the GPU one.
CPU_BUDGET = Budget(steps=600, width=0.25, batch_size=128, lr=2e-3, n_eval=500, seeds=(0,))
GPU_BUDGET = Budget(steps=4000, width=1.0, batch_size=256, lr=1e-3, n_eval=500, seeds=(0, 1, 2))


def source_config(name: str, root: Optional[str], resize: Optional[int], limit: Optional[int]) -> dict[str, Any]:
    """The ``class_path``/``init_args`` of the image source ``name`` (see :data:`SOURCES`)."""
    args: dict[str, Any] = {}
    if resize is not None:
        args["resize"] = resize
    if limit is not None:
        args["limit"] = limit
    if name == "digits":
        return {"class_path": "Digits", "init_args": args}
    if name == "cube":
        return {"class_path": "cube", "init_args": {}}
    if root is None:
        raise ValueError(f"--source {name} needs --root (the data folder, or the file for --source file)")
    classes = {"cifar10": "CIFAR10", "stl10": "STL10", "folder": "ImageFolder"}
    if name == "file":
        return {"class_path": "TensorFile", "init_args": {"path": root, **args}}
    if name not in classes:
        raise ValueError(f"unknown --source {name!r}; choose one of {', '.join(SOURCES)}")
    return {"class_path": classes[name], "init_args": {"root": root, **args}}


def construction_config(
    name: str, source: dict[str, Any], transports: Transports = Transports(), funnels: Funnels = Funnels()
) -> dict[str, Any]:
    """The ``toy`` entry of a construction around ``source``."""
    if name not in CONSTRUCTIONS:
        raise ValueError(f"unknown construction {name!r}; choose from {', '.join(CONSTRUCTIONS)}")
    cls, fixed = CONSTRUCTIONS[name]
    cube = source.get("class_path") == "cube"
    if cube and cls != "FunnelPair":
        raise ValueError(f"--source cube (vectors) takes the funnels construction only; got {name!r}")
    if cls == "FunnelPair":
        return {"class_path": cls, "init_args": _funnel_args(source, cube, funnels)}
    args: dict[str, Any] = {"source": source, **fixed}
    if cls == "TranslatedPair":
        args.update(norm=transports.norm, rescale=True)
    elif cls == "DilatedPair":
        args.update(factor=transports.factor)
    else:
        args.update(anchors=transports.anchors, fraction=transports.fraction)
    return {"class_path": cls, "init_args": args}


def _funnel_args(source: dict[str, Any], cube: bool, cell: Funnels) -> dict[str, Any]:
    """The paper's parameters: vectors deg 8, h 2.5, seed 987 (uniform base); images h 1.2, deg 10
    (one funnel) or 100, seed 295, centres uniform in [-1, 1]^D."""
    if cube:
        args: dict[str, Any] = {"dim": cell.dim, "funnels": cell.funnels, "deg": 8.0, "half_width": 2.5, "seed": 987}
    else:
        deg = 10.0 if cell.funnels == 1 else 100.0
        args = {"source": source, "funnels": cell.funnels, "deg": deg, "half_width": 1.2, "seed": 295}
    if cell.deg is not None:
        args["deg"] = float(cell.deg)
    if cell.items is not None:
        args["items"] = int(cell.items)
    return args


def resolve_critic(name: str) -> str:
    """A registered critic name, or the one image critic (not ``*-mlp``) whose family is ``name``
    (``soc`` -> ``soc-lipconvnet``, ``gp`` -> ``gp-dcgan``)."""
    names = critics.available()
    if name in names:
        return name
    # a family names its plain image critic: not the dense (*-mlp) nor the cone-headed (*-cones) one
    family = [c for c in names if c.split("-")[0] == name and not c.endswith(("-mlp", "-cones"))]
    if len(family) == 1:
        return family[0]
    raise ValueError(f"unknown critic {name!r}; available: {', '.join(names)} (or a family: bcop, soc, gp, ...)")


@dataclass(frozen=True)
class CriticSpec:
    """One critic column of the benchmark: a registered ``name``, the ``options`` given for it
    (beside the budget's width) and the ``label`` its rows carry (``name`` alone without options)."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        said = ", ".join(f"{k}: {v}" for k, v in self.options)
        return f"{self.name} ({said})" if said else self.name


def parse_critic(spec: str) -> CriticSpec:
    """``NAME`` or ``NAME:KEY=VALUE,KEY=VALUE``: a registered critic or family (:func:`resolve_critic`)
    with options of its entrypoint, each value read as YAML (``cones:init=kmeans``,
    ``soc:grid_cost=0``, ``cones:parts=[linear, up],centres=16``)."""
    import yaml

    name, _, said = spec.partition(":")
    name = resolve_critic(name)
    known = critics.critic_options(name)
    options = []
    for item in filter(None, re.split(r",(?=\s*\w+=)", said)):  # a comma inside a value stays in it
        key, eq, value = item.partition("=")
        if not eq or key not in known or key == "width":
            raise ValueError(
                f"critic {spec!r}: option {item!r} is not KEY=VALUE with KEY an option of {name!r} "
                f"({', '.join(k for k in known if k != 'width')}; the width is --width)"
            )
        options.append((key, yaml.safe_load(value)))
    return CriticSpec(name, tuple(options))


def _critic_options(critic: CriticSpec, width: float) -> dict[str, Any]:
    """The critic's own options and the budget's width for a critic whose ``width`` is a multiplier
    (the image critics); a dense critic's width is a whole number of units, left at its default."""
    options = critics.critic_options(critic.name)
    multiplier = "width" in options and (options["width"] is None or isinstance(options["width"], float))
    return {**({"width": width} if multiplier else {}), **dict(critic.options)}


def _config(toy: dict[str, Any], critic: CriticSpec, budget: Budget, seed: int, accelerator: str) -> dict[str, Any]:
    paired = toy["class_path"] != "FunnelPair"  # Q = T(P) item by item; the funnel sides are independent
    return {
        "toy": toy,
        "critic": {"name": critic.name, "options": _critic_options(critic, budget.width)},
        "train": {
            "steps": budget.steps, "batch_size": budget.batch_size, "lr": budget.lr, "schedule": "cosine",
            "eval_every": budget.steps,
        },
        "trainer": {"accelerator": accelerator, "enable_progress_bar": False},
        "eval": {
            "n_eval": budget.n_eval, "batch_size": min(budget.n_eval, 1000), "paired": paired, "ot_samples": 0,
            "ot_floor": False,
        },
        "seed": seed,
    }  # fmt: skip


def _published_cell(toy: dict[str, Any], shape: Sequence[int]) -> Optional[dict[str, Any]]:
    """The key of the published results of a funnel cell: (kind, dimension, funnels); images are
    matched to the paper's CIFAR-10 cells by funnel count (another base: said where printed)."""
    if toy["class_path"] != "FunnelPair":
        return None
    args = toy["init_args"]
    funnels, dim = int(args["funnels"]), 1
    for s in shape:
        dim *= int(s)
    return {"kind": "vectors" if "source" not in args else "cifar", "dim": dim if "source" not in args else 3072,
            "funnels": funnels}  # fmt: skip


def _row(construction: str, critic: CriticSpec, seed: int, budget: Budget, result: Any) -> dict[str, Any]:
    exact, train = float(result.exact.w1), result.diagnosis.train
    return {
        "construction": construction,
        "critic": critic.label,
        "critic_name": critic.name,
        "critic_options": dict(critic.options),
        "seed": seed,
        "exact_w1": exact,
        "exact_w1_method": result.exact.method,
        "lower_bound": result.lower_bound,
        "ci95": result.ci95,
        "certified": result.certified,
        "one_lipschitz": result.one_lipschitz,
        "ratio": result.lower_bound / exact,
        "ratio_ci95": [result.ci95[0] / exact, result.ci95[1] / exact],
        "estimate": result.estimate,
        "lipschitz_certificate": result.lipschitz_certificate,
        "train_lower_bound": None if train is None else train.lower_bound,
        "train_ci95": None if train is None else train.ci95,
        "train_ratio": None if train is None else train.lower_bound / exact,
        "generalisation_gap": result.diagnosis.generalisation_gap,
        "limited_by": result.diagnosis.limited_by,
        "diagnosis": result.diagnosis.text,
        "seconds": result.run.seconds,
        "steps": result.run.steps,
        "width": _critic_options(critic, budget.width).get("width"),
        "batch_size": budget.batch_size,
        "lr": budget.lr,
        "n_eval": budget.n_eval,
        "p": result.run.p,
        "q": result.run.q,
        "shape": result.run.shape,
        "device": result.run.device,
    }


def run_tightness(
    source: dict[str, Any],
    critic_specs: Sequence[str],
    constructions: Sequence[str],
    budget: Budget,
    transports: Transports = Transports(),
    accelerator: str = "auto",
    out: Optional[Path] = None,
    say: Callable[[str], None] = print,
    funnels: Funnels = Funnels(),
) -> list[dict[str, Any]]:
    """One estimate per (construction, critic, seed), all at ``budget``; one row each (bound, CI,
    ratio to the exact W1, train subset, diagnosis, training seconds: see :func:`_row`), in that order.
    ``say`` receives one line per finished cell. With ``out`` the rows are written to
    ``out/tightness.json`` after each cell, so an interrupted benchmark keeps what it measured.
    """
    # start-up cost: the training stack (Lightning), imported when the benchmark runs
    from wdist.config import load_config
    from wdist.critic_build import build_critic
    from wdist.pipeline import estimate

    critic_columns = [parse_critic(c) for c in critic_specs]
    bad = [c for c in constructions if c not in CONSTRUCTIONS]
    if bad:
        raise ValueError(f"unknown construction(s) {bad}; choose from {', '.join(CONSTRUCTIONS)}")
    toys = {c: construction_config(c, source, transports, funnels) for c in constructions}
    shapes = {  # every pair built and checked before the first cell trains
        construction: tuple(load_config(_config(toy, critic_columns[0], budget, 0, accelerator)).sides().p.shape)
        for construction, toy in toys.items()
    }
    for critic in critic_columns:  # and every critic's options, on each shape
        for construction, shape in shapes.items():
            build_critic(load_config(_config(toys[construction], critic, budget, 0, accelerator)), shape)
    rows: list[dict[str, Any]] = []
    for construction, toy in toys.items():
        for critic in critic_columns:
            for seed in budget.seeds:
                result = estimate(_config(toy, critic, budget, seed, accelerator), quiet=True)
                row = _row(construction, critic, seed, budget, result)
                row["published"] = _published_cell(toy, result.run.shape)
                rows.append(row)
                say(
                    f"{construction:>24} {critic.label:>14} seed {seed}: bound {row['lower_bound']:.4f} / W1 "
                    f"{row['exact_w1']:.4f} = {row['ratio']:.3f} (train subset {_fmt(row['train_ratio'])}; "
                    f"{row['limited_by']}; {row['seconds']:.0f} s)"
                )
                if out is not None:
                    atomic_write_text(out / "tightness.json", json.dumps(rows, indent=2) + "\n")
    return rows


def _fmt(x: Optional[float], spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def _groups(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by (construction, critic), in first-seen order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["construction"], r["critic"]), []).append(r)
    return list(groups.values())


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown table: one line per (construction, critic), means over seeds (training seconds:
    the median over seeds)."""
    lines = [
        "| construction | critic | exact W1 | certified W1 lower bound (95% CI) | 1-Lipschitz (L <= 1.001) "
        "| bound / W1 | train subset / W1 | limited by | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in _groups(rows):
        r0 = g[0]
        mean = lambda key: statistics.fmean(r[key] for r in g)  # noqa: E731
        ratio = mean("ratio")
        spread = f" ± {statistics.stdev(r['ratio'] for r in g):.3f}" if len(g) > 1 else ""
        train = [r["train_ratio"] for r in g if r["train_ratio"] is not None]
        limits = sorted({r["limited_by"] for r in g})
        ci_text = format_interval(*r0["ci95"], digits=3) if len(g) == 1 else f"(mean of {len(g)} seeds)"
        one_lipschitz = all(r.get("one_lipschitz", r["certified"]) for r in g)
        raw = "" if one_lipschitz else f" (raw estimate / W1 {mean('estimate') / r0['exact_w1']:.3f}: not a bound)"
        bound = f"{mean('lower_bound'):.3f}" + ("" if all(r["certified"] for r in g) else " NOT certified")
        lines.append(
            f"| {r0['construction']} | {r0['critic']} | {r0['exact_w1']:.3f} | {bound} {ci_text} "
            f"| {'yes' if one_lipschitz else 'no'} | {ratio:.3f}{spread}{raw} "
            f"| {_fmt(statistics.fmean(train) if train else None)} | {', '.join(limits)} "
            f"| {statistics.median(r['seconds'] for r in g):.0f} |"
        )
    if rows:
        r0 = rows[0]
        plain = next((r for r in rows if not r["construction"].startswith("translation")), r0)
        where = f"P: {plain['p']}"
        if any(r["construction"].startswith("translation") for r in rows):
            where += (
                " (translations first rescale it into the sub-range that keeps P + v in the domain: see p in "
                "tightness.json)"
            )
        lines += [
            "",
            f"{where}; shape {r0['shape']}; device {r0['device']}; budget per cell: {r0['steps']} steps, "
            f"width {r0['width']}, batch {r0['batch_size']}, lr {r0['lr']:g} (Adam, cosine), "
            f"{r0['n_eval']} held-out items per side (paired interval; Welch for the independent funnel sides), "
            f"seeds {sorted({r['seed'] for r in rows})}.",
        ]
        lines += published_lines(rows)
    return "\n".join(lines)


#: Solvers of the published table printed beside ours, in this order.
PUBLISHED_SOLVERS = ("wgan-gp", "wgan-lp", "sort-out", "sn-gan", "wgan", "3p-wgan", "wgan-qp", "lsot-f", "cowgan")


def published_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The published solver results of the funnel cells among ``rows`` (:mod:`wdist.bench.korotin2022`),
    each estimate and its ratio to the paper's own "true" value, with what they are."""
    cells = list(dict.fromkeys(tuple(r["published"].values()) for r in rows if r.get("published")))
    found = [(cell, published_row(*cell)) for cell in cells]
    found = [(cell, pub) for cell, pub in found if pub is not None]
    if not found:
        return []
    lines = [
        "",
        f"Published, same construction and cell: {SOURCE}. NOT certified, NOT bounds (several lie above W1); the "
        "vector pairs are another draw of the same recipe, the image pairs (cifar) another base than ours.",
        "",
        "| cell | true | " + " | ".join(PUBLISHED_SOLVERS) + " |",
        "|---|---|" + "---|" * len(PUBLISHED_SOLVERS),
    ]
    for (kind, dim, funnels), pub in found:
        true = pub["true"]
        values = " | ".join(f"{pub[k]:.4g} ({pub[k] / true:.2f})" if k in pub else "n/a" for k in PUBLISHED_SOLVERS)
        lines.append(f"| {kind} D={dim}, {funnels} funnels | {true:.4g} | {values} |")
    lines.append("(estimate / the paper's true W1 in parentheses)")
    return lines


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="wdist bench tightness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--source", default="digits", choices=SOURCES, help="the image source P (default: digits)")
    ap.add_argument("--root", default=None, help="data folder of cifar10/stl10/folder, or the file of --source file")
    ap.add_argument("--resize", type=int, default=32, help="image size (default 32; 0 keeps the source's own)")
    ap.add_argument("--limit", type=int, default=None, help="keep only the first LIMIT images of the source")
    ap.add_argument(
        "--critics",
        nargs="+",
        default=["bcop-dcgan", "gp-dcgan"],
        help="registry names or families (bcop, soc, gp), each with options as NAME:KEY=VALUE,KEY=VALUE",
    )
    ap.add_argument("--constructions", nargs="+", default=["translation", "dilation", "anchors"])
    ap.add_argument("--steps", type=int, default=None, help="optimiser steps per cell (CPU default 600)")
    ap.add_argument("--width", type=float, default=None, help="critic width multiplier (CPU default 0.25)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--n-eval", type=int, default=None, help="held-out items per side (default 500)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--norm", type=float, default=3.0, help="||v|| of the translations (default 3)")
    ap.add_argument("--factor", type=float, default=0.8, help="dilation factor (default 0.8)")
    ap.add_argument("--anchors", type=int, default=8, help="anchor images of `anchors` (default 8)")
    ap.add_argument("--fraction", type=float, default=0.5, help="fraction of the way to the anchor (default 0.5)")
    ap.add_argument("--dim", type=int, default=64, help="dimension of the funnels' vector base, --source cube (64)")
    ap.add_argument("--funnels", type=int, default=4, help="funnels of the funnels construction (default 4)")
    ap.add_argument("--items", type=int, default=None, help="items per side of a finite funnel pair (default: none)")
    ap.add_argument("--deg", type=float, default=None, help="funnel exponent (default: the paper's, 8 / 10 / 100)")
    ap.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu", "cuda"])
    ap.add_argument("--out", default=None, help="folder for tightness.json, tightness.md and tightness.png")
    ap.add_argument("--json", default=None, help="also write the rows to this result file (with provenance)")
    return ap


def _budget(args: argparse.Namespace, cuda: bool) -> Budget:
    base = GPU_BUDGET if cuda else CPU_BUDGET
    budget = Budget(
        steps=base.steps if args.steps is None else args.steps,
        width=base.width if args.width is None else args.width,
        batch_size=base.batch_size if args.batch_size is None else args.batch_size,
        lr=base.lr if args.lr is None else args.lr,
        n_eval=base.n_eval if args.n_eval is None else args.n_eval,
        seeds=base.seeds if args.seeds is None else tuple(args.seeds),
    )
    for key in ("steps", "batch_size", "n_eval"):
        if getattr(budget, key) < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be a positive integer; got {getattr(budget, key)}")
    if budget.width <= 0 or budget.lr <= 0:
        raise ValueError(f"--width and --lr must be positive; got --width {budget.width}, --lr {budget.lr}")
    return budget


def cli(argv: Sequence[str]) -> int:
    """Run the benchmark, print the table and write the files (see the module docstring)."""
    args = _parser().parse_args(list(argv))
    accelerator = "gpu" if args.accelerator == "cuda" else args.accelerator
    cuda = torch.cuda.is_available() and accelerator in ("auto", "gpu")
    budget = _budget(args, cuda)
    source = source_config(args.source, args.root, args.resize or None, args.limit)
    for key in ("dim", "funnels", "items"):
        value = getattr(args, key)
        if value is not None and value < 1:
            raise ValueError(f"--{key} must be a positive integer; got {value}")
    cell = Funnels(args.dim, args.funnels, args.items, args.deg)
    out = prepare_output_dir(args.out) if args.out else None
    made = provenance("tightness", argv, describe_device(torch.device("cuda" if cuda else "cpu")))
    transports = Transports(args.norm, args.factor, args.anchors, args.fraction)
    rows = run_tightness(
        source, args.critics, args.constructions, budget, transports, accelerator, out,
        say=lambda line: print(line, file=sys.stderr), funnels=cell,
    )  # fmt: skip
    table = format_table(rows)
    print(table)
    if args.json:
        # the runs set their own thread count: the device as they used it, not as it was at the start
        used = f"{rows[0]['device']}, torch {torch.__version__}" if rows else made["device"]
        write_result(args.json, {**made, "device": used}, rows)
    if out is not None:
        # start-up cost: matplotlib, imported once there is something to plot
        from wdist.plots import plot_tightness

        atomic_write_text(out / "tightness.md", table + "\n")
        plot_tightness(rows, out / "tightness.png")
        print(f"\nwrote {out / 'tightness.json'}, tightness.md, tightness.png")
    return 0
