r"""A generator's outputs against its declared ``output_range``: counted on every draw, never clamped unsaid.

A generator side maps :math:`G(z)` from its declared range :math:`[a, b]` onto the domain
:math:`[c, d]` and clamps to the domain (:class:`~wdist.sources.generator.RangeMapped`), so that
every sample the critic sees lies in the domain the certificate's value range assumes. A generator
whose outputs leave :math:`[a, b]` (a tanh network declared ``[0, 1]``, a network without a final
tanh declared ``[-1, 1]``) would otherwise be clamped silently, and the bound would be to another
distribution than the generator's. So every decoded batch is tallied on its device, without a
host synchronisation: how many values of :math:`G(z)` fall outside :math:`[a, b]`, the extremes
seen, and how far the clamp moved each sample,

.. math::

    m(x) = \| \tilde x - \operatorname{clamp}_{[c, d]}(\tilde x) \|_2

(:math:`\tilde x` the mapped, resized sample; W1 units). A run stops with
:class:`~wdist.errors.GeneratorRangeError` (exit code 2), before any result is written, when the
fraction of values outside exceeds :data:`OUT_OF_RANGE_LIMIT`; below it the fraction is reported,
and since the clamp couples each sample to its clamped copy,
:math:`W_1(Q, Q_{\mathrm{clamped}}) \le \mathbb E\, m(x)`, so the bound against the generator's
own samples is the reported bound minus the mean distance moved (the run's note says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor

from wdist.errors import GeneratorRangeError

__all__ = ["OUT_OF_RANGE_LIMIT", "RangeTally", "RangeSummary"]

#: Largest fraction of a generator's output values that may lie outside its declared
#: ``output_range`` (0.1%); more stops the run (exit code 2). Values outside by any amount count.
OUT_OF_RANGE_LIMIT = 1e-3


class RangeTally:
    """Running counts of a generator's outputs against its declared range ``[a, b]``.

    :meth:`update` adds a batch as device tensors (no host synchronisation); :meth:`take` hands
    the counts so far to the caller and starts afresh; :meth:`summary` reads them (one sync).
    """

    def __init__(self, declared: tuple[float, float]) -> None:
        self.declared = (float(declared[0]), float(declared[1]))
        self._reset()

    def _reset(self) -> None:
        self.values = 0  # values seen (known on the host: sizes only)
        self.samples = 0
        self._outside: Optional[Tensor] = None  # int64, on the batches' device
        self._low: Optional[Tensor] = None
        self._high: Optional[Tensor] = None
        self._moved: Optional[Tensor] = None  # float64 sum over samples of the distance the clamp moved

    def update(self, raw: Tensor, moved: Tensor) -> None:
        """Add a batch: ``raw`` the generator's outputs in its own units, ``moved`` the per-sample
        distance (W1 units) the clamp into the domain moved each sample."""
        if raw.numel() == 0:
            return
        a, b = self.declared
        flat = raw.detach().reshape(-1)
        outside = ((flat < a) | (flat > b)).sum()
        stats = (outside, flat.min(), flat.max(), moved.detach().double().sum())
        self._add(*stats, values=flat.numel(), samples=int(moved.numel()))

    def _add(self, outside: Tensor, low: Tensor, high: Tensor, moved: Tensor, values: int, samples: int) -> None:
        if self._outside is None:
            self._outside, self._low, self._high, self._moved = (t.clone() for t in (outside, low, high, moved))
        else:
            assert self._low is not None and self._high is not None and self._moved is not None
            if self._outside.device != outside.device and self._outside.device.type == "cpu":
                # counts restored on the CPU join the device's (moving these is no synchronisation)
                self._outside, self._low, self._high, self._moved = (
                    t.to(outside.device) for t in (self._outside, self._low, self._high, self._moved)
                )
            device = self._outside.device
            self._outside += outside.to(device)
            self._low = torch.minimum(self._low, low.to(device, self._low.dtype))
            self._high = torch.maximum(self._high, high.to(device, self._high.dtype))
            self._moved += moved.to(device)
        self.values += int(values)
        self.samples += int(samples)

    def merge(self, other: "RangeTally") -> "RangeTally":
        """Add ``other``'s counts to these; returns ``self``."""
        if other._outside is not None:
            assert other._low is not None and other._high is not None and other._moved is not None
            self._add(other._outside, other._low, other._high, other._moved, other.values, other.samples)
        return self

    def take(self) -> "RangeTally":
        """The counts so far, as a new tally; this one starts from zero."""
        taken = RangeTally(self.declared).merge(self)
        self._reset()
        return taken

    def summary(self) -> "RangeSummary":
        """The counts as plain numbers (one host synchronisation)."""
        if self._outside is None:
            return RangeSummary(self.declared, 0, 0, None, None, 0, 0.0)
        assert self._low is not None and self._high is not None and self._moved is not None
        return RangeSummary(
            self.declared, self.values, int(self._outside), float(self._low), float(self._high), self.samples,
            float(self._moved),
        )  # fmt: skip

    @classmethod
    def from_summary(cls, summary: "RangeSummary") -> "RangeTally":
        """A tally holding ``summary``'s counts (on the CPU), e.g. restored from a checkpoint."""
        tally = cls(summary.declared)
        if summary.values:
            low, high = summary.low, summary.high
            assert low is not None and high is not None
            tally._add(
                torch.tensor(summary.outside), torch.tensor(low), torch.tensor(high),
                torch.tensor(summary.moved_total, dtype=torch.float64), summary.values, summary.samples,
            )  # fmt: skip
        return tally


