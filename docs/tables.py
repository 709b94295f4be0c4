"""Tables of the docs generated from benchmark result files (``docs/results/*.json``).

A result file is what one ``wdist bench NAME ... --json FILE`` wrote (:mod:`wdist.bench._provenance`):
the benchmark's rows or record and where they come from::

    {"bench": "tightness", "command": "wdist bench tightness ...", "commit": "8f96830",
     "date": "2026-12-07", "device": "...", "conditions": "...", "payload": <the rows or record>}

``python docs/tables.py record NAME -- wdist bench BENCH ...`` runs the command, reads the file it
wrote and stores ``docs/results/NAME.json``; ``python docs/tables.py render`` rewrites, in every
page, the region between ``<!-- table: results/NAME.json -->`` and ``<!-- end table -->`` with the
benchmark's own ``format_table`` of the payload and a line stating command, commit, device and
date; ``--check`` changes nothing and fails when a region differs from its rendering
(tests/test_docs_tables.py runs it, so a generated table is never edited by hand).
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


def _benches() -> tuple[str, ...]:
    from wdist.bench import BENCHES

    return BENCHES


def record(name: str, command: Sequence[str], conditions: str) -> Path:
    """Run ``wdist bench ...`` (``command``) with ``--json``, add ``conditions`` to the provenance the
    benchmark wrote (:mod:`wdist.bench._provenance`) and store it as ``docs/results/NAME.json``."""
    if list(command[:2]) != ["wdist", "bench"] or len(command) < 3 or command[2] not in _benches():
        raise SystemExit(f"record takes `wdist bench {{{','.join(_benches())}}} ...`; got {shlex.join(command)!r}")
    with tempfile.TemporaryDirectory() as tmp:
        from wdist.cli import main

        written = Path(tmp) / "result.json"
        code = main([*command[1:], "--json", str(written)])
        if code != 0:
            raise SystemExit(f"`{shlex.join(command)}` exited {code}")
        entry = json.loads(written.read_text())
    entry["command"] = shlex.join(command)
    entry["conditions"] = f"{conditions}; {entry['conditions']}"
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(entry, indent=1) + "\n")
    return out


def render(result: dict[str, Any]) -> str:
    """The table of one result file, by its benchmark's own ``format_table``, and its provenance."""
    module = importlib.import_module(f"wdist.bench.{result['bench']}")
    table = module.format_table(result["payload"]).strip()
    said = (
        f"*Generated from `docs/results/` by `python docs/tables.py render`: `{result['command']}` at commit "
        f"{result['commit']}, {result['date']}, {result['device']}; {result['conditions']}.*"
    )
    return f"{table}\n\n{said}\n"


def rewrite(text: str) -> str:
    """``text`` with every table region replaced by the rendering of its result file."""

    def one(match: re.Match[str]) -> str:
        result = json.loads((DOCS / match["file"]).read_text())
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
    rec = sub.add_parser("record", help="run a benchmark command and store its result file")
    rec.add_argument("name")
    rec.add_argument("--conditions", required=True, help="what else ran on the machine (load), in words")
    rec.epilog = "then -- and the command: -- wdist bench ..."
    ren = sub.add_parser("render", help="rewrite the generated tables of every page")
    ren.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is stale")
    argv = list(argv)
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.action == "record":
        print(f"wrote {record(args.name, command, args.conditions)}")
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
