"""One estimate end to end: config -> sources -> critic -> trainer -> evaluation -> references -> result.

This is the data flow of DESIGN.md. :func:`estimate` only orchestrates, and each stage receives
what the one before computed: :func:`wdist.plan.plan_run` parses and checks the configuration once
and prepares the output folder; :func:`wdist.candidates.fit_critics` builds the named critic's run
(:func:`wdist.assembly.assemble`) and trains it with evaluations on the select split
(:mod:`wdist.fitting`), or does so for every candidate of ``critic.name: auto`` and hands back the
chosen one; :func:`wdist.fitting.evaluate_on_test` evaluates the selected state once on the test
split (:mod:`wdist.selection`); and :func:`wdist.outcome.report` builds the
:class:`~wdist.results.Result` from the test evaluation, with the references
(:func:`wdist.references.reference_job`: solved on a spare core while the critic trains when there
is one, else after training). ``build_run``, ``make_trainer`` and ``fit_and_evaluate`` are
importable from here for the code that assembles a run itself.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from pytorch_lightning.callbacks import Callback

from wdist.assembly import Run, build_run, training_loss
from wdist.auto import candidate_config
from wdist.candidates import CANDIDATE_FILE, fit_critics
from wdist.config import EstimateConfig
from wdist.critic_build import build_critic
from wdist.data import MIN_ITEMS, check_enough_items
from wdist.fitting import evaluate_on_test, fit_and_evaluate, fit_and_select
from wdist.outcome import report, versions
from wdist.plan import plan_run
from wdist.results import Result
from wdist.trainer import make_trainer, quiet_lightning
from wdist.warmstart import InitState

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
    "Run",
    "versions",
    "training_loss",
    "check_enough_items",
    "MIN_ITEMS",
]


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
    with quiet_lightning():
        return _estimate(config, overrides, out, resume, callbacks, init_state, quiet)


def _estimate(
    config: Union[str, os.PathLike, dict, EstimateConfig, None],
    overrides: Sequence[str],
    out: Union[str, os.PathLike, None],
    resume: Union[str, os.PathLike, None],
    callbacks: Sequence[Callback],
    init_state: Optional[InitState],
    quiet: bool,
) -> Result:
    """:func:`estimate`'s stages, in order: plan, fit (one critic or the auto candidates), test once, report."""
    plan = plan_run(config, overrides, out=out, resume=resume, quiet=quiet)
    session, auto = fit_critics(plan, callbacks, init_state)
    tested = evaluate_on_test(session.trainer, session.run)
    if session.trainer.global_rank != 0:
        return None  # type: ignore[return-value]
    return report(session, tested, plan.record, plan.out_dir, auto=auto)
