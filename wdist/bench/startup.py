"""``wdist bench startup``: what the command line costs besides training.

Whole processes, timed from the outside (median over ``--repeats``; wall seconds, interpreter
start-up included):

* ``wdist --help``; ``wdist estimate --help``; ``wdist estimate --train.stpes 1`` (a misspelt key:
  must fail with exit code 2, and does so before the training stack is imported);
* ``python -c "import torch"`` (the floor of every command that reads a config) and
  ``python -c "import wdist.pipeline"`` (the training stack: torch, Lightning, torchmetrics,
  torchvision);
* the default job, ``wdist estimate --quiet --out TMP [ESTIMATE ARGS]``: wall, its training time
  (``run.seconds`` in its result.json) and the difference, the time not spent training.

Then the parts of that difference which wdist computes itself, timed in this process (after its
imports; one call each per repeat, so first-call costs are included once): parsing and validating
the config, choosing the thread count (a copy of the critic is built and its work counted), the
exact-OT reference and its floor (``eval.ot_samples`` per side), the empirical Lipschitz check
(``eval.empirical_lipschitz_samples`` held-out points of each side and as many interpolates, on a
freshly built critic: the same cost as on the trained one) and the bound-curve plot.

``--tree DIR`` runs the command lines of another source tree, started in DIR (relative paths in
the estimate arguments are then read from there); ``--tree-commit REV`` does the same for commit
REV of this checkout, exported into a temporary folder for the run and removed after. The
in-process parts are then skipped, as they would measure this tree.

``--before-commit REV`` (or ``--before-tree DIR``) measures that tree's command lines first and then
this one's, in the same run, and keeps both (the record's ``before``): the table shows them side by
side. ``--compare JSON`` puts an earlier run's figures beside these instead.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from critics.empirical import empirical_lipschitz
from wdist.bench._provenance import provenance, read_payload, write_result
from wdist.bench._runs import (
    estimate_command_line,
    load_text,
    machine_text,
    median_or_none,
    run_env,
    run_timed,
    timed_command,
    timed_estimate,
    tree_option,
)
from wdist.config import resolve_config
from wdist.pipeline import build_critic
from wdist.plots import plot_bound_curve
from wdist.references import references
from wdist.seeds import EMPIRICAL_LIPSCHITZ_OFFSET, generator
from wdist.threads import apply_threads, run_threads, torch_threads

__all__ = ["cli", "run_startup", "format_table", "COMMANDS"]

#: (label, argv after ``python``, expected exit code)
COMMANDS: tuple[tuple[str, list[str], int], ...] = (
    ("`wdist --help`", ["-m", "wdist.cli", "--help"], 0),
    ("`wdist estimate --help`", ["-m", "wdist.cli", "estimate", "--help"], 0),
    ("`wdist estimate --train.stpes 1` (a typo: exit 2)", ["-m", "wdist.cli", "estimate", "--train.stpes", "1"], 2),
    ('`python -c "import torch"`', ["-c", "import torch"], 0),
    ('`python -c "import wdist.pipeline"` (the training stack)', ["-c", "import wdist.pipeline"], 0),
)


def _time_commands(repeats: int, tree: Optional[str], timeout_s: float) -> list[dict[str, Any]]:
    rows = []
    env = run_env(tree)
    for label, args, expected in COMMANDS:
        runs = [run_timed([sys.executable, *args], env, timeout_s, tree) for _ in range(repeats)]
        bad = [r for r in runs if r.returncode != expected]
        error = None if not bad else f"exit code {bad[0].returncode}, expected {expected}: {bad[0].stderr_tail[-300:]}"
        rows.append(
            {
                "what": label, "wall_s": median_or_none([r.wall_s for r in runs]),
                "cpu_s": median_or_none([r.cpu_s for r in runs]), "error": error,
            }
        )  # fmt: skip
    return rows


def _time_job(repeats: int, estimate_args: Sequence[str], tree: Optional[str], timeout_s: float) -> dict[str, Any]:
    walls, trains, cpus, errors, threads = [], [], [], [], None
    with tempfile.TemporaryDirectory(prefix="wdist-bench-startup-") as d:
        for rep in range(repeats):
            timed, record = timed_estimate(Path(d) / f"run{rep}", estimate_args, tree, timeout_s)
            if record is None:
                errors.append(f"exit code {timed.returncode}: {timed.stderr_tail[-300:]}")
                continue
            walls.append(timed.wall_s)
            trains.append(float(record["seconds"]))
            cpus.append(timed.cpu_s)
            threads = (record.get("threads") or {}).get("reason") or record.get("device")
    wall, train = median_or_none(walls), median_or_none(trains)
    return {
        "wall_s": wall, "train_s": train, "cpu_s": median_or_none(cpus),
        "not_training_s": median_or_none([w - t for w, t in zip(walls, trains)]), "threads": threads, "errors": errors,
    }  # fmt: skip


def _parts(estimate_args: Sequence[str]) -> list[tuple[str, Callable[[], Any]]]:
    """The in-process parts of a job, each a zero-argument callable (built on the job's config)."""
    cli_only = argparse.ArgumentParser(add_help=False)  # the command line's own options, not config keys
    for name in ("--config", "--out", "--logger", "--resume"):
        cli_only.add_argument(name)
    for name in ("--quiet", "--debug"):
        cli_only.add_argument(name, action="store_true")
    ns, overrides = cli_only.parse_known_args(list(estimate_args))
    config = ns.config
    cfg = resolve_config(config, overrides)
    sides = cfg.sides()
    shape = tuple(sides.p.shape)
    with torch_threads(1):
        critic = build_critic(cfg, shape)
    apply_threads(run_threads(cfg, shape, critic))  # the parts run with the job's thread count
    cpu = torch.device("cpu")
    n_lip = cfg.eval.empirical_lipschitz_samples

    def lipschitz() -> float:
        critic = build_critic(cfg, shape).eval()
        gen = generator(cfg.seed, EMPIRICAL_LIPSCHITZ_OFFSET)
        xp = sides.p.draw(n_lip, gen, cfg.train.batch_size, cpu)
        xq = sides.q.draw(n_lip, gen, cfg.train.batch_size, cpu)
        return float(empirical_lipschitz(critic, xp, xq, n_interpolates=n_lip, generator=gen))

    def plot() -> Path:
        curve = [
            {"step": s, "lower_bound": 0.3, "lower_bound_lo": 0.25, "lower_bound_hi": 0.35, "estimate": 0.3}
            for s in range(100, 700, 100)
        ]
        with tempfile.TemporaryDirectory() as d:
            return plot_bound_curve(curve, Path(d) / "bound_curve.png", empirical_ot=3.0, empirical_ot_floor=2.9)

    n_ot = cfg.eval.ot_samples
    floor = " and its floor" if cfg.eval.ot_floor else ""
    return [
        ("parse and validate the config", lambda: resolve_config(config, overrides)),
        ("choose the thread count (count the critic's work)", lambda: run_threads(cfg, shape, critic)),
        (
            f"exact-OT reference on {n_ot} x {n_ot} samples{floor}",
            lambda: references(sides.p, sides.q, n_ot, cfg.eval.ot_floor, cfg.seed, cfg.train.batch_size, cpu),
        ),
        (f"empirical Lipschitz check ({n_lip} + {n_lip} points, {n_lip} interpolates)", lipschitz),
        ("bound-curve plot", plot),
    ]


def _time_parts(repeats: int, estimate_args: Sequence[str]) -> list[dict[str, Any]]:
    parts = _parts(estimate_args)
    times: dict[str, list[float]] = {label: [] for label, _ in parts}
    for _ in range(repeats):
        for label, fn in parts:
            t0 = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t0)
    return [{"what": label, "wall_s": median_or_none(v)} for label, v in times.items()]


