"""Distributed training, selection and held-out evaluation.

Two CPU processes (DDP over gloo) train a critic, select a step on the select split (with early
stopping, so both ranks must stop at the same step) and evaluate it once on the test split; the
test statistics of the selected critic are then recomputed in this one process on the same test
samples and must agree to 1e-6. The test sets have unequal sizes (1001 of P, 1500 of Q), so the P
part ends inside the shards; the select split's Q part has 1024 samples. The train subset is
gathered the same way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from wdist.config import resolve_config
from wdist.data import PairDataModule, TrainingStream
from wdist.pipeline import build_run
from wdist.sources import LatentSource
from wdist.stats import mean_difference_interval

REPO = Path(__file__).resolve().parent.parent
TOY = REPO / "configs" / "toy" / "translation-2d.yaml"

# Lightning starts rank 1 by running this script again (with LOCAL_RANK=1), so it must be a file.
# It runs the real CLI and records, per rank, the exit status and whether that rank got a Result.
DRIVER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import wdist.pipeline
    from wdist import cli

    E = sys.modules["wdist.pipeline"]

    marks = Path(sys.argv[1])
    seen = {}
    _estimate = E.estimate

    def recording(*args, **kwargs):
        result = _estimate(*args, **kwargs)
        seen["result"] = result is not None
        return result

    _test = E.evaluate_on_test

    def test_recording(trainer, run):
        tested = _test(trainer, run)
        seen["selection"] = run.system.selection.record()
        seen["steps"] = int(trainer.global_step)
        seen["test_reads"] = run.datamodule.test_items.reads
        seen["bound"] = tested.bound.estimate
        return tested

    E.estimate = recording  # the CLI imports it at call time
    E.evaluate_on_test = test_recording
    rc = cli.main(sys.argv[2:])
    rank = os.environ.get("LOCAL_RANK", "0")
    (marks / f"rank{rank}.json").write_text(json.dumps({"rc": rc, **seen}))
    sys.exit(rc)
    """
)

N_EVAL = 1001  # test P samples
N_EVAL_Q = 1500  # test Q samples (more than P: independent samples of unequal sizes)
N_SELECT, N_SELECT_Q = 1001, 1024  # select P samples (given), Q samples (the default: at most 1024)


