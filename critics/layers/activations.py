"""Activations by name, for architecture entrypoints and configs."""

from __future__ import annotations

import re
from typing import Callable

from torch import nn

from critics.layers.groupsort import GroupSort, MaxMin

__all__ = ["get_activation", "checked_activation", "ACTIVATIONS"]

#: Accepted names ("groupsortN" accepts any group size N >= 1).
ACTIVATIONS: tuple[str, ...] = ("maxmin", "groupsort4", "groupsortN", "relu", "leakyrelu")


def get_activation(name: str, negative_slope: float = 0.2) -> nn.Module:
    """A fresh activation module for ``name``.

    Parameters
    ----------
    name : str
        ``"maxmin"`` (:class:`MaxMin`), ``"groupsortN"`` (:class:`GroupSort` of size N, e.g.
        ``"groupsort4"``), ``"relu"``, or ``"leakyrelu"`` (slope ``negative_slope``).
        Case-insensitive; ``-`` and ``_`` are ignored.
    negative_slope : float
        For ``"leakyrelu"`` only.

    Raises
    ------
    ValueError
        For any other name, listing the accepted ones.
    """
    key = str(name).lower().replace("-", "").replace("_", "")
    if key == "maxmin":
        return MaxMin()
    match = re.fullmatch(r"groupsort(\d+)", key)
    if match:
        return GroupSort(int(match.group(1)))
    if key == "relu":
        return nn.ReLU()
    if key == "leakyrelu":
        return nn.LeakyReLU(negative_slope)
    raise ValueError(f"Unknown activation {name!r}. Accepted: {', '.join(ACTIVATIONS)}.")


def checked_activation(
    owner: str, activation: str, allowed: tuple[str, ...], widths: list[int]
) -> Callable[[], nn.Module]:
    """A factory of fresh ``activation`` modules for an architecture ``owner``, after checking that
    its kind (``"groupsort"`` for MaxMin/GroupSort, else the lower-case class name) is one of
    ``allowed`` and that a GroupSort's group size divides every width in ``widths``; ``ValueError``
    naming the activation and the widths otherwise."""
    probe = get_activation(activation)
    kind = "groupsort" if isinstance(probe, GroupSort) else type(probe).__name__.lower()
    if kind not in allowed:
        raise ValueError(f"{owner}: activation {activation!r} is not allowed here; accepted: {', '.join(allowed)}")
    if isinstance(probe, GroupSort) and any(w % probe.group_size for w in widths):
        what = f"width {widths[0]} is" if len(widths) == 1 else f"channel widths {widths} are"
        raise ValueError(
            f"{owner}: {what} not divisible by the group size {probe.group_size} of activation {activation!r}"
        )
    return lambda: get_activation(activation)
