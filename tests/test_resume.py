"""Resume and atomic files.

A CLI run is killed with SIGKILL mid-training; its result file must be absent (or complete), its
last checkpoint loadable (with the selection so far and its weights), and ``wdist estimate
--resume DIR`` must finish it with the same selected step and the same bound as an uninterrupted
run (the training stream restarts at the batch it stopped at, so here the numbers agree exactly;
the requirement is agreement within the confidence interval).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from run_helpers import crashed_run

from wdist.callbacks import AtomicCheckpointIO
from wdist.pipeline import estimate

REPO = Path(__file__).resolve().parent.parent
TOY = REPO / "configs" / "toy" / "translation-2d.yaml"
WDIST = Path(sys.executable).with_name("wdist")

ARGS = [
    "--train.steps", "200", "--train.eval_every", "50", "--train.checkpoint_every", "10",
    "--train.batch_size", "64", "--eval.n_eval", "2048", "--eval.batch_size", "1024",
    "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0",
]  # fmt: skip

# The real CLI, slowed down by a callback (a sleep after each step) so that the kill surely lands
# mid-training whatever the load of the machine.
SLOW_CLI = textwrap.dedent(
    """
    import sys, time
    import pytorch_lightning as pl
    import wdist.pipeline
    from wdist import cli

    E = sys.modules["wdist.pipeline"]

    class Slow(pl.Callback):
        def on_train_batch_end(self, *args, **kwargs):
            time.sleep(float(sys.argv[1]))

    _estimate = E.estimate
    E.estimate = lambda *a, **k: _estimate(*a, **{**k, "callbacks": [Slow()]})
    sys.exit(cli.main(sys.argv[2:]))
    """
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on shared, busy cores two threads can make these runs 20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return env


def _checkpoint_steps(folder: Path) -> list[int]:
    steps = []
    for f in folder.glob("step*.ckpt"):
        try:
            steps.append(int(f.stem[4:]))
        except ValueError:
            pass
    return steps


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The uninterrupted run every interrupted-and-resumed run is compared with."""
    return estimate(str(TOY), ARGS, out=tmp_path_factory.mktemp("reference"), quiet=True).to_dict()


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory: pytest.TempPathFactory, reference: dict) -> dict:
    root = tmp_path_factory.mktemp("resume")
    out = root / "run"
    script = root / "slow_cli.py"
    script.write_text(SLOW_CLI)
    cmd = [sys.executable, str(script), "0.04", "estimate", "--config", str(TOY), "--out", str(out), "--quiet", *ARGS]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpts = out / "checkpoints"
    try:
        # kill once a checkpoint after the first held-out evaluation (step 50) exists; the run has a
        # finite number of steps, so this loop ends (by the kill, or by the run ending too early)
        while max(_checkpoint_steps(ckpts), default=0) < 70:
            assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.stdout.read()}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    state = {"out": out, "killed_files": sorted(p.name for p in out.iterdir())}
    result = out / "result.json"
    state["killed_result"] = json.loads(result.read_text()) if result.exists() else None  # complete or absent
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)  # never a partial file
    state["killed_step"] = int(last["global_step"])
    state["killed_curve"] = [e["step"] for e in last["wdist_curve"]]
    state["killed_selection"] = {k: v for k, v in last["wdist_selection"].items() if k != "state"}
    state["killed_selection_weights"] = sorted(last["wdist_selection"]["state"])

    resumed = subprocess.run(
        [str(WDIST), "estimate", "--resume", str(out), "--quiet"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    state["resumed"] = json.loads(result.read_text())
    state["reference"] = reference
    return state


def test_killed_run_left_no_partial_result(killed_and_resumed: dict) -> None:
    s = killed_and_resumed
    assert s["killed_result"] is None  # killed before the end: no result at all
    assert "result.json" not in s["killed_files"]
    assert not [f for f in s["killed_files"] if f.endswith(".tmp")]
    # step70.ckpt existed; last.ckpt is written just after it, so the kill may find it at step 60
    assert 60 <= s["killed_step"] < 200
    assert s["killed_curve"][:1] == [50]  # the checkpoint holds the curve so far
    # ... and the selection so far, with the selected weights
    sel = s["killed_selection"]
    assert sel["step"] in s["killed_curve"] and sel["candidates"] == len(s["killed_curve"])
    assert s["killed_selection_weights"] and all(".original" in k or "bias" in k for k in s["killed_selection_weights"])


def test_resumed_run_finishes_like_an_uninterrupted_one(killed_and_resumed: dict) -> None:
    res, ref = killed_and_resumed["resumed"], killed_and_resumed["reference"]
    assert res["run"]["steps"] == 200 and res["bound"]["n_eval_p"] == res["bound"]["n_eval_q"] == 2048
    # the curve keeps the points from before the kill, each step once
    assert [c["step"] for c in res["curve"]] == [50, 100, 150, 200] == [c["step"] for c in ref["curve"]]
    lo, hi = ref["bound"]["ci95_lo"], ref["bound"]["ci95_hi"]
    assert lo <= res["bound"]["lower_bound"] <= hi
    # the same step selected on the select split, from the same candidates, reported on the test split
    assert (
        res["selection"] == ref["selection"]
        and res["bound"]["step"] == ref["bound"]["step"] == res["selection"]["step"]
    )
    # stronger than required: the stream restarts at the right batch and the optimiser state is
    # restored, so the resumed run is the uninterrupted one
    assert res["bound"]["lower_bound"] == pytest.approx(ref["bound"]["lower_bound"], rel=1e-6)
    for a, b in zip(res["curve"], ref["curve"]):
        assert a["lower_bound"] == pytest.approx(b["lower_bound"], rel=1e-6)
        # the train-subset diagnosis of the points from before the kill came back from the checkpoint
        assert a["train"]["lower_bound"] == pytest.approx(b["train"]["lower_bound"], rel=1e-6)


def test_metrics_csv_is_continued_not_replaced(killed_and_resumed: dict) -> None:
    with open(killed_and_resumed["out"] / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    held = [int(r["step"]) for r in rows if r.get("select/lower_bound")]
    assert held == [50, 100, 150, 200]


def test_atomic_checkpoint_survives_a_failed_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "ck" / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    (path.parent / ".last.ckpt.stale.tmp").write_bytes(b"left by a killed run")

    def broken_save(obj, fh, *a, **k):  # writes half a file, then the process "dies"
        fh.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    import wdist.system

    monkeypatch.setattr(wdist.system.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1  # the old checkpoint, intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary files left


KILL_WRITER = textwrap.dedent(
    """
    import sys, torch
    from wdist.callbacks import AtomicCheckpointIO
    io, i = AtomicCheckpointIO(), 0
    while True:
        i += 1
        io.save_checkpoint({"i": i, "w": torch.full((2_000_000,), float(i))}, sys.argv[1])
    """
)


def test_checkpoint_killed_while_writing_is_old_or_new(tmp_path: Path) -> None:
    """SIGKILL a process that does nothing but write 8 MB checkpoints: the file always loads."""
    target = tmp_path / "last.ckpt"
    script = tmp_path / "writer.py"
    script.write_text(KILL_WRITER)
    for delay in (0.4,):
        proc = subprocess.Popen([sys.executable, str(script), str(target)], env=_env())
        try:
            deadline = time.time() + 60
            while not target.exists() and time.time() < deadline:
                time.sleep(0.02)
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        ck = torch.load(target, weights_only=True)
        assert ck["i"] >= 1 and bool((ck["w"] == float(ck["i"])).all())


def test_wgan_gp_resume_is_exact(tmp_path: Path) -> None:
    """The gradient penalty's interpolation weights come from (seed, rank, step), like the
    training batches, so a gradient-penalty run resumed from a checkpoint retraces the
    uninterrupted run exactly (not only within the confidence interval)."""
    gp = [
        "--critic.name", "gp-mlp", "--critic.options", "{width: 16, depth: 2}", "--train.loss", "wgan-gp",
        "--train.steps", "40", "--train.eval_every", "20", "--train.checkpoint_every", "10",
        "--train.batch_size", "64", "--eval.n_eval", "512", "--eval.ot_samples", "0",
        "--eval.empirical_lipschitz_samples", "0",
    ]  # fmt: skip
    crashed = tmp_path / "crashed"
    assert int(crashed_run(TOY, gp, crashed, 25)["global_step"]) == 20
    resumed = estimate(resume=crashed, quiet=True).to_dict()
    reference = estimate(str(TOY), gp, out=tmp_path / "reference", quiet=True).to_dict()
    assert resumed["bound"]["estimate"] == reference["bound"]["estimate"]
    assert resumed["bound"]["lipschitz_certificate"] == reference["bound"]["lipschitz_certificate"]


# -- what a resume may change -------------------------------------------------------------------------------

SHORT = [
    "--train.steps", "20", "--train.eval_every", "10", "--train.checkpoint_every", "10", "--train.batch_size", "64",
    "--eval.n_eval", "256", "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0",
    "--train.schedule", "none",  # a run with no schedule laid out over its length may be resumed longer
]  # fmt: skip


@pytest.fixture()
def finished_run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    estimate(str(TOY), SHORT, out=out, quiet=True)
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(WDIST), *map(str, argv)], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=1800
    )


def test_a_resume_that_changes_the_training_is_refused_and_touches_nothing(finished_run: Path, tmp_path: Path) -> None:
    before = _snapshot(finished_run)
    proc = _cli("estimate", "--resume", finished_run, "--train.lr", "0.5", "--train.steps", "40", "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    msg = proc.stderr
    assert f"Cannot resume {str(finished_run)!r}" in msg
    assert "train.lr: 0.005 (the run so far) -> 0.5 (now)" in msg
    assert "train.steps" not in msg.split("would change the training it continues:")[1].split(". A resumed")[0]
    assert _snapshot(finished_run) == before  # checkpoint, config, result and metrics byte-identical

    # --config with --resume is compared with the run's own config.yaml, not silently ignored
    other = tmp_path / "other.yaml"
    other.write_text((REPO / "configs" / "toy" / "three-cones.yaml").read_text())
    proc = _cli("estimate", "--resume", finished_run, "--config", other, *SHORT, "--quiet")
    assert proc.returncode == 2, proc.stderr
    assert f"--config {other}" in proc.stderr
    assert "toy.class_path: 'wdist.problems.Translation' (the run so far) -> 'wdist.problems.ThreeCones'" in proc.stderr
    assert "toy.init_args" not in proc.stderr  # another class: its options are not listed one by one
    # a shorter run, and a longer one under a learning-rate schedule, are refused too
    proc = _cli("estimate", "--resume", finished_run, "--train.steps", "10", "--quiet")
    assert proc.returncode == 2 and "train.steps: 20 -> 10 (a resumed run can only be longer)" in proc.stderr
    assert _snapshot(finished_run) == before


def test_a_longer_resume_finishes_and_records_both_segments(finished_run: Path, tmp_path: Path) -> None:
    first = json.loads((finished_run / "result.json").read_text())
    assert [seg["to_step"] for seg in first["run"]["segments"]] == [20] and first["run"]["segments"][0][
        "ended"
    ] == "finished"
    # the run's own config given back with --config is compared and accepted
    same = tmp_path / "same.yaml"
    same.write_text((finished_run / "config.yaml").read_text())
    proc = _cli("estimate", "--resume", finished_run, "--config", same, "--train.steps", "30", "--quiet")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads((finished_run / "result.json").read_text())
    assert res["run"]["steps"] == 30 and [c["step"] for c in res["curve"]] == [10, 20, 30]
    segs = res["run"]["segments"]
    assert [(s["from_step"], s["to_step"], s["ended"]) for s in segs] == [(0, 20, "finished"), (20, 30, "finished")]
    assert [s["settings"]["train.steps"] for s in segs] == [20, 30]
    assert all(s["seconds"] > 0 for s in segs)
    assert res["run"]["seconds"] == pytest.approx(sum(s["seconds"] for s in segs))
    assert res["run"]["config"]["train"]["steps"] == 30  # the config that ran last
    assert "steps: 30" in (finished_run / "config.yaml").read_text()  # a later --resume continues the longer run
    assert "trained in segments" in proc.stdout and "0-20" in proc.stdout and "20-30" in proc.stdout


# -- SIGTERM / SIGINT ---------------------------------------------------------------------------------------


def test_sigterm_stops_with_a_checkpoint_and_resume_finishes(tmp_path: Path, reference: dict) -> None:
    """A scheduler's SIGTERM after the first checkpoint: exit 143, one line saying where the run
    stopped and how to resume, no result.json; --resume then finishes it as if never stopped."""
    out = tmp_path / "run"
    script = tmp_path / "slow_cli.py"
    script.write_text(SLOW_CLI)
    cmd = [sys.executable, str(script), "0.04", "estimate", "--config", str(TOY), "--out", str(out), "--quiet", *ARGS]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not _checkpoint_steps(out / "checkpoints"):  # the run has finitely many steps: this ends
            assert proc.poll() is None, f"the run ended before the signal:\n{proc.communicate()}"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if "stopped by SIGTERM" in line]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    step = int(last["global_step"])
    assert 10 <= step < 200
    assert f"after training step {step}; saved a resumable checkpoint" in lines[0]
    assert f"wdist estimate --resume {out}" in lines[0] and "no result written" in lines[0]
    assert not (out / "result.json").exists() and not list(out.rglob("*.tmp"))

    resumed = _cli("estimate", "--resume", out, "--quiet")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    res = json.loads((out / "result.json").read_text())
    assert res["run"]["steps"] == 200 and [c["step"] for c in res["curve"]] == [c["step"] for c in reference["curve"]]
    assert res["bound"]["lower_bound"] == pytest.approx(reference["bound"]["lower_bound"], rel=1e-6)
    assert [(s["to_step"], s["ended"]) for s in res["run"]["segments"]] == [
        (step, "stopped by SIGTERM"),
        (200, "finished"),
    ]


class _SignalAt(__import__("pytorch_lightning").Callback):
    """Sends ``signum`` to this process once ``step`` optimiser steps are done."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def test_sigint_at_an_evaluated_step_keeps_that_point_of_the_curve(tmp_path: Path, reference: dict) -> None:
    """SIGINT right after step 100, whose held-out evaluation follows it: the run stops after that
    evaluation, so the checkpoint holds the point, and the resumed run is the uninterrupted one."""
    from wdist.errors import RunInterrupted

    out = tmp_path / "run"
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(RunInterrupted) as info:
        estimate(str(TOY), ARGS, out=out, quiet=True, callbacks=[_SignalAt(100, signal.SIGINT)])
    stop = info.value
    assert (stop.signum, stop.step) == (signal.SIGINT, 100)
    assert stop.checkpoint is not None and Path(stop.checkpoint).name == "last.ckpt"
    assert signal.getsignal(signal.SIGINT) is handler  # the handler is back
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 100 and [e["step"] for e in ckpt["wdist_curve"]] == [50, 100]
    assert not (out / "result.json").exists()
    res = estimate(resume=out, quiet=True).to_dict()
    assert [c["step"] for c in res["curve"]] == [50, 100, 150, 200]
    for a, b in zip(res["curve"], reference["curve"]):
        assert a["lower_bound"] == pytest.approx(b["lower_bound"], rel=1e-6)
