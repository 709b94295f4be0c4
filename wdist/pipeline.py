"""One estimate end to end: config -> sources -> critic -> trainer -> evaluation -> references -> result.

This is the data flow of DESIGN.md. :func:`estimate` only orchestrates; each step is a call into
the module that owns it, and each value is computed once and passed on: the evaluations
(:mod:`wdist.evaluation`) are made by the training system (on the select split during training,
on the test split once for the selected state, :mod:`wdist.selection`), the references by
:mod:`wdist.references` (solved on a spare core while the critic trains when there is one, else
after training), and the :class:`~wdist.results.Result` is built from the test evaluation.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_only
from torch import nn

import critics
from critics.empirical import empirical_lipschitz
from wdist._version import __version__
from wdist.auto import AUTO, Candidate, CandidateRecord, auto_record, candidate_text, candidates_for, choose
from wdist.callbacks import AtomicCheckpointIO, GracefulStop, StepCheckpoint, TrainClock, progress_callback
from wdist.config import ConfigError, CriticConfig, EstimateConfig, Sides, config_record, config_yaml, resolve_config
from wdist.data import PairDataModule
from wdist.evaluation import Evaluation
from wdist.files import atomic_write_text, prepare_output_dir, remove_stale_temp_files, set_aside_previous_result
from wdist.loggers import finish_wandb, make_loggers
from wdist.plots import plot_bound_curve
from wdist.references import (
    References,
    check_ot_fits,
    draw_references,
    references,
    solve_references_in_background,
)
from wdist.results import Result, RunRecord
from wdist.resume import ResumePoint, check_resume_settings, resume_point, saved_config
from wdist.seeds import EMPIRICAL_LIPSCHITZ_OFFSET, generator
from wdist.sources import FiniteSource, Generator, LatentSource
from wdist.system import CriticSystem
from wdist.threads import ThreadChoice, apply_threads, run_threads
from wdist.warmstart import InitState, load_init_state

__all__ = [
    "estimate",
    "build_run",
    "build_critic",
    "make_trainer",
    "fit_and_evaluate",
    "fit_and_select",
    "evaluate_on_test",
    "candidate_config",
    "CANDIDATE_FILE",
    "references_beside_training",
    "Run",
    "versions",
    "training_loss",
    "check_enough_items",
    "MIN_ITEMS",
]


def versions() -> dict[str, str]:
    """Versions of everything that shapes the number."""
    import ot
    import torchvision

    return {
        "wdist": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pytorch_lightning": pl.__version__,
        "pot": ot.__version__,
        "numpy": np.__version__,
    }


def _quiet_lightning() -> None:
    """Silence Lightning's chatter that says nothing about the estimate."""
    for pattern in (
        ".*Experiment logs directory .* exists and is not empty.*",
        ".*isinstance\\(treespec, LeafSpec\\).*",
        ".*in eval mode.*",  # the frozen generator is in eval mode on purpose
        ".*does not have many workers.*",  # samples are generated in-process, on purpose
        ".*Checkpoint directory .* exists and is not empty.*",
        ".*`IterableDataset` has `__len__` defined.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)
    # Lightning's INFO lines (accelerator found, tips) say nothing the result does not; the
    # device is part of every result. Warnings stay visible.
    for name in ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_critic(cfg: EstimateConfig, shape: tuple[int, ...]) -> nn.Module:
    """The configured critic for inputs of ``shape`` (a bad option names ``critic.options``), checked
    to be certifiable before any training (a module no certificate rule describes is named)."""
    if cfg.critic.name == AUTO:
        raise ConfigError(
            f"Invalid configuration: critic.name {AUTO!r} trains several candidate critics and chooses one on the "
            "select split; only `wdist estimate` (wdist.estimate) makes that choice. Name one critic here (e.g. "
            f"{', '.join(repr(c.name) for c in candidates_for(shape))})."
        )
    try:
        critic = critics.build(cfg.critic.name, shape, **cfg.critic.options)
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"Invalid configuration: critic {cfg.critic.name!r} could not be built with critic.options="
            f"{dict(cfg.critic.options)!r} for inputs of shape {shape}: {err}"
        ) from None
    try:
        critics.certificate_report(critic, shape)
    except critics.CertificationError as err:
        raise ConfigError(f"Invalid configuration: critic {cfg.critic.name!r} cannot be certified: {err}") from None
    return critic


