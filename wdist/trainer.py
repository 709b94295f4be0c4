"""The Lightning Trainer of a run: the ``trainer.*`` settings as given, the rest from ``train.*``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from wdist.callbacks import AtomicCheckpointIO
from wdist.config import ConfigError, EstimateConfig

__all__ = ["make_trainer"]


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
