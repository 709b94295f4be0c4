"""``wdist bench contention``: the default job's wall time, idle and beside busy processes, per thread setting.

Every run is a whole ``wdist estimate --quiet --out TMP [ESTIMATE ARGS]`` process (by default the
offline default job, ``configs/digits/default.yaml``), timed from the outside; its training time
(``run.seconds``) and thread count are read from its ``result.json``. Settings:

``default``  no thread option: the thread policy of the code under test (``wdist.threads``);
``N``        ``--train.threads N`` (fixed threads; OpenMP's threads wait passively, as the command
             line sets by default);
``before``   the behaviour before the thread policy: torch's own default thread count and
             OpenMP's own (spinning) wait policy (``WDIST_OPENMP_DEFAULTS=1``).
``tree``     the default job of an earlier source tree, started in it: ``--before-commit REV``
             exports commit REV of this checkout into a temporary folder for the run (e.g. the
             commit before the thread policy), ``--before-tree DIR`` takes a folder already
             unpacked; the code as it was, measured in the same repeats as the code under test.

Competing processes are ``python -c "while True: pass"`` (one busy core each), started by the
benchmark before a block of runs and killed after it. For each repeat, each competing count runs
every setting once, in an order rotated by the repeat index, so that a drift in the machine's
state spreads over all settings. Reported: medians over the repeats of the wall time (whole
process: interpreter start-up, imports, training, references, outputs) and of the training time,
and each setting's wall time with competition divided by its own idle wall time.

The runs' environment drops ``OMP_NUM_THREADS``, ``OMP_WAIT_POLICY`` and the like. The timings
only mean something on an otherwise idle machine: the table states the load average before and
after. ``--tree DIR`` (or ``--tree-commit REV``) runs every setting with the command line of another
source tree instead (there only ``default`` makes sense); ``--before-tree DIR`` (or
``--before-commit REV``) adds that tree as the setting ``tree`` beside the code under test.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from wdist.bench._provenance import provenance, write_result
from wdist.bench._runs import (
    estimate_command_line,
    load_text,
    machine_text,
    median_or_none,
    run_env,
    timed_command,
    timed_estimate,
    tree_option,
)
from wdist.cores import OPENMP_DEFAULTS_ENV

__all__ = ["cli", "run_contention", "format_table", "setting_args", "torch_default_threads", "Competitors"]

BUSY_LOOP = "while True: pass"


class Competitors:
    """``n`` CPU-bound processes (a Python busy loop each) for the duration of a ``with`` block."""

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "Competitors":
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(self.n)]
        if self.procs:
            time.sleep(0.5)  # each loop is spinning before the timed run starts
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def torch_default_threads(tree: Optional[str] = None) -> int:
    """torch's own intra-op thread count in a fresh process with the runs' environment."""
    out = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        env=run_env(tree),
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def setting_args(
    setting: str, before_threads: int, before_tree: Optional[str] = None
) -> tuple[list[str], dict[str, str], str]:
    """(extra estimate arguments, extra environment, label) of a setting name."""
    if setting == "default":
        return [], {}, "default (thread policy)"
    if setting == "tree":
        if before_tree is None:
            raise ValueError(
                "the setting 'tree' needs --before-tree DIR or --before-commit REV (the source tree to measure)"
            )
        return [], {}, f"before, as it was: the default of the source tree {before_tree}"
    if setting == "before":
        label = f"before: {before_threads} threads (torch's default), OpenMP's default wait policy"
        return ["--train.threads", str(before_threads)], {OPENMP_DEFAULTS_ENV: "1"}, label
    if setting.isdigit() and int(setting) > 0:
        n = int(setting)
        return ["--train.threads", str(n)], {}, f"{n} thread{'s' if n != 1 else ''}"
    raise ValueError(f"unknown setting {setting!r}: use 'default', 'before', 'tree' or a positive thread count")


def _one_run(
    setting: str, competitors: int, repeat: int, estimate_args: Sequence[str], before_threads: int,
    tree: Optional[str], tmp: Path, timeout_s: float, before_tree: Optional[str] = None,
) -> dict[str, Any]:  # fmt: skip
    extra_args, extra_env, label = setting_args(setting, before_threads, before_tree)
    if setting == "tree":
        tree = before_tree
    out = tmp / f"{setting}-{competitors}-{repeat}"
    timed, record = timed_estimate(out, [*estimate_args, *extra_args], tree, timeout_s, extra_env)
    row: dict[str, Any] = {
        "setting": setting, "label": label, "competitors": competitors, "repeat": repeat,
        "wall_s": timed.wall_s, "cpu_s": timed.cpu_s, "returncode": timed.returncode,
        "train_s": None, "threads": None, "threads_reason": None, "openmp_wait_policy": None, "error": None,
    }  # fmt: skip
    if record is None:
        row["error"] = timed.stderr_tail.strip().splitlines()[-1:] or [f"exit code {timed.returncode}"]
        return row
    # a tree from before the thread policy records no threads: it ran torch's default count
    threads = record.get("threads") or ({"count": before_threads} if setting == "tree" else {})
    row.update(
        train_s=float(record["seconds"]), threads=threads.get("count"), threads_reason=threads.get("reason"),
        openmp_wait_policy=threads.get("openmp_wait_policy"),
    )  # fmt: skip
    return row


def run_contention(
    settings: Sequence[str],
    competitors: Sequence[int],
    repeats: int,
    estimate_args: Sequence[str] = (),
    *,
    tree: Optional[str] = None,
    before_tree: Optional[str] = None,
    timeout_s: float = 1800.0,
    log=None,  # noqa: ANN001
) -> dict[str, Any]:
    """Run every (setting, competing count) ``repeats`` times as described in the module
    docstring; returns the record written as JSON (``runs``, ``machine``, loads, settings)."""
    before_threads = torch_default_threads(tree)
    for s in settings:
        setting_args(s, before_threads, before_tree)  # unknown names fail before any run
    if before_tree is not None and not (Path(before_tree) / "wdist" / "cli.py").is_file():
        raise ValueError(f"--before-tree {before_tree}: no wdist/cli.py there; expected an unpacked source tree")
    record: dict[str, Any] = {
        "machine": machine_text(), "load_before": load_text(), "settings": list(settings),
        "competitors": [int(c) for c in competitors], "repeats": int(repeats), "estimate_args": list(estimate_args),
        "tree": tree, "before_tree": before_tree, "torch_default_threads": before_threads, "runs": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="wdist-bench-contention-") as d:
        for rep in range(repeats):
            for n in competitors:
                order = [settings[(i + rep) % len(settings)] for i in range(len(settings))]
                with Competitors(n):
                    for setting in order:
                        row = _one_run(
                            setting, n, rep, estimate_args, before_threads, tree, Path(d), timeout_s, before_tree
                        )
                        record["runs"].append(row)
                        if log is not None:
                            train = "failed" if row["error"] else f"train {row['train_s']:.1f} s"
                            log(f"  repeat {rep + 1}, {n} competing, {setting}: {row['wall_s']:.1f} s wall, {train}")
    record["load_after"] = load_text()
    return record


def _cell(rows: list[dict[str, Any]]) -> tuple[Optional[float], Optional[float], str]:
    ok = [r for r in rows if r["error"] is None]
    wall, train = median_or_none([r["wall_s"] for r in ok]), median_or_none([r["train_s"] for r in ok])
    text = "failed" if wall is None else f"{wall:.1f} ({train:.1f})"
    if ok and len(ok) < len(rows):
        text += f" [{len(rows) - len(ok)} failed]"
    return wall, train, text


def format_table(record: dict[str, Any], command: str = "") -> str:
    """The table of docs/threads-and-startup.md: per setting, median wall (training) seconds per
    competing count and the ratio of each competing count's wall time to the setting's idle one."""
    comps, runs = record["competitors"], record["runs"]
    loaded = [c for c in comps if c != 0]
    head = ["setting", "threads"] + [f"{c} competing: wall (train) s" if c else "idle: wall (train) s" for c in comps]
    head += [f"{c} competing / idle" for c in loaded] if 0 in comps else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    reasons: dict[str, str] = {}
    for s in record["settings"]:
        mine = [r for r in runs if r["setting"] == s]
        label = mine[0]["label"] if mine else s
        if s == "tree" and record.get("before_commit"):  # not the temporary folder it was exported into
            label = f"before, as it was: the default of commit {record['before_commit']}"
        counts = sorted({r["threads"] for r in mine if r["threads"] is not None})
        cells, walls = [], {}
        for c in comps:
            wall, _, text = _cell([r for r in mine if r["competitors"] == c])
            walls[c] = wall
            cells.append(text)
        if 0 in comps:
            for c in loaded:
                ok = walls[0] is not None and walls[c] is not None
                cells.append(f"{walls[c] / walls[0]:.2f}" if ok else "n/a")
        lines.append(f"| {label} | {', '.join(map(str, counts)) or 'n/a'} | " + " | ".join(cells) + " |")
        for r in mine:
            if s == "default" and r["threads_reason"]:
                reasons[s] = r["threads_reason"]
    lines += [
        "",
        f"* medians of {record['repeats']} runs per cell; wall = the whole `wdist estimate` process (start-up, "
        "training, references, outputs), train = the training time in its result.json",
        f'* competing processes: `python -c "{BUSY_LOOP}"`, one busy core each; settings alternated within each repeat',
        f"* machine: {record['machine']}; load average (1/5/15 min) before {record['load_before']}, after "
        f"{record.get('load_after', 'unknown')}",
    ]
    if "default" in reasons:
        lines.append(f"* default chose: {reasons['default']}")
    if record["estimate_args"]:
        lines.append(f"* estimate arguments: `{' '.join(record['estimate_args'])}`")
    if record.get("tree"):
        lines.append(f"* command line of the source tree {record['tree']}")
    for key, what in (("tree_commit", "every setting"), ("before_commit", "the setting `tree`")):
        if record.get(key):
            lines.append(f"* {what}: commit {record[key]} of this checkout, exported into a temporary folder")
    if command:
        lines.append(f"* command: `{command}`")
    return "\n".join(lines)


def cli(argv: Sequence[str]) -> int:
    ap, argv, estimate_args = estimate_command_line("wdist bench contention", __doc__, argv)
    ap.add_argument("--settings", nargs="+", default=["default", "1", "2", "before"])
    ap.add_argument("--competitors", nargs="+", type=int, default=[0, 1], help="competing process counts (0: idle)")
    ap.add_argument(
        "--before-tree", default=None, help="also run this source tree's default job (the setting 'tree'; added)"
    )
    ap.add_argument(
        "--before-commit",
        default=None,
        help="as --before-tree, for this commit of the checkout (exported into a temporary folder, removed after)",
    )
    ap.add_argument("--json", default=None, help="also write every run and the settings to this JSON file")
    args = ap.parse_args(argv)
    if (args.before_tree is not None or args.before_commit is not None) and "tree" not in args.settings:
        args.settings = [*args.settings, "tree"]
    if args.repeats < 1 or any(c < 0 for c in args.competitors):
        print("wdist bench contention: error: --repeats must be >= 1 and --competitors >= 0.", file=sys.stderr)
        return 2
    made = provenance("contention", timed_command(argv, estimate_args), machine_text())
    try:
        with (
            tree_option(args.tree, args.tree_commit, "--tree / --tree-commit") as tree,
            tree_option(args.before_tree, args.before_commit, "--before-tree / --before-commit") as before_tree,
        ):
            record = run_contention(
                args.settings, args.competitors, args.repeats, estimate_args, tree=tree,
                before_tree=before_tree, timeout_s=args.timeout,
                log=lambda s: print(s, file=sys.stderr, flush=True),
            )  # fmt: skip
        record["tree_commit"], record["before_commit"] = args.tree_commit, args.before_commit
    except ValueError as err:
        print(f"wdist bench contention: error: {err}", file=sys.stderr)
        return 2
    print(format_table(record, made["command"]))
    if args.json:
        write_result(args.json, made, record)
    failed = [r for r in record["runs"] if r["error"] is not None]
    for r in failed[:3]:
        print(f"failed: {r['setting']}, {r['competitors']} competing: {r['error']}", file=sys.stderr)
    return 1 if failed else 0