@dataclass
class Run:
    """The pieces of one estimate before training: sides, data module and training system."""

    cfg: EstimateConfig
    sides: Sides
    datamodule: PairDataModule
    system: CriticSystem
    threads: ThreadChoice


def training_loss(cfg: EstimateConfig) -> str:
    """The objective the critic is trained with: ``train.loss`` when set, else the one its family is
    made for (``critics.default_loss``: ``wgan-gp`` for ``gp-*`` critics, ``kr`` otherwise)."""
    return cfg.train.loss or critics.default_loss(cfg.critic.name)


#: Fewest items a finite data set can have in an estimate: two held out (an interval needs two
#: pairs) and one to train on.
MIN_ITEMS = 3


def check_enough_items(sides: Sides) -> None:
    """Raise :class:`ConfigError` naming the side when a finite data set has fewer than :data:`MIN_ITEMS` items."""
    for name, side in (("P", sides.p), ("Q", sides.q)):
        if isinstance(side, FiniteSource) and len(side) < MIN_ITEMS:
            raise ConfigError(
                f"Invalid configuration: {name} = {side.describe()} holds {len(side)} item"
                f"{'s' if len(side) != 1 else ''}; an estimate needs at least {MIN_ITEMS} (two held out for the "
                "confidence interval, one to train on), and thousands are usual."
            )


def build_run(cfg: EstimateConfig, sides: Optional[Sides] = None, init_state: Optional[InitState] = None) -> Run:
    """The sources, critic, data module and training system of a configuration (no Trainer).

    The system trains with :func:`training_loss` (the critic family's own objective unless
    ``train.loss`` is set). Sets this process's torch thread count first (:mod:`wdist.threads`),
    so that the critic is built and trained with it. ``sides``: the configuration's sources when
    already built (``cfg.sides()`` otherwise: built once, at their first use). ``init_state``: the
    weights the critic starts from (:mod:`wdist.warmstart`), loaded right after it is built.
    """
    sides = cfg.sides() if sides is None else sides
    check_enough_items(sides)
    p, q = sides.p, sides.q
    shape = tuple(p.shape)
    train = replace(cfg.train, loss=training_loss(cfg))
    threads = run_threads(cfg, shape)
    apply_threads(threads)
    ev = cfg.eval
    dm = PairDataModule(
        p, q, cfg.train.batch_size, ev.n_eval, ev.batch_size, cfg.seed, ev.n_eval_p, ev.n_eval_q, ev.train_subset,
        ev.heldout_draw, n_select=ev.n_select, n_select_p=ev.n_select_p, n_select_q=ev.n_select_q, aligned=ev.aligned,
    )  # fmt: skip
    critic = build_critic(cfg, shape)
    if init_state is not None:
        load_init_state(critic, init_state)
    system = CriticSystem(
        critic, shape, train, cfg.eval, domain=p.domain, seed=cfg.seed,
        p_generator=p.module if isinstance(p, LatentSource) else None,
        q_generator=q.module if isinstance(q, LatentSource) else None,
    )  # fmt: skip
    return Run(cfg, sides, dm, system, threads)


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


def _callbacks(
    cfg: EstimateConfig, out_dir: Optional[Path], extra: Sequence[Callback], resume_folder: Optional[Path] = None
) -> list[Callback]:
    """``resume_folder``: the folder an interruption names for ``--resume`` (``out_dir`` when not given)."""
    cbs: list[Callback] = [
        *extra, TrainClock(_segment_settings(cfg)), GracefulStop(out_dir if resume_folder is None else resume_folder)
    ]  # fmt: skip
    if cfg.trainer.enable_progress_bar:
        cbs.append(progress_callback())  # a bar in a terminal, a line per evaluation in a log
    if out_dir is not None and cfg.train.checkpoint_every:
        cbs.append(
            StepCheckpoint(
                dirpath=out_dir / "checkpoints", every_n_train_steps=cfg.train.checkpoint_every, save_last=True,
                save_top_k=1, filename="step{step}", auto_insert_metric_name=False,
            )
        )  # fmt: skip
    return cbs


