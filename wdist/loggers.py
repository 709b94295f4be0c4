"""Loggers: Lightning's CSVLogger always, Lightning's WandbLogger on request (offline without a key).

W&B never blocks a run: without an API key (``WANDB_API_KEY`` or a netrc entry) it logs offline
into ``<out>/wandb`` and says so; with a key it gives the service a bounded time to answer and
falls back to offline if it does not. When an offline run closes, one line names its folder and
the command that uploads it (``wandb sync <folder>``). The mode is a setting of the run, never of the process: no
environment variable is left changed, and W&B's own files (service logs, cache) go under
``<out>/wandb`` too.
"""

from __future__ import annotations

import contextlib
import csv
import io
import netrc
import os
import secrets
import string
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

from pytorch_lightning.loggers import CSVLogger, Logger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.utilities import rank_zero_only

from wdist.files import atomic_write_text

__all__ = [
    "make_loggers",
    "wandb_api_key_present",
    "wandb_offline",
    "finish_wandb",
    "ResumableCSVLogger",
    "wandb_files_under",
]


class _ResumingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued, not deleted.

    The rows of the interrupted run are kept up to (not including) the first step the resumed run
    logs: the resumed run repeats the steps after its checkpoint, and their new rows replace the
    old ones, so every step appears once.
    """

    def _check_log_dir_exists(self) -> None:
        self._kept: list[dict[str, str]] = []
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as fh:
                reader = csv.DictReader(fh)
                self.metrics_keys = list(reader.fieldnames or [])
                for row in reader:
                    if _row_step(row) is not None:  # a line cut short by a kill has no usable step
                        self._kept.append(row)
        self._resuming = True

    def save(self) -> None:
        if getattr(self, "_resuming", False) and self.metrics:
            first = min(int(m["step"]) for m in self.metrics)
            old = [r for r in self._kept if _row_step(r) < first]  # type: ignore[operator]
            self._record_new_keys()
            keys = sorted(set(self.metrics_keys) | {k for r in old for k in r})
            self.metrics_keys = keys
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=keys)
            writer.writeheader()
            writer.writerows(old)
            writer.writerows(self.metrics)
            atomic_write_text(self.metrics_file_path, buf.getvalue())
            self.metrics, self._kept, self._resuming = [], [], False
            return
        super().save()


def _row_step(row: dict[str, Any]) -> Optional[int]:
    try:
        return int(float(row.get("step") or ""))
    except ValueError:
        return None


class ResumableCSVLogger(CSVLogger):
    """A CSVLogger writing ``<save_dir>/metrics.csv`` that continues the file of an interrupted run."""

    @property
    def experiment(self) -> ExperimentWriter:  # type: ignore[override]
        if self._experiment is not None:
            return self._experiment
        if rank_zero_only.rank != 0:
            return super().experiment
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = _ResumingWriter(log_dir=self.log_dir)
        return self._experiment


def wandb_api_key_present() -> bool:
    """True when an API key is set in the environment or in ``~/.netrc`` for api.wandb.ai."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def _offline_by_choice() -> bool:
    return os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun")


def wandb_offline() -> bool:
    """Whether a W&B run started now logs offline: ``WANDB_MODE`` says so, or no API key is found.
    Decided afresh for every run, from the environment as it is then."""
    return _offline_by_choice() or not wandb_api_key_present()


WANDB_RUN_ID_FILE = "wandb_run_id"


def _wandb_run_id(out: Path, resume: bool) -> tuple[str, bool]:
    """The W&B run id of the run in ``out`` and whether it is new: read back from
    ``out/wandb_run_id`` on resume (so the resumed run continues the same W&B run and its curves),
    else a new one, which :func:`make_loggers` records there once its run has started."""
    path = out / WANDB_RUN_ID_FILE
    if resume and path.is_file():
        run_id = path.read_text(encoding="utf-8").strip()
        if run_id:
            return run_id, False
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8)), True  # W&B's id format


