"""W&B curves, read back with wandb's own reader.

Without an API key (and with WANDB_MODE unset) ``--logger wandb`` logs offline into
``<out>/wandb`` and says so. wandb 0.31 has no Python reader for ``.wandb`` transaction logs any
more; its own reader is the ``wandb leet inspect`` command (``--json``: one record per line;
``--summary --json``: the run's config and summary), which the tests call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOY = REPO / "configs" / "toy" / "translation-2d.yaml"
WDIST = Path(sys.executable).with_name("wdist")


def _keyless_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}  # no key, no mode
    env.update(HOME=str(home), WANDB_SILENT="true", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return env


def _inspect(run_dir: Path, *flags: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", *flags, str(run_dir)],
        capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _one_run(folder: Path) -> Path:
    runs = sorted(folder.glob("offline-run-*"))
    assert len(runs) == 1, runs
    assert len(list(runs[0].glob("run-*.wandb"))) == 1
    return runs[0]


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("wandb")
    out = root / "out"
    env = _keyless_env(root)
    del env["WANDB_SILENT"]  # what a user sees: nothing of W&B's own but what wdist prints
    proc = subprocess.run(
        [
            str(WDIST), "estimate", "--config", str(TOY), "--out", str(out), "--logger", "wandb", "--quiet",
            "--train.steps", "40", "--train.eval_every", "20", "--train.batch_size", "64",
            "--eval.n_eval", "1024", "--eval.ot_samples", "200", "--eval.empirical_lipschitz_samples", "64",
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,  # never hangs
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = _one_run(out / "wandb")
    records = [json.loads(line) for line in _inspect(run_dir, "--json").splitlines() if line.strip()]
    state = json.loads(_inspect(run_dir, "--summary", "--json"))
    return {
        "stderr": proc.stderr,
        "result": json.loads((out / "result.json").read_text()),
        "records": records,
        "state": state,
        "home": root,
        "out": out,
    }


def test_offline_without_key_and_says_so(wandb_run: dict) -> None:
    assert "W&B: no API key found" in wandb_run["stderr"] and "logging offline" in wandb_run["stderr"]
    assert wandb_run["state"]["state"] == "finished" and wandb_run["state"]["exit_code"] == 0


def test_offline_run_says_where_it_is_and_how_to_sync_it(wandb_run: dict) -> None:
    """The last W&B line names the offline run's own folder and the command that uploads it, and
    W&B's warning about Lightning's (removed) anonymous setting does not reach the user."""
    run_dir = _one_run(wandb_run["out"] / "wandb")
    assert f"W&B: the offline run is in {run_dir}; upload it with: wandb sync {run_dir}" in wandb_run["stderr"]
    assert "anonymous" not in wandb_run["stderr"].lower()


def test_wandb_files_go_under_out_not_home(wandb_run: dict) -> None:
    """The W&B service's own debug logs and cache go under <out>/wandb, not into the home folder."""
    home, out = wandb_run["home"], wandb_run["out"]
    assert not [p for p in home.rglob("*") if "wandb" in p.name.lower() and out not in p.parents], list(home.rglob("*"))
    assert list((out / "wandb").rglob("core-debug-*.log"))