def fit_and_select(trainer: pl.Trainer, run: Run, ckpt_path: Optional[str]) -> None:
    """Train with evaluations on the select split; the final step is evaluated on the select split
    (a candidate like the others) unless the last evaluation already did. The test split is not read."""
    trainer.fit(run.system, datamodule=run.datamodule, ckpt_path=ckpt_path)
    last = run.system.last_evaluation
    if last is None or last.step != trainer.global_step:
        trainer.validate(run.system, datamodule=run.datamodule, verbose=False)


def evaluate_on_test(trainer: pl.Trainer, run: Run) -> Evaluation:
    """Evaluate the selected state once on the test split: Lightning's test loads the selected
    weights into the critic and evaluates them, the only read of the test items. Returns that test
    evaluation (the reported bound)."""
    trainer.test(run.system, datamodule=run.datamodule, verbose=False)
    test = run.system.test_evaluation
    assert test is not None
    return test


def fit_and_evaluate(trainer: pl.Trainer, run: Run, ckpt_path: Optional[str]) -> Evaluation:
    """Train with evaluations on the select split, then evaluate the selected state once on the test
    split (:func:`fit_and_select`, then :func:`evaluate_on_test`). Returns the test evaluation."""
    fit_and_select(trainer, run, ckpt_path)
    return evaluate_on_test(trainer, run)


def references_beside_training(run: Run, trainer: pl.Trainer) -> Optional[Callable[[], References]]:
    """The run's references solved on a spare core while the critic trains; call the returned
    function after training for their value.

    The samples are drawn now, from the references' own random stream (:mod:`wdist.seeds`), so
    training sees exactly the numbers it would see otherwise and the references are the values
    :func:`wdist.references.references` computes after training. ``None`` (solve after training)
    when the training processes leave no core spare (:attr:`ThreadChoice.spare_cores`), when
    several processes train (rank 0 alone computes references), or when none are asked for.
    """
    cfg = run.cfg
    if run.threads.spare_cores < 1 or trainer.world_size > 1 or cfg.eval.ot_samples <= 0:
        return None
    samples = draw_references(
        run.sides.p, run.sides.q, cfg.eval.ot_samples, cfg.eval.ot_floor, cfg.seed, cfg.train.batch_size,
        trainer.strategy.root_device,
    )  # fmt: skip
    return solve_references_in_background(samples)


def empirical_lipschitz_check(system: CriticSystem, n: int, seed: int) -> Optional[float]:
    """Largest gradient norm of the reported critic at ``n`` select samples of each side and ``n``
    interpolates between them: an empirical *lower* estimate of Lip(f), set beside the certificate
    (``None`` when ``n`` is 0). The samples are the select split's (the test split is read once,
    by the evaluation of the bound)."""
    if n <= 0:
        return None
    xp, xq = system.select_samples()
    system.critic.eval()
    gen = generator(seed, EMPIRICAL_LIPSCHITZ_OFFSET)
    return float(empirical_lipschitz(system.critic, xp[:n], xq[:n], n_interpolates=n, generator=gen))


def _device_text(trainer: pl.Trainer) -> str:
    device = trainer.strategy.root_device
    if device.type == "cuda":
        text = f"cuda ({torch.cuda.get_device_name(device)})"
    else:
        threads = torch.get_num_threads()
        text = f"{device.type} ({platform.processor() or platform.machine()}, {threads} thread{'s' * (threads != 1)})"
    return text + (f" x {trainer.world_size} processes" if trainer.world_size > 1 else "")


def _segment_settings(cfg: EstimateConfig) -> dict[str, Any]:
    """The settings each segment of a run's history records (those a resume may change)."""
    return {
        "train.steps": cfg.train.steps,
        "train.checkpoint_every": cfg.train.checkpoint_every,
        "logger.kind": cfg.logger.kind,
    }


# Lightning's short spellings of its precision settings, as its Trainer reports them
_PRECISION_ALIASES = {"16": "16-mixed", "bf16": "bf16-mixed", "32": "32-true", "64": "64-true"}


