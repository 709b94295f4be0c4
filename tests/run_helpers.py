"""Helpers for tests that steer a training run from a Lightning callback."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


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
