"""``critic.name: auto``: train every candidate critic on the same splits and choose the best one.

Each candidate (:func:`wdist.auto.candidates_for` the input shape) is built
(:func:`wdist.assembly.assemble`) and trained with evaluations on the select split
(:func:`wdist.fitting.fit_and_select`); the one with the best select-split bound
(:func:`wdist.auto.choose`) is handed back to :func:`wdist.estimate`, which evaluates it alone on
the test split and reports it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_only

from wdist.assembly import Session, assemble
from wdist.auto import Candidate, CandidateRecord, auto_record, candidate_text, candidates_for, choose
from wdist.config import ConfigError, CriticConfig, EstimateConfig
from wdist.files import atomic_write_text
from wdist.fitting import fit_and_select
from wdist.loggers import finish_wandb
from wdist.plan import RunPlan

__all__ = ["choose_candidate", "candidate_config", "CANDIDATE_FILE"]

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


def choose_candidate(plan: RunPlan, callbacks: Sequence[Callback] = ()) -> tuple[Session, dict[str, Any]]:
    """Train every candidate of ``plan`` on the same splits and choose the one with the best
    select-split bound; returns its session (its selected state in the critic, ready for the one
    evaluation on the test split) and the record of the choice (:func:`wdist.auto.auto_record`).

    Only the best candidate trained so far is kept in memory. With an output folder and
    checkpointing, each finished candidate leaves its last checkpoint and :data:`CANDIDATE_FILE`
    in ``candidates/<label>/``; a resumed run reads those instead of training again (and restores
    the chosen one from its checkpoint when it was not trained in this process)."""
    cfg, sides, out_dir = plan.cfg, plan.sides, plan.out_dir
    candidates = candidates_for(tuple(sides.p.shape))
    configs = [candidate_config(cfg, candidate) for candidate in candidates]
    folders: list[Optional[Path]] = [
        None if out_dir is None else out_dir / "candidates" / candidate.label for candidate in candidates
    ]
    logger_names = [f"{cfg.logger.name}-{c.label}" if cfg.logger.name else c.label for c in candidates]
    lasts = [None if folder is None else folder / "checkpoints" / "last.ckpt" for folder in folders]
    keep_files = out_dir is not None and bool(cfg.train.checkpoint_every)
    records: list[CandidateRecord] = []
    kept: Optional[tuple[int, Session]] = None
    for i, (candidate, cand_cfg, folder, last) in enumerate(zip(candidates, configs, folders, lasts)):
        saved = None if folder is None else folder / CANDIDATE_FILE
        if plan.resuming and saved is not None and saved.is_file():
            records.append(CandidateRecord.from_dict(json.loads(saved.read_text(encoding="utf-8"))))
            continue
        if not plan.quiet and rank_zero_only.rank == 0:
            what = candidate_text(candidate.label, candidate.name, candidate.options)
            print(f"wdist: auto, candidate {i + 1} of {len(candidates)}: {what}, {cand_cfg.train.steps} steps")
        ckpt_path = str(last) if plan.resuming and last is not None and last.is_file() else None
        logged = {**plan.record, "critic": {"name": candidate.name, "options": dict(candidate.options)}}
        session = assemble(
            cand_cfg, sides, folder, logged=logged,
            callbacks=callbacks, resuming=ckpt_path is not None, quiet=plan.quiet,
            logger_name=logger_names[i],
            stop_folder=out_dir, solve_beside=False,
        )  # fmt: skip
        fit_and_select(session.trainer, session.run, ckpt_path)
        selection = session.run.system.selection
        assert selection.step is not None and selection.value is not None
        record = CandidateRecord(
            label=candidate.label, critic=candidate.name, options=dict(candidate.options), share=candidate.share,
            budget=cand_cfg.train.steps, steps=int(session.trainer.global_step), select_value=float(selection.value),
            select_step=int(selection.step), seconds=float(session.clock.total_seconds), selection=selection.record(),
        )  # fmt: skip
        records.append(record)
        if keep_files:
            assert last is not None and saved is not None
            session.trainer.save_checkpoint(last)  # the selected state, at the last step
            if session.trainer.is_global_zero:
                atomic_write_text(saved, json.dumps(record.as_dict(), indent=2) + "\n")
        finish_wandb(session.loggers, summary={f"auto/{k}": v for k, v in record.as_dict().items()})
        if kept is None or record.select_value > records[kept[0]].select_value:
            kept = (i, replace(session, loggers=[]))  # its W&B run closed with the candidate's summary
    try:
        chosen = choose(records)
    except ValueError as err:
        raise ConfigError(f"critic.name auto could not choose a candidate: {err}") from None
    if kept is not None and kept[0] == chosen:
        session = kept[1]
    else:  # chosen among the candidates a previous process finished: its selected state from its checkpoint
        last = lasts[chosen]
        restoring = last is not None and last.is_file()
        session = assemble(
            configs[chosen], sides, folders[chosen], logged={}, callbacks=callbacks, resuming=restoring, quiet=True,
            logger_name=logger_names[chosen], stop_folder=out_dir, max_steps=records[chosen].steps,
            solve_beside=False,
        )  # fmt: skip
        fit_and_select(session.trainer, session.run, str(last) if restoring else None)
        session = replace(session, loggers=[])
    return session, auto_record(records, chosen)
