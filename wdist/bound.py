r"""One bound as a value: what every output writes for one evaluation of a critic.

For a critic :math:`f` with certified :math:`\mathrm{Lip}(f) \le L`, evaluated at a training step on
the samples of one split,

.. math::

    \hat\Delta = \hat{\mathbb E}_P f - \hat{\mathbb E}_Q f \;\text{(critic units)}, \qquad
    \text{lower bound} = \hat\Delta / L \;\text{(W1 units: L2 on the flattened samples)},

each with its interval at the run's confidence, and the lower bound's interval at 95% (``ci95``).
:class:`Bound` holds these numbers with the split and step they come from and what they are
(:attr:`Bound.kind`): a certified lower bound (held-out samples, certificate consistent with every
observed gradient norm), a bound that is NOT certified (an observed gradient norm exceeds L), or a
diagnosis on training items (never a bound: the critic was fitted to them).

:meth:`Bound.to_dict` is the one flat record (plain numbers and strings) of a bound: the points of
the bound curve (result.json, the plots), the select metrics of the loggers, ``W1Monitor.history``,
the points of ``track`` (track.json, track.csv) and the ``bound`` of result.json all write it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from wdist.evaluation import Evaluation

__all__ = ["Bound", "ONE_LIPSCHITZ_TOLERANCE", "KINDS"]

#: A certificate ``L <= 1 + ONE_LIPSCHITZ_TOLERANCE`` makes the critic 1-Lipschitz within 0.1%.
ONE_LIPSCHITZ_TOLERANCE = 1e-3

#: What a bound can be (:attr:`Bound.kind`).
KINDS = ("certified lower bound", "NOT certified: a gradient norm above L", "diagnosis on training items, not a bound")


@dataclass(frozen=True)
class Bound:
    """The bound of one evaluation: estimate, intervals, certificate, split, step and what it is.

    Attributes
    ----------
    step : int
        Optimiser steps taken when the critic was evaluated.
    split : str
        The samples: ``select``, ``test`` (``held-out`` in results written before the splits),
        ``train`` (a subset of the training items: a diagnosis, not a bound).
    estimate, stderr, estimate_lo, estimate_hi : float
        :math:`\\hat\\Delta`, its standard error and interval at ``confidence`` (critic units).
    lipschitz_certificate : float
        :math:`L \\ge \\mathrm{Lip}(f)`, certified from the weights evaluated.
    lower_bound, lower_bound_lo, lower_bound_hi : float
        :math:`\\hat\\Delta / L` and its interval at ``confidence`` (W1 units).
    ci95_lo, ci95_hi : float
        The interval of ``lower_bound`` at 95% (W1 units).
    confidence : float
        The run's confidence; ``method`` the interval's method.
    n_eval_p, n_eval_q : int
        Samples of P and of Q the statistics use.
    certified : bool
        Whether ``lower_bound`` is a certified lower bound on W1 (up to sampling error): held-out
        samples, and no observed gradient norm above ``lipschitz_certificate``.
    """

    step: int
    split: str
    estimate: float
    stderr: float
    estimate_lo: float
    estimate_hi: float
    lipschitz_certificate: float
    lower_bound: float
    lower_bound_lo: float
    lower_bound_hi: float
    ci95_lo: float
    ci95_hi: float
    confidence: float
    method: str
    n_eval_p: int
    n_eval_q: int
    certified: bool = True

    @classmethod
    def from_evaluation(cls, evaluation: "Evaluation", split: str, certified: bool = True) -> "Bound":
        """The held-out bound of ``evaluation`` on ``split`` (its numbers taken as they are)."""
        raw, bound, bound95 = evaluation.interval, evaluation.bound, evaluation.bound95
        return cls(
            step=int(evaluation.step), split=split, estimate=float(raw.estimate), stderr=float(raw.stderr),
            estimate_lo=float(raw.lo), estimate_hi=float(raw.hi), lipschitz_certificate=float(evaluation.certificate),
            lower_bound=float(bound.estimate), lower_bound_lo=float(bound.lo), lower_bound_hi=float(bound.hi),
            ci95_lo=float(bound95.lo), ci95_hi=float(bound95.hi), confidence=float(raw.confidence),
            method=str(raw.method), n_eval_p=int(raw.n_p), n_eval_q=int(raw.n_q), certified=bool(certified),
        )  # fmt: skip

    @classmethod
    def train_of(cls, evaluation: "Evaluation") -> Optional["Bound"]:
        """The same statistics on the train subset of ``evaluation`` (``split = "train"``, not a
        bound), or ``None`` for an evaluation without one."""
        raw, bound, bound95 = evaluation.train_interval, evaluation.train_bound, evaluation.train_bound95
        if raw is None or bound is None or bound95 is None:
            return None
        return cls(
            step=int(evaluation.step), split="train", estimate=float(raw.estimate), stderr=float(raw.stderr),
            estimate_lo=float(raw.lo), estimate_hi=float(raw.hi), lipschitz_certificate=float(evaluation.certificate),
            lower_bound=float(bound.estimate), lower_bound_lo=float(bound.lo), lower_bound_hi=float(bound.hi),
            ci95_lo=float(bound95.lo), ci95_hi=float(bound95.hi), confidence=float(raw.confidence),
            method=str(raw.method), n_eval_p=int(raw.n_p), n_eval_q=int(raw.n_q), certified=False,
        )  # fmt: skip

    @property
    def ci95(self) -> list[float]:
        """``[ci95_lo, ci95_hi]``: the 95% interval of the lower bound (W1 units)."""
        return [self.ci95_lo, self.ci95_hi]

    @property
    def one_lipschitz(self) -> bool:
        """Whether :math:`L \\le 1 + 10^{-3}`: the raw estimate is then within 0.1% of the bound."""
        return self.lipschitz_certificate <= 1.0 + ONE_LIPSCHITZ_TOLERANCE

    @property
    def kind(self) -> str:
        """What ``lower_bound`` is, one of :data:`KINDS`."""
        if self.split == "train":
            return KINDS[2]
        return KINDS[0] if self.certified else KINDS[1]

    def to_dict(self) -> dict[str, Any]:
        """The flat record of this bound: every field, ``one_lipschitz`` and ``kind``."""
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        record.update(one_lipschitz=self.one_lipschitz, kind=self.kind)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "Bound":
        """The inverse of :meth:`to_dict` (the derived ``one_lipschitz`` and ``kind`` are recomputed)."""
        return cls(**{f.name: record[f.name] for f in fields(cls) if f.name in record})
