"""The tables of the docs generated from result files match those files.

``docs/tables.py`` renders every region ``<!-- table: results/NAME.json -->`` ... ``<!-- end table -->``
of a page with the format of the command that wrote the file (a benchmark's ``format_table``,
``wdist compare``'s table, one row per ``wdist estimate`` run) and a line naming the command,
commit, device and date; a table edited by hand, or a result file changed without
``python docs/tables.py render``, fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
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
        tool = result.get("tool", "bench")
        assert tool in tables.TOOLS, f"{path.name}: tool {tool!r}"
        for key in ("command", "commit", "date", "device", "conditions", "payload", *(["bench"] * (tool == "bench"))):
            assert result.get(key), f"{path.name} lacks {key!r}"
        assert re.fullmatch(r"[0-9a-f]{7,40}", result["commit"]), f"{path.name}: measured on uncommitted code"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d( to \d{4}-\d\d-\d\d)?", result["date"])
        rendered = tables.render(result)
        commands = [run["command"] for run in result["payload"]] if tool in tables.SERIES_TOOLS else [result["command"]]
        assert all(f"`{c}`" in rendered for c in commands) and result["commit"] in rendered
        assert result["date"] in rendered and result["device"] in rendered


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
    assert json.loads(js.read_text())["device"] == row["device"]  # the device as the runs used it


def test_a_tiny_tightness_run_writes_a_result_file_that_renders(tmp_path: Path) -> None:
    from wdist.bench import tightness

    js = tmp_path / "tightness.json"
    argv = ["--source", "cube", "--dim", "4", "--funnels", "2", "--items", "64", "--constructions", "funnels"]
    argv += ["--critics", "bjorck-mlp", "--steps", "2", "--n-eval", "32", "--batch-size", "16", "--seeds", "0"]
    assert tightness.cli([*argv, "--json", str(js)]) == 0
    (row,) = result_payload(js, "tightness", "--constructions funnels")
    assert row["ratio"] == row["lower_bound"] / row["exact_w1"]
    # the device as the cells used it (their own thread count), with the torch that ran them
    assert json.loads(js.read_text())["device"] == f"{row['device']}, torch {torch.__version__}"


def _toy(*options: str) -> list[str]:
    config = str(ROOT / "configs" / "toy" / "translation-2d.yaml")
    tiny = ["--train.steps", "6", "--train.eval_every", "3", "--eval.n_eval", "256", "--eval.ot_samples", "0"]
    return ["--config", config, *tiny, *options]


def test_estimate_runs_recorded_render_one_row_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tables = _tables()
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    first = ["wdist", "estimate", *_toy()]
    tables.record("toy-runs", first, "a test")
    second = ["wdist", "estimate", *_toy("--seed", "1")]
    tables.record("toy-runs", second, "a test", label="the second seed", add=True)
    result = json.loads((tmp_path / "toy-runs.json").read_text())
    assert result["tool"] == "estimate" and [run["label"] for run in result["payload"]] == ["seed 0", "the second seed"]
    assert result["conditions"].startswith("a test; load averages") and re.fullmatch(r"\d{4}-\d\d-\d\d", result["date"])
    rendered = tables.render(result)
    rows = [line for line in rendered.splitlines() if line.startswith("| seed 0") or line.startswith("| the second")]
    assert len(rows) == 2
    for row, run in zip(rows, result["payload"]):
        bound = run["result"]["bound"]
        assert "curve" not in run["result"] and run["result"]["selection"]["step"] == bound["step"]
        assert f"{bound['lower_bound']:.4f} [{bound['ci95_lo']:.4f}, {bound['ci95_hi']:.4f}]" in row
        assert f"| 2.0000 | {bound['lower_bound'] / 2.0:.3f} |" in row  # exact W1 of the translation toy and the ratio
        assert f"{run['label']}: `{run['command']}`" in rendered
    assert rows[0] != rows[1]  # the two seeds are two runs
    assert "NOT certified" not in rendered
    uncertified = json.loads(json.dumps(result))
    uncertified["payload"][1]["result"]["bound"]["certified"] = False
    marked = [line for line in tables.render(uncertified).splitlines() if line.startswith("| the second")]
    assert "**NOT certified** (a gradient norm above L: not a bound)" in marked[0]
    opening, closing = "before\n<!-- table: results/toy-runs.json -->\n", "<!-- end table -->\nafter\n"
    assert tables.rewrite(f"{opening}old\n{closing}") == f"{opening}{rendered}{closing}"


def test_adding_a_run_of_other_code_or_another_command_is_refused(tmp_path: Path) -> None:
    tables = _tables()
    old = {"tool": "estimate", "commit": "1234567", "device": "cpu", "date": "2026-12-01", "payload": []}
    new = dict(old, commit="89abcde")
    with pytest.raises(SystemExit, match="commit '1234567'.*'89abcde'"):
        tables._added(old, new, tmp_path / "x.json")
    with pytest.raises(SystemExit, match="a `wdist estimate` run to a file of such runs; .* holds bench"):
        tables._added(dict(old, tool="bench"), new, tmp_path / "x.json")
    with pytest.raises(SystemExit, match="record takes `wdist"):
        tables.record("x", ["wdist", "exact", "--config", "c.yaml"], "a test")
    with pytest.raises(SystemExit, match="--label and --add are for `wdist estimate` runs and `wdist track`"):
        tables.record("x", ["wdist", "compare", "--config", "c.yaml"], "a test", add=True)


def test_a_comparison_recorded_renders_the_table_of_comparison_md(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = _tables()
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    critics = "[{label: mlp, name: bjorck-mlp}, {label: cones, name: cones}]"
    tables.record("toy-compare", ["wdist", "compare", *_toy("--critics", critics, "--seeds", "[0]")], "a test")
    result = json.loads((tmp_path / "toy-compare.json").read_text())
    assert result["tool"] == "compare" and result["device"].startswith("cpu")
    rendered = tables.render(result)
    for row in result["payload"]["rows"]:
        (line,) = [line for line in rendered.splitlines() if line.startswith(f"| {row['label']} (")]
        assert f"| {row['lower_bound_mean']:.4f} ± {row['lower_bound_std']:.4f} |" in line
    assert "exact W1 = 2.0000" in rendered and result["command"] in rendered


def test_a_line_of_prose_right_under_a_rendered_table_stays_out_of_it() -> None:
    tables = _tables()
    assert tables._tables_closed("| a |\n|---|\n| 1 |\n(a note)\n\n| b |") == "| a |\n|---|\n| 1 |\n\n(a note)\n\n| b |"


def test_tracks_recorded_render_one_column_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wdist.report import format_interval
    from wdist.tracking import default_snapshots

    tables = _tables()
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    checkpoints = [str(default_snapshots() / f"digits_wgan_gp_8_step{s:05d}.pt") for s in (100, 1000)]
    tiny = ["--critic.name", "bjorck-mlp", "--critic.options", "{width: 16}", "--train.steps", "8"]
    tiny += ["--train.eval_every", "4", "--train.batch_size", "64", "--eval.n_eval", "100", "--eval.ot_samples", "0"]
    cold = ["wdist", "track", "--track.checkpoints", *checkpoints, *tiny, "--track.warm_start", "false"]
    tables.record("tracks", cold, "a test", label="cold")
    tables.record("tracks", ["wdist", "track", "--track.checkpoints", *checkpoints, *tiny], "a test", add=True)
    result = json.loads((tmp_path / "tracks.json").read_text())
    assert result["tool"] == "track" and [run["label"] for run in result["payload"]] == ["cold", "seed 0"]
    rendered = tables.render(result)
    assert rendered.splitlines()[0] == "| GAN step | cold | seed 0 |"
    for step in (100, 1000):
        (row,) = [line for line in rendered.splitlines() if line.startswith(f"| {step} |")]
        points = [next(p for p in run["track"]["points"] if p["gan_step"] == step) for run in result["payload"]]
        cells = [f"{p['lower_bound']:.3f} {format_interval(p['ci95_lo'], p['ci95_hi'], 3)}" for p in points]
        assert all(cell in row for cell in cells) and row.count("warm") == (step == 1000)
    assert "| critic steps | 16 | 12 |" in rendered  # the warm start trains half the steps
