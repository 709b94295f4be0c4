"""The pieces of one training run, built once from its settled configuration.

:func:`assemble` builds, in this order, the loggers (:mod:`wdist.loggers`), the torch threads
(:mod:`wdist.threads`), the data module (:mod:`wdist.data`: the sources and the eval settings),
the critic (``critics.build``, checked certifiable, a warm start loaded), the training system
(:mod:`wdist.system`: the train and eval settings), the callbacks (:mod:`wdist.callbacks`) and the
Lightning Trainer (the ``trainer.*`` settings), and draws the exact-OT references' samples when a
spare core can solve them while the critic trains. Each piece receives the part of the
configuration it needs; nothing is built twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_only
from torch import nn

import critics
from wdist.auto import AUTO, candidates_for
from wdist.callbacks import AtomicCheckpointIO, GracefulStop, StepCheckpoint, TrainClock, progress_callback
from wdist.config import ConfigError, EstimateConfig, Sides, TrainConfig
from wdist.data import PairDataModule
from wdist.loggers import make_loggers
from wdist.references import References, draw_references, solve_references_in_background
from wdist.sources import FiniteSource, LatentSource
from wdist.system import CriticSystem
from wdist.threads import ThreadChoice, apply_threads, run_threads
from wdist.warmstart import InitState, load_init_state

__all__ = [
    "Run",
    "Session",
    "assemble",
    "build_run",
    "build_critic",
    "make_trainer",
    "run_callbacks",
    "references_beside_training",
    "training_loss",
    "check_enough_items",
    "MIN_ITEMS",
]


@dataclass
class Run:
    """The pieces of one estimate before training: sides, data module and training system."""

    cfg: EstimateConfig
    sides: Sides
    datamodule: PairDataModule
    system: CriticSystem
    threads: ThreadChoice


@dataclass
class Session:
    """A run ready to train: its pieces, its Trainer, loggers and clock, and (when a spare core
    solves them while it trains) the function that returns its references."""

    run: Run
    trainer: pl.Trainer
    loggers: list
    clock: TrainClock
    solved_beside: Optional[Callable[[], References]] = None


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
    train: TrainConfig = replace(cfg.train, loss=training_loss(cfg))
    threads = run_threads(cfg, shape)
    apply_threads(threads)
    dm = PairDataModule.of(sides, cfg.eval, batch_size=cfg.train.batch_size, seed=cfg.seed)
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


def run_callbacks(
    cfg: EstimateConfig,
    clock: TrainClock,
    out_dir: Optional[Path],
    extra: Sequence[Callback],
    stop_folder: Optional[Path],
) -> list[Callback]:
    """The callbacks of a run: ``extra``, the train ``clock``, the graceful stop on a signal (naming
    ``stop_folder`` for ``--resume``), the progress display when asked, and the step checkpoints
    when ``out_dir`` and ``train.checkpoint_every`` are set."""
    cbs: list[Callback] = [*extra, clock, GracefulStop(stop_folder)]
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


def assemble(
    cfg: EstimateConfig,
    folder: Optional[Path],
    *,
    logged: dict[str, Any],
    callbacks: Sequence[Callback] = (),
    resuming: bool = False,
    quiet: bool = False,
    sides: Optional[Sides] = None,
    init_state: Optional[InitState] = None,
    logger_name: Optional[str] = None,
    stop_folder: Optional[Path] = None,
    max_steps: Optional[int] = None,
    solve_beside: bool = True,
) -> Session:
    """Build one run of ``cfg`` writing into ``folder`` (``None``: nothing written), ready to train.

    Parameters
    ----------
    logged : the configuration its loggers record (as ``config.yaml`` holds it).
    callbacks : extra Lightning callbacks.
    resuming : the run continues a checkpoint (its ``metrics.csv`` and W&B run are continued).
    quiet : no line saying the thread choice.
    sides : the configuration's sources when already built (``cfg.sides()`` otherwise).
    init_state : a warm start (:mod:`wdist.warmstart`).
    logger_name : the W&B run name (``logger.name`` otherwise).
    stop_folder : the folder an interruption names for ``--resume`` (``folder`` otherwise).
    max_steps : the Trainer's step limit when not ``train.steps`` (a finished candidate restored
        from its checkpoint trains nothing).
    solve_beside : solve the references on a spare core while the critic trains, when there is one.
    """
    loggers: list = []
    if folder is not None:
        lg = cfg.logger
        loggers = make_loggers(
            folder, lg.kind, lg.project, lg.group, logger_name or lg.name, config=logged, resume=resuming
        )  # fmt: skip
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    run = build_run(cfg, sides, init_state)
    if not quiet and rank_zero_only.rank == 0:
        count = run.threads.count
        print(f"wdist: {count} torch thread{'s' if count != 1 else ''} per process; {run.threads.reason}")
    # the settings each segment of a run's history records (those a resume may change)
    train = cfg.train
    clock = TrainClock(
        {"train.steps": train.steps, "train.checkpoint_every": train.checkpoint_every, "logger.kind": cfg.logger.kind}
    )
    limit = cfg if max_steps is None else replace(cfg, train=replace(cfg.train, steps=int(max_steps)))
    trainer = make_trainer(
        limit, loggers, run_callbacks(cfg, clock, folder, callbacks, folder if stop_folder is None else stop_folder),
        folder,
    )  # fmt: skip
    solved_beside = references_beside_training(run, trainer) if solve_beside else None
    return Session(run, trainer, loggers, clock, solved_beside)
