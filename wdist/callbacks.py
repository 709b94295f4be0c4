"""Lightning plug-ins of a run: atomic checkpoints, step checkpoints that include their
evaluation, the training clock and the run's segments, a clean stop on SIGTERM/SIGINT, and the
run's progress: a bar that shows the certified bound in a terminal, one line per evaluation
otherwise (:func:`progress_callback`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional, Sequence, TextIO

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, ProgressBar, TQDMProgressBar
from pytorch_lightning.plugins import TorchCheckpointIO

from wdist.errors import RunInterrupted
from wdist.report import format_interval

__all__ = [
    "run_callbacks",
    "AtomicCheckpointIO",
    "StepCheckpoint",
    "TrainClock",
    "GracefulStop",
    "BoundProgressBar",
    "EvaluationLines",
    "progress_callback",
]


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
    """Wall time of training proper, in seconds (excludes set-up, the references and the plot),
    and the history of a run's *segments*: one per process that trained it (the first run, then
    each ``--resume``), each with its steps, settings and training seconds.

    The history travels in checkpoints (this callback's state), so a run resumed once or many
    times reports every segment; a segment read back from a checkpoint counts the time up to
    that checkpoint.

    Parameters
    ----------
    settings : the settings this segment ran with (those a resume may change, e.g. ``train.steps``).
    """

    def __init__(self, settings: Optional[dict[str, Any]] = None) -> None:
        self.settings = json.loads(json.dumps(settings or {}))  # builtin types: checkpoints load with weights_only
        self.start: Optional[float] = None
        self.seconds = 0.0
        self.first_step = 0
        self.last_step = 0
        self.ended = "interrupted"  # what a checkpoint records, unless the run finishes or is stopped
        self.max_steps = -1
        self._trainer: Optional[pl.Trainer] = None
        self.earlier: list[dict[str, Any]] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()
        self.first_step = self.last_step = int(trainer.global_step)
        self.max_steps = int(trainer.max_steps)
        self._trainer = trainer

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        self._tick(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._tick(trainer)
        self.ended = "finished"

    def _tick(self, trainer: pl.Trainer) -> None:
        if self.start is not None:
            self.seconds = time.perf_counter() - self.start
        self.last_step = int(trainer.global_step)

    def segment(self) -> dict[str, Any]:
        """This process's segment: ``from_step``, ``to_step``, ``seconds``, ``settings``, ``ended``
        (``finished``, ``stopped by SIGTERM``/``SIGINT``, or ``interrupted``: the process ended
        after its last checkpoint without finishing)."""
        done = self.ended == "interrupted" and 0 <= self.max_steps <= self.last_step  # the last step's checkpoint
        return {
            "from_step": self.first_step,
            "to_step": self.last_step,
            "seconds": float(self.seconds),
            "settings": dict(self.settings),
            "ended": "finished" if done else self.ended,
        }

    @property
    def segments(self) -> list[dict[str, Any]]:
        """Every segment of the run so far, the earlier ones (from the checkpoint) first (a process
        that resumed a finished run and trained no step adds none)."""
        return [*self.earlier] if self.start is None and self.earlier else [*self.earlier, self.segment()]

    @property
    def total_seconds(self) -> float:
        """Training seconds summed over :attr:`segments`."""
        return float(sum(seg["seconds"] for seg in self.segments))

    def state_dict(self) -> dict[str, Any]:
        if self._trainer is not None:
            self._tick(self._trainer)  # a checkpoint records the segment up to its own step
        return {"segments": self.segments}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.earlier = [dict(seg) for seg in state_dict.get("segments", [])]


class GracefulStop(Callback):
    """SIGTERM and SIGINT during training stop the run cleanly at the next step.

    While training runs, the two signals no longer kill the process: the step under way finishes
    (with its held-out evaluation, when one follows it), a resumable ``last.ckpt`` is saved when
    checkpointing is on, and :class:`~wdist.errors.RunInterrupted` is raised, so no result is
    written and the command line exits with 128 + the signal number. A second signal stops at
    once. Under DDP every process stops at the same step, with the same signal, whether the
    scheduler signals every process or the launcher (rank 0) alone: the largest signal number
    asked on any process is agreed on after each step (one all-reduce). The previous handlers are
    back when training ends, fails or is stopped.

    Parameters
    ----------
    out : the run's output folder (named in the interruption), or ``None``.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, out: Optional[Path] = None) -> None:
        self.out = out
        self.signum: Optional[int] = None  # the signal this process received
        self.agreed: Optional[int] = None  # the signal the processes agreed to stop on
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for sig in self.SIGNALS:  # replaces Lightning's own SIGTERM handler (a silent exit) while training
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # asked twice: stop now, without waiting for the step to end
            self._restore()
            raise RunInterrupted(signum, out=self.out)
        self.signum = signum

    def _requested(self, trainer: pl.Trainer) -> bool:
        signum = self.signum or 0
        if trainer.world_size > 1:  # every process must stop after the same step, on the same signal
            asked = torch.tensor(float(signum), device=trainer.strategy.root_device)
            signum = int(trainer.strategy.reduce(asked, reduce_op="max").item())
        self.agreed = signum or None
        return bool(signum)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        # when a held-out evaluation follows this step, stop after it (on_validation_end), so that
        # the checkpoint holds the step's point of the bound curve
        if self._previous and self._requested(trainer) and not _validation_follows(trainer):
            self._stop(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._previous and not trainer.sanity_checking and self._requested(trainer):
            self._stop(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._previous and self._requested(trainer):
            self._stop(trainer)
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _stop(self, trainer: pl.Trainer) -> None:
        signum = self.signum or self.agreed or int(signal.SIGTERM)  # this process's, else another's
        self._restore()
        checkpoint = None
        saver = next((cb for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)), None)
        if saver is not None:
            for cb in trainer.callbacks:
                if isinstance(cb, TrainClock):
                    cb._tick(trainer)
                    cb.ended = f"stopped by {signal.Signals(signum).name}"
            checkpoint = Path(saver.dirpath) / f"{saver.CHECKPOINT_NAME_LAST}{saver.FILE_EXTENSION}"
            trainer.save_checkpoint(checkpoint)
        raise RunInterrupted(signum, int(trainer.global_step), checkpoint, self.out)


class BoundProgressBar(TQDMProgressBar):
    """Lightning's progress bar, with the latest select-split bound and its interval beside the gap.

    Shows ``select bound=b [lo, hi]``: the certified lower bound (estimate / L) of the last
    evaluation, on the select split, and its interval, printed as everywhere
    (:func:`wdist.report.format_interval`); the test split is not read before training ends.
    ``train/gap`` is the single-batch training objective, which is not a bound.
    """

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        gap = getattr(pl_module, "train_gap", None)
        if gap is not None:
            items["train/gap"] = f"{float(gap):.3g}"
        evaluations = getattr(pl_module, "evaluations", None)
        if evaluations:
            items[_BOUND_LABEL] = _bound_value(evaluations[-1])
        return items


#: How progress displays name the bound they show: the select split's (the test split is read once, at the end).
_BOUND_LABEL = "select bound"


def _bound_value(evaluation: Any) -> str:
    return f"{evaluation.bound.estimate:.4f} {format_interval(evaluation.bound.lo, evaluation.bound.hi)}"


def _bound_text(evaluation: Any) -> str:
    """``select bound b [lo, hi]``: the certified lower bound (estimate / L) of an evaluation on
    the select split (every evaluation during training is one) and its interval, printed as
    everywhere (:func:`wdist.report.format_interval`)."""
    return f"{_BOUND_LABEL} {_bound_value(evaluation)}"


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class EvaluationLines(ProgressBar):
    r"""Progress for logs: one line per (select-split) evaluation instead of a bar redrawn every step.

    What a batch job's log, a ``nohup`` or ``> file`` redirection, should hold: each line gives the
    step, the select-split bound and its interval, the wall time since training started in this
    process, and the time left at the rate so far,

    .. math:: 	ext{ETA} = 	ext{elapsed} \cdot rac{	ext{max\_steps} - 	ext{step}}{	ext{step} - 	ext{first step}}

    (seconds; the first step is the one this process started from, so a resumed run counts its
    own rate). Printed by global rank 0 only, to ``stream`` (default: standard output), flushed.
    """

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        super().__init__()
        self._enabled = True
        self.stream = stream
        self._start: Optional[float] = None
        self._first_step = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()
        self._first_step = int(trainer.global_step)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        evaluations = getattr(pl_module, "evaluations", None)
        if not self._enabled or trainer.sanity_checking or not trainer.is_global_zero or not evaluations:
            return
        last = evaluations[-1]
        total = int(trainer.max_steps)
        parts = [f"step {last.step}/{total}" if total > 0 else f"step {last.step}", _bound_text(last)]
        parts[-1] += f" ({100 * last.bound.confidence:.0f}% CI)"
        if self._start is not None:
            elapsed = time.perf_counter() - self._start
            done = int(last.step) - self._first_step
            parts.append(f"elapsed {_duration(elapsed)}")
            if total > 0 and done > 0:
                parts.append(f"ETA {_duration(elapsed * (total - int(last.step)) / done)}")
        print("  ".join(parts), file=self.stream or sys.stdout, flush=True)


def progress_callback(stream: Optional[TextIO] = None) -> ProgressBar:
    """The progress display of a run: Lightning's bar with the bound (:class:`BoundProgressBar`) when
    ``stream`` (default standard output, where the bar draws) is a terminal, else one line per
    evaluation (:class:`EvaluationLines`): a bar redrawn every step writes about 240 bytes per step
    into a log file."""
    stream = stream or sys.stdout
    isatty = getattr(stream, "isatty", None)
    return BoundProgressBar() if callable(isatty) and isatty() else EvaluationLines(stream)


def run_callbacks(
    extra: Sequence[Callback],
    clock: TrainClock,
    stop_folder: Optional[Path],
    *,
    progress: bool,
    checkpoints: Optional[Path],
    checkpoint_every: int,
) -> list[Callback]:
    """The callbacks of a run: ``extra``, the train ``clock``, the graceful stop on a signal (naming
    ``stop_folder`` for ``--resume``), the progress display when ``progress``, and a checkpoint into
    the folder ``checkpoints`` every ``checkpoint_every`` steps (none when either is unset)."""
    cbs: list[Callback] = [*extra, clock, GracefulStop(stop_folder)]
    if progress:
        cbs.append(progress_callback())  # a bar in a terminal, a line per evaluation in a log
    if checkpoints is not None and checkpoint_every:
        cbs.append(
            StepCheckpoint(
                dirpath=checkpoints, every_n_train_steps=checkpoint_every, save_last=True,
                save_top_k=1, filename="step{step}", auto_insert_metric_name=False,
            )
        )  # fmt: skip
    return cbs
