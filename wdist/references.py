r"""Exact and empirical-OT references of an estimate, and the samples they are computed on.

* ``exact_w1``: a closed form where the problem has one (the toys), from the configuration;
* ``empirical_ot_w1``: POT's exact OT between :math:`n` samples of P and :math:`n` of Q,
  :math:`W_1(P_n, Q_n)`, biased upwards (:math:`\mathbb E\, W_1(P_n, Q_n) \ge W_1(P, Q)`);
* ``empirical_ot_floor``: the same between two disjoint samples of P, :math:`W_1(P_n, P'_n)`, whose
  true value is 0: the sampling bias at this :math:`n`. In high dimension the bias dominates, so the
  empirical OT is reported beside its floor and never as an estimate of W1 for images.

Distances are Euclidean on the flattened samples, in the sources' domain. The samples are drawn
by :meth:`wdist.sources.base.Source.draw` (generator sides decoded in chunks of the training batch size).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from wdist.background import in_background
from wdist.config import EstimateConfig, check_ot_fits
from wdist.ot import exact_w1
from wdist.report import domain_text, range_text
from wdist.seeds import REFERENCES_OFFSET, generator
from wdist.sources import Source
from wdist.sources.ranges import OUT_OF_RANGE_LIMIT, RangeTally

__all__ = [
    "reference_job",
    "References",
    "ReferenceSamples",
    "ExactReport",
    "references",
    "draw_references",
    "solve_references",
    "exact_report",
    "check_ot_fits",
]


@dataclass(frozen=True)
class References:
    """Empirical-OT references (``None`` where not computed), with their sample sizes."""

    empirical_ot_w1: Optional[float] = None
    empirical_ot_n: Optional[int] = None
    empirical_ot_floor: Optional[float] = None
    empirical_ot_floor_n: Optional[int] = None

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for a printed table."""
        rows = []
        if self.empirical_ot_w1 is not None:
            n = self.empirical_ot_n
            rows.append(
                (
                    "empirical OT (upper reference)",
                    f"{self.empirical_ot_w1:.4f} (exact OT on {n} vs {n} samples; biased upwards)",
                )
            )
        if self.empirical_ot_floor is not None:
            n = self.empirical_ot_floor_n
            rows.append(
                (
                    "empirical OT floor (P vs P)",
                    f"{self.empirical_ot_floor:.4f} (same-distribution sampling bias on {n} vs {n} samples)",
                )
            )
        return rows

    @property
    def below_floor(self) -> bool:
        """Whether the empirical OT between P and Q came out below its same-distribution floor."""
        return (
            self.empirical_ot_w1 is not None
            and self.empirical_ot_floor is not None
            and self.empirical_ot_w1 < self.empirical_ot_floor
        )

    def notes(self) -> list[str]:
        """Sentences a report carries about these references (empty when there is nothing to say)."""
        if not self.below_floor:
            return []
        return [
            f"the empirical OT {self.empirical_ot_w1:.4g} is below its own floor {self.empirical_ot_floor:.4g} (P "
            "against a disjoint sample of P, whose true W1 is 0): at this sample size it is dominated by sampling "
            "bias and says nothing about W1(P, Q), not even that it is small."
        ]


@dataclass(frozen=True)
class ReferenceSamples:
    """The flattened CPU samples the references are solved on: ``p`` and ``q`` (``n`` each) and,
    for the floor, two disjoint samples of P (``None`` without a floor)."""

    p: Tensor
    q: Tensor
    floor_a: Optional[Tensor] = None
    floor_b: Optional[Tensor] = None


def draw_references(
    p: Source, q: Source, n: int, floor: bool, seed: int, chunk: int, device: torch.device
) -> Optional[ReferenceSamples]:
    """The samples of :func:`references` (``None`` when ``n`` is 0), drawn from the references'
    own random stream (:mod:`wdist.seeds`); generator sides decoded in chunks of ``chunk`` on ``device``."""
    if n <= 0:
        return None
    gen = generator(seed, REFERENCES_OFFSET)
    xp, xq = p.draw(n, gen, chunk, device), q.draw(n, gen, chunk, device)
    m = min(len(xp), len(xq))
    xp, xq = xp[:m].flatten(1), xq[:m].flatten(1)
    if not floor:
        return ReferenceSamples(xp, xq)
    a, b = p.disjoint_pair(m, gen, chunk, device)
    if not (len(a) and len(b)):
        return ReferenceSamples(xp, xq)
    return ReferenceSamples(xp, xq, a.flatten(1), b.flatten(1))


