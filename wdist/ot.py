"""Exact optimal transport between two samples (POT), and the sliced approximation.

Both functions measure W1 with the Euclidean (L2) distance on the flattened samples, in the units
of the samples (for images: the stated domain, e.g. [-1, 1], at the stated resolution), between
the *empirical* distributions that put equal mass on each sample point:

.. math::

    W_1(P_n, Q_m) = \\min_{\\gamma \\in \\Pi(\\mathbf 1/n, \\mathbf 1/m)}
        \\sum_{i,j} \\gamma_{ij} \\, \\|x_i - y_j\\|_2 .

The empirical value is biased upwards as an estimate of W1(P, Q) (by convexity,
:math:`\\mathbb E\\, W_1(P_n, Q_n) \\ge W_1(P, Q)`), and in high dimension that bias dominates.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
from torch import Tensor

from wdist.arrays import finite_float64

__all__ = ["OTResult", "exact_w1", "sliced_w1", "EXACT_METHOD", "SLICED_METHOD", "OTError"]

#: Method label of :func:`exact_w1`.
EXACT_METHOD = "exact (POT emd2, Euclidean cost, uniform weights, float64)"
#: Method label of :func:`sliced_w1`.
SLICED_METHOD = "sliced W1 (approximation; a lower bound on W1, not W1)"

ArrayLike = Union[Tensor, np.ndarray]


class OTError(ValueError):
    """The OT problem cannot be solved as asked (too large, bad input, or the solver failed)."""


@dataclass(frozen=True)
class OTResult:
    """An OT value between two samples.

    Attributes
    ----------
    value : float
        The distance, in the units of the samples (Euclidean on the flattened samples).
    n_x, n_y : int
        Sample sizes.
    method : str
        How it was computed (:data:`EXACT_METHOD` or :data:`SLICED_METHOD`).
    seconds : float
        Wall time of the computation.
    """

    value: float
    n_x: int
    n_y: int
    method: str
    seconds: float


def _check_pair(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as finite float64 arrays of flattened items, ``(n, d)`` and ``(m, d)`` (a 1-D
    array is that many points on the line)."""
    arrays = []
    for name, values in (("x", x), ("y", y)):
        arr = finite_float64(name, values, OTError)
        if arr.ndim == 0:
            raise OTError(f"{name} must have a batch dimension, got a scalar")
        if arr.ndim == 1:
            arr = arr[:, None]  # n scalars = n points in 1-D
        arr = np.ascontiguousarray(arr.reshape(arr.shape[0], -1))
        if arr.shape[0] < 1:
            raise OTError(f"{name} is empty (shape {arr.shape})")
        arrays.append(arr)
    xa, ya = arrays
    if xa.shape[1] != ya.shape[1]:
        raise OTError(
            f"x and y must have the same sample dimension: x is {tuple(x.shape)} ({xa.shape[1]} per sample), "
            f"y is {tuple(y.shape)} ({ya.shape[1]} per sample)"
        )
    return xa, ya


