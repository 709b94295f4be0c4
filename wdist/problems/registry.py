"""The names configurations may give as a whole problem (``toy: {class_path: ThreeCones}``).

A class decorated with :func:`register_problem` may be named as ``toy``; with ``pair=`` it is
listed in :data:`PAIRS` instead, as a known-W1 construction around a source. The lists in error
messages and listings (:data:`TOY_PROBLEMS`, :data:`PAIRS`) are these registries, so a new class is
named everywhere by its decorator alone. Sources (P, Q) have their own registry,
:data:`wdist.sources.SOURCES`.

:func:`current_class_paths` maps the ``class_path`` of a configuration written by an earlier
version (``wdist.sources.toy.ThreeCones``, ``wdist.sources.pairs.AnchorPair``) to where the
registered class lives now, by its registered name.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar

from jsonargparse._util import get_import_path  # the path jsonargparse itself writes for a class

from wdist.problems.base import ToyProblem
from wdist.sources.registry import SOURCES, add_unique

__all__ = ["TOY_PROBLEMS", "PAIRS", "register_problem", "registered_class", "current_class_paths"]

#: Problems (P, Q and W1 where known) by class name: the analytic toys.
TOY_PROBLEMS: dict[str, type[ToyProblem]] = {}
#: Known-W1 constructions around a source, by the short word that names the construction.
PAIRS: dict[str, type[ToyProblem]] = {}

P = TypeVar("P", bound=type)


def register_problem(cls: Optional[P] = None, *, pair: Optional[str] = None) -> P | Callable[[P], P]:
    """Class decorator: ``cls`` (a :class:`~wdist.problems.base.ToyProblem`) may be named as ``toy``;
    ``pair``: list it in :data:`PAIRS` under that word instead (a known-W1 construction around a source)."""

    def add(klass: P) -> P:
        if not issubclass(klass, ToyProblem):
            raise TypeError(f"register_problem: {klass.__name__} is not a ToyProblem")
        add_unique(TOY_PROBLEMS if pair is None else PAIRS, klass.__name__ if pair is None else pair, klass)
        return klass

    return add if cls is None else add(cls)


def registered_class(name: str) -> Optional[type]:
    """The source or problem registered under the class name ``name`` (``ThreeCones``,
    ``AnchorPair``, ``Digits``), or ``None``."""
    by_class = {cls.__name__: cls for cls in PAIRS.values()}
    return SOURCES.get(name) or TOY_PROBLEMS.get(name) or by_class.get(name)


def current_class_paths(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a configuration mapping in which every ``class_path`` of ``p``, ``q``, ``toy`` and
    of the sources nested in their ``init_args`` that names a registered class by a dotted path of
    this package (``wdist.sources.toy.ThreeCones``, ``wdist.sources.ThreeCones``,
    ``wdist.sources.funnels.FunnelPair``) is the path of that class now, as jsonargparse writes it
    (``wdist.problems.ThreeCones``). Short names (``ThreeCones``) and classes of other packages are
    kept as they are."""
    return {k: _current(v) if k in ("p", "q", "toy") else v for k, v in config.items()}


def _current(spec: Any) -> Any:
    """One configured class (``{"class_path": ..., "init_args": {...}}``, or its path alone) with its
    path and those of the classes in its ``init_args`` made current."""
    if isinstance(spec, str):
        return _current({"class_path": spec})["class_path"]
    if not isinstance(spec, dict):
        return spec
    out = dict(spec)
    if isinstance(out.get("init_args"), dict):
        out["init_args"] = {k: _current(v) if isinstance(v, dict) else v for k, v in out["init_args"].items()}
    path = out.get("class_path")
    cls = registered_class(path.rsplit(".", 1)[1]) if isinstance(path, str) and path.startswith("wdist.") else None
    if cls is not None:
        out["class_path"] = get_import_path(cls)
    return out
