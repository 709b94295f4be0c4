r"""Statistics of the held-out bound: intervals for :math:`\Delta = \mathbb E_P f - \mathbb E_Q f`.

The held-out estimate is computed from per-sample critic values on two *independent* samples,
:math:`x_1..x_{n_P} \sim P` and :math:`y_1..y_{n_Q} \sim Q`, of possibly different sizes:

.. math::

    \hat\Delta = \bar f_P - \bar f_Q = \frac1{n_P} \sum_i f(x_i) - \frac1{n_Q} \sum_j f(y_j),
    \qquad \mathbb E\, \hat\Delta = \mathbb E_P f - \mathbb E_Q f \le L \, W_1(P, Q),

where :math:`L` certifies :math:`\mathrm{Lip}(f) \le L`. The default intervals are those of a
difference of two independent means (Welch t, a two-sample empirical Bernstein bound, a two-sample
bootstrap): a generator side can then afford many more samples than a finite data side, and each
side's variance is divided by its own size. With ``paired=True`` and :math:`n_P = n_Q = n` the
samples are instead paired index by index, :math:`d_i = f(x_i) - f(y_i)` (i.i.d., since the two
samples are independent), and one-sample intervals for the mean of :math:`d` are used; their
centre is the same :math:`\hat\Delta`.

Values are in the critic's units; :func:`scale_interval` divides by :math:`L` to give W1 units
(Euclidean distance on the flattened samples, in the stated domain). All arithmetic is float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal, Optional, Union

import numpy as np
from torch import Tensor

from wdist.arrays import finite_float64

__all__ = ["Interval", "mean_difference_interval", "scale_interval", "StatsError", "METHODS"]

#: Interval methods (each in a two-sample and a paired form).
METHODS = ("normal", "bernstein", "bootstrap")


class StatsError(ValueError):
    """Bad input to an interval computation; the message names the value."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval.

    Attributes
    ----------
    estimate : float
        The mean difference :math:`\\hat\\Delta = \\bar f_P - \\bar f_Q` (or its scaled version).
    stderr : float
        Its standard error :math:`\\sqrt{s_P^2 / n_P + s_Q^2 / n_Q}` (paired: :math:`s_d / \\sqrt n`;
        bootstrap: the standard deviation of the bootstrap differences).
    lo, hi : float
        Interval end points; :math:`P(lo \\le \\Delta \\le hi) \\ge` ``confidence`` under the
        method's assumptions.
    confidence : float
        Nominal coverage, in (0, 1).
    method : str
        Descriptive name of the method (and its caveats).
    n_p, n_q : int
        Number of critic values on the P side and on the Q side (equal for paired intervals).
    """

    estimate: float
    stderr: float
    lo: float
    hi: float
    confidence: float
    method: str
    n_p: int
    n_q: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Interval":
        """The inverse of ``dataclasses.asdict`` (a record with one size ``n`` was a paired interval)."""
        data = dict(data)
        if "n" in data:
            n = int(data.pop("n"))
            data.setdefault("n_p", n)
            data.setdefault("n_q", n)
        return cls(**data)


def _as_float64(name: str, v: Union[Tensor, np.ndarray, list]) -> np.ndarray:
    arr = finite_float64(name, v, StatsError)
    arr = arr.reshape(-1) if arr.ndim > 1 and max(arr.shape[1:], default=1) == 1 else arr
    if arr.ndim != 1:
        raise StatsError(f"{name} must be 1-D (one critic value per sample), got shape {tuple(arr.shape)}")
    if arr.shape[0] < 2:
        raise StatsError(f"need at least 2 values of {name} for an interval, got n={arr.shape[0]}")
    return arr


def _check_value_range(value_range: Optional[float]) -> Optional[float]:
    if value_range is None:
        return None
    b = float(value_range)
    if not (math.isfinite(b) and b > 0):
        raise StatsError(f"value_range must be a finite positive number, got value_range={value_range!r}")
    return b


def mean_difference_interval(
    fp: Tensor,
    fq: Tensor,
    confidence: float = 0.95,
    method: Literal["normal", "bernstein", "bootstrap"] = "normal",
    value_range: Optional[float] = None,
    n_boot: int = 2000,
    seed: int = 0,
    paired: bool = False,
) -> Interval:
    r"""Confidence interval for :math:`\Delta = \mathbb E_P f - \mathbb E_Q f`.

    (Over 100 lines only because this docstring is the one place that states the math of every
    interval method; the code dispatches to one short function per method.)

    Parameters
    ----------
    fp : (n_P,) Tensor
        Critic values :math:`f(x_i)` on held-out samples of P.
    fq : (n_Q,) Tensor
        Critic values :math:`f(y_j)` on held-out samples of Q, independent of ``fp``.
    confidence : float
        Nominal two-sided coverage :math:`c`, in (0, 1).
    method : {"normal", "bernstein", "bootstrap"}
        Two-sample forms (the default, ``paired=False``), with :math:`s_P^2, s_Q^2` the unbiased
        sample variances and :math:`\mathrm{se}^2 = s_P^2 / n_P + s_Q^2 / n_Q`:

        ``normal``: Welch's t interval [1]_,

        .. math::

            \hat\Delta \pm t_{\nu, (1+c)/2} \, \mathrm{se}, \qquad
            \nu = \frac{\mathrm{se}^4}{\frac{(s_P^2/n_P)^2}{n_P - 1} + \frac{(s_Q^2/n_Q)^2}{n_Q - 1}}

        (Welch–Satterthwaite degrees of freedom [2]_); asymptotically exact for any variances and
        sizes, no finite-sample guarantee.

        ``bernstein``: a two-sample empirical-Bernstein bound. If every value :math:`f(\cdot)`
        lies in an interval of width :math:`b` known a priori, Maurer & Pontil [3]_ (Thm. 4)
        applied to :math:`(f - a)/b \in [0, 1]` gives, with probability at least :math:`1-\delta`,

        .. math::

            \mathbb E_P f \le \bar f_P + h_P(\delta), \qquad
            h_P(\delta) = \sqrt{\frac{2 s_P^2 \ln(2/\delta)}{n_P}} + \frac{7 b \ln(2/\delta)}{3 (n_P - 1)},

        and the same for :math:`-f` (the lower side) and for Q. Then
        :math:`\Delta \le \hat\Delta + h_P + h_Q` unless the upper event of P or the lower event
        of Q fails, and :math:`\Delta \ge \hat\Delta - h_P - h_Q` unless one of the other two
        fails. A union bound over these four events, each at :math:`\delta = (1 - c)/4`, gives

        .. math:: \hat\Delta \pm \bigl(h_P(\delta) + h_Q(\delta)\bigr), \quad \delta = (1-c)/4,

        with coverage at least :math:`c` for every sample size: a finite-sample guarantee, *if*
        ``b`` is known a priori (conservative, and wider than Welch's).

        ``bootstrap``: percentile bootstrap [4]_ of :math:`\bar f_P^* - \bar f_Q^*`, each side
        resampled with replacement independently (``n_boot`` resamples, vectorised).

        Paired forms (``paired=True``, :math:`n_P = n_Q = n`, :math:`d_i = f(x_i) - f(y_i)`):
        ``normal``: :math:`\bar d \pm t_{n-1, (1+c)/2} s_d / \sqrt n`; ``bernstein``:
        :math:`\bar d \pm (\sqrt{2 s_d^2 \ln(2/\delta) / n} + 7 (2b) \ln(2/\delta) / (3(n-1)))`
        with :math:`\delta = (1-c)/2` (the differences lie in an interval of width :math:`2b`);
        ``bootstrap``: percentile bootstrap of :math:`\bar d`.
    value_range : float, optional
        Bernstein only: the width ``b`` of an interval known to contain every critic value
        :math:`f(x)` of either side, e.g. :math:`b = L (hi - lo) \sqrt D` for an L-Lipschitz
        critic on :math:`[lo, hi]^D`, since :math:`|f(x) - f(x')| \le L \|x - x'\|`. When
        ``None``, the observed ranges are used and the method string says the guarantee is then
        only heuristic (the theorem needs a range fixed before seeing the data).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the bootstrap resampling.
    paired : bool
        Pair the two samples index by index (needs equal sizes); the one-sample intervals above.

    Returns
    -------
    Interval
        In the units of ``fp`` and ``fq`` (critic units).

    Raises
    ------
    StatsError
        For a confidence outside (0, 1), fewer than 2 values on a side, non-finite values,
        unequal sizes with ``paired=True``, an unknown method, a non-positive ``value_range`` or
        one smaller than an observed range.

    References
    ----------
    .. [1] B. L. Welch, "The generalization of 'Student's' problem when several different
       population variances are involved", Biometrika 34, 1947.
    .. [2] F. E. Satterthwaite, "An approximate distribution of estimates of variance
       components", Biometrics Bulletin 2, 1946.
    .. [3] A. Maurer, M. Pontil, "Empirical Bernstein bounds and sample variance penalization",
       COLT 2009.
    .. [4] B. Efron, R. Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile method;
       two-sample resampling, ch. 8).
    """
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must be in the open interval (0, 1), got confidence={confidence!r}")
    if method not in METHODS:
        raise StatsError(f"unknown method {method!r}; choose 'normal', 'bernstein' or 'bootstrap'")
    a, b = _as_float64("fp", fp), _as_float64("fq", fq)
    c = float(confidence)
    if paired:
        if a.shape[0] != b.shape[0]:
            raise StatsError(
                f"fp and fq must have the same length for a paired interval, got {a.shape[0]} and {b.shape[0]} "
                "(use the two-sample interval, paired=False, for unequal sizes)"
            )
        d = a - b
        if method == "normal":
            return _paired_normal(d, c)
        if method == "bernstein":
            return _paired_bernstein(d, c, _check_value_range(value_range))
        return _paired_bootstrap(d, c, _check_boot(n_boot), seed)
    if method == "normal":
        return _welch(a, b, c)
    if method == "bernstein":
        return _two_sample_bernstein(a, b, c, _check_value_range(value_range))
    return _two_sample_bootstrap(a, b, c, _check_boot(n_boot), seed)


def _check_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 2:
        raise StatsError(f"n_boot must be an integer >= 2, got n_boot={n_boot!r}")
    return n_boot


def _t_quantile(c: float, df: float) -> float:
    from scipy import stats  # scipy.stats takes ~0.3 s to import: only when an interval is computed

    return float(stats.t.ppf((1.0 + c) / 2.0, df=df))


# -- two independent samples -------------------------------------------------------------------


def _welch(a: np.ndarray, b: np.ndarray, c: float) -> Interval:
    """Welch's t interval of ``mean(a) - mean(b)`` (see :func:`mean_difference_interval`)."""
    n_p, n_q = int(a.shape[0]), int(b.shape[0])
    vp, vq = float(a.var(ddof=1)) / n_p, float(b.var(ddof=1)) / n_q
    se = math.sqrt(vp + vq)
    denom = vp**2 / (n_p - 1) + vq**2 / (n_q - 1)
    df = (vp + vq) ** 2 / denom if denom > 0 else float(n_p + n_q - 2)
    mean = float(a.mean()) - float(b.mean())
    half = _t_quantile(c, df) * se
    name = f"Welch t (two independent samples, Welch-Satterthwaite df = {df:.1f})"
    return Interval(mean, se, mean - half, mean + half, c, name, n_p, n_q)


