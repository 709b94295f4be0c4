"""Helpers for tests that steer a training run from a Lightning callback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pytest
import pytorch_lightning as pl
import torch

from wdist.pipeline import estimate


def negate_and_freeze(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
    """Negate the critic's last linear layer (weight and bias) and set the learning rate to 0, so
    that every later evaluation of the run is minus what the critic was: a state the selection on
    the select split must reject."""
    last = [m for m in pl_module.critic.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.parametrizations.weight.original.neg_()
        last.bias.neg_()
    for group in trainer.optimizers[0].param_groups:
        group["lr"] = 0.0


class CrashAt(pl.Callback):
    """Stops a run with an error once ``step`` optimiser steps are done (a crash after a checkpoint)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        if trainer.global_step >= self.step:
            raise RuntimeError("simulated crash")


def crashed_run(config: Path, overrides: Sequence[str], out: Path, step: int) -> dict[str, Any]:
    """Run ``wdist.estimate`` into ``out`` until it crashes once ``step`` steps are done (no result
    written); returns its ``checkpoints/last.ckpt``, loaded as a resume loads it."""
    with pytest.raises(RuntimeError, match="simulated crash"):
        estimate(str(config), list(overrides), out=out, quiet=True, callbacks=[CrashAt(step)])
    assert not (out / "result.json").exists()
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