@dataclass(frozen=True)
class RangeSummary:
    """Counts of a generator's output values against its declared range, as plain numbers.

    Attributes
    ----------
    declared : (a, b)
        The declared ``output_range`` (the generator's units).
    values, outside : int
        Values seen, and how many lay outside ``[a, b]``.
    low, high : float or None
        The smallest and largest value seen (``None``: nothing seen).
    samples : int
        Samples seen.
    moved_total : float
        Sum over the samples of the distance the clamp into the domain moved them (W1 units).
    """

    declared: tuple[float, float]
    values: int
    outside: int
    low: Optional[float]
    high: Optional[float]
    samples: int
    moved_total: float

    @property
    def fraction(self) -> float:
        """Fraction of the values outside the declared range (0 when nothing was seen)."""
        return self.outside / self.values if self.values else 0.0

    @property
    def moved(self) -> float:
        """Mean distance the clamp moved a sample, W1 units: an upper bound on W1 between the
        generator's mapped samples and the clamped ones the critic saw."""
        return self.moved_total / self.samples if self.samples else 0.0

    def __add__(self, other: "RangeSummary") -> "RangeSummary":
        lows = [v for v in (self.low, other.low) if v is not None]
        highs = [v for v in (self.high, other.high) if v is not None]
        return RangeSummary(
            self.declared, self.values + other.values, self.outside + other.outside, min(lows, default=None),
            max(highs, default=None), self.samples + other.samples, self.moved_total + other.moved_total,
        )  # fmt: skip

    def observed_text(self) -> str:
        return "nothing" if self.low is None else f"[{self.low:.7g}, {self.high:.7g}]"

    def record(self) -> dict[str, Any]:
        """JSON-ready: the counts, the fraction, the observed range and the mean distance moved."""
        return {
            "declared": list(self.declared),
            "observed": None if self.low is None else [self.low, self.high],
            "values": self.values,
            "outside": self.outside,
            "fraction_outside": self.fraction,
            "samples": self.samples,
            "moved_total": self.moved_total,
            "mean_distance_clamped": self.moved,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "RangeSummary":
        observed = record.get("observed")
        return cls(
            (float(record["declared"][0]), float(record["declared"][1])), int(record["values"]),
            int(record["outside"]), None if observed is None else float(observed[0]),
            None if observed is None else float(observed[1]), int(record["samples"]), float(record["moved_total"]),
        )  # fmt: skip

    def check(self, who: str, what: str) -> None:
        """Raise :class:`~wdist.errors.GeneratorRangeError` when more than :data:`OUT_OF_RANGE_LIMIT`
        of the values lie outside the declared range; ``who`` names the generator, ``what`` the draws."""
        if self.fraction <= OUT_OF_RANGE_LIMIT:
            return
        a, b = self.declared
        raise GeneratorRangeError(
            f"{who} declares output_range [{a:g}, {b:g}], but its outputs on {what} span {self.observed_text()}: "
            f"{self.outside} of {self.values} values ({100 * self.fraction:.3g}%) lie outside [{a:g}, {b:g}], more "
            f"than the {100 * OUT_OF_RANGE_LIMIT:g}% wdist tolerates. Mapping them as if they were in [{a:g}, {b:g}] "
            "and clamping them into the domain would measure another distribution than the generator's. Set "
            "output_range to the range the network really produces (e.g. [-1, 1] for a final tanh, [0, 1] for a "
            "sigmoid), or end the network with the squashing it was trained with. No result was written."
        )
