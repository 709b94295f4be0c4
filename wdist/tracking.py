"""W1 followed through a GAN's training: one certified held-out bound per generator checkpoint.

``wdist track`` runs one estimate (:func:`wdist.pipeline.estimate`, the one estimation path) per
checkpoint of a series, in order of GAN step, against one data set:

* checkpoint ``k`` is estimated in its own folder ``<out>/runs/step_<N>/`` (its ``result.json``,
  ``config.yaml``, ``metrics.csv``, bound curve and the reported critic ``critic.pt``);
* its select and test splits use a fresh draw of the generator side (``eval.heldout_draw = k``),
  so the bounds of different checkpoints have independent Q samples; a finite data set's select
  and test parts are the same for every checkpoint, so no critic of the series, warm-started or
  not, was ever trained on them;
* with ``warm_start`` (the default) the critic of checkpoint ``k > 0`` starts from the trained
  critic of checkpoint ``k - 1`` (all layers but the last, which starts fresh, unless
  ``warm_fresh_head`` is off; a head placed from data is always fresh and placed again:
  :func:`wdist.warmstart.warm_init`) and trains for ``warm_steps`` steps at ``warm_lr`` (a fresh
  optimiser and schedule; by default half of ``train.steps`` at 4 x ``train.lr``); cold, every
  checkpoint trains a fresh critic for ``train.steps``, as does a checkpoint whose warm start would
  load no weight (a critic that is all such head, ``cones``). As in ``estimate``,
  each number is the test split's,
  evaluated once on the state chosen on the select split (which the next checkpoint warm-starts
  from);
* after each checkpoint ``track.json``, ``track.csv`` and ``track.png`` (the bound and its
  interval against GAN step) are rewritten, and with ``logger.kind: wandb`` the point is added to
  one W&B run whose chart is that curve.

A killed track started again with the same settings (``--resume DIR``, or the same ``--out``)
keeps every finished checkpoint and continues at the first unfinished one (from its
``checkpoints/last.ckpt`` when ``train.checkpoint_every`` wrote one, else from its start, warm-
started as before).
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from pytorch_lightning.callbacks import Callback

import generators
from generators.checkpoints import read_state_dict
from wdist.config import ConfigError, EstimateConfig, SourceSpec, parse_config, settle
from wdist.files import atomic_write_text, prepare_output_dir
from wdist.loggers import finish_wandb, make_loggers, wandb_files_under
from wdist.pipeline import estimate
from wdist.plots import plot_track
from wdist.report import CLIPPED_NOTE, LABELS, clipped, format_interval, format_rows
from wdist.results import Result
from wdist.sources import Generator
from wdist.warmstart import InitState, KeepCritic, warm_init

__all__ = [
    "TrackResult",
    "track",
    "checkpoint_series",
    "parse_step",
    "default_snapshots",
    "TRACK_COLUMNS",
    "TRACK_SERIES",
]

#: Columns of ``track.csv`` (keys of each point of ``track.json``, which holds the whole bound record
#: of the checkpoint's result, :meth:`wdist.bound.Bound.to_dict`): the bound's keys, and the checkpoint's own.
TRACK_COLUMNS = (
    "gan_step", "lower_bound", "lower_bound_lo", "lower_bound_hi", "confidence", "ci95_lo", "ci95_hi",
    "estimate", "stderr", "lipschitz_certificate", "certified", "one_lipschitz", "critic_steps", "warm_started",
    "seconds", "n_eval_p", "n_eval_q", "empirical_ot_w1", "empirical_ot_floor", "limited_by", "checkpoint", "folder",
)  # fmt: skip
#: The series of the track's W&B run, against ``gan_step`` (as ``track/<key>``).
TRACK_SERIES = ("lower_bound", "ci95_lo", "ci95_hi", "estimate", "lipschitz_certificate")

CRITIC_FILE = "critic.pt"
#: Default critic steps of a warm-started checkpoint, as a fraction of ``train.steps``.
WARM_STEPS_FRACTION = 0.5
#: Default learning rate of a warm-started checkpoint, as a multiple of ``train.lr``.
WARM_LR_FACTOR = 4.0
TRACK_FILE = "track.json"

# a step word directly before the number: "step00100", "iter_5000", "epoch-3", "kimg=1200"
_STEP_WORD = re.compile(r"(?<![a-z])(?:step|steps|iter|iteration|it|epoch|kimg)[_\-=]?(\d+)", re.IGNORECASE)


def default_snapshots() -> Path:
    """The folder of the shipped snapshots of ``digits/wgan-gp-8`` (the series of ``wdist track``
    without arguments; recipe in its ``snapshots.json``)."""
    return Path(generators.__file__).resolve().parent / "weights" / "digits_track"


def parse_step(path: Union[str, os.PathLike]) -> int:
    """The GAN step in a checkpoint's file name: the number after a step word (``step``, ``iter``,
    ``it``, ``epoch``, ``kimg``), else the only number in the name (``netG_5000.pth`` -> 5000).

    Raises
    ------
    ConfigError
        No such number, or several without a step word (the message says how to give the steps).
    """
    name = Path(path).name
    stem = name.split(".")[0] if not name.startswith(".") else name
    words = _STEP_WORD.findall(stem)
    if len(words) == 1:
        return int(words[0])
    numbers = re.findall(r"\d+", stem)
    if not words and len(numbers) == 1:
        return int(numbers[0])
    found = f"the numbers {', '.join(numbers)}" if numbers else "no number"
    raise ConfigError(
        f"Cannot tell the GAN step of checkpoint {str(path)!r} from its file name ({found}); expected one "
        "number, or one after 'step', 'iter', 'it', 'epoch' or 'kimg' (e.g. G_step5000.pt). Give the steps "
        "explicitly with --track.steps N1 N2 ... (one per checkpoint, in the order given)."
    )


def _expand(patterns: Sequence[str]) -> list[Path]:
    """Each pattern as a file, or as a glob (its matches sorted); every pattern must match."""
    files: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        if glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(text)) if Path(m).is_file())
            if not matches:
                raise ConfigError(
                    f"--track.checkpoints {text!r} matches no file; expected a glob of generator checkpoints "
                    "(e.g. 'runs/gan/G_step*.pt') or a list of files."
                )
            files += matches
        else:
            path = Path(os.path.expanduser(text))
            if not path.is_file():
                raise ConfigError(
                    f"--track.checkpoints: {text!r} is not a file; expected generator checkpoint files or a glob."
                )
            files.append(path)
    return files


def checkpoint_series(patterns: Sequence[str], steps: Optional[Sequence[int]] = None) -> list[tuple[int, Path]]:
    """``(gan_step, file)`` of every checkpoint, sorted by step.

    ``patterns``: files or globs (each glob's matches sorted by name); ``steps``: the GAN step of
    each file in that order, else parsed from the names (:func:`parse_step`).

    Raises
    ------
    ConfigError
        An empty glob, a missing file, no checkpoints, a number of steps that differs from the
        number of files, a negative step, an unparseable name, or two checkpoints with one step.
    """
    files = _expand(patterns)
    if not files:
        raise ConfigError("wdist track needs at least one generator checkpoint (--track.checkpoints FILE_OR_GLOB ...).")
    if steps is not None and len(steps) != len(files):
        raise ConfigError(
            f"--track.steps gives {len(steps)} step(s) for {len(files)} checkpoint(s) "
            f"({', '.join(str(f) for f in files)}); give one step per checkpoint, in the order given."
        )
    gan_steps = [int(s) for s in steps] if steps is not None else [parse_step(f) for f in files]
    negative = [s for s in gan_steps if s < 0]
    if negative:
        raise ConfigError(f"--track.steps must be non-negative GAN steps; got {negative}.")
    seen: dict[int, Path] = {}
    for s, f in zip(gan_steps, files):
        if s in seen:
            raise ConfigError(
                f"Two checkpoints have GAN step {s}: {str(seen[s])!r} and {str(f)!r}; each checkpoint of a series "
                "needs its own step (give them with --track.steps)."
            )
        seen[s] = f
    return sorted(zip(gan_steps, files), key=lambda sf: sf[0])


def _check_same_shapes(series: Sequence[tuple[int, Path]]) -> None:
    """Raise :class:`ConfigError` unless every checkpoint holds the same tensor names and shapes."""
    first_step, first = series[0]
    ref = {k: tuple(v.shape) for k, v in read_state_dict(first).items()}
    for _, path in series[1:]:
        shapes = {k: tuple(v.shape) for k, v in read_state_dict(path).items()}
        if shapes == ref:
            continue
        missing, extra = sorted(set(ref) - set(shapes)), sorted(set(shapes) - set(ref))
        differ = [k for k in ref if k in shapes and shapes[k] != ref[k]]
        what = (
            f"tensor {differ[0]!r} has shape {list(shapes[differ[0]])} there and {list(ref[differ[0]])} in "
            f"{str(first)!r}"
            if differ
            else f"keys {(missing or extra)[:3]} are {'missing' if missing else 'extra'} there"
        )
        raise ConfigError(
            f"Checkpoint {str(path)!r} does not have the shapes of {str(first)!r}: {what}. A track follows one "
            "generator architecture through its training; every checkpoint must hold the same tensors."
        )


def _default_warm_steps(steps: int) -> int:
    """``WARM_STEPS_FRACTION * steps`` critic steps, rounded down, at least 1."""
    return max(1, int(WARM_STEPS_FRACTION * int(steps)))


@dataclass
class TrackResult:
    """A finished (or, while running, partial) track: one point per checkpoint, by GAN step.

    ``points``: dicts with the keys of :data:`TRACK_COLUMNS` (bounds in W1 units: Euclidean
    distance on the flattened samples, in the sources' domain); ``settings``: what the track was
    asked (config, overrides, checkpoints and steps, warm start).
    """

    points: list[dict[str, Any]]
    settings: dict[str, Any]
    out: Path
    complete: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"complete": self.complete, "settings": self.settings, "points": self.points, "notes": self.notes}

    def save(self) -> None:
        """Write ``track.json``, ``track.csv`` and ``track.png`` into :attr:`out` (atomically)."""
        atomic_write_text(self.out / TRACK_FILE, json.dumps(self.to_dict(), indent=2) + "\n")
        lines = [",".join(TRACK_COLUMNS)]
        for p in self.points:
            lines.append(",".join(_csv_cell(p.get(k)) for k in TRACK_COLUMNS))
        atomic_write_text(self.out / "track.csv", "\n".join(lines) + "\n")
        warm = "warm-started" if any(p["warm_started"] for p in self.points) else "cold-started"
        plot_track(self.points, self.out / "track.png", title=f"W1 lower bound through training ({warm} critics)")

    def format_table(self) -> str:
        """One row per checkpoint: the certified bound (estimate / L), its 95% interval, the critic
        steps; a critic that is not 1-Lipschitz and a bound that is not certified are marked, and
        an interval end below 0 is shown as 0 with :data:`~wdist.report.CLIPPED_NOTE`."""
        rows = [("GAN step", f"{LABELS['lower_bound']} (estimate / L)   {LABELS['ci95']}   critic steps")]
        for p in self.points:
            loose = f"  [not 1-Lipschitz: loosened by 1/L, L = {p['lipschitz_certificate']:.4g}]"
            mark = "" if p["one_lipschitz"] else loose
            if not p["certified"]:
                mark += "  [NOT certified: INCONSISTENT, see its result.json]"
            rows.append(
                (
                    str(p["gan_step"]),
                    f"{p['lower_bound']:.4f}   {format_interval(p['ci95_lo'], p['ci95_hi'])}   "
                    f"{p['critic_steps']}{' (warm)' if p['warm_started'] else ''}{mark}",
                )
            )
        if any(clipped(p["ci95_lo"]) for p in self.points):
            rows.append(("note", CLIPPED_NOTE))
        return format_rows(rows)


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    text = str(v)
    return f'"{text}"' if "," in text else text


def _point(gan_step: int, path: Path, result: Result, warm: bool, folder: Path) -> dict[str, Any]:
    return {
        "gan_step": int(gan_step),
        **result.bound.to_dict(),
        "critic_steps": result.run.steps,
        "warm_started": bool(warm),
        "seconds": result.run.seconds,
        "empirical_ot_w1": result.references.empirical_ot_w1,
        "empirical_ot_floor": result.references.empirical_ot_floor,
        "limited_by": result.diagnosis.limited_by,
        "checkpoint": str(path),
        "folder": str(folder.relative_to(folder.parent.parent)),
    }


def _settings(
    config: Union[str, os.PathLike, None],
    overrides: Sequence[str],
    series: Sequence[tuple[int, Path]],
    warm_start: bool,
    warm_steps: Optional[int],
    warm_lr: Optional[float] = None,
    warm_fresh_head: bool = False,
) -> dict[str, Any]:
    return {
        "config": None if config is None else str(Path(config).resolve()),
        "overrides": [str(o) for o in overrides],
        "checkpoints": [{"gan_step": s, "path": str(Path(p).resolve())} for s, p in series],
        "warm_start": bool(warm_start),
        "warm_steps": None if warm_steps is None else int(warm_steps),
        "warm_lr": None if warm_lr is None else float(warm_lr),
        "warm_fresh_head": bool(warm_fresh_head),
    }


def _saved_settings(out: Path) -> Optional[dict[str, Any]]:
    path = out / TRACK_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))["settings"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{str(path)!r} is not a track.json written by wdist track (cannot read its settings).")


def _track_loggers(out: Path, cfg: Any, settings: dict[str, Any], resuming: bool) -> list:
    """The track's one W&B run (``logger.kind: wandb``), its chart the bound against GAN step."""
    if cfg.logger.kind != "wandb":
        return []
    lg = cfg.logger
    loggers = make_loggers(out, "wandb", lg.project, lg.group, lg.name, config=settings, resume=resuming)
    loggers = [x for x in loggers if type(x).__name__ == "WandbLogger"]
    with wandb_files_under(out):
        for x in loggers:
            x.experiment.define_metric("gan_step")
            x.experiment.define_metric("track/*", step_metric="gan_step")
    return loggers


def _log_point(loggers: list, point: dict[str, Any]) -> None:
    for x in loggers:
        x.experiment.log({"gan_step": point["gan_step"], **{f"track/{k}": point[k] for k in TRACK_SERIES}})


def _check_same_checkpoint(res: Result, path: Union[str, os.PathLike], folder: Path) -> None:
    """Raise :class:`ConfigError` unless a finished step folder was estimated on ``path``."""
    used = (res.run.generators or {}).get("q", {}).get("checkpoint")
    if used is None or Path(used).resolve() != Path(path).resolve():
        raise ConfigError(
            f"{folder} holds a finished estimate of generator checkpoint {used!r}, not of {str(path)!r}; expected "
            "the folder of this track's checkpoint. Start this track in another --out folder. Nothing was changed."
        )


def track(
    config: Union[str, os.PathLike, None] = None,
    overrides: Sequence[str] = (),
    *,
    checkpoints: Sequence[str] = (),
    steps: Optional[Sequence[int]] = None,
    warm_start: bool = True,
    warm_steps: Optional[int] = None,
    warm_lr: Optional[float] = None,
    warm_fresh_head: bool = True,
    out: Union[str, os.PathLike, None] = "wdist-track",
    resume: Union[str, os.PathLike, None] = None,
    callbacks: Sequence[Callback] = (),
    quiet: bool = False,
) -> TrackResult:
    """A certified held-out lower bound on W1(P, G_t) for every checkpoint ``G_t`` of a series.

    (Over 100 lines only with this docstring, which is the one reference of every option; the
    body is under 80.)

    Parameters
    ----------
    config : the estimate's YAML (P, the critic, training, evaluation); ``None``: the bundled
        digits default. Its Q must be a ``Generator`` source: each checkpoint is loaded as its
        ``q.init_args.checkpoint``.
    overrides : dotted overrides of ``config``, as for ``estimate``.
    checkpoints : files or globs of generator checkpoints; empty: the shipped digits snapshots
        (:func:`default_snapshots`).
    steps : the GAN step of each checkpoint (in the order given); ``None``: parsed from the names.
    warm_start : start the critic of each checkpoint after the first from the previous one's
        (:func:`wdist.warmstart.warm_init`, W1Monitor's rule too). A checkpoint whose warm start
        would load no weight (a critic that is all head with a fresh head, such as ``cones``)
        trains cold instead, with ``train.steps`` at ``train.lr``, and its point says
        ``warm_started: false``.
    warm_steps : critic training steps of each warm-started checkpoint; ``None``: half of
        ``train.steps`` (:data:`WARM_STEPS_FRACTION`, at least 1).
    warm_lr : the critic's learning rate at each warm-started checkpoint; ``None``:
        :data:`WARM_LR_FACTOR` times ``train.lr``. A trained critic restarts with a fresh
        optimiser and schedule.
    warm_fresh_head : at each warm-started checkpoint, load every layer of the previous critic
        but its last (:func:`head_name`), which starts from its fresh initialisation (default).
        Off, the whole critic is loaded, except a head placed from data (the cone critics'
        ``PotentialHead``), which is always fresh and placed again on the checkpoint's samples.
        With ``bcop-dcgan`` the defaults reached the cold-start interval on the shipped digits
        series at every checkpoint with 1800 critic steps against 3000 (docs/tracking.md).
    out : the track's folder (``track.json``, ``track.csv``, ``track.png``, ``runs/``).
    resume : a killed track's folder: continue it with its saved settings (the arguments above
        are then taken from its ``track.json``).
    callbacks : extra Lightning callbacks for every checkpoint's training.
    quiet : no progress bars or per-checkpoint lines.

    Returns
    -------
    TrackResult
        One point per checkpoint, sorted by GAN step.

    Raises
    ------
    ConfigError
        Bad input: no or unreadable checkpoints, an unparseable step, checkpoints of different
        shapes, a Q that is not a generator, or an ``out`` holding a track with other settings.
    """
    if resume is not None:
        folder = Path(resume)
        saved = _saved_settings(folder)
        if saved is None:
            raise ConfigError(
                f"Cannot resume the track in {str(folder)!r}: it has no {TRACK_FILE} (expected the --out folder of a "
                "wdist track run; a single estimate's folder, with config.yaml, resumes with wdist estimate --resume)."
            )
        config, overrides = saved["config"], saved["overrides"]
        checkpoints = [c["path"] for c in saved["checkpoints"]]
        steps = [c["gan_step"] for c in saved["checkpoints"]]
        warm_start, warm_steps, out = saved["warm_start"], saved["warm_steps"], folder
        warm_lr = saved.get("warm_lr")
        warm_fresh_head = bool(saved.get("warm_fresh_head", False))
    if out is None:
        raise ConfigError("wdist track needs an output folder (--out DIR).")
    if warm_steps is not None and int(warm_steps) < 1:
        raise ConfigError(f"--track.warm_steps must be a positive number of critic steps; got {warm_steps}.")
    if warm_lr is not None and not (math.isfinite(float(warm_lr)) and float(warm_lr) > 0):
        raise ConfigError(f"--track.warm_lr must be a positive learning rate; got {warm_lr}.")
    patterns = list(checkpoints) or [str(default_snapshots() / "*.pt")]
    series = checkpoint_series(patterns, steps)
    _check_same_shapes(series)
    shared = parse_config(config, overrides)  # once: every checkpoint's configuration is derived from it
    if not (isinstance(shared.q, SourceSpec) and issubclass(shared.q.cls, Generator)):
        got = "no q (a toy: problem sets P and Q)" if shared.q is None else f"Q = {shared.q.name}"
        raise ConfigError(
            "wdist track follows a generator's checkpoints: the config's Q must be a Generator source "
            f"(q: {{class_path: Generator, init_args: {{name: ...}}}}); got {got}."
        )
    cfg = settle(_point_config(shared, series[0][1], 0))  # every setting checked (P and Q built) before anything runs
    settings = _settings(config, overrides, series, warm_start, warm_steps, warm_lr, warm_fresh_head)
    out_dir = prepare_output_dir(out)
    saved = _saved_settings(out_dir)
    if saved is not None and saved != settings:
        differ = sorted(k for k in settings if settings[k] != saved.get(k))
        raise ConfigError(
            f"{str(out_dir)!r} holds a track with other settings ({', '.join(differ)} differ); continue it with "
            f"--resume {out_dir}, or start this one in another --out folder. Nothing was changed."
        )
    result = TrackResult([], settings, out_dir)
    loggers = _track_loggers(out_dir, shared, settings, resuming=saved is not None)
    previous: Optional[Path] = None
    for k, (gan_step, path) in enumerate(series):
        folder = out_dir / "runs" / f"step_{gan_step}"
        init: Optional[InitState] = None
        if warm_start and previous is not None:
            init = warm_init(
                previous / CRITIC_FILE, warm_fresh_head,
                hint="Start the track in a new --out folder, or set --track.warm_start false",
            )  # fmt: skip
        warm = init is not None
        done = (folder / "result.json").is_file() and (folder / CRITIC_FILE).is_file()
        if done:
            res = Result.load(folder / "result.json")
            _check_same_checkpoint(res, path, folder)
        else:
            if not quiet:
                print(f"wdist track: checkpoint {k + 1}/{len(series)}, GAN step {gan_step} ({path})", flush=True)
            extra: list[Callback] = [*callbacks, KeepCritic(folder / CRITIC_FILE)]
            resumable = (folder / "config.yaml").is_file() and (folder / "checkpoints" / "last.ckpt").is_file()
            point_cfg = cfg if k == 0 else _point_config(shared, path, k)
            if warm:
                steps_k = int(warm_steps) if warm_steps is not None else _default_warm_steps(shared.train.steps)
                lr_k = float(warm_lr) if warm_lr is not None else WARM_LR_FACTOR * float(shared.train.lr)
                point_cfg = replace(point_cfg, train=replace(point_cfg.train, steps=steps_k, lr=lr_k))
            if resumable:  # continues its own checkpoint (checked against its config.yaml), not a warm start
                res = estimate(point_cfg, out=folder, resume=folder, callbacks=extra, quiet=quiet)
            else:
                res = estimate(point_cfg, out=folder, callbacks=extra, init_state=init, quiet=quiet)
            _log_point(loggers, _point(gan_step, path, res, warm, folder))
        result.points.append(_point(gan_step, path, res, warm, folder))
        result.save()
        previous = folder
    result.complete = True
    result.notes = _notes(result.points)
    result.save()
    _finish(loggers, result)
    return result


def _point_config(shared: EstimateConfig, path: Path, draw: int) -> EstimateConfig:
    """The configuration of the checkpoint at ``path``, the ``draw``-th of the series: the shared one
    with Q's checkpoint, held-out draw ``draw`` (fresh generator samples per checkpoint) and no
    logger of its own (the track has one)."""
    assert isinstance(shared.q, SourceSpec)
    return replace(
        shared, q=shared.q.with_args(checkpoint=str(path)), eval=replace(shared.eval, heldout_draw=draw),
        logger=replace(shared.logger, kind="none"),
    )  # fmt: skip


def _notes(points: Sequence[dict[str, Any]]) -> list[str]:
    notes = []
    if any(not p["one_lipschitz"] for p in points):
        notes.append(
            "some critics were not 1-Lipschitz (L > 1 + 1e-3): their points are still certified lower bounds "
            "(estimate / L), loosened by 1/L"
        )
    if any(not p["certified"] for p in points):
        notes.append("some points are NOT certified (INCONSISTENT: a gradient norm above L); see their result.json")
    if any(clipped(p["ci95_lo"]) for p in points):
        notes.append(CLIPPED_NOTE)
    return notes


def _finish(loggers: list, result: TrackResult) -> None:
    if not loggers:
        return
    first, last = result.points[0], result.points[-1]
    summary = {
        "first_gan_step": first["gan_step"],
        "first_lower_bound": first["lower_bound"],
        "last_gan_step": last["gan_step"],
        "last_lower_bound": last["lower_bound"],
        "checkpoints": len(result.points),
    }
    with wandb_files_under(result.out):
        finish_wandb(loggers, summary=summary, images={"track": result.out / "track.png"})
