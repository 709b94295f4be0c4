"""Lightning plug-ins of a run: atomic checkpoints, step checkpoints that include their
evaluation, the training clock, and a progress bar that shows the certified bound."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.plugins import TorchCheckpointIO

__all__ = ["AtomicCheckpointIO", "StepCheckpoint", "TrainClock", "BoundProgressBar"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint writes that a kill cannot leave half-done.

    Lightning's own ``_atomic_save`` goes through an fsspec transaction whose temporary file lies
    in the system temp folder: when that is another file system the final ``shutil.move`` is a
    copy into the destination (a kill mid-copy leaves a truncated ``last.ckpt``), and the data
    are never fsync'ed. Here the checkpoint is written to a temporary file in the destination
    folder, flushed to disk, then renamed over the old one (atomic on POSIX): a reader sees the
    previous checkpoint or the new one, never a partial file. Remote URLs fall back to Lightning.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options; got {storage_options!r}")
        text = str(path)
        if "://" in text and not text.startswith("file://"):
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(text[len("file://") :] if text.startswith("file://") else text)
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{target.name}.*.tmp"):  # left by a run killed mid-write
            with contextlib.suppress(OSError):
                stale.unlink()
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable
            dfd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


class StepCheckpoint(ModelCheckpoint):
    """``every_n_train_steps`` checkpoints that include the held-out evaluation of their step.

    Lightning saves step checkpoints in ``on_train_batch_end``, before the validation that runs
    after the same batch; a run resumed from such a checkpoint would never evaluate that step
    again, and its bound curve would miss the point. When a validation follows the batch, the
    save is deferred to the end of that validation (ModelCheckpoint's own deferral mechanism).
    """

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any) -> None:
        step = trainer.global_step
        if (
            self._every_n_train_steps >= 1
            and step % self._every_n_train_steps == 0
            and not self._should_skip_saving_checkpoint(trainer)
            and _validation_follows(trainer)
        ):
            self._defer_save_until_validation = True
            return
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)


def _validation_follows(trainer: pl.Trainer) -> bool:
    """Whether the fit loop runs a validation right after the current training batch."""
    if not trainer.enable_validation:
        return False
    loop = trainer.fit_loop.epoch_loop
    try:
        return bool(loop._should_check_val_fx(trainer.fit_loop._data_fetcher))  # Lightning's own test
    except (AttributeError, TypeError):  # a Lightning without that private hook: the step rule
        every = trainer.val_check_batch
        return isinstance(every, int) and every > 0 and trainer.global_step % every == 0


class TrainClock(Callback):
    """Wall time of training proper, in seconds (excludes set-up, the references and the plot)."""

    def __init__(self) -> None:
        self.start: Optional[float] = None
        self.seconds = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.start is not None:
            self.seconds = time.perf_counter() - self.start


class BoundProgressBar(TQDMProgressBar):
    """Lightning's progress bar, with the latest held-out bound and its interval beside the gap.

    Shows ``W1>= b [lo, hi]`` when the critic was certified at that evaluation, ``est/L b [lo, hi]``
    (estimate divided by the certificate, a loose bound) when it was not; ``train/gap`` is the
    single-batch training objective, which is not a bound.
    """

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        evaluations = getattr(pl_module, "evaluations", None)
        if evaluations:
            last = evaluations[-1]
            label = "W1>=" if last.certified else "est/L"
            items[label] = f"{last.bound.estimate:.4g} [{last.bound.lo:.4g}, {last.bound.hi:.4g}]"
        return items