def test_a_keyless_run_leaves_the_process_environment_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An offline W&B run (no key) used to set WANDB_MODE=offline for the whole process, so a later
    run in the same process, with a key, stayed offline. Now nothing outlasts the run."""
    import torch

    from wdist.loggers import wandb_offline
    from wdist.pipeline import estimate

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    for key in [k for k in os.environ if k.startswith("WANDB_") and k != "WANDB_SILENT"]:
        monkeypatch.delenv(key)
    before = {k: v for k, v in os.environ.items() if k.startswith("WANDB_")}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        estimate(
            str(TOY),
            ["--logger.kind", "wandb", "--train.steps", "10", "--train.eval_every", "10", "--train.batch_size", "32",
             "--eval.n_eval", "64", "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0"],
            out=tmp_path / "out", quiet=True,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert _one_run(tmp_path / "out" / "wandb")
    after = {k: v for k, v in os.environ.items() if k.startswith("WANDB_") and k != "WANDB_SERVICE"}
    assert after == before  # no WANDB_MODE, no WANDB_CACHE_DIR left behind (WANDB_SERVICE is wandb's own)
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    assert not wandb_offline()  # a later run with a key would go online


def test_bound_curve_and_its_interval_are_separate_series(wandb_run: dict) -> None:
    curve = wandb_run["result"]["curve"]
    rows = [r["history"]["item"] for r in wandb_run["records"] if r["type"] == "history"]
    held = [r for r in rows if "select/lower_bound" in r]
    assert [int(r["trainer/global_step"]) for r in held] == [c["step"] for c in curve] == [20, 40]
    for row, point in zip(held, curve):
        for key in ("lower_bound", "lower_bound_lo", "lower_bound_hi", "estimate", "lipschitz_certificate", "stderr"):
            assert float(row[f"select/{key}"]) == pytest.approx(point[key], rel=1e-12), key
        assert (
            float(row["select/lower_bound_lo"]) < float(row["select/lower_bound"]) < float(row["select/lower_bound_hi"])
        )
    assert any("train/gap" in r for r in rows)


def test_config_and_final_result_as_summary(wandb_run: dict) -> None:
    res, state = wandb_run["result"], wandb_run["state"]
    cfg = state["config"]
    assert cfg["critic"]["name"] == "bjorck-mlp"
    assert int(cfg["train"]["steps"]) == 40 and int(cfg["eval"]["n_eval"]) == 1024
    assert cfg["toy"]["class_path"].endswith("Translation")
    summary = state["summary"]
    bound = summary["bound"]  # the summary is result.json less the curve and the config
    for key in ("lower_bound", "estimate", "lipschitz_certificate", "stderr", "ci95_lo", "ci95_hi"):
        assert float(bound[key]) == pytest.approx(res["bound"][key], rel=1e-12), key
    assert float(summary["exact"]["w1"]) == pytest.approx(res["exact"]["w1"], rel=1e-12)
    assert float(summary["references"]["empirical_ot_w1"]) == pytest.approx(res["references"]["empirical_ot_w1"])
    assert bound["certified"] in (True, "true") and int(summary["run"]["steps"]) == 40
    assert "image" in str(summary["bound_curve"])


def test_comparison_plot_is_logged_as_an_image(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from wdist.compare import _log_comparison_image
        from wdist.config import parse_config
        from wdist.plots import plot_comparison

        out = Path({str(tmp_path / "cmp")!r})
        curve = [{{"step": s, "lower_bound": 1.0 + s / 100, "lower_bound_lo": 0.9 + s / 100,
                   "lower_bound_hi": 1.1 + s / 100, "estimate": 1.0 + s / 100}} for s in (10, 20)]
        png = plot_comparison([("a", 0, curve)], out / "comparison.png", exact_w1=1.3, title="t")
        shared = parse_config("configs/toy/translation-2d.yaml", ["--logger.kind", "wandb"])
        _log_comparison_image(out, "toy", png, shared)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=_keyless_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = _one_run(tmp_path / "cmp" / "wandb-summary" / "wandb")
    state = json.loads(_inspect(run_dir, "--summary", "--json"))
    assert "image" in str(state["summary"]["comparison"])
    images = list((run_dir / "files" / "media" / "images").glob("comparison_*.png"))
    assert len(images) == 1 and images[0].stat().st_size > 1000


CRASHING_CLI = textwrap.dedent(
    """
    import sys
    import pytorch_lightning as pl
    import wdist.pipeline
    from wdist import cli

    E = sys.modules["wdist.pipeline"]

    class Crash(pl.Callback):
        def on_train_batch_end(self, trainer, *args, **kwargs):
            if trainer.global_step >= 25:
                raise RuntimeError("simulated crash")

    _estimate = E.estimate
    E.estimate = lambda *a, **k: _estimate(*a, **{**k, "callbacks": [Crash()]})
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def test_resumed_run_continues_the_same_wandb_run(tmp_path: Path) -> None:
    """A crashed run resumed with --resume logs to the same W&B run id (recorded in
    <out>/wandb_run_id), so its curves continue one run instead of starting a second."""
    out = tmp_path / "out"
    script = tmp_path / "crashing_cli.py"
    script.write_text(CRASHING_CLI)
    args = [
        "estimate", "--config", str(TOY), "--out", str(out), "--logger", "wandb", "--quiet",
        "--train.steps", "40", "--train.eval_every", "20", "--train.checkpoint_every", "10",
        "--train.batch_size", "64", "--eval.n_eval", "256", "--eval.ot_samples", "0",
        "--eval.empirical_lipschitz_samples", "0",
    ]  # fmt: skip
    env = _keyless_env(tmp_path)
    crashed = subprocess.run(
        [sys.executable, str(script), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800
    )
    assert crashed.returncode != 0 and "simulated crash" in crashed.stderr, crashed.stderr[-2000:]
    run_id = (out / "wandb_run_id").read_text().strip()
    resumed = subprocess.run(
        [str(WDIST), "estimate", "--resume", str(out), "--quiet"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith("-" + run_id) for r in runs), runs
    assert (out / "wandb_run_id").read_text().strip() == run_id
    state = json.loads(_inspect(runs[-1], "--summary", "--json"))
    assert int(state["summary"]["run"]["steps"]) == 40
