"""Activations by name, for architecture entrypoints and configs."""

from __future__ import annotations

import re

from torch import nn

from critics.layers.groupsort import GroupSort, MaxMin

__all__ = ["get_activation", "ACTIVATIONS"]

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
