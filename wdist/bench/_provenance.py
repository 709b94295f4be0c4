"""Benchmark result files that say where their figures come from.

Every ``wdist bench NAME ... --json FILE`` writes one JSON object::

    {"bench": "critics", "command": "wdist bench critics --sizes 32 ...", "commit": "8f96830",
     "date": "2026-12-07", "device": "cpu: x86_64, 2 threads, torch 2.14.1",
     "conditions": "load averages 0.12 / 0.30 / 0.41 (1 / 5 / 15 min) at the start", "payload": <rows or record>}

``payload`` is what the benchmark's own ``format_table`` takes, so ``docs/tables.py`` renders the
docs' tables from these files without running anything.
"""

from __future__ import annotations

import datetime
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any, Sequence

from wdist.bench._runs import load_text

__all__ = ["CODE", "code_commit", "provenance", "write_result", "read_payload"]

#: What a measurement depends on: a change elsewhere (the docs) does not change the code measured.
CODE = ("wdist", "critics", "generators", "configs", "pyproject.toml")


def code_commit(root: Path | None = None) -> str:
    """The code measured: the last commit that changed :data:`CODE` in the checkout ``root`` (default:
    the one this package was imported from), marked ``+changes`` when the working tree differs from it;
    ``"unknown (not a git checkout)"`` for an installed package."""
    root = Path(__file__).resolve().parents[2] if root is None else root

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()

    try:
        commit = git("log", "-1", "--format=%h", "--", *CODE)
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *CODE)
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return (commit or "unknown (not a git checkout)") + ("+changes" if dirty and commit else "")


def provenance(bench: str, argv: Sequence[str], device: str) -> dict[str, Any]:
    """Where a benchmark's figures come from: its name, the command (``wdist bench BENCH ARGV``),
    :func:`code_commit`, today's UTC date, ``device`` (in words) and the load averages now."""
    return {
        "bench": bench,
        "command": shlex.join(["wdist", "bench", bench, *argv]),
        "commit": code_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "device": device,
        "conditions": f"load averages {load_text()} (1 / 5 / 15 min) at the start",
    }


def write_result(path: str | Path, made: dict[str, Any], payload: Any) -> Path:
    """Write ``made`` (from :func:`provenance`, taken when the run started) with ``payload`` to
    ``path`` (parent folders created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**made, "payload": payload}, indent=1) + "\n")
    return path


def read_payload(path: str | Path) -> Any:
    """The ``payload`` of a result file written by :func:`write_result`.

    Raises ``ValueError`` naming the file when it is not such a file."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or "payload" not in data or "bench" not in data:
        raise ValueError(
            f"{path} is not a benchmark result file: expected a JSON object with 'bench' and 'payload' "
            "(what `wdist bench NAME ... --json FILE` writes)"
        )
    return data["payload"]