# at most 40 steps with early stopping (patience 1): both ranks must stop at the same step
DDP_ARGS = [
    "--quiet", "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
    "--train.steps", "40", "--train.eval_every", "10", "--train.checkpoint_every", "10", "--train.patience", "1",
    "--train.batch_size", "64", "--eval.n_eval", str(N_EVAL), "--eval.n_eval_q", str(N_EVAL_Q),
    "--eval.n_select_p", str(N_SELECT), "--eval.batch_size", "128",
    "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0",
]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", WANDB_MODE="offline")
    env.pop("LOCAL_RANK", None)
    return env


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    out, marks = root / "out", root / "marks"
    marks.mkdir()
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    cmd = [sys.executable, str(driver), str(marks), "estimate", "--config", str(TOY), "--out", str(out), *DDP_ARGS]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"DDP run failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    deadline = time.time() + 60  # rank 1 may still be shutting down when rank 0 returns
    while not (marks / "rank1.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    return root


def test_ddp_ranks_exit_cleanly_and_only_rank0_reports(ddp_run: Path) -> None:
    r0 = json.loads((ddp_run / "marks" / "rank0.json").read_text())
    r1 = json.loads((ddp_run / "marks" / "rank1.json").read_text())
    assert (r0["rc"], r0["result"]) == (0, True)
    assert (r1["rc"], r1["result"]) == (0, False)  # rank 1 returns no Result, so writes no result.json
    # one decision on both ranks: the same selected step, the same early stop, the same test bound
    assert r0["selection"] == r1["selection"] and r0["steps"] == r1["steps"] and r0["bound"] == r1["bound"]
    # each rank read its shard of the test split once: together one pass (the sampler pads to equal shards)
    assert r0["test_reads"] + r1["test_reads"] == 2 * -(-N_EVAL_Q // 2)
    out = ddp_run / "out"
    res = json.loads((out / "result.json").read_text())
    assert res["run"]["device"].endswith("x 2 processes")
    assert res["selection"] == r0["selection"] and res["run"]["steps"] == r0["steps"]
    assert (res["bound"]["n_eval_p"], res["bound"]["n_eval_q"]) == (N_EVAL, N_EVAL_Q)
    train = res["diagnosis"]["train"]
    assert (train["n_eval_p"], train["n_eval_q"]) == (N_SELECT, N_SELECT_Q)
    steps = [c["step"] for c in res["curve"]]
    assert steps == list(range(10, res["run"]["steps"] + 1, 10)) and res["selection"]["candidates"] == len(steps)
    assert res["selection"]["stopped_early"] == (res["run"]["steps"] < 40)
    assert all((c["n_eval_p"], c["n_eval_q"]) == (N_SELECT, N_SELECT_Q) for c in res["curve"])
    assert (out / "bound_curve.png").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    assert not list(out.glob("**/.*.tmp"))


def test_ddp_heldout_statistics_equal_one_process(ddp_run: Path) -> None:
    out = ddp_run / "out"
    res = json.loads((out / "result.json").read_text())
    cfg = resolve_config(out / "config.yaml")
    run = build_run(cfg, cfg.sides())
    dm, system = run.datamodule, run.system
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == res["run"]["steps"]
    system.load_state_dict(ckpt["state_dict"])
    system.selection.load_state_dict(ckpt["wdist_selection"])
    assert system.selection.record() == res["selection"]

    # 1) the same test evaluation code, in one process (it loads the selected state into the critic)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, inference_mode=False,
    )  # fmt: skip
    trainer.test(system, datamodule=dm, verbose=False)
    assert system.test_evaluation is not None
    one = system.test_evaluation.point("test")
    assert (one["n_eval_p"], one["n_eval_q"], one["step"]) == (N_EVAL, N_EVAL_Q, res["bound"]["step"])
    ci = res["bound"]
    for key, ref in [
        ("estimate", res["bound"]["estimate"]), ("stderr", res["bound"]["stderr"]), ("estimate_lo", ci["estimate_lo"]),
        ("estimate_hi", ci["estimate_hi"]), ("lower_bound", res["bound"]["lower_bound"]),
        ("lower_bound_lo", ci["lower_bound_lo"]), ("lower_bound_hi", ci["lower_bound_hi"]),
    ]:  # fmt: skip
        assert one[key] == pytest.approx(ref, abs=1e-6, rel=0), key

    # 2) independently of the gather code: the selected critic on every test sample, in index order
    assert dm.test is not None and (len(dm.test.p), len(dm.test.q)) == (N_EVAL, N_EVAL_Q)
    critic = system.critic.eval()
    with torch.no_grad():
        fp = critic(dm.test.p).reshape(-1).double()
        fq = critic(dm.test.q).reshape(-1).double()
    iv = mean_difference_interval(fp, fq, confidence=cfg.eval.confidence, method=cfg.eval.interval)
    assert iv.estimate == pytest.approx(res["bound"]["estimate"], abs=1e-6, rel=0)
    assert iv.stderr == pytest.approx(res["bound"]["stderr"], abs=1e-6, rel=0)
    assert [iv.lo, iv.hi] == pytest.approx([ci["estimate_lo"], ci["estimate_hi"]], abs=1e-6, rel=0)
    assert dm.train_items is not None  # the diagnosis: the selected critic on the train subset
    with torch.no_grad():
        tp = critic(dm.train_items.p).reshape(-1).double()
        tq = critic(dm.train_items.q).reshape(-1).double()
    train = mean_difference_interval(tp, tq, confidence=0.95, method=cfg.eval.interval)
    assert train.estimate / res["bound"]["lipschitz_certificate"] == pytest.approx(
        res["diagnosis"]["train"]["lower_bound"], abs=1e-6, rel=0
    )


def test_gather_drops_sampler_padding() -> None:
    """What two ranks hand to the gather for 5 indices, P having 3 items and Q 5: rank 1's shard is
    padded with index 0; P's part of rank 1's last batch is empty."""
    from wdist.data import EvaluationItems
    from wdist.heldout import HeldOutValues

    items = EvaluationItems({"p": torch.arange(3.0) * 10, "q": -torch.arange(5.0)})
    gathered = HeldOutValues(("p", "q"))
    # rank 0: 0, 2, 4 ; rank 1: 1, 3, 0 (padding) -- concatenated as the gather would return them
    for shard in ([0, 2, 4], [1, 3, 0]):
        batch = items.__getitems__(shard)
        for part, (idx, values) in batch.items():
            gathered.update(part, idx, values)
    values = gathered.compute()
    assert values["p"].tolist() == [0.0, 10.0, 20.0] and values["q"].tolist() == [0.0, -1.0, -2.0, -3.0, -4.0]
    assert items.__getitems__([4])["p"][0].numel() == 0  # past the end of the P part


class _TinyGenerator(LatentSource):
    shape = (2,)
    domain = None
    latent_dim = 3

    def __init__(self) -> None:
        self._module = nn.Linear(3, 2)

    @property
    def module(self) -> nn.Module:
        return self._module

    def sample_latent(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, 3, generator=generator)


class _FakeTrainer:
    def __init__(self, rank: int, step: int = 0) -> None:
        self.global_rank, self.global_step, self.accumulate_grad_batches = rank, step, 1


def test_training_streams_are_rank_distinct_and_restartable() -> None:
    g = _TinyGenerator()
    dm = PairDataModule(g, g, batch_size=8, n_eval=16, seed=3)
    dm.setup()
    batches = {}
    for rank in (0, 1):
        dm.trainer = _FakeTrainer(rank)  # type: ignore[assignment]
        stream = dm.train_dataloader().dataset
        assert isinstance(stream, TrainingStream) and stream.rank == rank
        batches[rank] = next(iter(stream))
    (zp0, zq0), (zp1, zq1) = batches[0], batches[1]
    assert zp0.shape == (8, 3)  # latent vectors: the generator decodes them on the device
    assert not torch.equal(zp0, zp1) and not torch.equal(zq0, zq1) and not torch.equal(zp0, zq0)
    # the same rank and seed give the same stream; a resumed stream continues where it stopped
    it = iter(TrainingStream(g, g, 8, seed=3, rank=1))
    first = [next(it) for _ in range(4)]
    assert torch.equal(first[0][0], zp1)
    dm.trainer = _FakeTrainer(1, step=2)  # type: ignore[assignment]
    resumed = next(iter(dm.train_dataloader().dataset))
    assert torch.equal(resumed[0], first[2][0]) and torch.equal(resumed[1], first[2][1])
    # select and test latents do not depend on the rank or on training
    assert dm.test is not None and dm.test.p.shape == (16, 3) and dm.select.p.shape == (16, 3)
    # the train subset of an infinite side: the latents of process 0's first training batches
    assert dm.train_items is not None
    rank0 = TrainingStream(g, g, 8, seed=3, rank=0)
    assert torch.equal(dm.train_items.p, torch.cat([zp0, rank0.batch(1)[0]]))
    assert torch.equal(dm.train_items.q, torch.cat([zq0, rank0.batch(1)[1]]))


# -- a scheduler's SIGTERM / SIGINT under DDP ----------------------------------------------------------

# The real CLI on every rank, slowed by a sleep after each step so that the signal lands mid-training;
# each rank writes its pid once it has trained a step (GracefulStop's handlers are then in place) and,
# at exit, its exit status.
SIGNAL_DRIVER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path

    import pytorch_lightning as pl
    import wdist.pipeline
    from wdist import cli

    E = sys.modules["wdist.pipeline"]
    marks = Path(sys.argv[1])
    rank = os.environ.get("LOCAL_RANK", "0")

    class Slow(pl.Callback):
        def on_train_batch_end(self, trainer, *args, **kwargs):
            (marks / f"pid{rank}").write_text(str(os.getpid()))
            time.sleep(0.3)

    _estimate = E.estimate
    E.estimate = lambda *a, **k: _estimate(*a, **{**k, "callbacks": [Slow()]})
    rc = cli.main(sys.argv[2:])
    (marks / f"rank{rank}.json").write_text(json.dumps({"rc": rc}))
    sys.exit(rc)
    """
)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None or path.name.startswith("rank"), f"the run ended early:\n{proc.communicate()}"
        assert time.time() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "signum,to_every_rank",
    [(signal.SIGTERM, True), (signal.SIGINT, False)],
    ids=["SIGTERM-to-every-rank", "SIGINT-to-the-launcher-alone"],
)
def test_a_signal_stops_every_rank_with_a_checkpoint_and_resume_finishes(
    ddp_run: Path, tmp_path: Path, signum: signal.Signals, to_every_rank: bool
) -> None:
    """A scheduler's stop under DDP (2 gloo processes): every rank stops after the same step with the
    signal's exit code, rank 0 saves a resumable checkpoint and no result.json is written; a
    ``--resume`` (again on 2 processes) then reports exactly the uninterrupted run's numbers."""
    out, marks = tmp_path / "out", tmp_path / "marks"
    marks.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(SIGNAL_DRIVER)
    cmd = [sys.executable, str(driver), str(marks), "estimate", "--config", str(TOY), "--out", str(out), *DDP_ARGS]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for rank in (0, 1):
            _wait_for(marks / f"pid{rank}", proc)
        pids = [int((marks / f"pid{rank}").read_text()) for rank in ((0, 1) if to_every_rank else (0,))]
        assert pids[0] == proc.pid  # rank 0 is the launcher
        for pid in pids:
            os.kill(pid, signum)
        _, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    code = 128 + int(signum)
    assert proc.returncode == code, stderr[-3000:]
    _wait_for(marks / "rank1.json", proc, timeout=60)
    assert json.loads((marks / "rank1.json").read_text()) == {"rc": code}
    name = signal.Signals(signum).name
    assert "Traceback" not in stderr and f"stopped by {name}" in stderr, stderr[-3000:]
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    step = int(last["global_step"])
    ref = json.loads((ddp_run / "out" / "result.json").read_text())
    assert 1 <= step < ref["run"]["steps"]
    assert not (out / "result.json").exists() and not list(out.rglob("*.tmp"))
    if not to_every_rank:
        return  # the checkpoint is the same one; one resume shows it continues exactly

    resumed_marks = tmp_path / "resumed"
    resumed_marks.mkdir()
    (tmp_path / "resume.py").write_text(DRIVER)
    resumed = subprocess.run(
        [sys.executable, str(tmp_path / "resume.py"), str(resumed_marks), "estimate", "--resume", str(out), "--quiet"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    res = json.loads((out / "result.json").read_text())
    assert [(s["to_step"], s["ended"]) for s in res["run"]["segments"]] == [
        (step, f"stopped by {name}"), (ref["run"]["steps"], "finished")
    ]  # fmt: skip
    assert res["selection"] == ref["selection"]
    for key in ("estimate", "lower_bound", "stderr", "lipschitz_certificate"):
        assert res["bound"][key] == pytest.approx(ref["bound"][key], rel=1e-9, abs=0), key
    train, ref_train = res["diagnosis"]["train"], ref["diagnosis"]["train"]
    assert train["lower_bound"] == pytest.approx(ref_train["lower_bound"], rel=1e-9, abs=0)
    assert [res["bound"]["ci95_lo"], res["bound"]["ci95_hi"]] == pytest.approx(
        [ref["bound"]["ci95_lo"], ref["bound"]["ci95_hi"]], rel=1e-9, abs=0
    )
    assert [c["step"] for c in res["curve"]] == [c["step"] for c in ref["curve"]]
    assert [c["lower_bound"] for c in res["curve"]] == pytest.approx([c["lower_bound"] for c in ref["curve"]], rel=1e-9)


# Rank 1 perturbs its own placement (as a k-means summing in another thread order could): after
# the placement is shared, both ranks must hold process 0's. Each rank records the items it was
# handed, the head right after the placement and the head after training.
PLACEMENT_DRIVER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path

    import torch

    import wdist.system
    from critics.architectures.cones import ConeCritic
    from wdist import cli

    marks = Path(sys.argv[1])
    rank = os.environ.get("LOCAL_RANK", "0")
    record = {}
    _place = ConeCritic.init_from_samples

    def place(self, p, q):
        placed = _place(self, p, q)
        record["p"], record["q"] = p.clone(), q.clone()
        if placed and rank == "1":
            with torch.no_grad():
                self.head.heads["down"].centres.add_(1.0)
        record["own"] = self.head.heads["down"].centres.detach().clone()
        return placed

    _initialise = wdist.system.initialise_critic

    def initialise(system, datamodule):
        used = _initialise(system, datamodule)
        record["placed"] = {k: v.detach().clone() for k, v in system.critic.head.state_dict().items()}
        record["system"] = system
        return used

    ConeCritic.init_from_samples = place
    wdist.system.initialise_critic = initialise
    rc = cli.main(sys.argv[2:])
    system = record.pop("system", None)
    if system is not None:
        record["trained"] = {k: v.detach().clone() for k, v in system.critic.head.state_dict().items()}
        torch.save(record, marks / f"placement{rank}.pt")
    sys.exit(rc)
    """
)


def test_ddp_ranks_share_one_data_dependent_placement(tmp_path: Path) -> None:
    """A cone critic placed from training items under DDP: both ranks are handed the same items
    (training items only, the same seeded draw), end up with process 0's placement even where
    their own differs, and train on from it in step."""
    marks = tmp_path / "marks"
    marks.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(PLACEMENT_DRIVER)
    gen = torch.Generator().manual_seed(0)
    paths = []
    for name, shift in (("p", 0.0), ("q", -1.0)):
        path = tmp_path / f"{name}.npy"
        np.save(path, (torch.rand(400, 6, generator=gen) + shift).numpy())
        paths.append(str(path))
    config = tmp_path / "cones.yaml"  # JSON is YAML
    config.write_text(json.dumps({
        "p": {"class_path": "TensorFile", "init_args": {"path": paths[0]}},
        "q": {"class_path": "TensorFile", "init_args": {"path": paths[1]}},
        "critic": {"name": "cones", "options": {"centres": 8}},
    }))  # fmt: skip
    args = [
        "--quiet", "--config", str(config),
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--train.steps", "6", "--train.eval_every", "6", "--train.checkpoint_every", "6", "--train.batch_size", "32",
        "--eval.n_eval", "100", "--eval.batch_size", "100", "--eval.ot_samples", "0", "--eval.ot_floor", "false",
        "--eval.empirical_lipschitz_samples", "0",
    ]  # fmt: skip
    cmd = [sys.executable, str(driver), str(marks), "estimate", "--out", str(tmp_path / "out"), *args]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"DDP run failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    deadline = time.time() + 60
    while not (marks / "placement1.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    r0, r1 = (torch.load(marks / f"placement{r}.pt", weights_only=False) for r in (0, 1))
    assert torch.equal(r0["p"], r1["p"]) and torch.equal(r0["q"], r1["q"])
    assert len(r0["p"]) == len(r0["q"]) > 0  # every training item (test_critic_init: none held out)
    assert torch.equal(r0["own"], r0["placed"]["heads.down.centres"])  # process 0 keeps its own
    assert not torch.equal(r1["own"], r1["placed"]["heads.down.centres"])  # rank 1's own differed ...
    for key, value in r0["placed"].items():  # ... and was replaced by process 0's
        assert torch.equal(value, r1["placed"][key]), key
    for key, value in r0["trained"].items():
        assert torch.allclose(value.double(), r1["trained"][key].double(), atol=1e-6), key
    assert not torch.equal(r0["trained"]["heads.down.centres"], r0["placed"]["heads.down.centres"])  # it trained
