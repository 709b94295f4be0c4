"""Checks and formatting of the numeric arguments of the analytic samplers and toy problems.

Each check returns the value in the form the samplers use (an ``int``, a ``float``, a float64
tensor) or raises :class:`~wdist.sources.base.SourceError` naming the argument, its value and what
was expected.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from wdist.sources.base import SourceError

__all__ = ["check_dim", "check_positive", "vector", "point_matrix", "mixture_weights", "atoms", "ring", "format_vector"]


def check_dim(dim: int) -> int:
    """``dim`` when it is a positive whole number (not a bool), else :class:`SourceError`."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise SourceError(f"dim must be a positive integer, got dim={dim!r}")
    return dim


def check_positive(name: str, value: float) -> float:
    """``value`` as a float when it is finite and positive, else :class:`SourceError` naming ``name``."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise SourceError(f"{name} must be a finite positive number, got {name}={value!r}")
    return float(value)


def vector(name: str, values: Optional[list[float]], dim: int, default: Optional[list[float]] = None) -> Tensor:
    """A float64 vector of length ``dim`` from a (possibly shorter) list, padded with zeros
    (``default`` when ``values`` is ``None``, the origin when both are)."""
    if values is None:
        values = default if default is not None else []
    vals = [float(v) for v in values]
    if len(vals) > dim:
        raise SourceError(f"{name} has {len(vals)} entries, more than dim={dim}: {values!r}")
    if not all(math.isfinite(v) for v in vals):
        raise SourceError(f"{name} must be finite, got {values!r}")
    out = torch.zeros(dim, dtype=torch.float64)
    if vals:
        out[: len(vals)] = torch.tensor(vals, dtype=torch.float64)
    return out


def point_matrix(name: str, values: list[list[float]], dim: Optional[int]) -> Tensor:
    """A ``(k, dim)`` float64 matrix of points, each padded with zeros to ``dim`` (the longest
    point's length when ``None``)."""
    if not values:
        raise SourceError(f"{name} must list at least one point, got {values!r}")
    if dim is None:
        dim = max(len(p) for p in values)
    return torch.stack([vector(f"{name}[{i}]", list(p), dim) for i, p in enumerate(values)])


def mixture_weights(name: str, weights: Optional[list[float]], k: int) -> Tensor:
    r"""Normalised mixture weights :math:`w_i / \sum_j w_j` of ``k`` components (equal when ``None``)."""
    if weights is None:
        return torch.full((k,), 1.0 / k, dtype=torch.float64)
    w = torch.tensor([float(v) for v in weights], dtype=torch.float64)
    if w.numel() != k or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise SourceError(f"{name} must be {k} non-negative finite numbers with a positive sum, got {weights!r}")
    return w / w.sum()


def atoms(
    name: str, centres: Optional[list[list[float]]], weights: Optional[list[float]], dim: Optional[int]
) -> tuple[Tensor, Tensor]:
    r"""The atoms of a mixture, a ``(k, dim)`` float64 matrix (:func:`point_matrix`; the origin alone
    when ``centres`` is ``None``), and their normalised weights (:func:`mixture_weights`, equal when
    ``None``): :math:`\sum_k w_k\, \mu(\cdot - c_k)` for a distribution :math:`\mu` around the origin."""
    at = point_matrix(name, centres if centres is not None else [[0.0]], dim)
    return at, mixture_weights("weights", weights, at.shape[0])


def ring(k: int, radius: float, phase: float) -> list[list[float]]:
    r"""``k`` points evenly spaced on a circle of ``radius`` in the plane, starting at angle ``phase``:
    :math:`r (\cos(\phi + 2\pi i / k), \sin(\phi + 2\pi i / k))`."""
    return [
        [radius * math.cos(phase + 2 * math.pi * i / k), radius * math.sin(phase + 2 * math.pi * i / k)]
        for i in range(k)
    ]


def format_vector(v: Tensor) -> str:
    """A vector for descriptions: all entries when few, else the constant or the first and last few."""
    if v.numel() > 8:
        if bool((v == v[0]).all()):
            return f"[{float(v[0]):g}] * {v.numel()}"
        head = ", ".join(f"{float(x):g}" for x in v[:3])
        tail = ", ".join(f"{float(x):g}" for x in v[-2:])
        return f"[{head}, ..., {tail}] ({v.numel()} entries)"
    return "[" + ", ".join(f"{float(x):g}" for x in v) + "]"