def _precision_text(precision: Any) -> str:
    text = str(precision)
    return _PRECISION_ALIASES.get(text, text)


def _run_record(run: Run, trainer: pl.Trainer, resolved: dict) -> RunRecord:
    cfg, p = run.cfg, run.sides.p
    clock = next(cb for cb in trainer.callbacks if isinstance(cb, TrainClock))
    ranges = run.system.range_records()
    return RunRecord(
        critic=cfg.critic.name, loss=run.system.train_cfg.loss, p=p.describe(), q=run.sides.q.describe(),
        shape=list(p.shape), domain=None if p.domain is None else [float(p.domain[0]), float(p.domain[1])],
        steps=int(trainer.global_step), seconds=clock.total_seconds, device=_device_text(trainer),
        versions=versions(), config=resolved,
        precision=_precision_text(trainer.precision), precision_requested=_precision_text(cfg.trainer.precision),
        loss_default=critics.default_loss(cfg.critic.name),
        segments=clock.segments, threads=run.threads.record(),
        generators={
            side: {**src.record(), **({"range_check": ranges[side]} if side in ranges else {})}
            for side, src in (("p", p), ("q", run.sides.q)) if isinstance(src, Generator)
        },
        split=run.datamodule.split_record(),
    )  # fmt: skip


def _first_process() -> bool:
    """Whether this is the first process of the run (DDP ranks other than 0 are started by
    Lightning with their rank in the environment): only it sets earlier files aside."""
    return rank_zero_only.rank == 0 and os.environ.get("NODE_RANK", "0") == "0"


def _prepare_files(out_dir: Path, resume: Optional[ResumePoint], resolved_yaml: Optional[str]) -> None:
    """Before any training: the output folder checked writable, stale temporary files of killed
    writes removed, an earlier run's files moved to ``previous/<time>/`` (unless this run resumes
    it), and this run's ``config.yaml`` written."""
    prepare_output_dir(out_dir)
    if not _first_process():
        return
    remove_stale_temp_files(out_dir)
    continuing = resume is not None and out_dir.resolve() == resume.folder.resolve()
    if not continuing:
        moved = set_aside_previous_result(out_dir)
        if moved is not None:
            print(f"wdist: moved the earlier run's files in {out_dir} to {moved}", file=sys.stderr)
    config_file = out_dir / "config.yaml"
    if resolved_yaml is not None and not (config_file.is_file() and config_file.read_text() == resolved_yaml):
        atomic_write_text(config_file, resolved_yaml)


@rank_zero_only
def _say_threads(threads: ThreadChoice) -> None:
    print(f"wdist: {threads.count} torch thread{'s' if threads.count != 1 else ''} per process; {threads.reason}")


def _write_outputs(result: Result, out_dir: Path, loggers: list) -> None:
    plot = plot_bound_curve(
        result.curve, out_dir / "bound_curve.png", exact_w1=None if result.exact is None else result.exact.w1,
        empirical_ot=result.references.empirical_ot_w1, empirical_ot_floor=result.references.empirical_ot_floor,
        one_lipschitz=result.one_lipschitz, title=f"{result.run.critic}: {result.run.p} vs {result.run.q}",
        reported=(result.bound.step, result.lower_bound, result.bound.lower_bound_lo, result.bound.lower_bound_hi),
    )  # fmt: skip
    result.save(out_dir / "result.json")
    summary = result.to_dict()
    summary.pop("curve")
    summary["run"].pop("config")
    finish_wandb(loggers, summary=summary, images={"bound_curve": plot})


def _configuration(
    config: Union[str, os.PathLike, dict, EstimateConfig, None],
    overrides: Sequence[str],
    point: Optional[ResumePoint],
    out: Union[str, os.PathLike, None],
) -> tuple[EstimateConfig, Union[str, os.PathLike, None]]:
    """The settled configuration of a run (parsed once, unless given settled) and its output folder.

    A resumed run takes the saved ``config.yaml`` (or ``config`` when given) with ``overrides``,
    checked against the saved one before anything is trained or written (:mod:`wdist.resume`), and
    writes into the folder it resumes unless ``out`` says otherwise.
    """
    if point is None:
        return resolve_config(config, overrides), out
    source = config if config is not None else point.config
    cfg = resolve_config(source, overrides)
    given = "the configuration given" if isinstance(config, EstimateConfig) else (
        f"--config {config}" if config is not None else str(point.config)
    )  # fmt: skip
    given += f" with overrides {' '.join(map(str, overrides))}" if overrides else ""
    check_resume_settings(saved_config(point), config_record(cfg), point.folder, given)
    return cfg, out if out is not None else point.folder


