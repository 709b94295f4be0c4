"""Analytic toy distributions: infinite samplers on the CPU.

Every sampler here returns float32 samples of a fixed shape on the CPU, and is a deterministic
function of the ``torch.Generator`` it is given (the same generator state gives the same samples).
They are unbounded analytic distributions: their ``domain`` is ``None``, so any two of them with
the same shape are compatible as P and Q. The toy problems built from them (with their exact W1)
are in :mod:`wdist.problems.toy`.

W1 is measured with the Euclidean (L2) distance on the flattened sample, in the sample's own units.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import numpy as np
import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import Tensor

from wdist.sources.arguments import atoms, check_dim, check_positive, format_vector, ring, vector
from wdist.sources.base import Source, SourceError
from wdist.sources.registry import register_source

__all__ = [
    "VectorSource", "Gaussian", "Uniform", "PointMass", "Sphere", "GaussianMixture", "Distribution1D", "FAMILIES_1D",
    "Family1D",
]  # fmt: skip


def _components(n: int, weights: Tensor, generator: torch.Generator) -> Tensor:
    """Component index of each of ``n`` samples (exact multinomial draws)."""
    if weights.numel() == 1:
        return torch.zeros(n, dtype=torch.long)
    return torch.multinomial(weights, n, replacement=True, generator=generator)



class VectorSource(Source):
    """An analytic sampler of vectors: samples of shape ``(dim,)``, unbounded (``domain`` is ``None``)."""

    dim_: int

    def _set_dim(self, dim: int) -> None:
        self.dim_ = check_dim(int(dim))
        self.shape = (self.dim_,)
        self.domain = None


@register_source
class Gaussian(VectorSource):
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
        self._set_dim(dim)
        self.mean = vector("mean", mean, self.dim_)
        self.std = check_positive("std", std)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        z = torch.randn(n, self.dim_, generator=generator, dtype=torch.float64)
        return (self.mean + self.std * z).to(torch.float32)

    def describe(self) -> str:
        return f"Gaussian(dim={self.dim_}, mean={format_vector(self.mean)}, std={self.std:g})"


@register_source
class Uniform(VectorSource):
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
        self._set_dim(dim)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise SourceError(f"Uniform needs finite low < high, got low={low!r}, high={high!r}")
        self.low, self.high = float(low), float(high)
        self.center = vector("center", center, self.dim_)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        u = torch.rand(n, self.dim_, generator=generator, dtype=torch.float64)
        return (self.low + (self.high - self.low) * u + self.center).to(torch.float32)

    def describe(self) -> str:
        c = "" if not self.center.any() else f", center={format_vector(self.center)}"
        return f"Uniform(dim={self.dim_}, [{self.low:g}, {self.high:g}]^{self.dim_}{c})"


@register_source
class PointMass(VectorSource):
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
        self._set_dim(dim)
        self.points, self.weights = atoms("points", points, weights, self.dim_)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        k = _components(n, self.weights, generator)
        return self.points[k].to(torch.float32)

    def describe(self) -> str:
        if self.points.shape[0] == 1:
            return f"PointMass(dim={self.dim_}, at {format_vector(self.points[0])})"
        return f"PointMass(dim={self.dim_}, {self.points.shape[0]} atoms)"


@register_source
class Sphere(VectorSource):
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
        self._set_dim(dim)
        self.radius = check_positive("radius", radius)
        self.centers, self.weights = atoms("centers", centers, None, self.dim_)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        k = _components(n, self.weights, generator)
        z = torch.randn(n, self.dim_, generator=generator, dtype=torch.float64)
        # z = 0 has probability 0; the clamp only keeps a NaN from ever appearing.
        z = z / z.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        return (self.centers[k] + self.radius * z).to(torch.float32)

    def describe(self) -> str:
        one = self.centers.shape[0] == 1
        where = f"centre {format_vector(self.centers[0])}" if one else f"{self.centers.shape[0]} centres"
        return f"Sphere(dim={self.dim_}, radius={self.radius:g}, {where})"


@register_source
class GaussianMixture(VectorSource):
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
        given = ring(8, 2.0, 0.0) if means is None else means
        self.means, self.weights = atoms("means", given, weights, None if dim is None else check_dim(int(dim)))
        self._set_dim(int(self.means.shape[1]))
        self.std = check_positive("std", std)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        k = _components(n, self.weights, generator)
        z = torch.randn(n, self.dim_, generator=generator, dtype=torch.float64)
        return (self.means[k] + self.std * z).to(torch.float32)

    def describe(self) -> str:
        return f"GaussianMixture(dim={self.dim_}, {self.means.shape[0]} components, std={self.std:g})"


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