def _available_memory_bytes() -> Optional[int]:
    """MemAvailable from /proc/meminfo (Linux), else total physical memory, else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def max_exact_samples() -> Optional[int]:
    """The largest n for which :func:`exact_w1` on n x n samples fits in half the available
    memory (its default limit), or ``None`` when the available memory is unknown."""
    avail = _available_memory_bytes()
    return None if avail is None else int(math.isqrt(max(0, avail // 2) // 16))


def _gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def exact_w1(x: ArrayLike, y: ArrayLike, max_cost_bytes: Optional[int] = None) -> OTResult:
    """Exact W1 between the empirical distributions of two samples, by POT's network simplex.

    .. math::

        W_1(P_n, Q_m) = \\min_{\\gamma \\ge 0,\\ \\gamma \\mathbf 1 = \\mathbf 1/n,\\
            \\gamma^T \\mathbf 1 = \\mathbf 1/m} \\langle \\gamma, M \\rangle,
        \\qquad M_{ij} = \\|x_i - y_j\\|_2 .

    Parameters
    ----------
    x : (n, ...) Tensor or array
        Sample of P (each item flattened; a 1-D array is n points on the line).
    y : (m, ...) Tensor or array
        Sample of Q, same per-item size.
    max_cost_bytes : int, optional
        Refuse when the solver's dense ``n x m`` float64 matrices (the cost ``M`` and the plan,
        ``2 * 8 * n * m`` bytes) exceed this; when ``None`` the limit is half the available memory.

    Returns
    -------
    OTResult
        ``value`` is the exact empirical W1 in the units of the samples, ``method`` is
        :data:`EXACT_METHOD`.

    Raises
    ------
    OTError
        If the problem does not fit (the message names n, m, the bytes needed and the limit), the
        inputs are malformed, or the solver did not reach optimality (POT's ``result_code`` is not
        1, or it warned that ``numItermax`` was reached). POT itself only warns in that case.

    Notes
    -----
    The cost is the Euclidean distance computed from coordinate differences (``ot.dist`` defaults
    to the *squared* Euclidean cost, and its Euclidean option uses an expansion that loses about
    1e-8 to cancellation). ``numItermax`` is set to 2**62 so the solver never stops early.
    """
    import ot
    from scipy.spatial.distance import cdist

    t0 = time.perf_counter()
    if max_cost_bytes is not None:
        limit, what = int(max_cost_bytes), f"max_cost_bytes={int(max_cost_bytes)} ({_gib(max_cost_bytes)})"
    else:
        avail = _available_memory_bytes()
        limit = avail // 2 if avail is not None else None
        what = f"half the available memory ({_gib(limit)})" if limit is not None else ""
    xa, ya = _check_pair(x, y)
    n, m = xa.shape[0], ya.shape[0]
    needed = 2 * 8 * n * m
    if limit is not None and needed > limit:
        raise OTError(
            f"exact OT between n={n} and m={m} samples needs {needed} bytes ({needed / 2**30:.2f} GiB) for the "
            f"dense float64 cost matrix and plan (2 x 8 x n x m), more than {what}. Use fewer samples "
            "(the cost grows as n x m and the time roughly as n^3; in a config, lower eval.ot_samples), or "
            "wdist.ot.sliced_w1 (a lower bound on W1, not W1)."
        )
    a = np.full(n, 1.0 / n)
    b = np.full(m, 1.0 / m)
    # Euclidean cost computed from the differences (scipy's cdist), not from the expansion
    # ||x||^2 + ||y||^2 - 2<x, y> that ot.dist uses, which loses ~1e-8 to cancellation
    # (W1(x, x) would come out ~1e-9 instead of 0). Never the squared cost (ot.dist's default).
    M = cdist(xa, ya, metric="euclidean")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value, log = ot.emd2(a, b, M, numItermax=2**62, log=True)
    code = int(log.get("result_code", -1))
    messages = [str(w.message) for w in caught if "numItermax" in str(w.message) or "infeasible" in str(w.message)]
    if code != 1 or messages:
        raise OTError(
            f"POT emd2 did not reach optimality for n={n}, m={m}: result_code={code} "
            f"({log.get('warning') or '; '.join(messages)})"
        )
    # Re-emit unrelated warnings (none expected).
    for w in caught:
        if str(w.message) not in messages:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return OTResult(float(value), n, m, EXACT_METHOD, time.perf_counter() - t0)


def sliced_w1(x: ArrayLike, y: ArrayLike, n_projections: int = 256, seed: int = 0) -> OTResult:
    """Sliced W1: the mean over random directions of the 1-D W1 of the projected samples.

    .. math::

        SW_1(P_n, Q_m) \\approx \\frac1K \\sum_{k=1}^K W_1(\\theta_k \\# P_n, \\theta_k \\# Q_m),
        \\qquad \\theta_k \\sim \\mathrm{Unif}(S^{d-1}),

    computed by POT's ``ot.sliced_wasserstein_distance`` with ``p=1`` (uniform weights, float64).
    Each projection :math:`x \\mapsto \\langle \\theta, x\\rangle` is 1-Lipschitz, so every term
    (and so the mean) is at most the exact :math:`W_1(P_n, Q_m)`: this is an approximation and a
    **lower bound** on W1, not W1.

    Parameters
    ----------
    x : (n, ...) Tensor or array
        Sample of P.
    y : (m, ...) Tensor or array
        Sample of Q (``m`` may differ from ``n``: the 1-D W1 then uses the quantile functions).
    n_projections : int
        Number ``K`` of random directions.
    seed : int
        Seed of the directions.

    Returns
    -------
    OTResult
        ``method`` is :data:`SLICED_METHOD`; the value is in the units of the samples.
    """
    import ot

    t0 = time.perf_counter()
    if isinstance(n_projections, bool) or not isinstance(n_projections, int) or n_projections < 1:
        raise OTError(f"n_projections must be a positive integer, got {n_projections!r}")
    xa, ya = _check_pair(x, y)
    value = ot.sliced_wasserstein_distance(xa, ya, n_projections=n_projections, p=1, seed=int(seed))
    return OTResult(float(value), xa.shape[0], ya.shape[0], SLICED_METHOD, time.perf_counter() - t0)
