"""What ``--resume DIR`` continues, and which settings a resumed run may change.

A resumed run continues the training in ``DIR/checkpoints/last.ckpt`` with the settings in
``DIR/config.yaml``. It must retrace the run it continues, so only settings that do not change the
trajectory may differ: a longer ``train.steps`` (with no learning-rate schedule laid out over the
old length), and logging and output options (:data:`MAY_CHANGE`). Anything else is refused before
training, with the list of differences, and nothing in ``DIR`` is touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from wdist.errors import ConfigError
from wdist.problems import current_class_paths

__all__ = ["ResumePoint", "resume_point", "saved_config", "check_resume_settings", "flatten", "MAY_CHANGE"]

#: Dotted keys a resumed run may change (``logger.`` covers the whole section); ``train.steps`` only upwards.
MAY_CHANGE = ("train.steps", "train.checkpoint_every", "trainer.enable_progress_bar", "out", "logger.")


@dataclass(frozen=True)
class ResumePoint:
    """A run folder to resume: its saved config and its last checkpoint, both checked to exist.

    ``checkpoint`` is ``None`` for a ``critic.name: auto`` run, whose checkpoints are its
    candidates' (``candidates/<label>/checkpoints/last.ckpt``, at least one present)."""

    folder: Path
    config: Path
    checkpoint: Optional[Path]


def resume_point(resume: Union[str, os.PathLike]) -> ResumePoint:
    """The saved ``config.yaml`` and ``checkpoints/last.ckpt`` of the run folder ``resume`` (for an
    ``auto`` run, the ``last.ckpt`` of at least one candidate).

    Raises
    ------
    ConfigError
        Either file is missing (the message names the folder and what is missing).
    """
    rdir = Path(resume)
    saved, last = rdir / "config.yaml", rdir / "checkpoints" / "last.ckpt"
    if not saved.is_file():
        raise ConfigError(f"Cannot resume from {str(rdir)!r}: it has no config.yaml (is it a wdist output folder?).")
    if not last.is_file() and any((rdir / "candidates").glob("*/checkpoints/last.ckpt")):
        return ResumePoint(rdir, saved, None)
    if not last.is_file():
        raise ConfigError(
            f"Cannot resume from {str(rdir)!r}: no checkpoint at {str(last)!r} "
            "(set train.checkpoint_every to write them)."
        )
    return ResumePoint(rdir, saved, last)


def saved_config(point: ResumePoint) -> dict[str, Any]:
    """The mapping the resumed run's ``config.yaml`` holds (as :func:`wdist.config.config_record`
    wrote it), read as data: not parsed into a configuration, nothing built; a ``class_path`` written by
    an earlier layout is given as the class's path now (:func:`wdist.problems.current_class_paths`).

    Raises
    ------
    ConfigError
        The file is not a YAML mapping (the message names it).
    """
    import yaml  # jsonargparse's own YAML library

    try:
        data = yaml.safe_load(point.config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(
            f"Cannot resume from {str(point.folder)!r}: its config.yaml is not readable YAML ({err})."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"Cannot resume from {str(point.folder)!r}: its config.yaml is not a mapping of config keys.")
    return current_class_paths(data)  # class paths of an earlier layout, as they are written now


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}`` (lists and leaves kept as they are)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _may_change(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in MAY_CHANGE)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def check_resume_settings(before: Mapping[str, Any], after: Mapping[str, Any], folder: Path, given: str) -> None:
    """Raise :class:`ConfigError` unless the configuration ``after`` may continue the run trained
    with ``before`` (both as :func:`wdist.config.config_record` gives them).

    Allowed differences: :data:`MAY_CHANGE`, with ``train.steps`` no shorter than before, and
    longer only when ``train.schedule`` is ``none`` (a schedule is laid out over the run's length,
    and the checkpoint holds it). ``given`` says where ``after`` came from, for the message.
    """
    old, new = flatten(before), flatten(after)
    changed = [k for k in sorted(set(old) | set(new)) if not _same(old.get(k), new.get(k))]
    other_class = [k[: -len("class_path")] for k in changed if k.endswith("class_path")]
    # another class: its options differ as a matter of course, the class says it all
    refused = [
        k for k in changed if not _may_change(k) and not any(k.startswith(c + "init_args.") for c in other_class)
    ]
    lines = [f"{k}: {old.get(k)!r} (the run so far) -> {new.get(k)!r} (now)" for k in refused]
    steps_old, steps_new = old.get("train.steps"), new.get("train.steps")
    if "train.steps" in changed and steps_old is not None and steps_new is not None:
        if steps_new < steps_old:
            lines.append(f"train.steps: {steps_old} -> {steps_new} (a resumed run can only be longer)")
        elif new.get("train.schedule") != "none":
            lines.append(
                f"train.steps: {steps_old} -> {steps_new} with train.schedule={new.get('train.schedule')!r} (the "
                f"schedule is laid out over {steps_old} steps and restored from the checkpoint, so a longer run "
                "would not follow it)"
            )
    if lines:
        raise ConfigError(
            f"Cannot resume {str(folder)!r} with these settings ({given}): they differ from the settings its "
            f"checkpoint was trained with, and would change the training it continues: {'; '.join(lines)}. A resumed "
            "run may only train for more steps (train.steps, in a run started with train.schedule none) or change "
            "logging and output options (logger.*, out, train.checkpoint_every, trainer.enable_progress_bar). To train "
            "with other settings, start a new run with --out NEW_FOLDER. Nothing in the folder was changed."
        )
