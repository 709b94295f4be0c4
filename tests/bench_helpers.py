"""Helpers shared by the benchmark tests: the docs' table renderer and a check that a result file
written by ``wdist bench NAME ... --json FILE`` says where it comes from and renders."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def docs_tables() -> ModuleType:
    """``docs/tables.py`` loaded as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "docs" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def result_payload(path: Path, bench: str, *options: str) -> Any:
    """The payload of the result file ``path`` after checking its provenance: benchmark ``bench``, a
    command holding ``options``, a commit, an ISO date, a device, the load; and that docs/tables.py
    renders it with that provenance and the benchmark's own ``format_table``."""
    result = json.loads(path.read_text())
    assert result["bench"] == bench and result["command"].startswith(f"wdist bench {bench} ")
    assert all(option in result["command"] for option in options), result["command"]
    assert re.fullmatch(r"[0-9a-f]{7,40}(\+changes)?|unknown \(not a git checkout\)", result["commit"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", result["date"]) and result["device"]
    assert result["conditions"].startswith("load averages")
    rendered = docs_tables().render(result)
    assert all(result[key] in rendered for key in ("command", "commit", "date", "device"))
    table = importlib.import_module(f"wdist.bench.{bench}").format_table(result["payload"]).strip()
    assert table and (rendered.startswith(table) or rendered.startswith(f"```text\n{table}\n```"))
    return result["payload"]


def run_bench(bench: str, command: str, capsys: pytest.CaptureFixture) -> str:
    """Run ``wdist bench BENCH COMMAND`` in this process (``command`` split as a shell splits it),
    assert that it exits with 0 and return what it printed."""
    code = importlib.import_module(f"wdist.bench.{bench}").cli(shlex.split(command))
    out = capsys.readouterr().out
    assert code == 0, out
    return out
