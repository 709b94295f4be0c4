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
from wdist.auto import (
    AUTO,
    Candidate,
    CandidateRecord,
    auto_record,
    candidate_config,
    candidate_text,
    candidates_for,
    choose,
)  # fmt: skip
from wdist.config import ConfigError, EstimateConfig
from wdist.files import atomic_write_text
from wdist.fitting import fit_and_select
from wdist.loggers import finish_wandb
from wdist.plan import RunPlan
from wdist.warmstart import InitState

__all__ = ["CriticPlan", "critic_plans", "fit_critics", "CANDIDATE_FILE"]

#: The file a finished candidate of an ``auto`` run leaves in its folder ``candidates/<label>/``:
#: its :class:`~wdist.auto.CandidateRecord`, written after its last checkpoint (a resumed run
#: does not train it again).
CANDIDATE_FILE = "candidate.json"


@dataclass(frozen=True)
class CriticPlan:
    """Where and how one critic of an estimate trains.

    ``candidate`` is ``None`` for the named critic (trained in the run's own folder, reported
    without a choice). ``checkpoint``: the ``last.ckpt`` it continues; ``finished``: the record of
    an ``auto`` candidate a previous process of a resumed run finished (it is not trained again);
    ``title``: the candidate's label with the critic and options it stands for.
    """

    cfg: EstimateConfig
    folder: Optional[Path]
    logged: dict[str, Any]
    logger_name: Optional[str]
    checkpoint: Optional[str]
    candidate: Optional[Candidate] = None
    finished: Optional[CandidateRecord] = None
    title: str = ""


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
                candidate, finished, candidate_text(candidate.label, candidate.name, candidate.options),
            )  # fmt: skip
        )
    return plans


def fit_critics(
    plan: RunPlan, callbacks: Sequence[Callback] = (), init_state: Optional[InitState] = None
) -> tuple[Session, Optional[dict[str, Any]]]:
    """Train the critics of ``plan`` (:func:`critic_plans`) with evaluations on the select split and
    hand back the one to report: the named critic, or the ``auto`` candidate with the best
    select-split bound (:func:`wdist.auto.choose`: the earliest of equals). Returns its session (its
    selected state in the critic, ready for the one evaluation on the test split) and, for
    ``auto``, the record of the choice (:func:`wdist.auto.auto_record`; ``None`` for a named critic).

    Only the best candidate so far is kept in memory. With an output folder and checkpointing, each
    finished candidate leaves its last checkpoint (its selected state) and :data:`CANDIDATE_FILE` in
    ``candidates/<label>/``; a resumed run trains only the others, and first restores the best of
    the finished ones from its checkpoint (nothing trained), so that the chosen candidate is in
    memory at the end whichever process trained it."""
    plans = critic_plans(plan)
    auto = plans[0].candidate is not None
    if auto and init_state is not None:
        raise ConfigError("critic.name auto trains several candidate critics; a warm start needs one named critic.")
    keep_files = plan.out_dir is not None and bool(plan.cfg.train.checkpoint_every)
    records = {i: critic.finished for i, critic in enumerate(plans) if critic.finished is not None}

    def rank(i: int) -> tuple[float, int]:  # the order of wdist.auto.choose: higher value, then earlier
        return records[i].select_value, -i

    order = [max(records, key=rank)] if records else []
    order += [i for i in range(len(plans)) if i not in records]
    kept: Optional[tuple[int, Session]] = None
    for i in order:
        critic, finished = plans[i], records.get(i)
        if auto and finished is None and not plan.quiet and rank_zero_only.rank == 0:
            print(f"wdist: auto, candidate {i + 1} of {len(plans)}: {critic.title}, {critic.cfg.train.steps} steps")
        session = assemble(
            critic.cfg, plan.sides, critic.folder, logged=critic.logged if finished is None else {},
            callbacks=callbacks, resuming=critic.checkpoint is not None, quiet=plan.quiet or finished is not None,
            init_state=init_state, logger_name=critic.logger_name, stop_folder=plan.out_dir,
            max_steps=None if finished is None else finished.steps, references="after" if auto else "beside",
        )  # fmt: skip
        fit_and_select(session.trainer, session.run, critic.checkpoint)
        if not auto:
            return session, None
        if finished is None:
            records[i] = _candidate_record(critic, session)
            if keep_files:
                assert critic.folder is not None
                session.trainer.save_checkpoint(critic.folder / "checkpoints" / "last.ckpt")  # the selected state
                if session.trainer.is_global_zero:
                    atomic_write_text(critic.folder / CANDIDATE_FILE, json.dumps(records[i].as_dict(), indent=2) + "\n")
            finish_wandb(session.loggers, summary={f"auto/{k}": v for k, v in records[i].as_dict().items()})
        if kept is None or rank(i) > rank(kept[0]):
            kept = (i, replace(session, loggers=[]))  # its W&B run closed with the candidate's summary
    in_order = [records[i] for i in range(len(plans))]
    try:
        chosen = choose(in_order)
    except ValueError as err:
        raise ConfigError(f"critic.name auto could not choose a candidate: {err}") from None
    assert kept is not None and kept[0] == chosen
    return kept[1], auto_record(in_order, chosen)


def _candidate_record(critic: CriticPlan, session: Session) -> CandidateRecord:
    """What a candidate trained in this process did (:class:`~wdist.auto.CandidateRecord`)."""
    candidate, selection = critic.candidate, session.run.system.selection
    assert candidate is not None and selection.step is not None and selection.value is not None
    return CandidateRecord(
        label=candidate.label, critic=candidate.name, options=dict(candidate.options), share=candidate.share,
        budget=critic.cfg.train.steps, steps=int(session.trainer.global_step), select_value=float(selection.value),
        select_step=int(selection.step), seconds=float(session.clock.total_seconds), selection=selection.record(),
    )  # fmt: skip
