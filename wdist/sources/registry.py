"""The names configurations may give as P or Q: sources register themselves.

A class decorated with :func:`register_source` may be P or Q (``p: {class_path: Digits}``). The
list in error messages and listings (:data:`SOURCES`) is this registry, so a new source is named
everywhere by its decorator alone. Whole problems (``toy: ...``) have their own registry,
:mod:`wdist.problems.registry`.
"""

from __future__ import annotations

from typing import TypeVar

from wdist.sources.base import Source

__all__ = ["SOURCES", "register_source", "add_unique"]

#: Configurable sources (P, Q) by class name.
SOURCES: dict[str, type[Source]] = {}

S = TypeVar("S", bound=type)


def add_unique(registry: dict[str, type], name: str, cls: type) -> None:
    """``registry[name] = cls``, refusing a second class under a name already taken (a ``ValueError``
    naming both modules): a configuration's short name must mean one class."""
    if registry.get(name, cls) is not cls:
        raise ValueError(f"{name!r} is registered twice: {registry[name].__module__} and {cls.__module__}")
    registry[name] = cls


def register_source(cls: S) -> S:
    """Class decorator: ``cls`` (a :class:`~wdist.sources.base.Source`) may be named as P or Q."""
    if not issubclass(cls, Source):
        raise TypeError(f"register_source: {cls.__name__} is not a Source")
    add_unique(SOURCES, cls.__name__, cls)
    return cls
