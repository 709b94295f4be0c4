"""The pieces of one training run, built once from its settled configuration.

:func:`assemble` builds, in this order, the data module (:mod:`wdist.data`: the sources and the
eval settings), the critic (:mod:`wdist.critic_build`: checked certifiable; built with one torch
thread), the torch threads of training (:mod:`wdist.threads`: counted on that critic), the warm
start, the training system (:mod:`wdist.system`: the train and eval settings), the loggers
(:mod:`wdist.loggers`), the callbacks (:mod:`wdist.callbacks`) and the Lightning Trainer
(:mod:`wdist.trainer`: the ``trainer.*`` settings), and starts the exact-OT references
(:func:`wdist.references.reference_job`: solved on a spare core while the critic trains when there
is one). Each piece receives the part of the configuration it needs; nothing is built twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_only

import critics
from wdist.callbacks import TrainClock, run_callbacks
from wdist.config import EstimateConfig, Sides, TrainConfig
from wdist.critic_build import build_critic
from wdist.data import PairDataModule
from wdist.loggers import make_loggers
from wdist.references import References, reference_job
from wdist.sources import LatentSource
from wdist.system import CriticSystem
from wdist.threads import ThreadChoice, apply_threads, run_threads, torch_threads
from wdist.trainer import make_trainer
from wdist.warmstart import InitState, load_init_state

__all__ = ["Run", "Session", "assemble", "build_run", "training_loss"]


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
    """A run ready to train: its pieces, its Trainer, loggers and clock, and the function that
    returns its exact-OT references after training."""

    run: Run
    trainer: pl.Trainer
    loggers: list
    clock: TrainClock
    references: Callable[[], References]


def training_loss(cfg: EstimateConfig) -> str:
    """The objective the critic is trained with: ``train.loss`` when set, else the one its family is
    made for (``critics.default_loss``: ``wgan-gp`` for ``gp-*`` critics, ``kr`` otherwise)."""
    return cfg.train.loss or critics.default_loss(cfg.critic.name)


def build_run(cfg: EstimateConfig, sides: Sides, init_state: Optional[InitState] = None) -> Run:
    """The sources, critic, data module and training system of a configuration (no Trainer).

    The system trains with :func:`training_loss` (the critic family's own objective unless
    ``train.loss`` is set). The critic is built with one torch thread (its initial weights are the
    same on any machine), its work per step then sets this process's thread count for training
    (:mod:`wdist.threads`). ``sides``: the configuration's built sources
    (``cfg.sides()``: built once, at their first use). ``init_state``: the
    weights the critic starts from (:mod:`wdist.warmstart`), loaded right after it is built. A finite
    side too small to split is refused (:func:`wdist.data.check_enough_items`).
    """
    train: TrainConfig = replace(cfg.train, loss=training_loss(cfg))
    p, q = sides.p, sides.q
    shape = tuple(p.shape)
    dm = PairDataModule.of(sides, cfg.eval, batch_size=cfg.train.batch_size, seed=cfg.seed)
    with torch_threads(1):  # its initial weights do not depend on the machine's cores
        critic = build_critic(cfg, shape)
    threads = run_threads(cfg, shape, critic)
    apply_threads(threads)
    if init_state is not None:
        load_init_state(critic, init_state)
    system = CriticSystem(
        critic, shape, train, cfg.eval, domain=p.domain, seed=cfg.seed,
        p_generator=p.module if isinstance(p, LatentSource) else None,
        q_generator=q.module if isinstance(q, LatentSource) else None,
    )  # fmt: skip
    return Run(cfg, sides, dm, system, threads)


def assemble(
    cfg: EstimateConfig,
    sides: Sides,
    folder: Optional[Path],
    *,
    logged: dict[str, Any],
    callbacks: Sequence[Callback] = (),
    resuming: bool = False,
    quiet: bool = False,
    init_state: Optional[InitState] = None,
    logger_name: Optional[str] = None,
    stop_folder: Optional[Path] = None,
    max_steps: Optional[int] = None,
    references: Literal["beside", "after"] = "beside",
) -> Session:
    """Build one run of ``cfg`` on its built ``sides`` writing into ``folder`` (``None``: nothing
    written), ready to train.

    Parameters
    ----------
    logged : the configuration its loggers record (as ``config.yaml`` holds it).
    callbacks : extra Lightning callbacks.
    resuming : the run continues a checkpoint (its ``metrics.csv`` and W&B run are continued).
    quiet : no line saying the thread choice.
    init_state : a warm start (:mod:`wdist.warmstart`).
    logger_name : the W&B run name (``logger.name`` otherwise).
    stop_folder : the folder an interruption names for ``--resume`` (``folder`` otherwise).
    max_steps : the Trainer's step limit when not ``train.steps`` (a finished candidate restored
        from its checkpoint trains nothing).
    references : the exact-OT references (:func:`wdist.references.reference_job`) are drawn now and
        solved on a spare core while the critic trains when there is one (``"beside"``), or drawn and
        solved when the session's ``references`` is called, after training (``"after"``).
    """
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    run = build_run(cfg, sides, init_state)
    loggers: list = []
    if folder is not None:
        lg = cfg.logger
        loggers = make_loggers(
            folder, lg.kind, lg.project, lg.group, logger_name or lg.name, config=logged, resume=resuming
        )  # fmt: skip
    if not quiet and rank_zero_only.rank == 0:
        count = run.threads.count
        print(f"wdist: {count} torch thread{'s' if count != 1 else ''} per process; {run.threads.reason}")
    # the settings each segment of a run's history records (those a resume may change)
    train = cfg.train
    clock = TrainClock(
        {"train.steps": train.steps, "train.checkpoint_every": train.checkpoint_every, "logger.kind": cfg.logger.kind}
    )
    callbacks = run_callbacks(
        callbacks, clock, folder if stop_folder is None else stop_folder, progress=cfg.trainer.enable_progress_bar,
        checkpoints=None if folder is None else folder / "checkpoints", checkpoint_every=train.checkpoint_every,
    )  # fmt: skip
    limit = cfg if max_steps is None else replace(cfg, train=replace(train, steps=int(max_steps)))
    trainer = make_trainer(limit, loggers, callbacks, folder)
    beside = references == "beside" and run.threads.spare_cores >= 1 and trainer.world_size == 1
    solved = reference_job(
        sides.p, sides.q, cfg.eval.ot_samples, cfg.eval.ot_floor, cfg.seed, train.batch_size,
        trainer.strategy.root_device, beside=beside,
    )  # fmt: skip
    return Session(run, trainer, loggers, clock, solved)