def _wandb_logger(
    out: Path, project: str, group: Optional[str], name: Optional[str], config: dict, offline: bool, run_id: str
) -> Logger:
    import wandb
    from pytorch_lightning.loggers import WandbLogger

    settings = wandb.Settings(init_timeout=60, silent=True, console="off", mode="offline" if offline else "online")
    logger = WandbLogger(
        project=project,
        group=group,
        name=name,
        save_dir=str(out),
        offline=offline,
        config=config,
        settings=settings,
        id=run_id,
        resume="allow",  # an existing id (a resumed run) continues that W&B run
    )
    # Lightning passes anonymous=None on to wandb.init, which then warns that the (removed) setting
    # has no effect; the run is started below, so the argument can still be dropped
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    with wandb_files_under(out):
        _ = logger.experiment  # start the run now, so a failure surfaces here and not mid-training
    return logger


@contextlib.contextmanager
def wandb_files_under(out: Path) -> Iterator[None]:
    """Inside: W&B's own files (the debug logs of its service, its cache) go under ``out/wandb``
    instead of the home folder. On the way out every ``WANDB_*`` variable set or changed inside
    (by this, or by Lightning's WandbLogger, which sets ``WANDB_MODE=dryrun`` for an offline run)
    is restored, so nothing outlasts the run: a later W&B run in the same process sees the
    environment it would have seen. ``WANDB_SERVICE``, W&B's pointer to its running service, stays."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("WANDB_")}
    os.environ["WANDB_CACHE_DIR"] = str((out / "wandb" / "cache").resolve())
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("WANDB_") and k != "WANDB_SERVICE"]:
            if key not in saved:
                del os.environ[key]
        for key, value in saved.items():
            os.environ[key] = value


def make_loggers(
    out: Path,
    kind: str = "none",
    project: str = "wdist",
    group: Optional[str] = None,
    name: Optional[str] = None,
    config: Optional[dict[str, Any]] = None,
    resume: bool = False,
) -> list[Logger]:
    """``[CSVLogger]`` writing ``out/metrics.csv``, plus a WandbLogger when ``kind == 'wandb'``.

    ``resume``: continue the ``metrics.csv`` of an interrupted run in ``out`` instead of replacing
    it, and the W&B run whose id ``out/wandb_run_id`` holds (same id: one run, one set of curves).
    """
    csv_cls = ResumableCSVLogger if resume else CSVLogger
    loggers: list[Logger] = [csv_cls(save_dir=str(out), name="", version="")]
    if kind != "wandb":
        return loggers
    offline = wandb_offline()
    if offline and not _offline_by_choice() and rank_zero_only.rank == 0:
        print(
            f"W&B: no API key found (WANDB_API_KEY or ~/.netrc); logging offline to {out / 'wandb'}. "
            "Upload later with `wandb sync <run folder>`.",
            file=sys.stderr,
        )
    run_id, new = _wandb_run_id(out, resume)
    try:
        loggers.append(_wandb_logger(out, project, group, name, config or {}, offline, run_id))
    except Exception as err:  # network down, service refusing: keep the run going offline
        if offline:
            raise
        print(f"W&B: could not reach the service ({err}); logging offline to {out / 'wandb'}.", file=sys.stderr)
        loggers.append(_wandb_logger(out, project, group, name, config or {}, True, run_id))
    if new and rank_zero_only.rank == 0:
        atomic_write_text(out / WANDB_RUN_ID_FILE, run_id + "\n")
    return loggers


def _json_like(v: Any) -> bool:
    if v is None or isinstance(v, (int, float, str, bool)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_json_like(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _json_like(x) for k, x in v.items())
    return False


def finish_wandb(
    loggers: list[Logger], summary: Optional[dict[str, Any]] = None, images: Optional[dict[str, Path]] = None
) -> None:
    """Write the final result as the W&B run summary, attach images, and close the run."""
    for lg in loggers:
        if type(lg).__name__ != "WandbLogger":
            continue
        import wandb

        run = lg.experiment
        for k, v in (summary or {}).items():
            if _json_like(v):  # scalars, and lists/dicts of them (ci95, ci, versions, layers)
                run.summary[k] = v
        for key, path in (images or {}).items():
            if path and Path(path).exists():
                run.log({key: wandb.Image(str(path))})
        offline = bool(getattr(run, "offline", False))
        folder = getattr(run.settings, "sync_dir", None) or str(Path(run.dir).parent)
        run.finish()
        if offline and rank_zero_only.rank == 0:
            print(f"W&B: the offline run is in {folder}; upload it with: wandb sync {folder}", file=sys.stderr)