def _bernstein_half(sd: float, n: int, b: float, delta: float) -> float:
    """Maurer & Pontil's one-sided deviation for ``n`` values in an interval of width ``b``."""
    log_term = math.log(2.0 / delta)
    return math.sqrt(2.0 * sd**2 * log_term / n) + 7.0 * b * log_term / (3.0 * (n - 1))


def _two_sample_bernstein(a: np.ndarray, b: np.ndarray, c: float, value_range: Optional[float]) -> Interval:
    """Two-sample empirical-Bernstein interval (see :func:`mean_difference_interval`)."""
    n_p, n_q = int(a.shape[0]), int(b.shape[0])
    observed = max(float(a.max() - a.min()), float(b.max() - b.min()))
    if value_range is None:
        width = observed
        name = (
            "two-sample empirical Bernstein (Maurer & Pontil 2009, union bound over both sides; range b taken "
            f"from the data = {width:.4g}, not a-priori: heuristic, the theorem's guarantee needs a known range)"
        )
    else:
        width = value_range
        if observed > width * (1 + 1e-12):
            raise StatsError(
                f"value_range={value_range!r} is smaller than the observed range of the critic values "
                f"({observed:.6g}): it cannot be a valid a-priori range"
            )
        name = (
            "two-sample empirical Bernstein (Maurer & Pontil 2009, union bound over both sides; "
            f"a-priori range b = {width:.4g})"
        )
    delta = (1.0 - c) / 4.0
    sp, sq = float(a.std(ddof=1)), float(b.std(ddof=1))
    half = _bernstein_half(sp, n_p, width, delta) + _bernstein_half(sq, n_q, width, delta)
    mean = float(a.mean()) - float(b.mean())
    se = math.sqrt(sp**2 / n_p + sq**2 / n_q)
    return Interval(mean, se, mean - half, mean + half, c, name, n_p, n_q)


