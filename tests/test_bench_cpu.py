"""Smoke tests of ``wdist bench contention`` and ``wdist bench startup``: they run end to end, clean
up their competing processes and print their tables. No figure is tested (they depend on the
machine and its load)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bench_helpers import result_payload

from wdist.bench import contention, startup
from wdist.bench._runs import exported_commit, tree_option

ROOT = Path(__file__).resolve().parent.parent
TOY = str(ROOT / "configs" / "toy" / "translation-2d.yaml")
TINY = ["--config", TOY, "--train.steps", "4", "--train.eval_every", "4", "--eval.n_eval", "64"]
TINY += ["--eval.ot_samples", "32", "--eval.empirical_lipschitz_samples", "8", "--critic.options", "{width: 16}"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_competitors_run_during_the_block_and_are_gone_after() -> None:
    with contention.Competitors(2) as comp:
        pids = [p.pid for p in comp.procs]
        assert len(pids) == 2 and all(p.poll() is None for p in comp.procs)
    assert not any(_alive(pid) for pid in pids)


def test_settings() -> None:
    assert contention.setting_args("default", 2) == ([], {}, "default (thread policy)")
    args, env, label = contention.setting_args("before", 4)
    assert args == ["--train.threads", "4"] and env == {"WDIST_OPENMP_DEFAULTS": "1"} and "before" in label
    assert contention.setting_args("1", 2)[0] == ["--train.threads", "1"]
    with pytest.raises(ValueError, match="unknown setting"):
        contention.setting_args("fast", 2)
    with pytest.raises(ValueError, match="--before-tree DIR or --before-commit REV"):
        contention.setting_args("tree", 2)
    label = "before, as it was: the default of the source tree /tmp/old"
    assert contention.setting_args("tree", 2, "/tmp/old") == ([], {}, label)


def test_a_before_tree_must_be_a_source_tree(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no wdist/cli.py"):
        contention.run_contention(["default"], [0], 1, before_tree=str(tmp_path))


def test_a_commit_is_exported_into_a_temporary_folder_and_removed_after() -> None:
    with exported_commit("HEAD") as folder:
        tree = Path(folder)
        assert (tree / "wdist" / "cli.py").is_file() and (tree / "critics" / "certificates.py").is_file()
        assert not (tree / ".git").exists()  # an export, not a clone
    assert not tree.exists()


def test_an_unknown_commit_or_two_trees_are_named() -> None:
    with pytest.raises(ValueError, match="'no-such-commit-x' cannot be exported"):
        with exported_commit("no-such-commit-x"):
            pass
    with pytest.raises(ValueError, match="--before-tree / --before-commit: give a folder or a commit, not both"):
        with tree_option("/some/dir", "HEAD", "--before-tree / --before-commit"):
            pass
    with tree_option("/some/dir", None, "--tree / --tree-commit") as folder:
        assert folder == "/some/dir"


@pytest.mark.parametrize(
    ("bench", "option"),
    [("contention", "--before-commit"), ("startup", "--tree-commit"), ("startup", "--before-commit")],
)
def test_a_commit_the_checkout_lacks_is_exit_2(bench: str, option: str, capsys) -> None:
    code = (contention if bench == "contention" else startup).cli([option, "no-such-commit-x", "--repeats", "1"])
    assert code == 2
    assert "'no-such-commit-x' cannot be exported" in capsys.readouterr().err


def _run(setting: str, competitors: int, wall: float, train: float | None, threads: int = 1) -> dict:
    return {
        "setting": setting, "label": setting, "competitors": competitors, "wall_s": wall, "train_s": train,
        "threads": threads, "threads_reason": "auto: 1 (small critic)", "error": None if train else ["boom"],
    }  # fmt: skip


def test_contention_table_takes_medians_and_ratios_to_idle() -> None:
    record = {
        "settings": ["default", "2"], "competitors": [0, 1], "repeats": 3, "estimate_args": [], "machine": "m",
        "load_before": "0.00 / 0.00 / 0.00", "load_after": "0.10 / 0.00 / 0.00",
        "runs": [
            _run("default", 0, 20.0, 12.0), _run("default", 0, 22.0, 13.0), _run("default", 0, 99.0, 90.0),
            _run("default", 1, 24.0, 15.0), _run("default", 1, 21.0, 14.0), _run("default", 1, 23.0, 14.5),
            _run("2", 0, 18.0, 10.0, 2), _run("2", 1, 60.0, None, 2), _run("2", 1, 50.0, 40.0, 2),
        ],
    }  # fmt: skip
    table = contention.format_table(record, "wdist bench contention")
    row_default = next(ln for ln in table.splitlines() if ln.startswith("| default"))
    assert "| 22.0 (13.0) | 23.0 (14.5) | 1.05 |" in row_default
    row_two = next(ln for ln in table.splitlines() if ln.startswith("| 2 "))
    assert "50.0 (40.0) [1 failed]" in row_two and "| 2.78 |" in row_two
    assert "default chose: auto: 1 (small critic)" in table and "command: `wdist bench contention`" in table


def test_contention_names_an_exported_tree_by_its_commit() -> None:
    runs = [{**_run("tree", 0, 30.0, 20.0, 2), "label": "before, as it was: the default of the source tree /tmp/x"}]
    record = {
        "settings": ["tree"], "competitors": [0], "repeats": 1, "estimate_args": [], "machine": "m",
        "load_before": "0", "load_after": "0", "runs": runs,
    }  # fmt: skip
    assert "| before, as it was: the default of the source tree /tmp/x | 2 |" in contention.format_table(record)
    named = contention.format_table({**record, "before_commit": "83d2914"})
    assert "| before, as it was: the default of commit 83d2914 | 2 |" in named and "/tmp/x |" not in named


def test_bench_contention_tiny(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    js = tmp_path / "contention.json"
    code = contention.cli(
        ["--settings", "1", "--competitors", "0", "1", "--repeats", "1", "--json", str(js), "--", *TINY]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| 1 thread | 1 |" in out and "1 competing / idle" in out
    record = result_payload(js, "contention", "--settings 1", "-- --config")
    assert [(r["setting"], r["competitors"]) for r in record["runs"]] == [("1", 0), ("1", 1)]
    assert all(r["error"] is None and r["threads"] == 1 and 0 < r["train_s"] < r["wall_s"] for r in record["runs"])
    assert all(r["openmp_wait_policy"] == "PASSIVE" for r in record["runs"])


def test_startup_table_and_its_parts(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    js = tmp_path / "startup.json"
    code = startup.cli(["--repeats", "1", "--json", str(js), "--", *TINY, "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    record = result_payload(js, "startup", "--repeats 1", "-- --config")
    assert [r["error"] for r in record["commands"]] == [None] * len(startup.COMMANDS)  # the typo exited with 2
    job = record["job"]
    assert job["errors"] == [] and job["not_training_s"] == pytest.approx(job["wall_s"] - job["train_s"])
    assert [p["wall_s"] > 0 for p in record["parts"]] == [True] * 5
    assert "of which not training" in out and "exact-OT reference on 32 x 32 samples" in out


def test_startup_table_sets_an_earlier_record_beside() -> None:
    job = {"wall_s": 30.0, "cpu_s": 29.0, "train_s": 20.0, "not_training_s": 10.0, "threads": "t", "errors": []}

    def record(help_s: float, tree: str | None, parts: list) -> dict:
        return {
            "repeats": 3, "machine": "m", "load_before": "0", "load_after": "0", "estimate_args": [], "tree": tree,
            "commands": [{"what": "`wdist --help`", "wall_s": help_s, "cpu_s": help_s / 2, "error": None}],
            "job": job, "parts": parts,
        }  # fmt: skip

    after = record(0.2, None, [{"what": "bound-curve plot", "wall_s": 0.3}])
    table = startup.format_table(after, "cmd", before=record(0.4, "/old", []))
    assert "| `wdist --help` | 0.40 | 0.20 | 0.20 | 0.10 |" in table
    assert "| &nbsp;&nbsp;part: bound-curve plot (in-process) | n/a | n/a | 0.30 | n/a |" in table
    assert "before: command lines of the source tree /old" in table


def test_startup_keeps_the_tree_it_measured_first_beside() -> None:
    job = {"wall_s": 30.0, "cpu_s": 29.0, "train_s": 20.0, "not_training_s": 10.0, "threads": "t", "errors": []}
    common = {"repeats": 1, "machine": "m", "load_before": "0", "load_after": "0", "estimate_args": [], "job": job}
    old = {
        **common,
        "tree": "/old",
        "parts": [],
        "commands": [{"what": "x", "wall_s": 2.0, "cpu_s": 1.0, "error": None}],
    }
    new = {**common, "tree": None, "parts": [], "commands": [{"what": "x", "wall_s": 1.0, "cpu_s": 0.5, "error": None}]}
    assert startup.format_table({**new, "before": old}) == startup.format_table(new, before=old)
    assert "| x | 2.00 | 1.00 | 1.00 | 0.50 |" in startup.format_table({**new, "before": old})


def test_startup_measures_an_earlier_tree_or_reads_one_not_both(capsys: pytest.CaptureFixture) -> None:
    assert startup.cli(["--before-commit", "HEAD", "--compare", "x.json"]) == 2
    assert "Give one of them" in capsys.readouterr().err


@pytest.mark.slow
def test_startup_measures_the_earlier_tree_in_the_same_run(tmp_path: Path) -> None:
    js = tmp_path / "startup.json"
    code = startup.cli(["--repeats", "1", "--before-tree", str(ROOT), "--json", str(js), "--", *TINY, "--quiet"])
    assert code == 0
    record = result_payload(js, "startup", "--before-tree", "-- --config")
    assert record["before"]["tree"] == str(ROOT) and record["before"]["parts"] == []
    assert record["before"]["job"]["errors"] == [] and record["job"]["errors"] == []
    assert "before: wall s" in startup.format_table(record)
