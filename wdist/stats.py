r"""Statistics of the held-out bound: intervals for :math:`\mathbb E_P f - \mathbb E_Q f`.

The held-out estimate is computed from per-sample critic values on fresh samples
:math:`x_1..x_n \sim P` and :math:`y_1..y_n \sim Q` (all independent):

.. math::

    d_i = f(x_i) - f(y_i), \qquad \hat\Delta = \frac1n \sum_i d_i,
    \qquad \mathbb E\, \hat\Delta = \mathbb E_P f - \mathbb E_Q f \le L \, W_1(P, Q),

where :math:`L` certifies :math:`\mathrm{Lip}(f) \le L`. The :math:`d_i` are i.i.d. (pairing two
independent samples index by index), so one-sample intervals for their mean are valid. Values are
in the critic's units; :func:`scale_interval` divides by :math:`L` to give W1 units (Euclidean
distance on the flattened samples, in the stated domain). All arithmetic is float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Optional, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["Interval", "mean_difference_interval", "scale_interval", "StatsError"]


class StatsError(ValueError):
    """Bad input to an interval computation; the message names the value."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval.

    Attributes
    ----------
    estimate : float
        The mean difference :math:`\\hat\\Delta` (or its scaled version).
    stderr : float
        Its standard error :math:`s / \\sqrt n` (bootstrap: the standard deviation of the
        bootstrap means).
    lo, hi : float
        Interval end points; :math:`P(lo \\le \\Delta \\le hi) \\ge` ``confidence`` under the
        method's assumptions.
    confidence : float
        Nominal coverage, in (0, 1).
    method : str
        Descriptive name of the method (and its caveats).
    n : int
        Number of pairs.
    """

    estimate: float
    stderr: float
    lo: float
    hi: float
    confidence: float
    method: str
    n: int


def _as_float64(name: str, v: Union[Tensor, np.ndarray, list]) -> np.ndarray:
    if isinstance(v, Tensor):
        arr = v.detach().to("cpu", torch.float64).numpy()
    else:
        arr = np.asarray(v, dtype=np.float64)
    return arr.reshape(-1) if arr.ndim > 1 and max(arr.shape[1:], default=1) == 1 else arr


def _differences(fp, fq) -> np.ndarray:
    a, b = _as_float64("fp", fp), _as_float64("fq", fq)
    if a.ndim != 1 or b.ndim != 1:
        raise StatsError(
            f"fp and fq must be 1-D (one critic value per sample), got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[0] != b.shape[0]:
        raise StatsError(
            f"fp and fq must have the same length (paired held-out samples), got {a.shape[0]} and {b.shape[0]}"
        )
    if a.shape[0] < 2:
        raise StatsError(f"need at least n=2 pairs for an interval, got n={a.shape[0]}")
    bad = int((~np.isfinite(a)).sum() + (~np.isfinite(b)).sum())
    if bad:
        raise StatsError(f"fp and fq contain {bad} non-finite values (NaN or Inf)")
    return a - b


def mean_difference_interval(
    fp: Tensor,
    fq: Tensor,
    confidence: float = 0.95,
    method: Literal["normal", "bernstein", "bootstrap"] = "normal",
    value_range: Optional[float] = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> Interval:
    r"""Confidence interval for :math:`\Delta = \mathbb E_P f - \mathbb E_Q f` from paired values.

    Parameters
    ----------
    fp : (n,) Tensor
        Critic values :math:`f(x_i)` on held-out samples of P.
    fq : (n,) Tensor
        Critic values :math:`f(y_i)` on held-out samples of Q (independent of ``fp``).
    confidence : float
        Nominal two-sided coverage, in (0, 1).
    method : {"normal", "bernstein", "bootstrap"}
        ``normal``: Student-t interval on :math:`d_i`,

        .. math:: \bar d \pm t_{n-1, (1+c)/2} \, s / \sqrt n ;

        asymptotically exact, no finite-sample guarantee.

        ``bernstein``: the empirical-Bernstein bound of Maurer & Pontil (2009, Thm. 4) applied to
        each side with :math:`\delta = (1-c)/2` (union bound), for :math:`d_i` in an interval of
        width :math:`b`:

        .. math::

            \bar d \pm \left( \sqrt{\frac{2 s^2 \ln(2/\delta)}{n}}
                + \frac{7 b \ln(2/\delta)}{3 (n - 1)} \right),

        with :math:`s^2` the unbiased sample variance. A finite-sample guarantee, *if* ``b`` is
        known a priori.

        ``bootstrap``: percentile bootstrap of :math:`\bar d` (``n_boot`` resamples, vectorised).
    value_range : float, optional
        Bernstein only: the width ``b`` of an interval known to contain every :math:`d_i`
        (a-priori, e.g. :math:`b = 2 \sup f - 2 \inf f` over the domain, or
        :math:`2 L \cdot \mathrm{diam}` for an L-Lipschitz critic on a bounded domain, since
        :math:`|f(x) - f(y)| \le L \|x - y\|`). When ``None``, the observed range
        :math:`\max d - \min d` is used and the method string says the guarantee is then only
        heuristic (the theorem needs a range fixed before seeing the data).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the bootstrap resampling.

    Returns
    -------
    Interval

    Raises
    ------
    StatsError
        For a confidence outside (0, 1), mismatched lengths, n < 2, non-finite values, an unknown
        method, a non-positive ``value_range`` or one smaller than the observed range.

    References
    ----------
    .. [1] A. Maurer, M. Pontil, "Empirical Bernstein bounds and sample variance penalization",
       COLT 2009.
    .. [2] B. Efron, R. Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile method).
    """
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must be in the open interval (0, 1), got confidence={confidence!r}")
    d = _differences(fp, fq)
    c = float(confidence)
    if method == "normal":
        return _normal_interval(d, c)
    if method == "bernstein":
        return _bernstein_interval(d, c, value_range)
    if method == "bootstrap":
        return _bootstrap_interval(d, c, n_boot, seed)
    raise StatsError(f"unknown method {method!r}; choose 'normal', 'bernstein' or 'bootstrap'")


def _normal_interval(d: np.ndarray, c: float) -> Interval:
    """Student-t interval of the mean of ``d`` (see :func:`mean_difference_interval`)."""
    from scipy import stats

    n, mean = int(d.shape[0]), float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf((1.0 + c) / 2.0, df=n - 1)) * se
    return Interval(mean, se, mean - half, mean + half, c, "normal (Student t on paired differences)", n)


def _bernstein_interval(d: np.ndarray, c: float, value_range: Optional[float]) -> Interval:
    """Empirical-Bernstein interval of the mean of ``d`` (see :func:`mean_difference_interval`)."""
    n, mean = int(d.shape[0]), float(d.mean())
    sd = float(d.std(ddof=1))
    observed = float(d.max() - d.min())
    if value_range is None:
        b = observed
        name = (
            "empirical Bernstein (Maurer & Pontil 2009; range b taken from the data = "
            f"{b:.4g}, not a-priori: heuristic, the theorem's guarantee needs a known range)"
        )
    else:
        b = float(value_range)
        if not (math.isfinite(b) and b > 0):
            raise StatsError(f"value_range must be a finite positive number, got value_range={value_range!r}")
        if observed > b * (1 + 1e-12):
            raise StatsError(
                f"value_range={value_range!r} is smaller than the observed range of the differences "
                f"({observed:.6g}): it cannot be a valid a-priori range"
            )
        name = f"empirical Bernstein (Maurer & Pontil 2009; a-priori range b = {b:.4g})"
    delta = (1.0 - c) / 2.0
    log_term = math.log(2.0 / delta)
    half = math.sqrt(2.0 * sd**2 * log_term / n) + 7.0 * b * log_term / (3.0 * (n - 1))
    return Interval(mean, sd / math.sqrt(n), mean - half, mean + half, c, name, n)


def _bootstrap_interval(d: np.ndarray, c: float, n_boot: int, seed: int) -> Interval:
    """Percentile-bootstrap interval of the mean of ``d`` (see :func:`mean_difference_interval`)."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 2:
        raise StatsError(f"n_boot must be an integer >= 2, got n_boot={n_boot!r}")
    n, mean = int(d.shape[0]), float(d.mean())
    rng = np.random.default_rng(int(seed))
    means = np.empty(n_boot, dtype=np.float64)
    block = max(1, min(n_boot, 4_000_000 // n))  # keep each index block <= ~32 MB
    for start in range(0, n_boot, block):
        k = min(block, n_boot - start)
        idx = rng.integers(0, n, size=(k, n))
        means[start : start + k] = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1.0 - c) / 2.0, (1.0 + c) / 2.0])
    name = f"percentile bootstrap ({n_boot} resamples, seed {seed})"
    return Interval(mean, float(means.std(ddof=1)), float(lo), float(hi), c, name, n)


def scale_interval(interval: Interval, certificate: float) -> Interval:
    r"""Divide an interval by the certified Lipschitz constant :math:`L \ge \mathrm{Lip}(f)`.

    Since :math:`f / L` is 1-Lipschitz, :math:`(\mathbb E_P f - \mathbb E_Q f) / L \le W_1(P, Q)`,
    so ``estimate / L`` is the lower-bound estimate in W1 units and ``lo / L`` its lower
    confidence limit. ``L > 0`` keeps the order of the end points.

    Parameters
    ----------
    interval : Interval
        From :func:`mean_difference_interval`.
    certificate : float
        The certified constant ``L`` (finite, > 0).

    Returns
    -------
    Interval
        Estimate, stderr, lo and hi divided by ``L``; ``method`` records the division.
    """
    L = float(certificate)
    if not (math.isfinite(L) and L > 0):
        raise StatsError(f"certificate must be a finite positive Lipschitz bound, got certificate={certificate!r}")
    return replace(
        interval,
        estimate=interval.estimate / L,
        stderr=interval.stderr / L,
        lo=interval.lo / L,
        hi=interval.hi / L,
        method=f"{interval.method}, divided by the certificate L = {L:.6g}",
    )