def _bootstrap_means(v: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``v``, in blocks of <= ~32 MB of indices."""
    n = int(v.shape[0])
    means = np.empty(n_boot, dtype=np.float64)
    block = max(1, min(n_boot, 4_000_000 // n))
    for start in range(0, n_boot, block):
        k = min(block, n_boot - start)
        means[start : start + k] = v[rng.integers(0, n, size=(k, n))].mean(axis=1)
    return means


def _percentile(values: np.ndarray, c: float) -> tuple[float, float]:
    lo, hi = np.quantile(values, [(1.0 - c) / 2.0, (1.0 + c) / 2.0])
    return float(lo), float(hi)


def _two_sample_bootstrap(a: np.ndarray, b: np.ndarray, c: float, n_boot: int, seed: int) -> Interval:
    """Percentile bootstrap, both sides resampled independently (see :func:`mean_difference_interval`)."""
    rng = np.random.default_rng(int(seed))
    diffs = _bootstrap_means(a, n_boot, rng) - _bootstrap_means(b, n_boot, rng)
    lo, hi = _percentile(diffs, c)
    mean = float(a.mean()) - float(b.mean())
    name = f"two-sample percentile bootstrap (each side resampled independently, {n_boot} resamples, seed {seed})"
    return Interval(mean, float(diffs.std(ddof=1)), lo, hi, c, name, int(a.shape[0]), int(b.shape[0]))


# -- paired samples ------------------------------------------------------------------------------


def _paired_normal(d: np.ndarray, c: float) -> Interval:
    """Student-t interval of the mean of ``d`` (see :func:`mean_difference_interval`)."""
    n, mean = int(d.shape[0]), float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n)
    half = _t_quantile(c, n - 1) * se
    return Interval(mean, se, mean - half, mean + half, c, "paired Student t on d_i = f(x_i) - f(y_i)", n, n)


def _paired_bernstein(d: np.ndarray, c: float, value_range: Optional[float]) -> Interval:
    """Empirical-Bernstein interval of the mean of ``d`` (see :func:`mean_difference_interval`)."""
    n, mean = int(d.shape[0]), float(d.mean())
    sd = float(d.std(ddof=1))
    observed = float(d.max() - d.min())
    if value_range is None:
        width = observed
        name = (
            "paired empirical Bernstein (Maurer & Pontil 2009; range of the differences taken from the data = "
            f"{width:.4g}, not a-priori: heuristic, the theorem's guarantee needs a known range)"
        )
    else:
        width = 2.0 * value_range
        if observed > width * (1 + 1e-12):
            raise StatsError(
                f"value_range={value_range!r} is smaller than half the observed range of the differences "
                f"({observed:.6g}): it cannot be a valid a-priori range"
            )
        name = f"paired empirical Bernstein (Maurer & Pontil 2009; a-priori range of the differences 2b = {width:.4g})"
    half = _bernstein_half(sd, n, width, (1.0 - c) / 2.0)
    return Interval(mean, sd / math.sqrt(n), mean - half, mean + half, c, name, n, n)


def _paired_bootstrap(d: np.ndarray, c: float, n_boot: int, seed: int) -> Interval:
    """Percentile-bootstrap interval of the mean of ``d`` (see :func:`mean_difference_interval`)."""
    n = int(d.shape[0])
    means = _bootstrap_means(d, n_boot, np.random.default_rng(int(seed)))
    lo, hi = _percentile(means, c)
    name = f"paired percentile bootstrap ({n_boot} resamples, seed {seed})"
    return Interval(float(d.mean()), float(means.std(ddof=1)), lo, hi, c, name, n, n)


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
