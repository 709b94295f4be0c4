"""The critics an estimate trains: the one it names, or every candidate of ``critic.name: auto``.

A named critic is the one-candidate case: it trains in the run's folder, continues the run's own
checkpoint, and is reported as it is. For ``critic.name: auto`` each candidate of
:func:`wdist.auto.candidates_for` the input shape trains on the same splits in
``candidates/<label>/``, with evaluations on the select split only, and the one with the best
select-split bound (:func:`wdist.auto.choose`) is handed back. Either way each critic is built by
:func:`wdist.assembly.assemble` and trained by :func:`wdist.fitting.fit_and_select`, and
:func:`wdist.estimate` then evaluates the one handed back, alone, on the test split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence

from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_only

from wdist.assembly import Session, assemble
from wdist.auto import AUTO, Candidate, CandidateRecord, auto_record, candidate_text, candidates_for, choose
from wdist.config import ConfigError, CriticConfig, EstimateConfig
from wdist.files import atomic_write_text
from wdist.fitting import fit_and_select
from wdist.loggers import finish_wandb
from wdist.plan import RunPlan
from wdist.warmstart import InitState

__all__ = ["CriticPlan", "critic_plans", "fit_critics", "candidate_config", "CANDIDATE_FILE"]

#: The file a finished candidate of an ``auto`` run leaves in its folder ``candidates/<label>/``:
#: its :class:`~wdist.auto.CandidateRecord`, written after its last checkpoint (a resumed run
#: does not train it again).
CANDIDATE_FILE = "candidate.json"


@dataclass(frozen=True)
class CriticPlan:
    """Where and how one critic of an estimate trains.

    ``candidate`` is ``None`` for the named critic (trained in the run's own folder, reported
    without a choice). ``checkpoint``: the ``last.ckpt`` it continues; ``finished``: the record of
    an ``auto`` candidate a previous process of a resumed run finished (it is not trained again).
    """

    cfg: EstimateConfig
    folder: Optional[Path]
    logged: dict[str, Any]
    logger_name: Optional[str]
    checkpoint: Optional[str]
    candidate: Optional[Candidate] = None
    finished: Optional[CandidateRecord] = None


def candidate_config(cfg: EstimateConfig, candidate: Candidate) -> EstimateConfig:
    """The configuration one candidate of ``cfg`` (``critic.name: auto``) trains with: its critic and
    options, its share of ``train.steps`` (evaluated at least at its last step), everything else as given."""
    steps = candidate.steps(cfg.train.steps)
    train = replace(cfg.train, steps=steps, eval_every=min(cfg.train.eval_every, steps))
    return replace(
        cfg, critic=CriticConfig(candidate.name, dict(candidate.options)), train=train, trainer=replace(cfg.trainer)
    )


def critic_plans(plan: RunPlan) -> list[CriticPlan]:
    """The critics ``plan`` trains: its named critic, or each candidate of ``critic.name: auto``
    with its configuration (:func:`candidate_config`), folder, W&B run name and, when resumed, its
    checkpoint or finished record."""
    cfg, out_dir = plan.cfg, plan.out_dir
    if cfg.critic.name != AUTO:
        return [CriticPlan(cfg, out_dir, plan.record, None, plan.checkpoint)]
    plans = []
    for candidate in candidates_for(tuple(plan.sides.p.shape)):
        folder = None if out_dir is None else out_dir / "candidates" / candidate.label
        last = None if folder is None else folder / "checkpoints" / "last.ckpt"
        saved = None if folder is None else folder / CANDIDATE_FILE
        finished = None
        if plan.resuming and saved is not None and saved.is_file():
            finished = CandidateRecord.from_dict(json.loads(saved.read_text(encoding="utf-8")))
        plans.append(
            CriticPlan(
                candidate_config(cfg, candidate), folder,
                {**plan.record, "critic": {"name": candidate.name, "options": dict(candidate.options)}},
                f"{cfg.logger.name}-{candidate.label}" if cfg.logger.name else candidate.label,
                str(last) if plan.resuming and last is not None and last.is_file() else None,
                candidate, finished,
            )  # fmt: skip
        )
    return plans


def _fit(
    plan: RunPlan,
    critic: CriticPlan,
    callbacks: Sequence[Callback],
    init_state: Optional[InitState],
    max_steps: Optional[int] = None,
) -> Session:
    """Assemble one critic of ``plan`` and train it with evaluations on the select split (a
    ``max_steps`` at its finished step count: restored from its checkpoint, nothing trained)."""
    session = assemble(
        critic.cfg, plan.sides, critic.folder, logged=critic.logged, callbacks=callbacks,
        resuming=critic.checkpoint is not None, quiet=plan.quiet or max_steps is not None, init_state=init_state,
        logger_name=critic.logger_name, stop_folder=plan.out_dir, max_steps=max_steps,
        references="beside" if critic.candidate is None else "after",
    )  # fmt: skip
    fit_and_select(session.trainer, session.run, critic.checkpoint)
    return session


def fit_critics(
    plan: RunPlan, callbacks: Sequence[Callback] = (), init_state: Optional[InitState] = None
) -> tuple[Session, Optional[dict[str, Any]]]:
    """Train the critics of ``plan`` (:func:`critic_plans`) with evaluations on the select split and
    hand back the one to report: the named critic, or the ``auto`` candidate with the best
    select-split bound. Returns its session (its selected state in the critic, ready for the one
    evaluation on the test split) and, for ``auto``, the record of the choice
    (:func:`wdist.auto.auto_record`; ``None`` for a named critic).

    Only the best candidate trained so far is kept in memory. With an output folder and
    checkpointing, each finished candidate leaves its last checkpoint and :data:`CANDIDATE_FILE`
    in ``candidates/<label>/``; a resumed run reads those instead of training again (and restores
    the chosen one from its checkpoint when it was not trained in this process)."""
    plans = critic_plans(plan)
    if plans[0].candidate is None:
        return _fit(plan, plans[0], callbacks, init_state), None
    if init_state is not None:
        raise ConfigError("critic.name auto trains several candidate critics; a warm start needs one named critic.")
    keep_files = plan.out_dir is not None and bool(plan.cfg.train.checkpoint_every)
    records: list[CandidateRecord] = []
    kept: Optional[tuple[int, Session]] = None
    for i, critic in enumerate(plans):
        candidate = critic.candidate
        assert candidate is not None
        if critic.finished is not None:
            records.append(critic.finished)
            continue
        if not plan.quiet and rank_zero_only.rank == 0:
            what = candidate_text(candidate.label, candidate.name, candidate.options)
            print(f"wdist: auto, candidate {i + 1} of {len(plans)}: {what}, {critic.cfg.train.steps} steps")
        session = _fit(plan, critic, callbacks, None)
        selection = session.run.system.selection
        assert selection.step is not None and selection.value is not None
        record = CandidateRecord(
            label=candidate.label, critic=candidate.name, options=dict(candidate.options), share=candidate.share,
            budget=critic.cfg.train.steps, steps=int(session.trainer.global_step), select_value=float(selection.value),
            select_step=int(selection.step), seconds=float(session.clock.total_seconds), selection=selection.record(),
        )  # fmt: skip
        records.append(record)
        if keep_files:
            assert critic.folder is not None
            session.trainer.save_checkpoint(critic.folder / "checkpoints" / "last.ckpt")  # the selected state
            if session.trainer.is_global_zero:
                text = json.dumps(record.as_dict(), indent=2) + "\n"
                atomic_write_text(critic.folder / CANDIDATE_FILE, text)
        finish_wandb(session.loggers, summary={f"auto/{k}": v for k, v in record.as_dict().items()})
        if kept is None or record.select_value > records[kept[0]].select_value:
            kept = (i, replace(session, loggers=[]))  # its W&B run closed with the candidate's summary
    try:
        chosen = choose(records)
    except ValueError as err:
        raise ConfigError(f"critic.name auto could not choose a candidate: {err}") from None
    if kept is not None and kept[0] == chosen:
        return kept[1], auto_record(records, chosen)
    # chosen among the candidates a previous process finished: its selected state from its checkpoint
    restore = replace(plans[chosen], logged={})
    session = _fit(plan, restore, callbacks, None, max_steps=records[chosen].steps)
    return replace(session, loggers=[]), auto_record(records, chosen)