def estimate(
    config: Union[str, os.PathLike, dict, EstimateConfig, None] = None,
    overrides: Sequence[str] = (),
    *,
    out: Union[str, os.PathLike, None] = None,
    resume: Union[str, os.PathLike, None] = None,
    callbacks: Sequence[Callback] = (),
    init_state: Optional[InitState] = None,
    quiet: bool = False,
) -> Result:
    """Train a critic on P vs Q and return the certified lower bound on W1(P, Q) from the test split.

    Every evaluation during training uses the select split (the curve, the choice of the reported
    step, early stopping); the selected state is evaluated once, at the end, on the test split.

    Parameters
    ----------
    config : YAML path, dict, :class:`~wdist.config.EstimateConfig` (a parsed one is not parsed
        again; its sources are built once, at their first use), or ``None`` for the bundled digits
        default. Several runs of one parsed configuration (``dataclasses.replace``) share its sources.
    overrides : dotted command-line overrides, e.g. ``["--train.steps", "200"]``.
    out : output folder (overrides ``config.out``); receives ``result.json``, ``metrics.csv``,
        ``bound_curve.png``, ``config.yaml`` and ``checkpoints/``. ``None`` and no ``config.out``:
        nothing is written.
    resume : a previous run's output folder; training continues from ``checkpoints/last.ckpt``
        with that run's ``config.yaml`` (or ``config``, when given) and ``overrides``. Settings
        that would change the training it continues are refused before anything runs
        (:mod:`wdist.resume`); a longer ``train.steps`` adds a segment to the run's history.
    callbacks : extra Lightning callbacks.
    init_state : the weights the critic starts from (:class:`~wdist.warmstart.InitState`: a warm
        start); a resumed run continues its own checkpoint instead.
    quiet : no progress bar and no Lightning chatter.

    Returns
    -------
    Result
        ``lower_bound = estimate / lipschitz_certificate`` with its interval; distances are L2 on
        the flattened samples, in the sources' domain. A non-zero rank of a distributed run
        returns ``None`` (rank 0 reports; the statistics are identical).

    Raises
    ------
    ConfigError
        Bad input (the message names the value and what was expected).
    RunInterrupted
        SIGTERM or SIGINT during the run: no result; a resumable checkpoint when checkpointing is on.
    """
    _quiet_lightning()
    point = resume_point(resume) if resume is not None else None
    cfg, out = _configuration(config, overrides, point, out)
    resolved_yaml, resolved = config_yaml(cfg), config_record(cfg)
    if quiet:
        cfg = replace(cfg, trainer=replace(cfg.trainer, enable_progress_bar=False))
    check_ot_fits(cfg.eval.ot_samples)
    out_dir = Path(out) if out is not None else (Path(cfg.out) if cfg.out else None)
    if out_dir is not None:
        _prepare_files(out_dir, point, resolved_yaml)
    if cfg.critic.name == AUTO:
        if init_state is not None:
            raise ConfigError("critic.name auto trains several candidate critics; a warm start needs one named critic.")
        return _estimate_auto(cfg, resolved, out_dir, point is not None, callbacks, quiet)
    ckpt_path: Optional[str] = None if point is None or point.checkpoint is None else str(point.checkpoint)
    loggers: list = []
    if out_dir is not None:
        lg = cfg.logger
        loggers = make_loggers(
            out_dir, lg.kind, lg.project, lg.group, lg.name, config=resolved, resume=ckpt_path is not None
        )
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    run = build_run(cfg, init_state=init_state)
    if not quiet:
        _say_threads(run.threads)
    trainer = make_trainer(cfg, loggers, _callbacks(cfg, out_dir, callbacks), out_dir)
    solved_beside = references_beside_training(run, trainer)
    tested = fit_and_evaluate(trainer, run, ckpt_path)
    if trainer.global_rank != 0:
        return None  # type: ignore[return-value]
    result = _result(run, trainer, tested, resolved, solved_beside)
    if out_dir is not None:
        _write_outputs(result, out_dir, loggers)
    return result


