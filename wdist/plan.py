"""The settled plan of one estimate: its configuration parsed and checked once, and its folder ready.

Everything a run could refuse before training is checked here, in one place: the configuration
(:mod:`wdist.config`: parsed once, its sources built once, the exact-OT reference checked to fit
in memory), the settings a resumed run may change (:mod:`wdist.resume`) and the output folder
(:mod:`wdist.files`). The stages after it receive the :class:`RunPlan` and never parse or check again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from pytorch_lightning.utilities import rank_zero_only

from wdist.config import EstimateConfig, Sides, config_record, config_yaml, resolve_config
from wdist.files import prepare_run_folder
from wdist.resume import check_resume_settings, resume_point, saved_config

__all__ = ["RunPlan", "plan_run"]


@dataclass(frozen=True)
class RunPlan:
    """One estimate, settled: the configuration it trains with and where its files go.

    ``sides`` are its sources, built once; ``record`` is the configuration as ``config.yaml``
    holds it (:func:`wdist.config.config_record`); ``checkpoint`` the ``last.ckpt`` a resumed run
    continues (``None``: a fresh run, or an ``auto`` run, whose candidates keep their own);
    ``resuming`` whether ``--resume`` was given.
    """

    cfg: EstimateConfig
    sides: Sides
    record: dict[str, Any]
    out_dir: Optional[Path]
    checkpoint: Optional[str]
    resuming: bool
    quiet: bool


def plan_run(
    config: Union[str, os.PathLike, dict, EstimateConfig, None],
    overrides: Sequence[str] = (),
    *,
    out: Union[str, os.PathLike, None] = None,
    resume: Union[str, os.PathLike, None] = None,
    quiet: bool = False,
) -> RunPlan:
    """Parse and settle ``config`` with ``overrides`` (once), check it, and prepare the output folder.

    A resumed run takes the saved ``config.yaml`` (or ``config`` when given) with ``overrides``,
    checked against the saved one before anything is trained or written (:mod:`wdist.resume`), and
    writes into the folder it resumes unless ``out`` says otherwise. ``quiet`` turns the progress
    bar off (after the record is taken: it is an output option, not a setting of the run).

    Raises
    ------
    ConfigError
        Bad input (an exact-OT reference too large for this machine included), a refused resume, or an output
        folder that cannot be written (the message names the value and what was expected).
    """
    point = resume_point(resume) if resume is not None else None
    source = config if config is not None or point is None else point.config
    cfg = resolve_config(source, overrides)
    sides, record, text = cfg.sides(), config_record(cfg), config_yaml(cfg)
    if point is not None:
        given = "the configuration given" if isinstance(config, EstimateConfig) else (
            f"--config {config}" if config is not None else str(point.config)
        )  # fmt: skip
        given += f" with overrides {' '.join(map(str, overrides))}" if overrides else ""
        check_resume_settings(saved_config(point), record, point.folder, given)
        out = out if out is not None else point.folder
    if quiet:
        cfg = replace(cfg, trainer=replace(cfg.trainer, enable_progress_bar=False))
    out_dir = Path(out) if out is not None else (Path(cfg.out) if cfg.out else None)
    if out_dir is not None:
        prepare_run_folder(
            out_dir, first_process=rank_zero_only.rank == 0 and os.environ.get("NODE_RANK", "0") == "0",
            continuing=point is not None and out_dir.resolve() == point.folder.resolve(), config_text=text,
        )  # fmt: skip
    checkpoint = None if point is None or point.checkpoint is None else str(point.checkpoint)
    return RunPlan(cfg, sides, record, out_dir, checkpoint, resuming=point is not None, quiet=quiet)
