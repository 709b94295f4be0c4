"""Unequal held-out sizes end to end, and the train vs select diagnosis: the train subset holds
training items, it is evaluated with the select split, and an overfitting critic is diagnosed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from checkpoint_helpers import old_evaluation_state
from pytorch_lightning.callbacks import Callback

import critics
import wdist
from wdist.config import ConfigError, CriticConfig, EstimateConfig, EvalConfig, TrainConfig, TrainerConfig, load_config
from wdist.data import PairDataModule, TrainingStream
from wdist.evaluation import Evaluation, diagnose, evaluate
from wdist.pipeline import build_run
from wdist.sources import Gaussian, SourceError, TensorSource
from wdist.stats import Interval, mean_difference_interval

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
FAST = ["--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0", "--trainer.accelerator", "cpu"]


class _Keep(Callback):
    """Keeps the training system and the data module of a run, to recompute its statistics."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.system, self.dm = pl_module, trainer.datamodule


def _rows(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r) for r in x.flatten(1).tolist()}


# -- the train subset -----------------------------------------------------------------------------


def test_train_subset_of_a_finite_source_is_distinct_training_items() -> None:
    gen = torch.Generator().manual_seed(0)
    p = TensorSource(torch.rand(50, 3, generator=gen), description="50 points")
    q = TensorSource(torch.rand(20, 3, generator=gen), description="20 points")
    dm = PairDataModule(p, q, batch_size=8, n_eval=10, n_eval_q=8, n_select_q=8, seed=1)
    dm.setup()
    assert dm.test is not None and dm.select is not None and dm.train_items is not None
    assert (len(dm.test.p), len(dm.test.q)) == (10, 8)
    assert (len(dm.select.p), len(dm.select.q)) == (5, 8)  # P: by default min(256, 10, 50 // 10)
    for side, train_part, n in (("P", dm.p_train, 5), ("Q", dm.q_train, 4)):
        items = dm.train_items.p if side == "P" else dm.train_items.q
        held = [getattr(dm.test, side.lower()), getattr(dm.select, side.lower())]
        # as many as in the select split, or the whole training part when it is smaller (Q: 20 - 16 = 4 items)
        assert len(items) == n, side
        assert len(_rows(items)) == n  # distinct items
        assert _rows(items) <= _rows(train_part.data)  # training items ...
        assert not _rows(items) & (_rows(held[0]) | _rows(held[1]))  # ... and never held-out ones
    # fixed by the seed
    again = PairDataModule(p, q, batch_size=8, n_eval=10, n_eval_q=8, n_select_q=8, seed=1)
    again.setup()
    assert torch.equal(again.train_items.p, dm.train_items.p)


def test_train_subset_of_aligned_sides_is_paired_like_their_splits() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(80, 3, generator=gen)
    shift = torch.tensor([0.5, -0.25, 1.0])
    p, q = TensorSource(x, description="80 points"), TensorSource(x + shift, description="80 shifted")
    dm = PairDataModule(p, q, batch_size=8, n_eval=20, n_select=10, n_select_q=6, seed=3, aligned=True)
    dm.setup()
    assert dm.train_items is not None and (len(dm.train_items.p), len(dm.train_items.q)) == (10, 6)
    assert torch.equal(dm.train_items.q, dm.train_items.p[:6] + shift)  # row i of Q is the partner of P's row i
    assert _rows(dm.train_items.p) <= _rows(dm.p_train.data)
    alone = PairDataModule(p, q, batch_size=8, n_eval=20, n_select=10, n_select_q=6, seed=3)
    alone.setup()  # sides whose rows do not correspond: each draws its own subset
    assert alone.train_items is not None and not torch.equal(alone.train_items.q, alone.train_items.p[:6] + shift)


def test_train_subset_of_an_infinite_source_is_its_first_training_batches() -> None:
    gen = torch.Generator().manual_seed(0)
    p = TensorSource(torch.rand(60, 2, generator=gen), description="60 points")
    q = Gaussian(dim=2)
    dm = PairDataModule(p, q, batch_size=8, n_eval=20, n_eval_q=30, seed=2)
    dm.setup()
    assert dm.train_items is not None
    stream = TrainingStream(dm.p_train, dm.q_train, 8, seed=2, rank=0)
    first = torch.cat([stream.batch(i)[1] for i in range(4)])  # 4 batches of 8 cover 30 items
    assert torch.equal(dm.train_items.q, first[:30])  # exactly what the critic trains on in steps 0-3
    assert not _rows(dm.train_items.q) & _rows(dm.test.q)
    assert _rows(dm.train_items.p) <= _rows(dm.p_train.data) and len(dm.train_items.p) == 6  # P selects 60 // 10


