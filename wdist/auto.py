r"""``critic.name: auto``: the candidate critics, and the choice among them on the select split.

``wdist estimate --critic.name auto`` trains every candidate of the list for the data's shape
(:data:`VECTOR_CANDIDATES` for samples ``[D]``, :data:`IMAGE_CANDIDATES` for ``(C, H, W)``), each
with its own options and its share of the step budget ``train.steps``, on the same training split
and with the same seed. Each candidate selects its own reported step on the select split
(:mod:`wdist.selection`); the chosen candidate is the one whose selected state has the highest
select-split lower bound

.. math::

    k^\star = \min \operatorname*{arg\,max}_k \; b_s^{(k)}, \qquad
    b_s^{(k)} = \max_s \hat\Delta^{(k)}_{\text{select}}(s) / L^{(k)}(s)

(the earliest candidate of the list among equals). Only then is the test split read, once, for the
chosen candidate alone: every choice, of the step and of the critic, depends on the train and
select items only, so the test items are independent of it and the test interval keeps its
confidence. A gradient-penalty critic is never a candidate: its value is not a bound.

The candidates' select values are comparable: the same select items, bounds in the same units
(L2 distance in the sources' domain), each divided by its own certificate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Optional, Sequence

if TYPE_CHECKING:
    from wdist.config import EstimateConfig

__all__ = [
    "AUTO",
    "Candidate",
    "CandidateRecord",
    "VECTOR_CANDIDATES",
    "IMAGE_CANDIDATES",
    "candidates_for",
    "candidate_config",
    "choose",
    "auto_record",
    "auto_text",
    "candidate_text",
]

#: The ``critic.name`` that asks for the choice among the candidates.
AUTO = "auto"


@dataclass(frozen=True)
class Candidate:
    """One critic of the list: a registry name, its options, and its share of ``train.steps``.

    ``label`` names the candidate in the output (``candidates/<label>/``) and in result.json.
    """

    label: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    share: float = 1.0

    def steps(self, total: int) -> int:
        r"""Steps of a budget of ``total``: :math:`\max(1, \lfloor \text{share} \cdot \text{total} + 1/2 \rfloor)`."""
        return max(1, int(math.floor(self.share * int(total) + 0.5)))


#: Candidates for flat vectors ``[D]``: the cone critic on the input with its 256 centres per cone
#: part and with 16 (fewer cones fit fewer individual training items: on finite data sets it
#: generalises where 256 fit the items), the same head on a Björck trunk, and the Björck MLP
#: (docs/critics.md and docs/how-tight.md). Shares sum to 1.
VECTOR_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("cones", "cones", {}, 0.3),
    Candidate("cones-16", "cones", {"centres": 16}, 0.3),
    Candidate("bjorck-cones", "bjorck-cones", {}, 0.2),
    Candidate("bjorck-mlp", "bjorck-mlp", {}, 0.2),
)

#: Candidates for images ``(C, H, W)``: the cone critic on the pixels (the digits default), the
#: cone head on the BCOP stages, and the BCOP DCGAN critic (its linear part alone). Shares sum to 1.
IMAGE_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("cones", "cones", {}, 0.5),
    Candidate("bcop-cones", "bcop-cones", {}, 0.25),
    Candidate("bcop-dcgan", "bcop-dcgan", {}, 0.25),
)


def candidates_for(shape: Sequence[int]) -> tuple[Candidate, ...]:
    """The candidate list for samples of ``shape``: :data:`IMAGE_CANDIDATES` for ``(C, H, W)``,
    else :data:`VECTOR_CANDIDATES`."""
    return IMAGE_CANDIDATES if len(tuple(shape)) == 3 else VECTOR_CANDIDATES


def candidate_config(cfg: EstimateConfig, candidate: Candidate) -> EstimateConfig:
    """The configuration one candidate of ``cfg`` (``critic.name: auto``) trains with: its critic and
    options, its share of ``train.steps`` (evaluated at least at its last step), everything else as given."""
    steps = candidate.steps(cfg.train.steps)
    train = replace(cfg.train, steps=steps, eval_every=min(cfg.train.eval_every, steps))
    critic = replace(cfg.critic, name=candidate.name, options=dict(candidate.options))
    return replace(cfg, critic=critic, train=train, trainer=replace(cfg.trainer))


@dataclass
class CandidateRecord:
    """What one candidate did: its critic, options and budget, the steps it trained (fewer than its
    budget when it stopped early), and its selected state's select-split bound and step.

    ``selection`` is the candidate's :meth:`wdist.selection.Selection.record`; ``seconds`` its
    training time (summed over the segments of a resumed run).
    """

    label: str
    critic: str
    options: dict[str, Any]
    share: float
    budget: int
    steps: int
    select_value: float
    select_step: int
    seconds: float
    selection: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "critic": self.critic,
            "options": dict(self.options),
            "share": self.share,
            "budget": self.budget,
            "steps": self.steps,
            "select_value": self.select_value,
            "select_step": self.select_step,
            "seconds": self.seconds,
            "selection": dict(self.selection),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CandidateRecord":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def choose(records: Sequence[CandidateRecord]) -> int:
    """Index of the candidate with the highest select-split bound (the first of equals).

    Raises ``ValueError`` on an empty list or a value that is not a finite number."""
    if not records:
        raise ValueError("no candidate to choose from")
    bad = [r.label for r in records if not math.isfinite(float(r.select_value))]
    if bad:
        raise ValueError(f"candidate(s) {bad} have no finite select value")
    best = 0
    for i, rec in enumerate(records):
        if rec.select_value > records[best].select_value:
            best = i
    return best


def auto_record(records: Sequence[CandidateRecord], chosen: int) -> dict[str, Any]:
    """What result.json says about the choice (key ``auto``): the split it was made on, the number
    of candidates compared, the chosen one, and every candidate's record."""
    rec = records[chosen]
    return {
        "split": "select",
        "rule": "highest select-split lower bound of each candidate's selected state; the test split read once, "
        "for the chosen candidate only",
        "compared": len(records),
        "chosen": {"label": rec.label, "critic": rec.critic, "options": dict(rec.options)},
        "steps_spent": int(sum(r.steps for r in records)),
        "candidates": [r.as_dict() for r in records],
    }


def candidate_text(label: str, critic: str, options: dict[str, Any]) -> str:
    """``label`` with the critic and options it stands for, when the label alone does not say them."""
    what = ", ".join([critic] * (label != critic) + [f"{k} {v}" for k, v in options.items()])
    return f"{label} ({what})" if what else label


def auto_text(auto: Optional[dict[str, Any]]) -> str:
    """One sentence on the choice of critic (``Result.auto``); empty when no choice was made."""
    if not auto:
        return ""
    chosen = auto["chosen"]
    each = "; ".join(
        f"{c['label']} {c['select_value']:.4f} (step {c['select_step']}, {c['steps']} of {c['budget']} steps)"
        for c in auto["candidates"]
    )
    what = candidate_text(chosen["label"], chosen["critic"], chosen["options"])
    return (
        f"{what}, the best of {auto['compared']} candidates on the select split ({each}); the test split was read "
        "once, for it alone"
    )
