"""Tables of the docs generated from result files (``docs/results/*.json``), never copied by hand.

A result file is what one command wrote, with where it comes from::

    {"tool": "bench", "bench": "tightness", "command": "wdist bench tightness ...", "commit": "8f96830",
     "date": "2026-12-07", "device": "...", "conditions": "...", "payload": <the rows or record>}

* ``python docs/tables.py record NAME -- wdist bench BENCH ...`` runs a benchmark with ``--json``
  (:mod:`wdist.bench._provenance`); the payload is its rows, rendered by the benchmark's own
  ``format_table``.
* ``python docs/tables.py record NAME -- wdist compare ...`` runs a comparison into a temporary
  folder; the payload is its ``comparison.json`` (without the runs' select curves), rendered by
  :func:`wdist.compare.format_table` (the table of ``comparison.md``).
* ``python docs/tables.py record NAME [--label TEXT] [--add] -- wdist estimate ...`` runs one
  estimate into a temporary folder; the payload is a list of runs (``label``, ``command`` and its
  ``result.json`` without the select curve), one row each (:func:`format_runs`); ``--add`` appends
  a run to the file, which must hold runs of the same code commit and device.
* ``python docs/tables.py record NAME [--label TEXT] [--add] -- wdist track ...`` runs one track;
  the payload is a list of tracks (``label``, ``command`` and its ``track.json``), one column each
  (:func:`format_tracks`); ``--add`` as for estimate runs.

``python docs/tables.py render`` rewrites, in every page, the region between
``<!-- table: results/NAME.json -->`` and ``<!-- end table -->`` with that table and a line stating
command, commit, device and date; ``--check`` changes nothing and fails when a region differs from
its rendering (tests/test_docs_tables.py runs it, so a generated table is never edited by hand).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
RESULTS = DOCS / "results"
REGION = re.compile(r"(<!-- table: (?P<file>results/[\w.-]+\.json) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)


#: The commands whose result files ``record`` stores: ``wdist TOOL ...``.
TOOLS = ("bench", "estimate", "compare", "track")
#: The commands whose runs ``record --add`` appends to one file, one row or column each.
SERIES_TOOLS = ("estimate", "track")


def _benches() -> tuple[str, ...]:
    from wdist.bench import BENCHES

    return BENCHES


def _run(command: Sequence[str], *extra: str) -> None:
    """Run ``wdist ...`` in this process with ``extra`` options appended; stop on a non-zero exit."""
    from wdist.cli import main

    code = main([*command[1:], *extra])
    if code != 0:
        raise SystemExit(f"`{shlex.join(command)}` exited {code}")


def _made_here(command: str, device: str, conditions: str) -> dict[str, Any]:
    """Provenance of a run of this checkout: ``command``, the code commit measured
    (:func:`wdist.bench._provenance.code_commit`), today's UTC date, ``device`` and ``conditions``
    with the load averages now."""
    import datetime

    from wdist.bench._provenance import code_commit
    from wdist.bench._runs import load_text

    return {
        "command": command,
        "commit": code_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "device": device,
        "conditions": f"{conditions}; load averages {load_text()} (1 / 5 / 15 min) at the start",
    }


def _run_device(result: dict[str, Any]) -> str:
    """The device of a ``result.json`` in words: where it trained and the torch version."""
    return f"{result['run']['device']}, torch {result['run']['versions'].get('torch', '?')}"


def _without_curve(result: dict[str, Any]) -> dict[str, Any]:
    """A result.json without its select curve (no table shows it; the run's metrics.csv and
    bound_curve.png hold it): every other record, the selection's included, is kept."""
    return {key: value for key, value in result.items() if key != "curve"}


def _record_bench(command: Sequence[str], conditions: str) -> dict[str, Any]:
    if len(command) < 3 or command[2] not in _benches():
        raise SystemExit(f"record takes `wdist bench {{{','.join(_benches())}}} ...`; got {shlex.join(command)!r}")
    with tempfile.TemporaryDirectory() as tmp:
        written = Path(tmp) / "result.json"
        _run(command, "--json", str(written))
        entry = json.loads(written.read_text())
    return {
        "tool": "bench",
        **entry,
        "command": shlex.join(command),
        "conditions": f"{conditions}; {entry['conditions']}",
    }