def solve_references(samples: Optional[ReferenceSamples]) -> References:
    """Exact OT (:func:`wdist.ot.exact_w1`) between the samples of P and Q, and between the floor's
    two samples of P when drawn; empty :class:`References` for ``None``."""
    if samples is None:
        return References()
    ot = exact_w1(samples.p, samples.q).value
    if samples.floor_a is None or samples.floor_b is None:
        return References(ot, len(samples.p))
    floor = exact_w1(samples.floor_a, samples.floor_b).value
    return References(ot, len(samples.p), floor, int(min(len(samples.floor_a), len(samples.floor_b))))


def references(p: Source, q: Source, n: int, floor: bool, seed: int, chunk: int, device: torch.device) -> References:
    """Exact empirical OT between ``n`` samples of P and of Q, and optionally its floor.

    Parameters
    ----------
    p, q : Source
    n : int
        Samples per side (0: no references).
    floor : bool
        Also compute P against a disjoint sample of P.
    seed : int
        The run's seed (the references draw from their own stream, :mod:`wdist.seeds`).
    chunk : int
        Latents decoded at once for generator sides (the training batch size).
    device : torch.device
        Where generator sides are decoded.
    """
    samples = draw_references(p, q, n, floor, seed, chunk, device)
    return solve_references(samples)


@dataclass(frozen=True)
class ExactReport:
    """What ``wdist exact`` reports: the closed form where known and the empirical-OT references."""

    p: str
    q: str
    shape: list[int]
    domain: Optional[list[float]]
    exact_w1: Optional[float]
    exact_w1_method: Optional[str]
    references: References
    range_checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for the printed table."""
        rows = [("P", self.p), ("Q", self.q), ("domain", domain_text(self.shape, self.domain))]
        if self.exact_w1 is not None:
            rows.append(("exact W1", f"{self.exact_w1:.6f} ({self.exact_w1_method})"))
        else:
            rows.append(("exact W1", "none known (no closed form)"))
        rows += [(f"{side.upper()} output range", range_text(check)) for side, check in self.range_checks.items()]
        return rows + self.references.rows() + [("note", note) for note in self.references.notes()]

    def to_dict(self) -> dict[str, Any]:
        """The JSON record (``exact.json``)."""
        return {
            "exact_w1": self.exact_w1,
            "exact_w1_method": self.exact_w1_method,
            "shape": self.shape,
            "domain": self.domain,
            "distance": "L2",
            **asdict(self.references),
            "range_checks": self.range_checks,
            "notes": self.references.notes(),
        }


def exact_report(cfg: EstimateConfig, device: torch.device = torch.device("cpu")) -> ExactReport:
    """The references of a configuration, without training a critic."""
    sides = cfg.sides()
    check_ot_fits(cfg.eval.ot_samples)
    refs = references(sides.p, sides.q, cfg.eval.ot_samples, cfg.eval.ot_floor, cfg.seed, cfg.train.batch_size, device)
    checks = {}
    for side, src in (("p", sides.p), ("q", sides.q)):
        module = getattr(src, "module", None)
        if isinstance(getattr(module, "tally", None), RangeTally):  # a generator side (RangeMapped)
            summary = module.tally.take().summary()
            summary.check(f"{side.upper()} generator {module.name!r}", "the samples of the references")
            checks[side] = {"all": summary.record(), "limit": OUT_OF_RANGE_LIMIT}
    domain = None if sides.p.domain is None else [float(sides.p.domain[0]), float(sides.p.domain[1])]
    return ExactReport(
        sides.p.describe(), sides.q.describe(), list(sides.p.shape), domain, sides.exact_w1, sides.exact_w1_method,
        refs, checks,
    )  # fmt: skip


def reference_job(
    p: Source, q: Source, n: int, floor: bool, seed: int, chunk: int, device: torch.device, *, beside: bool
) -> Callable[[], References]:
    """The references of P and Q (:func:`references`) of a run; call the returned function after
    training for their value.

    ``beside``: their samples are drawn now and solved on a thread of their own while the critic
    trains (:func:`wdist.background.in_background`: POT and SciPy release Python's lock, so on a
    spare core this costs training nothing; ``False`` when training leaves no core spare, or
    several processes train and rank 0 alone reports). The samples come from the references' own random stream
    (:mod:`wdist.seeds`), so training sees exactly the numbers it would see otherwise and the value
    is the one :func:`references` computes after training, which the returned function does when
    ``beside`` is ``False``.
    """
    if not beside or n <= 0:
        return partial(references, p, q, n, floor, seed, chunk, device)
    samples = draw_references(p, q, n, floor, seed, chunk, device)
    return in_background(solve_references, samples, name="wdist-references")