def _result(
    run: Run,
    trainer: pl.Trainer,
    tested: Evaluation,
    resolved: dict,
    solved_beside: Optional[Callable[[], References]] = None,
    auto: Optional[dict[str, Any]] = None,
) -> Result:
    """The result of the reported run: its test evaluation, the empirical Lipschitz check, the
    references (solved beside training or now) and, for ``critic.name: auto``, the choice."""
    cfg = run.cfg
    emp = empirical_lipschitz_check(run.system, cfg.eval.empirical_lipschitz_samples, cfg.seed)
    if solved_beside is not None:
        refs = solved_beside()
    else:
        refs = references(
            run.sides.p, run.sides.q, cfg.eval.ot_samples, cfg.eval.ot_floor, cfg.seed, cfg.train.batch_size,
            trainer.strategy.root_device,
        )  # fmt: skip
    run.system.count_evaluated_draws("the samples of the exact-OT references")
    return Result.from_evaluation(
        tested, _run_record(run, trainer, resolved), run.system.evaluations, refs,
        run.sides.exact_w1, run.sides.exact_w1_method, emp, run.system.selection.record(),
        run.system.selected_evaluation, auto=auto,
    )  # fmt: skip


# -- critic.name: auto ---------------------------------------------------------------------------------

#: The file a finished candidate of an ``auto`` run leaves in its folder ``candidates/<label>/``:
#: its :class:`~wdist.auto.CandidateRecord`, written after its last checkpoint (a resumed run
#: does not train it again).
CANDIDATE_FILE = "candidate.json"


def candidate_config(cfg: EstimateConfig, candidate: Candidate) -> EstimateConfig:
    """The configuration one candidate of ``cfg`` (``critic.name: auto``) trains with: its critic and
    options, its share of ``train.steps`` (evaluated at least at its last step), everything else as given."""
    steps = candidate.steps(cfg.train.steps)
    train = replace(cfg.train, steps=steps, eval_every=min(cfg.train.eval_every, steps))
    return replace(
        cfg, critic=CriticConfig(candidate.name, dict(candidate.options)), train=train, trainer=replace(cfg.trainer)
    )


def _fit_candidate(
    cfg: EstimateConfig,
    label: str,
    sides: Sides,
    folder: Optional[Path],
    resume_folder: Optional[Path],
    callbacks: Sequence[Callback],
    resuming: bool,
    quiet: bool,
    steps_done: Optional[int] = None,
    logged: Optional[dict] = None,
) -> tuple[Run, pl.Trainer, list]:
    """Train one candidate (continuing its ``last.ckpt`` when ``resuming``) and select its step on
    the select split; the test split is not read. ``steps_done``: the steps a finished candidate
    trained, so that restoring its checkpoint trains nothing. ``logged``: the configuration its
    loggers record."""
    ckpt = None if folder is None else folder / "checkpoints" / "last.ckpt"
    ckpt_path = str(ckpt) if resuming and ckpt is not None and ckpt.is_file() else None
    loggers: list = []
    if folder is not None:
        lg = cfg.logger
        name = f"{lg.name}-{label}" if lg.name else label
        loggers = make_loggers(
            folder, lg.kind, lg.project, lg.group, name, config=logged or {}, resume=ckpt_path is not None
        )
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    run = build_run(cfg, sides)
    if not quiet and steps_done is None:
        _say_threads(run.threads)
    limit = cfg if steps_done is None else replace(cfg, train=replace(cfg.train, steps=int(steps_done)))
    trainer = make_trainer(limit, loggers, _callbacks(cfg, folder, callbacks, resume_folder), folder)
    fit_and_select(trainer, run, ckpt_path)
    return run, trainer, loggers


