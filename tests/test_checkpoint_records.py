"""Checkpoints keep the bound curve as bound records (``Bound.to_dict``): an evaluation rebuilt from its
record is the same evaluation, field for field, for every interval method; a checkpoint written in
the layout before that (``wdist_evaluations``) resumes to the same result."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import torch
from checkpoint_helpers import write_old_layout
from run_helpers import crashed_run

import critics
from wdist.evaluation import Evaluation, evaluate
from wdist.pipeline import estimate

TOY = Path(__file__).resolve().parent.parent / "configs" / "toy" / "translation-2d.yaml"


@pytest.mark.parametrize("method", ["normal", "bernstein", "bootstrap"])
@pytest.mark.parametrize("confidence", [0.95, 0.9])
@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize("train_subset", [False, True])
def test_an_evaluation_is_rebuilt_exactly_from_its_record(
    method: str, confidence: float, paired: bool, train_subset: bool
) -> None:
    critic = critics.build("bjorck-mlp", (2,), width=8, depth=1)
    gen = torch.Generator().manual_seed(1)
    n_q = 30 if paired else 50
    fp, fq, tp, tq = (torch.randn(n, generator=gen) * 0.3 for n in (30, n_q, 20, 40))
    train = {"fp_train": tp, "fq_train": tq} if train_subset else {}
    ev = evaluate(critic, (2,), fp, fq, 7, confidence, method, (-1.0, 1.0), paired, **train)
    assert ev.bound95 is not ev.bound or confidence == 0.95
    record = ev.checkpoint_record()
    buffer = io.BytesIO()
    torch.save(record, buffer)  # plain types: a checkpoint loads it with weights_only=True
    buffer.seek(0)
    back = Evaluation.from_checkpoint_record(torch.load(buffer, weights_only=True))
    assert back == ev and back.point() == ev.point() and back.diagnosis == ev.diagnosis
    assert (back.train_interval is None) == (not train_subset)
    assert {k: record[k] for k in ev.point()} == ev.point()  # the curve point is the record's core


def test_a_checkpoint_in_the_old_layout_resumes_to_the_same_result(tmp_path: Path) -> None:
    args = [
        "--train.steps", "30", "--train.eval_every", "10", "--train.checkpoint_every", "10", "--train.batch_size", "64",
        "--eval.n_eval", "256", "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0",
        "--critic.options", "{width: 16}",
    ]  # fmt: skip
    new = tmp_path / "new"
    saved = crashed_run(TOY, args, new, 25)
    assert "wdist_evaluations" not in saved and [r["step"] for r in saved["wdist_curve"]] == [10, 20]
    assert all(r["split"] == "select" and r["train"]["split"] == "train" for r in saved["wdist_curve"])
    old = tmp_path / "old"
    shutil.copytree(new, old)
    kept = write_old_layout(old / "checkpoints" / "last.ckpt")
    assert [ev.step for ev in kept] == [10, 20]
    from_new = estimate(resume=new, quiet=True).to_dict()
    from_old = estimate(resume=old, quiet=True).to_dict()
    assert [p["step"] for p in from_old["curve"]] == [10, 20, 30]
    assert from_old["curve"] == from_new["curve"] and from_old["bound"] == from_new["bound"]
    assert from_old["selection"] == from_new["selection"] and from_old["diagnosis"] == from_new["diagnosis"]
