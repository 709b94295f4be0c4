"""Files of a run: atomic writes, the output folder, and earlier results set aside."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

from wdist.errors import ConfigError

__all__ = ["atomic_write_text", "prepare_output_dir", "set_aside_previous_result"]


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
    """Create ``out`` and prove it is writable before any training happens."""
    path = Path(out)
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


def set_aside_previous_result(out: Path) -> None:
    """A new run into a folder holding an earlier run's result renames that result to
    ``previous_result.json`` (and its plot), so that a new run failing part-way never leaves the
    old ``result.json`` beside the new config and metrics, looking like this run's result."""
    for name in ("result.json", "bound_curve.png"):
        try:
            os.replace(out / name, out / f"previous_{name}")
        except FileNotFoundError:  # none there (or another DDP rank moved it first)
            pass