def _candidate_record(candidate: Candidate, cfg: EstimateConfig, run: Run, trainer: pl.Trainer) -> CandidateRecord:
    selection = run.system.selection
    assert selection.step is not None and selection.value is not None
    clock = next(cb for cb in trainer.callbacks if isinstance(cb, TrainClock))
    return CandidateRecord(
        label=candidate.label, critic=candidate.name, options=dict(candidate.options), share=candidate.share,
        budget=cfg.train.steps, steps=int(trainer.global_step), select_value=float(selection.value),
        select_step=int(selection.step), seconds=float(clock.total_seconds), selection=selection.record(),
    )  # fmt: skip


def _estimate_auto(
    cfg: EstimateConfig,
    resolved: dict,
    out_dir: Optional[Path],
    resuming: bool,
    callbacks: Sequence[Callback],
    quiet: bool,
) -> Result:
    """``critic.name: auto``: train every candidate (:func:`wdist.auto.candidates_for`) on the same
    splits, choose the one with the best select-split bound, and evaluate it alone on the test split.

    Only the best candidate trained so far is kept in memory. With an output folder and
    checkpointing, each finished candidate leaves its last checkpoint and :data:`CANDIDATE_FILE`
    in ``candidates/<label>/``; a resumed run reads those instead of training again (and restores
    the chosen one from its checkpoint when it was not trained in this process)."""
    sides = cfg.sides()
    candidates = candidates_for(tuple(sides.p.shape))
    keep_files = out_dir is not None and bool(cfg.train.checkpoint_every)
    records: list[CandidateRecord] = []
    kept: Optional[tuple[int, Run, pl.Trainer, list]] = None
    for i, candidate in enumerate(candidates):
        cand_cfg = candidate_config(cfg, candidate)
        folder = None if out_dir is None else out_dir / "candidates" / candidate.label
        saved = None if folder is None else folder / CANDIDATE_FILE
        if resuming and saved is not None and saved.is_file():
            records.append(CandidateRecord.from_dict(json.loads(saved.read_text(encoding="utf-8"))))
            continue
        if not quiet:
            _say_candidate(i, len(candidates), candidate, cand_cfg.train.steps)
        logged = {**resolved, "critic": {"name": candidate.name, "options": dict(candidate.options)}}
        run, trainer, loggers = _fit_candidate(
            cand_cfg, candidate.label, sides, folder, out_dir, callbacks, resuming, quiet, logged=logged
        )  # fmt: skip
        record = _candidate_record(candidate, cand_cfg, run, trainer)
        records.append(record)
        if keep_files:
            assert folder is not None and saved is not None
            trainer.save_checkpoint(folder / "checkpoints" / "last.ckpt")  # the selected state, at the last step
            if trainer.is_global_zero:
                atomic_write_text(saved, json.dumps(record.as_dict(), indent=2) + "\n")
        finish_wandb(loggers, summary={f"auto/{k}": v for k, v in record.as_dict().items()})
        if kept is None or record.select_value > records[kept[0]].select_value:
            kept = (i, run, trainer, loggers)
    try:
        chosen = choose(records)
    except ValueError as err:
        raise ConfigError(f"critic.name auto could not choose a candidate: {err}") from None
    if kept is not None and kept[0] == chosen:
        run, trainer = kept[1], kept[2]
    else:  # chosen among the candidates a previous process finished: its selected state from its checkpoint
        candidate = candidates[chosen]
        folder = None if out_dir is None else out_dir / "candidates" / candidate.label
        run, trainer, _ = _fit_candidate(
            candidate_config(cfg, candidate), candidate.label, sides, folder, out_dir, callbacks, True, quiet,
            steps_done=records[chosen].steps,
        )  # fmt: skip
    kept = None
    tested = evaluate_on_test(trainer, run)
    if trainer.global_rank != 0:
        return None  # type: ignore[return-value]
    result = _result(run, trainer, tested, resolved, auto=auto_record(records, chosen))
    if out_dir is not None:
        _write_outputs(result, out_dir, [])
    return result


@rank_zero_only
def _say_candidate(index: int, count: int, candidate: Candidate, steps: int) -> None:
    what = candidate_text(candidate.label, candidate.name, candidate.options)
    print(f"wdist: auto, candidate {index + 1} of {count}: {what}, {steps} steps")
