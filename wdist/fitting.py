"""Training a built run: fit with evaluations on the select split, then the test split once.

The order that keeps the reported bound honest lives here: every evaluation during training (the
curve, the choice of the reported step, early stopping) reads the select split; the selected state
is evaluated once, at the end, on the test split (:mod:`wdist.selection`).
"""

from __future__ import annotations

from typing import Optional

import pytorch_lightning as pl

from wdist.assembly import Run
from wdist.evaluation import Evaluation

__all__ = ["fit_and_select", "evaluate_on_test", "fit_and_evaluate"]


def fit_and_select(trainer: pl.Trainer, run: Run, ckpt_path: Optional[str]) -> None:
    """Train with evaluations on the select split; the final step is evaluated on the select split
    (a candidate like the others) unless the last evaluation already did. The test split is not read."""
    trainer.fit(run.system, datamodule=run.datamodule, ckpt_path=ckpt_path)
    last = run.system.last_evaluation
    if last is None or last.step != trainer.global_step:
        trainer.validate(run.system, datamodule=run.datamodule, verbose=False)


def evaluate_on_test(trainer: pl.Trainer, run: Run) -> Evaluation:
    """Evaluate the selected state once on the test split: Lightning's test loads the selected
    weights into the critic and evaluates them, the only read of the test items. Returns that test
    evaluation (the reported bound)."""
    trainer.test(run.system, datamodule=run.datamodule, verbose=False)
    test = run.system.test_evaluation
    assert test is not None
    return test


def fit_and_evaluate(trainer: pl.Trainer, run: Run, ckpt_path: Optional[str]) -> Evaluation:
    """Train with evaluations on the select split, then evaluate the selected state once on the test
    split (:func:`fit_and_select`, then :func:`evaluate_on_test`). Returns the test evaluation."""
    fit_and_select(trainer, run, ckpt_path)
    return evaluate_on_test(trainer, run)