def test_generator_train_subset_is_decoded_like_its_training_batches() -> None:
    cfg = load_config(
        None, ["--eval.n_eval", "64", "--eval.n_eval_q", "300", "--eval.batch_size", "64", "--train.batch_size", "128"]
    )
    run = build_run(cfg, cfg.sides())
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, inference_mode=False,
    )  # fmt: skip
    trainer.validate(run.system, datamodule=run.datamodule, verbose=False)
    decoded = run.system._decoded["select"]["q_train"]
    stream = TrainingStream(run.datamodule.p_train, run.datamodule.q_train, 128, cfg.seed, rank=0)
    for i in range(2):  # what training_step decodes for batches 0 and 1
        trained = run.system.samples(stream.batch(i)[1], run.system.q_generator)
        assert torch.equal(decoded[128 * i : 128 * (i + 1)], trained)
    ev = run.system.last_evaluation
    # the select split of the digits default (100 digits, 2000 generated), and a train subset as large
    assert ev is not None and (ev.n_eval_p, ev.n_eval_q) == (100, 2000)
    assert (ev.train_interval.n_p, ev.train_interval.n_q) == (100, 2000)


# -- the diagnosis ----------------------------------------------------------------------------------


def _iv(estimate: float, half: float) -> Interval:
    return Interval(estimate, half / 2, estimate - half, estimate + half, 0.95, "m", 10, 10)


def test_diagnose_labels() -> None:
    held = _iv(1.0, 0.1)  # stderr 0.05: the gap's 95% margin with another such interval is 1.96 * 0.0707 = 0.139
    assert diagnose(held, _iv(1.5, 0.1))[0] == "generalisation"
    assert diagnose(held, _iv(1.12, 0.1))[0] == "optimisation or capacity"  # within the margin
    # the intervals overlap, but the gap is beyond its own margin: a test of the gap, not of overlap
    assert diagnose(held, _iv(1.15, 0.1))[0] == "generalisation"
    assert diagnose(held, _iv(0.5, 0.1))[0] == "unclear"
    assert diagnose(held, None)[0] == "unknown"
    label, sentence = diagnose(held, _iv(1.5, 0.1))
    assert "\n" not in sentence and "gap +0.5 ± 0.14 at 95%" in sentence
    assert sentence.startswith("limited by generalisation")


def test_evaluation_state_keeps_the_train_subset() -> None:
    critic = critics.build("bjorck-mlp", (2,), width=8, depth=1)
    gen = torch.Generator().manual_seed(0)
    fp, fq, tp, tq = (torch.randn(n, generator=gen) for n in (20, 50, 20, 50))
    ev = evaluate(critic, (2,), fp, fq, 7, confidence=0.9, domain=(-1.0, 1.0), fp_train=tp, fq_train=tq)
    assert ev.train_interval == mean_difference_interval(tp.double(), tq.double(), 0.9, value_range=ev.value_range)
    assert ev.train_bound95 is not None and ev.train_bound95.confidence == 0.95
    back = Evaluation.from_checkpoint_record(ev.checkpoint_record())
    assert back == ev and back.diagnosis == ev.diagnosis
    row = ev.point()
    assert row["train"]["lower_bound"] == ev.train_bound.estimate and row["train"]["kind"].startswith("diagnosis")
    assert (row["n_eval_p"], row["n_eval_q"], row["train"]["n_eval_p"], row["train"]["n_eval_q"]) == (20, 50, 20, 50)
    # a checkpoint written before the train subset and the two sizes existed
    old = old_evaluation_state(ev)
    for key in ("train_interval", "train_bound", "train_bound95", "critic_value_range"):
        old.pop(key)
    old["value_range"] = 2 * ev.value_range  # then: the range of the paired differences
    for key in ("interval", "bound", "bound95"):
        old[key] = {k: v for k, v in old[key].items() if k not in ("n_p", "n_q")} | {"n": 20}
    restored = Evaluation.from_state(old)
    assert restored.train_interval is None and restored.diagnosis[0] == "unknown"
    assert restored.value_range == ev.value_range and restored.n_eval_q == 20
    with pytest.raises(ValueError, match="both fp_train and fq_train"):
        evaluate(critic, (2,), fp, fq, 7, fp_train=tp)


