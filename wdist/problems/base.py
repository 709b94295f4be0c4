"""What a problem is: a pair of sources (P, Q) with W1 where it is known exactly."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Optional

from wdist.sources.base import Source

__all__ = ["ToyProblem"]


class ToyProblem(ABC):
    """A pair of distributions (P, Q) with W1 where it is known exactly: the analytic toys
    (:mod:`wdist.problems.toy`), and the known-W1 pairs Q = T(P) around a data set
    (:mod:`wdist.problems.pairs`, :mod:`wdist.problems.funnel_pair`)."""

    p: Source
    q: Source
    #: True in the body of a class that only shares code between problems (not one itself)
    shared_base: ClassVar[bool] = False

    def __new__(cls, *args: Any, **kwargs: Any) -> "ToyProblem":
        if cls.__dict__.get("shared_base", False):
            problems = sorted(c.__name__ for c in _subclasses(cls) if not c.__dict__.get("shared_base", False))
            raise TypeError(
                f"{cls.__name__} shares code between problems and is not a problem itself; "
                f"name one of its problems instead: {', '.join(problems)}"
            )
        return super().__new__(cls)

    @abstractmethod
    def exact_w1(self) -> Optional[float]:
        """The closed-form (or exactly computable, e.g. 1-D) W1(P, Q); ``None`` when there is none."""

    def exact_w1_method(self) -> Optional[str]:
        """How ``exact_w1`` is obtained, e.g. ``'closed form ||v||'``; ``None`` when there is none."""
        return None

    def describe(self) -> str:
        return type(self).__name__


def _subclasses(cls: type) -> list[type]:
    """Every subclass of ``cls``, at any depth."""
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]
