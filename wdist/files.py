"""Files of a run: atomic writes, the output folder, and earlier results set aside."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Union

from wdist.errors import ConfigError

__all__ = [
    "atomic_write_text",
    "prepare_output_dir",
    "prepare_run_folder",
    "set_aside_previous_result",
    "remove_stale_temp_files",
    "RUN_FILES",
    "PREVIOUS",
]


def atomic_write_text(path: os.PathLike | str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    A reader sees the old file or the complete new one, never a partial file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def prepare_output_dir(out: Union[str, os.PathLike]) -> Path:
    """Create ``out`` and prove it is writable before any training happens.

    Raises
    ------
    ConfigError
        ``out`` (or a folder on its path) is an existing file, or the folder cannot be written.
    """
    path = Path(out)
    blocking = next((a for a in (path, *path.parents) if a.exists() and not a.is_dir()), None)
    if blocking is not None:
        where = "is" if blocking == path else f"lies under {str(blocking)!r}, which is"
        raise ConfigError(
            f"Output folder {str(path)!r} {where} an existing file ({blocking.stat().st_size} bytes), not a folder. "
            "Choose a folder (created if missing) with --out DIR or the config's 'out'."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".wdist-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"Output folder {str(path)!r} is not writable ({type(err).__name__}: {err.strerror or err}). "
            "Choose a folder you can write to with --out DIR."
        ) from None
    return path


#: What a run writes into its output folder (besides the W&B folder, whose runs have names of their own).
RUN_FILES = (
    "result.json",
    "bound_curve.png",
    "metrics.csv",
    "config.yaml",
    "hparams.yaml",
    "wandb_run_id",
    "checkpoints",
    "candidates",  # the candidates of a critic.name auto run (their checkpoints and records)
    "previous_result.json",  # the names earlier versions of wdist set an old result aside under
    "previous_bound_curve.png",
)
PREVIOUS = "previous"


def set_aside_previous_result(out: Path) -> Optional[Path]:
    """Move an earlier run's files (:data:`RUN_FILES`: result, plot, metrics, config, checkpoints)
    from ``out`` into ``out/previous/<time of that run>/`` and return that folder (``None`` when
    there was nothing to move).

    A new run into a folder then never overwrites an earlier result, nor leaves it beside the new
    config and metrics looking like this run's own when the new run fails part-way; each earlier
    run keeps a folder of its own that ``--resume`` accepts. Call it from one process only.
    """
    found = [out / name for name in RUN_FILES if (out / name).exists()]
    if not found:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(max(f.stat().st_mtime for f in found)))
    target = out / PREVIOUS / stamp
    n = 1
    while target.exists():
        n += 1
        target = out / PREVIOUS / f"{stamp}-{n}"
    target.mkdir(parents=True)
    for f in found:
        os.replace(f, target / f.name)
    return target


def remove_stale_temp_files(out: Path) -> list[Path]:
    """Delete the temporary files that writes killed mid-way left in ``out`` (``.<name>.*.tmp`` of
    :func:`atomic_write_text`, for the files of :data:`RUN_FILES`); returns what was removed. Call
    it from one process only, before the run writes anything."""
    removed = []
    for name in RUN_FILES:
        for stale in out.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
                removed.append(stale)
    return removed


def prepare_run_folder(out: Path, *, first_process: bool, continuing: bool, config_text: Optional[str]) -> None:
    """Before any training: ``out`` checked writable (:func:`prepare_output_dir`); then, in the
    first process only, stale temporary files of killed writes removed, an earlier run's files moved
    to ``previous/<time>/`` (unless this run is ``continuing`` it) and ``config.yaml`` written with
    ``config_text`` (left alone when it already holds exactly that; ``None``: not written)."""
    prepare_output_dir(out)
    if not first_process:
        return
    remove_stale_temp_files(out)
    if not continuing:
        moved = set_aside_previous_result(out)
        if moved is not None:
            print(f"wdist: moved the earlier run's files in {out} to {moved}", file=sys.stderr)
    config_file = out / "config.yaml"
    if config_text is not None and not (config_file.is_file() and config_file.read_text() == config_text):
        atomic_write_text(config_file, config_text)