def _record_compare(command: Sequence[str], conditions: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        before = _made_here(shlex.join(command), "", conditions)
        _run(command, "--out", str(Path(tmp) / "compare"), "--quiet")
        payload = json.loads((Path(tmp) / "compare" / "comparison.json").read_text())
    payload["runs"] = {label: [_without_curve(r) for r in runs] for label, runs in payload["runs"].items()}
    first = next(iter(payload["runs"].values()))[0]
    return {"tool": "compare", **before, "device": _run_device(first), "payload": payload}


def _record_estimate(command: Sequence[str], conditions: str, label: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        before = _made_here(shlex.join(command), "", conditions)
        _run(command, "--out", str(Path(tmp) / "run"), "--quiet")
        result = _without_curve(json.loads((Path(tmp) / "run" / "result.json").read_text()))
    label = label or f"seed {result['run']['config'].get('seed')}"
    run = {"label": label, "command": shlex.join(command), "result": result}
    return {"tool": "estimate", **before, "device": _run_device(result), "payload": [run]}


def _record_track(command: Sequence[str], conditions: str, label: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        before = _made_here(shlex.join(command), "", conditions)
        out = Path(tmp) / "track"
        _run(command, "--out", str(out), "--quiet")
        track = json.loads((out / "track.json").read_text())
        first = json.loads((out / track["points"][0]["folder"] / "result.json").read_text())
    label = label or f"seed {first['run']['config'].get('seed')}"
    run = {"label": label, "command": shlex.join(command), "track": track}
    return {"tool": "track", **before, "device": _run_device(first), "payload": [run]}


def _added(old: dict[str, Any], new: dict[str, Any], path: Path) -> dict[str, Any]:
    """``old`` (a result file of estimate runs or tracks) with the run of ``new`` appended: the same
    command (``wdist estimate`` or ``wdist track``), code commit and device."""
    if old.get("tool") != new["tool"]:
        raise SystemExit(
            f"--add appends a `wdist {new['tool']}` run to a file of such runs; {path} holds {old.get('tool')}"
        )
    for key in ("commit", "device"):
        if old[key] != new[key]:
            raise SystemExit(
                f"--add: {path} holds runs of {key} {old[key]!r}, this run has {new[key]!r}; "
                "record its runs again on one commit and device"
            )
    merged = dict(old, payload=old["payload"] + new["payload"])
    merged["command"] = "; ".join(run["command"] for run in merged["payload"])
    if new["date"] != old["date"].split(" to ")[0]:
        merged["date"] = f"{old['date'].split(' to ')[0]} to {new['date']}"
    return merged


def record(name: str, command: Sequence[str], conditions: str, label: str | None = None, add: bool = False) -> Path:
    """Run ``command`` (``wdist bench|compare|estimate|track ...``), read the file it wrote, add where
    it comes from and ``conditions`` (what else ran, in words) and store it as
    ``docs/results/NAME.json``; with ``add``, append an estimate run or a track to that file."""
    command = list(command)
    if len(command) < 2 or command[0] != "wdist" or command[1] not in TOOLS:
        raise SystemExit(f"record takes `wdist {{{','.join(TOOLS)}}} ...`; got {shlex.join(command)!r}")
    if (label is not None or add) and command[1] not in SERIES_TOOLS:
        raise SystemExit("--label and --add are for `wdist estimate` runs and `wdist track` tracks")
    out = RESULTS / f"{name}.json"
    if add and not out.exists():
        raise SystemExit(f"--add: {out} does not exist yet; record its first run without --add")
    if command[1] == "bench":
        entry = _record_bench(command, conditions)
    elif command[1] == "compare":
        entry = _record_compare(command, conditions)
    else:
        entry = (_record_estimate if command[1] == "estimate" else _record_track)(command, conditions, label)
        if add:
            entry = _added(json.loads(out.read_text()), entry, out)
    out.write_text(json.dumps(entry, indent=1) + "\n")
    return out


def _ratio(result: dict[str, Any]) -> str:
    exact = result.get("exact")
    return "" if not exact else f"{result['bound']['lower_bound'] / exact['w1']:.3f}"


def _budget(run: dict[str, Any]) -> int:
    """The run's step budget ``train.steps`` (for ``auto``, shared by its candidates)."""
    return int((run.get("config") or {}).get("train", {}).get("steps", run["steps"]))


def _empirical_ot(refs: dict[str, Any]) -> str:
    if refs.get("empirical_ot_w1") is None:
        return ""
    floor = refs.get("empirical_ot_floor")
    return f"{refs['empirical_ot_w1']:.4f}" + ("" if floor is None else f" ({floor:.4f})")


def format_runs(runs: Sequence[dict[str, Any]]) -> str:
    r"""The table of ``wdist estimate`` runs (``label``, ``command``, ``result``: a result.json), one
    row each: the critic (for ``critic.name: auto`` the candidate chosen on the select split and every
    candidate's select value and step), the certified W1 lower bound

    .. math:: \hat W = \frac{\bar f_P - \bar f_Q}{L}

    with its 95% interval, in the run's units (L2 on the flattened samples, its domain), whether the
    critic is 1-Lipschitz, the exact W1 and the ratio bound / W1 where the problem has one, the exact
    empirical-OT upper reference and its floor (P against P) where computed, the step
    selected on the select split, the train-subset bound at that step and what limits the bound."""
    from wdist.report import format_interval, one_lipschitz_text

    results = [run["result"] for run in runs]
    exact = any(r.get("exact") for r in results)
    auto = any(r.get("auto") for r in results)
    ot = any((r.get("references") or {}).get("empirical_ot_w1") is not None for r in results)
    head = ["run", "critic", "certified W1 lower bound (95% CI)", "1-Lipschitz"]
    head += ["exact W1", "bound / W1"] if exact else []
    head += ["empirical OT, upper reference (floor)"] if ot else []
    head += ["step selected", "train subset", "limited by"]
    head += ["select values (step) of the candidates"] if auto else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, r in zip(runs, results):
        bound, diagnosis, chosen = r["bound"], r["diagnosis"], r.get("auto")
        critic = f"`{r['run']['critic']}`"
        if chosen:
            critic = f"auto: `{chosen['chosen']['label']}` (of {chosen['compared']})"
        train = (diagnosis.get("train") or {}).get("lower_bound")
        cells = [
            run["label"],
            critic,
            f"{bound['lower_bound']:.4f} {format_interval(bound['ci95_lo'], bound['ci95_hi'])}"
            + ("" if bound.get("certified", True) else " **NOT certified** (a gradient norm above L: not a bound)"),
            one_lipschitz_text(bound["one_lipschitz"], bound["lipschitz_certificate"]),
        ]
        if exact:
            cells += [f"{r['exact']['w1']:.4f}" if r.get("exact") else "", _ratio(r)]
        if ot:
            cells.append(_empirical_ot(r.get("references") or {}))
        cells += [str(bound["step"]), "" if train is None else f"{train:.4f}", diagnosis.get("limited_by") or ""]
        if auto:
            cells.append(
                ", ".join(f"{c['label']} {c['select_value']:.4f} ({c['select_step']})" for c in chosen["candidates"])
                if chosen
                else ""
            )
        lines.append("| " + " | ".join(cells) + " |")
    first = results[0]
    said = (
        f"P: {first['run']['p']}; Q: {first['run']['q']}; shape {first['run']['shape']}, domain "
        f"{first['run']['domain'] or 'unbounded'}, L2 distance; train.steps {_budget(first['run'])}; test "
        f"{first['bound']['n_eval_p']} + {first['bound']['n_eval_q']} items (P + Q), "
        f"{first['bound']['method'].split(' (')[0]}."
    )
    if exact:
        said += f" Exact W1: {first['exact']['method']}."
    return "\n".join(lines) + "\n\n" + said


def _tables_closed(text: str) -> str:
    """``text`` with a blank line after every table that a line of prose follows directly (Markdown
    would read that line as one more row)."""
    lines = text.split("\n")
    out = lines[:1]
    for before, line in zip(lines, lines[1:]):
        if before.startswith("|") and line and not line.startswith("|"):
            out.append("")
        out.append(line)
    return "\n".join(out)


def format_tracks(tracks: Sequence[dict[str, Any]]) -> str:
    r"""The table of ``wdist track`` series (``label``, ``command``, ``track``: a track.json), one
    column each and one row per GAN step: the certified W1 lower bound of that checkpoint's critic,

    .. math:: \hat W_t = \frac{\bar f_P - \bar f_{G_t}}{L_t},

    with its 95% interval, in W1 units (L2 on the flattened samples), marked ``warm`` where the
    critic was warm-started from the previous checkpoint's, and a last row with the critic steps
    trained over the whole series."""
    from wdist.report import CLIPPED_NOTE, clipped, format_interval

    by_step = [{point["gan_step"]: point for point in run["track"]["points"]} for run in tracks]
    lines = [
        "| GAN step | " + " | ".join(run["label"] for run in tracks) + " |",
        "|" + "---|" * (len(tracks) + 1),
    ]
    for step in sorted({step for points in by_step for step in points}):
        cells = []
        for points in by_step:
            point = points.get(step)
            cells.append(
                ""
                if point is None
                else f"{point['lower_bound']:.3f} {format_interval(point['ci95_lo'], point['ci95_hi'], 3)}"
                + (", warm" if point["warm_started"] else "")
            )
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    steps = [sum(int(p["critic_steps"]) for p in points.values()) for points in by_step]
    lines.append("| critic steps | " + " | ".join(map(str, steps)) + " |")
    largest = max(p["lipschitz_certificate"] for points in by_step for p in points.values())
    certified = all(p["certified"] for points in by_step for p in points.values())
    said = (
        f"Certified W1 lower bounds (95% CI) per checkpoint; largest certificate L = {largest:.6g}"
        f"{'' if certified else '; NOT every bound certified (see the runs verdicts)'}."
    )
    if any(clipped(p["ci95_lo"]) for points in by_step for p in points.values()):
        said += f" {CLIPPED_NOTE}."
    return "\n".join(lines) + "\n\n" + said


def _commands(result: dict[str, Any]) -> str:
    if result.get("tool") in SERIES_TOOLS:
        return "; ".join(f"{run['label']}: `{run['command']}`" for run in result["payload"])
    return f"`{result['command']}`"


def render(result: dict[str, Any]) -> str:
    """The table of one result file, by the format of the command that wrote it, and its provenance."""
    tool = result.get("tool", "bench")
    if tool == "bench":
        table = importlib.import_module(f"wdist.bench.{result['bench']}").format_table(result["payload"])
    elif tool == "compare":
        from wdist.compare import format_table

        table = format_table(result["payload"])
    elif tool == "track":
        table = format_tracks(result["payload"])
    else:
        table = format_runs(result["payload"])
    said = (
        f"*Generated from `docs/results/` by `python docs/tables.py render`: {_commands(result)} at commit "
        f"{result['commit']}, {result['date']}, {result['device']}; {result['conditions']}.*"
    )
    table = table.strip()
    if not table.startswith("|"):  # a fixed-width text table: shown as it is, in a code block
        table = f"```text\n{table}\n```"
    return f"{_tables_closed(table)}\n\n{said}\n"


def rewrite(text: str) -> str:
    """``text`` with every table region replaced by the rendering of its result file."""

    def one(match: re.Match[str]) -> str:
        result = json.loads((RESULTS / Path(match["file"]).name).read_text())
        return match.group(1) + render(result) + match.group(4)

    return REGION.sub(one, text)


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def stale() -> list[str]:
    """The pages whose generated tables differ from their result files."""
    return [str(p.relative_to(ROOT)) for p in pages() if rewrite(p.read_text()) != p.read_text()]


def main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="python docs/tables.py", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="action", required=True)
    rec = sub.add_parser("record", help="run a wdist bench, compare or estimate command and store its result file")
    rec.add_argument("name")
    rec.add_argument("--conditions", required=True, help="what else ran on the machine (load), in words")
    rec.add_argument("--label", help="the row's name for an estimate run (default: seed N)")
    rec.add_argument("--add", action="store_true", help="append this estimate run to the file's runs")
    rec.epilog = "then -- and the command: -- wdist bench|compare|estimate ..."
    ren = sub.add_parser("render", help="rewrite the generated tables of every page")
    ren.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is stale")
    argv = list(argv)
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.action == "record":
        print(f"wrote {record(args.name, command, args.conditions, args.label, args.add)}")
        return 0
    if args.check:
        bad = stale()
        if bad:
            print(f"stale generated tables in {', '.join(bad)}; run python docs/tables.py render", file=sys.stderr)
        return 1 if bad else 0
    for page in pages():
        new = rewrite(page.read_text())
        if new != page.read_text():
            page.write_text(new)
            print(f"rewrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