def run_startup(
    repeats: int, estimate_args: Sequence[str] = (), *, tree: Optional[str] = None, timeout_s: float = 1800.0
) -> dict[str, Any]:
    """Everything the module docstring lists; the record written as JSON."""
    record: dict[str, Any] = {
        "machine": machine_text(), "load_before": load_text(), "repeats": int(repeats),
        "estimate_args": list(estimate_args), "tree": tree,
    }  # fmt: skip
    record["commands"] = _time_commands(repeats, tree, timeout_s)
    record["job"] = _time_job(repeats, estimate_args, tree, timeout_s)
    record["parts"] = [] if tree is not None else _time_parts(repeats, estimate_args)
    record["load_after"] = load_text()
    return record


def _s(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _rows(record: dict[str, Any]) -> list[tuple[str, Optional[float], Optional[float]]]:
    """(label, wall s, CPU s) of every figure of a record, in table order."""
    rows = [(r["what"] + (" **failed**" if r["error"] else ""), r["wall_s"], r["cpu_s"]) for r in record["commands"]]
    job = record["job"]
    rows += [
        ("default job `wdist estimate` (whole process)", job["wall_s"], job["cpu_s"]),
        ("of which training (result.json `run.seconds`)", job["train_s"], None),
        ("of which not training", job["not_training_s"], None),
    ]
    rows += [(f"&nbsp;&nbsp;part: {r['what']} (in-process)", r["wall_s"], None) for r in record["parts"]]
    return rows


def _notes(record: dict[str, Any], which: str) -> list[str]:
    lines = [
        f"* {which}medians of {record['repeats']} runs; machine: {record['machine']}; load average (1/5/15 min) "
        f"before {record['load_before']}, after {record.get('load_after', 'unknown')}"
    ]
    if record["job"].get("threads"):
        lines.append(f"* {which}the job's threads: {record['job']['threads']}")
    if record["estimate_args"]:
        lines.append(f"* {which}estimate arguments: `{' '.join(record['estimate_args'])}`")
    if record.get("tree"):
        lines.append(f"* {which}command lines of the source tree {record['tree']} (in-process parts not measured)")
    if record.get("tree_commit"):
        lines.append(f"* {which}that tree is commit {record['tree_commit']} of this checkout, exported")
    return lines


def format_table(record: dict[str, Any], command: str = "", before: Optional[dict[str, Any]] = None) -> str:
    """The table of docs/threads-and-startup.md: one row per command, the job's wall / training /
    other time, and the parts; with ``before`` (an earlier record, e.g. of an earlier source tree; by
    default the record's own ``before``, measured in the same run) its figures too."""
    before = record.get("before") if before is None else before
    if before is None:
        lines = ["| what | wall s (median) | CPU s (median) |", "|---|---|---|"]
        lines += [f"| {label} | {_s(wall)} | {_s(cpu)} |" for label, wall, cpu in _rows(record)]
        notes = _notes(record, "")
    else:
        old = {label.replace(" **failed**", ""): (wall, cpu) for label, wall, cpu in _rows(before)}
        lines = ["| what | before: wall s | before: CPU s | after: wall s | after: CPU s |", "|---|---|---|---|---|"]
        for label, wall, cpu in _rows(record):
            was_wall, was_cpu = old.get(label.replace(" **failed**", ""), (None, None))
            lines.append(f"| {label} | {_s(was_wall)} | {_s(was_cpu)} | {_s(wall)} | {_s(cpu)} |")
        notes = _notes(before, "before: ") + _notes(record, "after: ")
    lines += ["", *notes]
    if command:
        lines.append(f"* command: `{command}`")
    return "\n".join(lines)


def cli(argv: Sequence[str]) -> int:
    ap, argv, estimate_args = estimate_command_line("wdist bench startup", __doc__, argv)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument(
        "--compare", default=None, metavar="JSON", help="an earlier run's --json file: print its figures beside these"
    )
    ap.add_argument("--before-tree", default=None, help="also measure this source tree first, in the same run")
    ap.add_argument("--before-commit", default=None, help="also measure this commit of the checkout first, exported")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        print("wdist bench startup: error: --repeats must be >= 1.", file=sys.stderr)
        return 2
    measure_before = args.before_tree is not None or args.before_commit is not None
    if measure_before and args.compare is not None:
        print(
            "wdist bench startup: error: --compare puts an earlier run beside this one; --before-tree / "
            "--before-commit measure the earlier tree in this run. Give one of them.",
            file=sys.stderr,
        )
        return 2
    before = None
    if args.compare is not None:
        try:
            before = read_payload(args.compare)
        except (OSError, ValueError) as err:
            print(f"wdist bench startup: error: --compare {args.compare!r}: {err}", file=sys.stderr)
            return 2
    made = provenance("startup", timed_command(argv, estimate_args), machine_text())
    try:
        if measure_before:
            with tree_option(args.before_tree, args.before_commit, "--before-tree / --before-commit") as old:
                before = run_startup(args.repeats, estimate_args, tree=old, timeout_s=args.timeout)
            before["tree_commit"] = args.before_commit
        with tree_option(args.tree, args.tree_commit, "--tree / --tree-commit") as tree:
            record = run_startup(args.repeats, estimate_args, tree=tree, timeout_s=args.timeout)
    except ValueError as err:
        print(f"wdist bench startup: error: {err}", file=sys.stderr)
        return 2
    record["tree_commit"] = args.tree_commit
    if measure_before:
        record["before"] = before
    print(format_table(record, made["command"], before))
    if args.json:
        write_result(args.json, made, record)
    measured = [before, record] if measure_before else [record]
    failed = [r for one in measured for r in one["commands"] if r["error"]]
    failed += [error for one in measured for error in one["job"]["errors"]]
    for f in failed[:3]:
        print(f"failed: {f}", file=sys.stderr)
    return 1 if failed else 0