def test_overfitting_critic_is_diagnosed_as_limited_by_generalisation() -> None:
    """A tiny finite P (60 points, 20 test and 20 select) against a large sample of the same
    distribution, and a wide critic: it fits the 20 training points, so the train subset scores far
    above the select split, whose bound stays near 0; the diagnosis names the training items and
    what selection recovered."""
    gen = torch.Generator().manual_seed(0)
    p = TensorSource(torch.rand(60, 16, generator=gen) * 2 - 1, domain=(-1.0, 1.0), description="60 uniform points")
    q = TensorSource(torch.rand(3000, 16, generator=gen) * 2 - 1, domain=(-1.0, 1.0), description="3000 uniform points")
    cfg = EstimateConfig(
        p=p, q=q, critic=CriticConfig("bjorck-mlp", {"width": 64, "depth": 2}),
        train=TrainConfig(steps=40, batch_size=64, lr=0.005, eval_every=20),
        trainer=TrainerConfig(accelerator="cpu", enable_progress_bar=False),
        eval=EvalConfig(
            n_eval=20, n_eval_q=1000, n_select_p=20, n_select_q=1000, ot_samples=0, empirical_lipschitz_samples=0
        ),
    )  # fmt: skip
    result = wdist.estimate(cfg, quiet=True)
    assert result.certified
    assert (result.diagnosis.train.n_eval_p, result.diagnosis.train.n_eval_q) == (20, 1000)
    assert result.diagnosis.train.ci95[0] > result.ci95[1]  # the train subset is clearly above the held-out bound
    assert result.diagnosis.limited_by == "generalisation"
    assert result.diagnosis.generalisation_gap > 0.5
    table = result.format_table()
    lines = [line for line in table.splitlines() if line.startswith("what limits the bound")]
    assert len(lines) == 1 and "limited by generalisation" in lines[0]
    assert "P's 20 training items and Q's 1000 training items" in lines[0] and "select" in lines[0]
    step = result.selection["step"]
    assert f"selection kept step {step}" in lines[0] or f"selection kept the last step evaluated ({step})" in lines[0]
    assert "NOT a bound" in table.split("train subset (diagnosis)")[1].splitlines()[0]
    assert all(c["train"] is not None for c in result.curve)


# -- unequal sizes end to end, the paired option, and the switch ---------------------------------------


def test_unequal_held_out_sizes_end_to_end(tmp_path: Path) -> None:
    keep = _Keep()
    result = wdist.estimate(
        CONFIGS / "toy" / "translation-2d.yaml",
        ["--train.steps", "20", "--train.eval_every", "10", "--eval.n_eval_p", "300", "--eval.n_eval_q", "3000",
         "--eval.batch_size", "256", *FAST],
        out=tmp_path, callbacks=[keep], quiet=True,
    )  # fmt: skip
    assert (result.bound.n_eval_p, result.bound.n_eval_q) == (300, 3000)
    # the curve is the select split's: by default min(1024, test size) of an infinite side
    assert all((c["n_eval_p"], c["n_eval_q"]) == (300, 1024) for c in result.curve)
    assert "n_P = 300, n_Q = 3000" in result.format_table()
    assert "Welch" in result.bound.method
    # recomputed from the final critic on the held-out samples, without the gather
    critic = keep.system.critic.eval()
    with torch.no_grad():
        fp, fq = critic(keep.dm.test.p).reshape(-1), critic(keep.dm.test.q).reshape(-1)
    iv = mean_difference_interval(fp.double(), fq.double())
    assert (iv.n_p, iv.n_q) == (300, 3000)
    assert [iv.estimate, iv.lo, iv.hi] == pytest.approx(
        [result.estimate, result.bound.estimate_lo, result.bound.estimate_hi], abs=1e-9, rel=0
    )
    with open(tmp_path / "metrics.csv") as fh:
        header = next(csv.reader(fh))
    assert {"select/n_p", "select/n_q", "train_subset/lower_bound", "train_subset/gap"} <= set(header)


def test_paired_option_and_no_train_subset() -> None:
    keep = _Keep()
    result = wdist.estimate(
        CONFIGS / "toy" / "translation-2d.yaml",
        ["--train.steps", "10", "--train.eval_every", "10", "--eval.n_eval", "256", "--eval.paired", "true",
         "--eval.train_subset", "false", *FAST],
        callbacks=[keep], quiet=True,
    )  # fmt: skip
    assert "paired" in result.bound.method and (result.bound.n_eval_p, result.bound.n_eval_q) == (256, 256)
    ev = keep.system.last_evaluation
    assert ev.interval == mean_difference_interval(ev.fp, ev.fq, paired=True)
    assert result.diagnosis.train is None and result.diagnosis.limited_by == "unknown"
    assert result.curve[-1]["train"] is None and "train subset" not in result.format_table()


def test_held_out_size_errors() -> None:
    with pytest.raises(ConfigError, match=r"eval.paired .* got 500 \(P\) and 5000 \(Q\)"):
        load_config(None, ["--eval.paired", "true"])
    with pytest.raises(ConfigError, match="eval.n_eval_q must be at least 2"):
        load_config(None, ["--eval.n_eval_q", "1"])
    with pytest.raises(ConfigError, match="eval.n_select_p must be at least 2"):
        load_config(None, ["--eval.n_select_p", "1"])
    small = TensorSource(torch.zeros(30, 2), description="30 zeros")
    dm = PairDataModule(small, Gaussian(dim=2), batch_size=8, n_eval=10, n_eval_p=30)
    with pytest.raises(SourceError, match=r"eval.n_eval_p = 30 test items and eval.n_select_p .* only 30 items"):
        dm.setup()
    # the select split counts too: 15 + 15 leave nothing to train on
    dm = PairDataModule(small, Gaussian(dim=2), batch_size=8, n_eval=15, n_select=15)
    with pytest.raises(SourceError, match=r"eval.n_eval = 15 test items and eval.n_select_p \(from eval.n_select\)"):
        dm.setup()
