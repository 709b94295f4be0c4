"""The names configurations may give in ``class_path``: sources and problems register themselves.

A class decorated with :func:`register_source` may be P or Q (``p: {class_path: Digits}``); one
decorated with :func:`register_problem` may be a whole problem (``toy: {class_path: ThreeCones}``),
and with ``pair=`` it is also listed as a known-W1 construction around a source. The lists in
error messages and listings (:data:`SOURCES`, :data:`TOY_PROBLEMS`, :data:`PAIRS`) are these
registries, so a new class is named everywhere by its decorator alone.
"""

from __future__ import annotations

from typing import Callable, Optional, TypeVar

from wdist.sources.base import Source, ToyProblem

__all__ = ["SOURCES", "TOY_PROBLEMS", "PAIRS", "register_source", "register_problem"]

#: Configurable sources (P, Q) by class name.
SOURCES: dict[str, type[Source]] = {}
#: Problems (P, Q and W1 where known) by class name: the analytic toys and the known-W1 pairs.
TOY_PROBLEMS: dict[str, type[ToyProblem]] = {}
#: Known-W1 constructions around a source, by the short word that names the construction.
PAIRS: dict[str, type[ToyProblem]] = {}

S = TypeVar("S", bound=type)


def _add(registry: dict, name: str, cls: type) -> None:
    if registry.get(name, cls) is not cls:
        raise ValueError(f"{name!r} is registered twice: {registry[name].__module__} and {cls.__module__}")
    registry[name] = cls


def register_source(cls: S) -> S:
    """Class decorator: ``cls`` (a :class:`~wdist.sources.base.Source`) may be named as P or Q."""
    if not issubclass(cls, Source):
        raise TypeError(f"register_source: {cls.__name__} is not a Source")
    _add(SOURCES, cls.__name__, cls)
    return cls


def register_problem(cls: Optional[S] = None, *, pair: Optional[str] = None) -> S | Callable[[S], S]:
    """Class decorator: ``cls`` (a :class:`~wdist.sources.base.ToyProblem`) may be named as ``toy``;
    ``pair``: also list it in :data:`PAIRS` under that word (a known-W1 construction around a source)."""

    def add(klass: S) -> S:
        if not issubclass(klass, ToyProblem):
            raise TypeError(f"register_problem: {klass.__name__} is not a ToyProblem")
        if pair is None:
            _add(TOY_PROBLEMS, klass.__name__, klass)
        else:
            _add(PAIRS, pair, klass)
        return klass

    return add if cls is None else add(cls)
