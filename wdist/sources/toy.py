"""Analytic toy distributions and toy problems (P, Q) with their exact W1 where one exists.

Every sampler here returns float32 samples of a fixed shape on the CPU, and is a deterministic
function of the ``torch.Generator`` it is given (the same generator state gives the same samples).
Toy sources are unbounded analytic distributions: their ``domain`` is ``None``, so any two of them
with the same shape are compatible as P and Q.

W1 is measured with the Euclidean (L2) distance on the flattened sample, in the sample's own units.

Problems
--------
========================  ======================================================  ==================
problem                   P, Q                                                    exact W1
========================  ======================================================  ==================
``Translation``           base, base + v                                          ``||v||``
``PointVsSphere``         point mass at 0, uniform on the sphere of radius r      ``r``
``ThreeCones``            3 point masses, unit circles around them (2-D)          ``radius`` (1)
``GaussianMixtures``      two Gaussian mixtures                                   none (use POT)
``OneDimensional``        two 1-D distributions (normal, uniform, laplace, ...)   ``∫|F_P - F_Q|``
========================  ======================================================  ==================
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import numpy as np
import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import Tensor

from wdist.sources.base import Source, SourceError, ToyProblem
from wdist.sources.registry import register_problem, register_source

__all__ = [
    # sources
    "Gaussian",
    "Uniform",
    "PointMass",
    "Sphere",
    "GaussianMixture",
    "Distribution1D",
    "Shifted",
    # problems
    "Translation",
    "PointVsSphere",
    "ThreeCones",
    "GaussianMixtures",
    "OneDimensional",
    "FAMILIES_1D",
    "Family1D",
    "w1_1d_exact",
]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _check_dim(dim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise SourceError(f"dim must be a positive integer, got dim={dim!r}")
    return dim


def _check_positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise SourceError(f"{name} must be a finite positive number, got {name}={value!r}")
    return float(value)


def _vector(name: str, values: Optional[list[float]], dim: int, default: Optional[list[float]] = None) -> Tensor:
    """A float64 vector of length ``dim`` from a (possibly shorter) list, padded with zeros."""
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


def _points(name: str, points: list[list[float]], dim: Optional[int]) -> Tensor:
    """A ``(k, dim)`` float64 matrix of points (each padded with zeros to ``dim``)."""
    if not points:
        raise SourceError(f"{name} must list at least one point, got {points!r}")
    if dim is None:
        dim = max(len(p) for p in points)
    return torch.stack([_vector(f"{name}[{i}]", list(p), dim) for i, p in enumerate(points)])


def _weights(name: str, weights: Optional[list[float]], k: int) -> Tensor:
    """Normalised mixture weights (equal when ``None``)."""
    if weights is None:
        return torch.full((k,), 1.0 / k, dtype=torch.float64)
    w = torch.tensor([float(v) for v in weights], dtype=torch.float64)
    if w.numel() != k or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise SourceError(f"{name} must be {k} non-negative finite numbers with a positive sum, got {weights!r}")
    return w / w.sum()


def _components(n: int, weights: Tensor, generator: torch.Generator) -> Tensor:
    """Component index of each of ``n`` samples (exact multinomial draws)."""
    if weights.numel() == 1:
        return torch.zeros(n, dtype=torch.long)
    return torch.multinomial(weights, n, replacement=True, generator=generator)


def _ring(k: int, radius: float, phase: float) -> list[list[float]]:
    """``k`` points evenly spaced on a circle of ``radius`` in the plane, starting at angle ``phase``."""
    return [
        [radius * math.cos(phase + 2 * math.pi * i / k), radius * math.sin(phase + 2 * math.pi * i / k)]
        for i in range(k)
    ]


def _fmt(v: Tensor) -> str:
    """A vector for descriptions: all entries when few, else the constant or the first and last few."""
    if v.numel() > 8:
        if bool((v == v[0]).all()):
            return f"[{float(v[0]):g}] * {v.numel()}"
        head = ", ".join(f"{float(x):g}" for x in v[:3])
        tail = ", ".join(f"{float(x):g}" for x in v[-2:])
        return f"[{head}, ..., {tail}] ({v.numel()} entries)"
    return "[" + ", ".join(f"{float(x):g}" for x in v) + "]"


# --------------------------------------------------------------------------------------------
# plain sources
# --------------------------------------------------------------------------------------------


@register_source
class Gaussian(Source):
    r"""Isotropic Gaussian :math:`\mathcal N(\mu, \sigma^2 I_d)`.

    Parameters
    ----------
    dim : int
        Dimension ``d``; samples have shape ``(d,)``.
    mean : list of float, optional
        The mean ``mu`` (padded with zeros up to ``dim``); the origin when ``None``.
    std : float
        Standard deviation ``sigma`` of every coordinate.
    """

    def __init__(self, dim: PositiveInt = 2, mean: Optional[list[float]] = None, std: PositiveFloat = 1.0) -> None:
        self.dim_ = _check_dim(int(dim))
        self.mean = _vector("mean", mean, self.dim_)
        self.std = _check_positive("std", std)
        self.shape = (self.dim_,)
        self.domain = None

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        z = torch.randn(n, self.dim_, generator=generator, dtype=torch.float64)
        return (self.mean + self.std * z).to(torch.float32)

    def describe(self) -> str:
        return f"Gaussian(dim={self.dim_}, mean={_fmt(self.mean)}, std={self.std:g})"


@register_source
class Uniform(Source):
    r"""Uniform distribution on the cube :math:`[a, b]^d + c`.

    Parameters
    ----------
    dim : int
        Dimension ``d``.
    low, high : float
        Each coordinate is uniform on ``[low, high]`` (before the offset).
    center : list of float, optional
        An offset ``c`` added to every sample (padded with zeros); none when ``None``.
    """

    def __init__(
        self, dim: PositiveInt = 2, low: float = -1.0, high: float = 1.0, center: Optional[list[float]] = None
    ) -> None:
        self.dim_ = _check_dim(int(dim))
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise SourceError(f"Uniform needs finite low < high, got low={low!r}, high={high!r}")
        self.low, self.high = float(low), float(high)
        self.center = _vector("center", center, self.dim_)
        self.shape = (self.dim_,)
        self.domain = None

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        u = torch.rand(n, self.dim_, generator=generator, dtype=torch.float64)
        return (self.low + (self.high - self.low) * u + self.center).to(torch.float32)

    def describe(self) -> str:
        c = "" if not self.center.any() else f", center={_fmt(self.center)}"
        return f"Uniform(dim={self.dim_}, [{self.low:g}, {self.high:g}]^{self.dim_}{c})"


@register_source
class PointMass(Source):
    r"""A point mass, or a discrete distribution on several points.

    .. math:: P = \sum_k w_k \, \delta_{x_k}

    Parameters
    ----------
    dim : int
        Dimension; the points are padded with zeros up to it.
    points : list of list of float, optional
        The atoms ``x_k``; a single atom at the origin when ``None``.
    weights : list of float, optional
        Their weights (normalised); equal when ``None``.
    """

    def __init__(
        self,
        dim: PositiveInt = 2,
        points: Optional[list[list[float]]] = None,
        weights: Optional[list[float]] = None,
    ) -> None:
        self.dim_ = _check_dim(int(dim))
        self.points = _points("points", points if points is not None else [[0.0]], self.dim_)
        self.weights = _weights("weights", weights, self.points.shape[0])
        self.shape = (self.dim_,)
        self.domain = None

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        k = _components(n, self.weights, generator)
        return self.points[k].to(torch.float32)

    def describe(self) -> str:
        if self.points.shape[0] == 1:
            return f"PointMass(dim={self.dim_}, at {_fmt(self.points[0])})"
        return f"PointMass(dim={self.dim_}, {self.points.shape[0]} atoms)"


@register_source
class Sphere(Source):
    r"""Uniform distribution on a sphere :math:`\{x : \|x - c\| = r\}`, or a mixture of such spheres.

    Sampled as :math:`c_k + r\, z / \|z\|` with :math:`z \sim \mathcal N(0, I_d)` (exactly uniform on
    the sphere). In 2-D the sphere is a circle.

    Parameters
    ----------
    dim : int
        Dimension ``d`` of the ambient space (the sphere is ``(d-1)``-dimensional), ``d >= 1``
        (in 1-D the "sphere" is the two points ``c ± r``).
    radius : float
        The radius ``r``.
    centers : list of list of float, optional
        Centres ``c_k`` of the spheres (equal weights); one sphere at the origin when ``None``.
    """

    def __init__(
        self, dim: PositiveInt = 2, radius: PositiveFloat = 1.0, centers: Optional[list[list[float]]] = None
    ) -> None:
        self.dim_ = _check_dim(int(dim))
        self.radius = _check_positive("radius", radius)
        self.centers = _points("centers", centers if centers is not None else [[0.0]], self.dim_)
        self.weights = _weights("weights", None, self.centers.shape[0])
        self.shape = (self.dim_,)
        self.domain = None

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        k = _components(n, self.weights, generator)
        z = torch.randn(n, self.dim_, generator=generator, dtype=torch.float64)
        # z = 0 has probability 0; the clamp only keeps a NaN from ever appearing.
        z = z / z.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        return (self.centers[k] + self.radius * z).to(torch.float32)

    def describe(self) -> str:
        where = f"centre {_fmt(self.centers[0])}" if self.centers.shape[0] == 1 else f"{self.centers.shape[0]} centres"
        return f"Sphere(dim={self.dim_}, radius={self.radius:g}, {where})"


@register_source
class GaussianMixture(Source):
    r"""Mixture of isotropic Gaussians :math:`\sum_k w_k \mathcal N(\mu_k, \sigma^2 I_d)`.

    Parameters
    ----------
    means : list of list of float, optional
        Component means ``mu_k`` (padded with zeros up to ``dim``); when ``None``, 8 components
        on a circle of radius 2 in the first two coordinates.
    std : float
        Common standard deviation ``sigma``.
    weights : list of float, optional
        Component weights (normalised); equal when ``None``.
    dim : int, optional
        Dimension; the longest mean's length when ``None``.
    """

    def __init__(
        self,
        means: Optional[list[list[float]]] = None,
        std: PositiveFloat = 0.1,
        weights: Optional[list[float]] = None,
        dim: Optional[PositiveInt] = None,
    ) -> None:
        if means is None:
            means = _ring(8, 2.0, 0.0)
        self.means = _points("means", means, None if dim is None else _check_dim(int(dim)))
        self.dim_ = int(self.means.shape[1])
        self.std = _check_positive("std", std)
        self.weights = _weights("weights", weights, self.means.shape[0])
        self.shape = (self.dim_,)
        self.domain = None

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        k = _components(n, self.weights, generator)
        z = torch.randn(n, self.dim_, generator=generator, dtype=torch.float64)
        return (self.means[k] + self.std * z).to(torch.float32)

    def describe(self) -> str:
        return f"GaussianMixture(dim={self.dim_}, {self.means.shape[0]} components, std={self.std:g})"


class Shifted(Source):
    """Another source translated by a fixed vector ``v`` (samples ``x + v``).

    Used by :class:`Translation`; it is not a configurable class on its own (it wraps a source).
    """

    def __init__(self, base: Source, shift: Tensor) -> None:
        if len(base.shape) != 1 or shift.shape != (base.shape[0],):
            raise SourceError(
                f"shift of shape {tuple(shift.shape)} does not match {base.describe()} of shape {base.shape}"
            )
        self.base = base
        self.shift = shift.to(torch.float64)
        self.shape = base.shape
        self.domain = None

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return (self.base.sample(n, generator).double() + self.shift).to(torch.float32)

    def describe(self) -> str:
        return f"{self.base.describe()} + {_fmt(self.shift)}"


# --------------------------------------------------------------------------------------------
# 1-D distributions (scipy), exact W1 by quadrature
# --------------------------------------------------------------------------------------------

#: Names of the supported 1-D families.
Family1D = Literal["normal", "uniform", "laplace", "logistic", "exponential"]

#: 1-D families: name -> parameter names with their defaults.
FAMILIES_1D: dict[str, dict[str, float]] = {
    "normal": {"loc": 0.0, "scale": 1.0},
    "uniform": {"low": 0.0, "high": 1.0},
    "laplace": {"loc": 0.0, "scale": 1.0},
    "logistic": {"loc": 0.0, "scale": 1.0},
    "exponential": {"loc": 0.0, "scale": 1.0},
}


def _frozen_1d(family: str, params: dict[str, float]):  # -> scipy.stats frozen distribution
    from scipy import stats

    if family == "normal":
        return stats.norm(loc=params["loc"], scale=params["scale"])
    if family == "uniform":
        return stats.uniform(loc=params["low"], scale=params["high"] - params["low"])
    if family == "laplace":
        return stats.laplace(loc=params["loc"], scale=params["scale"])
    if family == "logistic":
        return stats.logistic(loc=params["loc"], scale=params["scale"])
    if family == "exponential":
        return stats.expon(loc=params["loc"], scale=params["scale"])
    raise SourceError(f"unknown 1-D family {family!r}; choose one of {sorted(FAMILIES_1D)}")


@register_source
class Distribution1D(Source):
    """A 1-D distribution from a named family, sampled by inverting its CDF; shape ``(1,)``.

    Parameters
    ----------
    family : str
        One of ``normal`` (loc, scale), ``uniform`` (low, high), ``laplace`` (loc, scale),
        ``logistic`` (loc, scale), ``exponential`` (loc, scale).
    params : dict of str to float, optional
        The family's parameters; missing ones take the defaults in ``FAMILIES_1D``.

    Notes
    -----
    Samples are :math:`F^{-1}(u)` with :math:`u` uniform (float64, drawn from the generator) and
    :math:`F^{-1}` scipy's exact quantile function, so they follow the distribution exactly (up to
    float32 rounding of the output).
    """

    def __init__(self, family: Family1D = "normal", params: Optional[dict[str, float]] = None) -> None:
        if family not in FAMILIES_1D:
            raise SourceError(f"unknown 1-D family {family!r}; choose one of {sorted(FAMILIES_1D)}")
        given = dict(params or {})
        unknown = sorted(set(given) - set(FAMILIES_1D[family]))
        if unknown:
            raise SourceError(
                f"family {family!r} has parameters {sorted(FAMILIES_1D[family])}, got unknown {unknown} in {given!r}"
            )
        full = {**FAMILIES_1D[family], **{k: float(v) for k, v in given.items()}}
        if not all(math.isfinite(v) for v in full.values()):
            raise SourceError(f"{family} parameters must be finite, got {full!r}")
        if "scale" in full and full["scale"] <= 0:
            raise SourceError(f"{family} needs scale > 0, got scale={full['scale']!r}")
        if family == "uniform" and not full["low"] < full["high"]:
            raise SourceError(f"uniform needs low < high, got low={full['low']!r}, high={full['high']!r}")
        self.family = family
        self.params = full
        self.dist = _frozen_1d(family, full)
        self.shape = (1,)
        self.domain = None

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        u = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
        tiny = np.finfo(np.float64).tiny
        u = np.clip(u, tiny, 1.0 - np.finfo(np.float64).eps / 2)
        x = self.dist.ppf(u)
        return torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32).reshape(n, 1)

    def describe(self) -> str:
        ps = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.family}({ps})"


def w1_1d_exact(p: Distribution1D, q: Distribution1D) -> tuple[float, float]:
    r"""Exact W1 between two 1-D distributions, and the quadrature's error estimate.

    .. math:: W_1(P, Q) = \int_{-\infty}^{\infty} |F_P(x) - F_Q(x)| \, dx

    Computed with ``scipy.integrate.quad`` on the core interval (where either distribution has
    all but 1e-14 of its mass, split at the support ends and quartiles) plus the two infinite
    tails, each integrated separately. When P and Q are the same location-scale family with the
    same scale, the closed form ``|loc_P - loc_Q|`` (shift of the whole distribution) is used.

    Returns
    -------
    value : float
        W1 in the units of the samples.
    abserr : float
        The summed absolute error estimates of the quadratures (0 for the closed form).
    """
    from scipy import integrate

    if p.family == q.family:
        if p.family == "uniform":
            wp, wq = p.params["high"] - p.params["low"], q.params["high"] - q.params["low"]
            if wp == wq:
                return abs(p.params["low"] - q.params["low"]), 0.0
        elif p.params["scale"] == q.params["scale"]:
            return abs(p.params["loc"] - q.params["loc"]), 0.0

    fp, fq = p.dist, q.dist

    def g(x: float) -> float:
        return abs(float(fp.cdf(x)) - float(fq.cdf(x)))

    eps = 1e-14
    lo = float(min(fp.ppf(eps), fq.ppf(eps)))
    hi = float(max(fp.isf(eps), fq.isf(eps)))
    marks = sorted(
        {
            float(v)
            for d in (fp, fq)
            for v in (*d.support(), d.ppf(0.25), d.median(), d.ppf(0.75))
            if math.isfinite(float(v)) and lo < float(v) < hi
        }
    )
    total, err = 0.0, 0.0
    val, e = integrate.quad(g, lo, hi, points=marks or None, limit=500, epsabs=1e-13, epsrel=1e-12)
    total, err = total + val, err + e
    for a, b in ((-math.inf, lo), (hi, math.inf)):
        val, e = integrate.quad(g, a, b, limit=200, epsabs=1e-14)
        total, err = total + val, err + e
    return float(total), float(err)


# --------------------------------------------------------------------------------------------
# problems
# --------------------------------------------------------------------------------------------


@register_problem
class Translation(ToyProblem):
    r"""P = a base distribution, Q = the same distribution translated by ``v``.

    .. math:: W_1(P, P + v) = \|v\|_2

    (the coupling :math:`x \mapsto x + v` costs :math:`\|v\|`, and the 1-Lipschitz critic
    :math:`f(x) = -\langle x, v\rangle / \|v\|` attains it), for any base with a finite mean.

    Parameters
    ----------
    base : {"gaussian", "uniform", "sphere"}
        ``gaussian``: :math:`\mathcal N(0, \text{scale}^2 I)`; ``uniform``: the cube
        :math:`[-\text{scale}, \text{scale}]^d`; ``sphere``: uniform on the sphere of radius ``scale``.
    dim : int
        Dimension ``d``.
    shift : list of float, optional
        The translation ``v`` (padded with zeros up to ``dim``); ``[2.0]`` (i.e. ``2 e_1``) when ``None``.
    scale : float
        Spread of the base distribution.
    """

    def __init__(
        self,
        base: Literal["gaussian", "uniform", "sphere"] = "gaussian",
        dim: PositiveInt = 2,
        shift: Optional[list[float]] = None,
        scale: PositiveFloat = 1.0,
    ) -> None:
        dim = _check_dim(int(dim))
        scale = _check_positive("scale", scale)
        if base == "gaussian":
            self.p: Source = Gaussian(dim=dim, std=scale)
        elif base == "uniform":
            self.p = Uniform(dim=dim, low=-scale, high=scale)
        elif base == "sphere":
            self.p = Sphere(dim=dim, radius=scale)
        else:
            raise SourceError(f"unknown base {base!r} for Translation; choose gaussian, uniform or sphere")
        self.base = base
        self.shift = _vector("shift", shift, dim, default=[2.0])
        self.q = Shifted(self.p, self.shift)

    def exact_w1(self) -> float:
        return float(self.shift.norm())

    def exact_w1_method(self) -> str:
        return "closed form ||v|| (W1 of a translation)"

    def describe(self) -> str:
        return f"Translation({self.p.describe()} vs shifted by {_fmt(self.shift)})"


@register_problem
class PointVsSphere(ToyProblem):
    r"""P = a point mass at 0, Q = uniform on the sphere of radius ``r`` around it.

    .. math:: W_1(\delta_0, \mathrm{Unif}(r S^{d-1})) = r

    (the only coupling sends all mass from 0, every point being at distance ``r``).

    Parameters
    ----------
    dim : int
        Dimension ``d``.
    radius : float
        The radius ``r``.
    """

    def __init__(self, dim: PositiveInt = 128, radius: PositiveFloat = 1.0) -> None:
        dim = _check_dim(int(dim))
        self.radius = _check_positive("radius", radius)
        self.p: Source = PointMass(dim=dim)
        self.q: Source = Sphere(dim=dim, radius=self.radius)

    def exact_w1(self) -> float:
        return self.radius

    def exact_w1_method(self) -> str:
        return "closed form r (every point of the sphere is at distance r from the point mass)"

    def describe(self) -> str:
        return f"PointVsSphere(dim={self.p.shape[0]}, radius={self.radius:g})"


@register_problem
class ThreeCones(ToyProblem):
    r"""The 2-D problem of Anil et al. (2019): three point masses against circles around them.

    P puts mass 1/3 on each of :math:`(-s, 0), (0, 0), (s, 0)`; Q is uniform on the circles of
    radius ``r`` around these points (mass 1/3 each). The optimal critic is a sum of three cones
    :math:`f(x) = \min_k \|x - c_k\|` (up to sign), and for :math:`r \le s/2`

    .. math:: W_1(P, Q) = r.

    Parameters
    ----------
    spacing : float
        Distance ``s`` between neighbouring centres (2 in the paper).
    radius : float
        Circle radius ``r`` (1 in the paper); must satisfy ``r <= s / 2``.

    References
    ----------
    .. [1] C. Anil, J. Lucas, R. Grosse, "Sorting out Lipschitz function approximation",
       ICML 2019.
    """

    def __init__(self, spacing: PositiveFloat = 2.0, radius: PositiveFloat = 1.0) -> None:
        self.spacing = _check_positive("spacing", spacing)
        self.radius = _check_positive("radius", radius)
        if self.radius > self.spacing / 2:
            raise SourceError(
                f"ThreeCones needs radius <= spacing / 2 for W1 = radius, got radius={radius!r}, spacing={spacing!r}"
            )
        centers = [[-self.spacing, 0.0], [0.0, 0.0], [self.spacing, 0.0]]
        self.p: Source = PointMass(dim=2, points=centers)
        self.q: Source = Sphere(dim=2, radius=self.radius, centers=centers)

    def exact_w1(self) -> float:
        return self.radius

    def exact_w1_method(self) -> str:
        return "closed form r (each circle's mass moves to its centre; the critic min_k ||x - c_k|| attains it)"

    def describe(self) -> str:
        return f"ThreeCones(spacing={self.spacing:g}, radius={self.radius:g})"


@register_problem
class GaussianMixtures(ToyProblem):
    """Two Gaussian mixtures; no closed form (the reference is POT's exact OT on samples).

    Defaults: P has 8 components on a ring of radius 2, Q 8 components on the same ring rotated
    by half a step (22.5 degrees), both with standard deviation 0.2, in the first two coordinates
    (the means are padded with zeros up to ``dim``).

    Parameters
    ----------
    dim : int
        Dimension (>= the length of the given means).
    p_means, q_means : list of list of float, optional
        Component means of P and Q.
    std : float
        Standard deviation of every component.
    p_weights, q_weights : list of float, optional
        Mixture weights; equal when ``None``.
    """

    def __init__(
        self,
        dim: PositiveInt = 2,
        p_means: Optional[list[list[float]]] = None,
        q_means: Optional[list[list[float]]] = None,
        std: PositiveFloat = 0.2,
        p_weights: Optional[list[float]] = None,
        q_weights: Optional[list[float]] = None,
    ) -> None:
        dim = _check_dim(int(dim))
        pm = p_means if p_means is not None else _ring(8, 2.0, 0.0)
        qm = q_means if q_means is not None else _ring(8, 2.0, math.pi / 8)
        self.p: Source = GaussianMixture(pm, std=std, weights=p_weights, dim=dim)
        self.q: Source = GaussianMixture(qm, std=std, weights=q_weights, dim=dim)

    def exact_w1(self) -> None:
        return None

    def describe(self) -> str:
        return f"GaussianMixtures({self.p.describe()} vs {self.q.describe()})"


@register_problem
class OneDimensional(ToyProblem):
    r"""A pair of 1-D distributions (shape ``(1,)``) with W1 computed exactly by scipy.

    .. math:: W_1(P, Q) = \int_{\mathbb R} |F_P(x) - F_Q(x)| \, dx

    computed by numerical integration of the CDFs (``scipy.integrate.quad``, absolute error
    below 1e-9 for the supported families), or in closed form for a pure shift.

    Parameters
    ----------
    p, q : str
        Families of P and Q: ``normal``, ``uniform``, ``laplace``, ``logistic``, ``exponential``.
    p_params, q_params : dict of str to float, optional
        Their parameters (``loc``/``scale``, or ``low``/``high`` for uniform); defaults:
        P = normal(0, 1), Q = normal(loc=1, scale=2).
    """

    def __init__(
        self,
        p: Family1D = "normal",
        q: Family1D = "normal",
        p_params: Optional[dict[str, float]] = None,
        q_params: Optional[dict[str, float]] = None,
    ) -> None:
        if q_params is None and q == "normal":
            q_params = {"loc": 1.0, "scale": 2.0}
        self.p: Distribution1D = Distribution1D(p, p_params)
        self.q: Distribution1D = Distribution1D(q, q_params)
        self._value, self._err = w1_1d_exact(self.p, self.q)

    def exact_w1(self) -> float:
        return self._value

    def exact_w1_method(self) -> str:
        if self._err == 0.0:
            return "closed form |loc_P - loc_Q| (pure shift, 1-D)"
        return f"1-D: integral of |F_P - F_Q| by scipy.integrate.quad (abs. error estimate {self._err:.1e})"

    def describe(self) -> str:
        return f"OneDimensional({self.p.describe()} vs {self.q.describe()})"
