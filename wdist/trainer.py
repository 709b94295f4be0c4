"""The Lightning Trainer of a run: the ``trainer.*`` settings as given, the rest from ``train.*``."""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from wdist.callbacks import AtomicCheckpointIO
from wdist.config import ConfigError, EstimateConfig

__all__ = ["make_trainer", "quiet_lightning", "SET_UP_WARNINGS"]

#: Lightning's loggers, whose INFO lines (accelerator found, tips, why fit stopped) a run's Trainer writes.
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch")
#: Warnings about how a run sets Lightning up on purpose, which say nothing about the estimate.
SET_UP_WARNINGS = (
    ".*Experiment logs directory .* exists and is not empty.*",
    ".*isinstance\\(treespec, LeafSpec\\).*",
    ".*in eval mode.*",  # the frozen generator is in eval mode on purpose
    ".*does not have many workers.*",  # samples are generated in-process, on purpose
    ".*Checkpoint directory .* exists and is not empty.*",
    ".*`IterableDataset` has `__len__` defined.*",
)


@contextlib.contextmanager
def quiet_lightning(*extra_warnings: str) -> Iterator[None]:
    """Inside: Lightning's INFO lines silenced (its loggers at WARNING, or higher where the caller set
    them higher) and :data:`SET_UP_WARNINGS` and ``extra_warnings`` (message patterns) ignored; other
    warnings stay visible. On the way out the caller's logger levels and warning filters are back."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for pattern in (*SET_UP_WARNINGS, *extra_warnings):
            warnings.filterwarnings("ignore", message=pattern)
        try:
            for lg in loggers:
                lg.setLevel(max(logging.WARNING, lg.getEffectiveLevel()))
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def make_trainer(cfg: EstimateConfig, loggers: list, callbacks: list[Callback], out_dir: Optional[Path]) -> pl.Trainer:
    """The Lightning Trainer of a run: ``trainer.*`` as given, the rest from ``train.*``."""
    try:
        return pl.Trainer(
            **asdict(cfg.trainer),
            plugins=[AtomicCheckpointIO()],
            max_steps=cfg.train.steps,
            val_check_interval=cfg.train.eval_every,
            check_val_every_n_epoch=None,
            num_sanity_val_steps=0,
            logger=loggers if loggers else False,
            callbacks=callbacks,
            enable_checkpointing=bool(out_dir is not None and cfg.train.checkpoint_every),
            enable_model_summary=False,
            inference_mode=False,
            log_every_n_steps=max(1, min(50, cfg.train.eval_every)),
            default_root_dir=str(out_dir) if out_dir is not None else None,
        )
    except Exception as err:  # Lightning refusing the accelerator/devices/strategy/precision
        given = ", ".join(f"trainer.{k}={v!r}" for k, v in asdict(cfg.trainer).items())
        raise ConfigError(f"Invalid configuration: the trainer refused {given}: {err}") from None
