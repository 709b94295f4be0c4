"""The tables of the docs generated from benchmark result files match those files.

``docs/tables.py`` renders every region ``<!-- table: results/NAME.json -->`` ... ``<!-- end table -->``
of a page with the benchmark's own ``format_table`` and a line naming the command, commit, device
and date; a table edited by hand, or a result file changed without ``python docs/tables.py render``,
fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench_helpers import ROOT, result_payload
from bench_helpers import docs_tables as _tables


def test_generated_tables_match_their_result_files() -> None:
    assert _tables().stale() == [], "run python docs/tables.py render"


def test_every_result_file_is_used_and_says_where_it_comes_from() -> None:
    tables = _tables()
    used = {m["file"] for page in tables.pages() for m in tables.REGION.finditer(page.read_text(encoding="utf-8"))}
    files = sorted((ROOT / "docs" / "results").glob("*.json"))
    assert files, "no result file in docs/results"
    for path in files:
        assert f"results/{path.name}" in used, f"{path.name} is not rendered by any page"
        result = json.loads(path.read_text())
        for key in ("bench", "command", "commit", "date", "device", "conditions", "payload"):
            assert result.get(key), f"{path.name} lacks {key!r}"
        assert re.fullmatch(r"[0-9a-f]{7,40}(\+changes)?", result["commit"]) and re.fullmatch(
            r"\d{4}-\d\d-\d\d", result["date"]
        )
        rendered = tables.render(result)
        assert result["commit"] in rendered and result["date"] in rendered and result["command"] in rendered


def test_a_table_edited_by_hand_is_stale(tmp_path: Path) -> None:
    tables = _tables()
    page = next(p for p in tables.pages() if tables.REGION.search(p.read_text(encoding="utf-8")))
    text = page.read_text(encoding="utf-8")
    assert tables.rewrite(text) == text
    region = tables.REGION.search(text)
    body = re.sub(r"(\| \d+\.\d)(\d+)", lambda m: m.group(1) + "9" * len(m.group(2)), region["body"], count=1)
    edited = text[: region.start("body")] + body + text[region.end("body") :]
    assert edited != text and tables.rewrite(edited) == text


def test_a_tiny_toy_run_writes_a_result_file_that_renders(tmp_path: Path) -> None:
    from wdist.bench import toy

    js = tmp_path / "toy.json"
    config = str(ROOT / "configs" / "toy" / "translation-2d.yaml")
    argv = ["--configs", config, "--critics", "bjorck-mlp", "--steps", "6", "--warmup", "2", "--repeats", "1"]
    assert toy.cli([*argv, "--json", str(js)]) == 0
    (row,) = result_payload(js, "toy", "--steps 6")
    assert row["critic"] == "bjorck-mlp" and row["steps_per_second"] > 0


def test_a_tiny_tightness_run_writes_a_result_file_that_renders(tmp_path: Path) -> None:
    from wdist.bench import tightness

    js = tmp_path / "tightness.json"
    argv = ["--source", "cube", "--dim", "4", "--funnels", "2", "--items", "64", "--constructions", "funnels"]
    argv += ["--critics", "bjorck-mlp", "--steps", "2", "--n-eval", "32", "--batch-size", "16", "--seeds", "0"]
    assert tightness.cli([*argv, "--json", str(js)]) == 0
    (row,) = result_payload(js, "tightness", "--constructions funnels")
    assert row["ratio"] == row["lower_bound"] / row["exact_w1"]
