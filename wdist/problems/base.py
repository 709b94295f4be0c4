"""What a problem is: a pair of sources (P, Q) with W1 where it is known exactly."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional

from wdist.sources.base import Source

__all__ = ["ToyProblem"]


class ToyProblem(ABC):
    """A pair of distributions (P, Q) with W1 where it is known exactly: the analytic toys
    (:mod:`wdist.problems.toy`), and the known-W1 pairs Q = T(P) around a data set
    (:mod:`wdist.problems.pairs`, :mod:`wdist.problems.funnel_pair`)."""

    p: Source
    q: Source

    @abstractmethod
    def exact_w1(self) -> Optional[float]:
        """The closed-form (or exactly computable, e.g. 1-D) W1(P, Q); ``None`` when there is none."""

    def exact_w1_method(self) -> Optional[str]:
        """How ``exact_w1`` is obtained, e.g. ``'closed form ||v||'``; ``None`` when there is none."""
        return None

    def describe(self) -> str:
        return type(self).__name__
