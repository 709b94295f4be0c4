"""Faults: a generator that starts producing NaN stops the run cleanly.

The generator is a user's own network (``python:module:callable``) whose output turns NaN at its
13th training batch (or on the held-out set). The run must stop with a message naming the step and
the side, keep the checkpoints written before, and write no result.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from wdist.pipeline import estimate
from wdist.system import NonFiniteLossError

REPO = Path(__file__).resolve().parent.parent
WDIST = Path(sys.executable).with_name("wdist")
TRAIN_BATCH, EVAL_BATCH = 48, 100

NAN_GENERATOR = textwrap.dedent(
    """
    import inspect

    import torch
    from torch import nn


    def _phase():
        # select and test samples are decoded by CriticSystem._decode (once per split and run, in
        # chunks of the training batch size, so the batch size does not tell the phases apart)
        return "heldout" if any(f.function == "_decode" for f in inspect.stack(0)) else "train"


    class NanAfter(nn.Module):
        '''A small generator whose output becomes NaN from its `after`-th call in `phase`.'''

        def __init__(self, after, phase):
            super().__init__()
            self.lin = nn.Linear(4, 64)
            self.after, self.phase, self.calls = after, phase, 0

        def forward(self, z):
            x = torch.tanh(self.lin(z)).reshape(-1, 1, 8, 8)
            if _phase() == self.phase:
                self.calls += 1
                if self.calls >= self.after:
                    x = x * float("nan")
            return x


    def nan_in_training():
        return NanAfter(13, "train")


    def nan_on_heldout():
        return NanAfter(1, "heldout")


    def nan_on_rank1():  # only the second process of a distributed run sees NaN
        import os

        return NanAfter(13 if os.environ.get("LOCAL_RANK") == "1" else 10**9, "train")
    """
)


def _config(callable_name: str) -> dict:
    return {
        "p": {"class_path": "Digits"},
        "q": {
            "class_path": "Generator",
            "init_args": {
                "name": f"python:wdist_test_nan_generator:{callable_name}",
                "latent_dim": 4,
                "latent": "normal",
                "output_shape": [1, 8, 8],
                "output_range": [-1.0, 1.0],
            },
        },
        "critic": {"name": "bjorck-mlp", "options": {"width": 16, "depth": 2}},
        "train": {"steps": 40, "batch_size": TRAIN_BATCH, "eval_every": 10, "checkpoint_every": 5},
        "eval": {"n_eval": 200, "batch_size": EVAL_BATCH, "ot_samples": 0, "empirical_lipschitz_samples": 0},
    }


@pytest.fixture()
def nan_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "mods"
    folder.mkdir()
    (folder / "wdist_test_nan_generator.py").write_text(NAN_GENERATOR)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("wdist_test_nan_generator", None)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # on shared busy cores two threads can be 20x slower
    yield folder
    torch.set_num_threads(before)
    sys.modules.pop("wdist_test_nan_generator", None)


def _assert_kept_checkpoint(out: Path, step: int) -> None:
    ckpts = out / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", f"step{step}.ckpt"]
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == step
    assert all(bool(torch.isfinite(v).all()) for v in last["state_dict"].values() if v.is_floating_point())
    assert not (out / "result.json").exists()
    assert not list(out.glob("**/*.tmp"))


def test_nan_in_training_stops_with_the_step(nan_module: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as info:
        estimate(_config("nan_in_training"), out=out, quiet=True)
    msg = str(info.value)
    assert msg.startswith("Training stopped at training step 13 of 40: the loss is nan;")
    assert "Q samples contain NaN" in msg and "generator" in msg
    assert "no result was written" in msg
    _assert_kept_checkpoint(out, 10)  # steps 5 and 10 were saved; step 13 never happened


def test_nan_on_heldout_set_stops_at_the_evaluation(nan_module: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(
        NonFiniteLossError, match=r"Evaluation on the select split stopped at step 10: .* on the Q side .*generator"
    ):
        estimate(_config("nan_on_heldout"), out=out, quiet=True)
    _assert_kept_checkpoint(out, 5)  # the step-10 checkpoint waits for its evaluation, which failed


def _run_cli(nan_module: Path, case: str, out: Path, *options: str) -> subprocess.CompletedProcess:
    """``wdist estimate --out OUT --quiet OPTIONS`` on :func:`_config` of ``case`` in a fresh process
    that imports the NaN generators; a run past 30 minutes (a hang) fails."""
    cfg = out.with_suffix(".yaml")
    cfg.write_text(yaml.safe_dump(_config(case)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(nan_module), os.environ.get("PYTHONPATH", "")]))
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.pop("LOCAL_RANK", None)
    return subprocess.run(
        [str(WDIST), "estimate", "--config", str(cfg), "--out", str(out), "--quiet", *options],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip


def test_cli_reports_nan_in_one_paragraph(nan_module: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-run"
    proc = _run_cli(nan_module, "nan_in_training", out)
    assert proc.returncode == 2, proc.stdout + proc.stderr  # NaN samples are bad input, as the README says
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("wdist estimate: error:")]
    assert len(errors) == 1, proc.stderr
    assert "Training stopped at training step 13 of 40: the loss is nan" in errors[0]
    assert "the Q samples contain NaN/Inf" in errors[0] and "generator" in errors[0]
    _assert_kept_checkpoint(out, 10)


def test_nan_on_one_ddp_process_stops_every_process(nan_module: Path, tmp_path: Path) -> None:
    """Rank 1 alone sees NaN; rank 0 must stop at the same step instead of waiting in all-reduce."""
    out = tmp_path / "ddp-run"
    proc = _run_cli(
        nan_module, "nan_on_rank1", out, "--trainer.accelerator", "cpu", "--trainer.devices", "2",
        "--trainer.strategy", "ddp",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr  # bad samples on any process are bad input
    # the two processes share stderr, so their lines may interleave: count messages, not lines
    assert proc.stderr.count("wdist estimate: error:") == 2, proc.stderr  # one paragraph from each process
    assert "training step 13 of 40: the loss is nan; the Q samples" in proc.stderr
    assert "training step 13 of 40: the loss is NaN/Inf on another process" in proc.stderr
    assert "Traceback" not in proc.stderr
    _assert_kept_checkpoint(out, 10)


def test_a_new_run_into_an_old_folder_sets_the_old_result_aside(tmp_path) -> None:
    """If a second run into the same --out fails after training, the folder must not hold the
    first run's result.json as if it were the second's: it is kept in previous/<time>/."""
    import json

    from wdist.pipeline import estimate as _estimate

    toy = str(Path(__file__).resolve().parent.parent / "configs" / "toy" / "translation-2d.yaml")
    fast = ["--train.eval_every", "10", "--eval.n_eval", "128", "--eval.ot_samples", "0",
            "--eval.empirical_lipschitz_samples", "0"]  # fmt: skip
    out = tmp_path / "run"
    _estimate(toy, ["--train.steps", "20", *fast], out=out, quiet=True)
    first = json.loads((out / "result.json").read_text())

    class Crash(__import__("pytorch_lightning").Callback):
        def on_train_batch_end(self, trainer, *args, **kwargs):
            if trainer.global_step >= 5:
                raise RuntimeError("simulated crash")

    with pytest.raises(Exception, match="simulated crash"):
        _estimate(toy, ["--train.steps", "10", *fast], out=out, quiet=True, callbacks=[Crash()])
    assert not (out / "result.json").exists()
    (kept,) = (out / "previous").iterdir()
    assert json.loads((kept / "result.json").read_text()) == first
    assert (kept / "metrics.csv").is_file() and (kept / "config.yaml").is_file()
