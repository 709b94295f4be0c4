"""Analytic toy problems (P, Q) with their exact W1 where one exists.

W1 is measured with the Euclidean (L2) distance on the flattened sample, in the sample's own units.
P and Q are the analytic samplers of :mod:`wdist.sources.analytic`.

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

from jsonargparse.typing import PositiveFloat, PositiveInt

from wdist.problems.base import ToyProblem
from wdist.problems.exact1d import w1_1d_exact
from wdist.problems.pairs import TransportPair
from wdist.problems.registry import register_problem
from wdist.problems.transports import TranslationMap
from wdist.sources.analytic import Distribution1D, Family1D, Gaussian, GaussianMixture, PointMass, Sphere, Uniform
from wdist.sources.arguments import check_dim, check_positive, format_vector, ring, vector
from wdist.sources.base import Source, SourceError

__all__ = ["Translation", "MassesVsSpheres", "PointVsSphere", "ThreeCones", "GaussianMixtures", "OneDimensional"]


@register_problem
class Translation(TransportPair):
    r"""P = a base distribution, Q = the same distribution translated by ``v``.

    .. math:: W_1(P, P + v) = \|v\|_2

    (the coupling :math:`x \mapsto x + v` costs :math:`\|v\|`, and the 1-Lipschitz critic
    :math:`f(x) = -\langle x, v\rangle / \|v\|` attains it), for any base with a finite mean: the
    known-W1 pair :class:`~wdist.problems.pairs.TranslatedPair` around an analytic base, with ``v``
    given entry by entry.

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
        dim = check_dim(int(dim))
        scale = check_positive("scale", scale)
        if base == "gaussian":
            self.p = Gaussian(dim=dim, std=scale)
        elif base == "uniform":
            self.p = Uniform(dim=dim, low=-scale, high=scale)
        elif base == "sphere":
            self.p = Sphere(dim=dim, radius=scale)
        else:
            raise SourceError(f"unknown base {base!r} for Translation; choose gaussian, uniform or sphere")
        self.base = base
        self.shift = vector("shift", shift, dim, default=[2.0])
        self.transport = TranslationMap(self.shift, f"v = {format_vector(self.shift)}")
        self._finish(self.p, None, 0)

    def describe(self) -> str:
        return f"Translation({self.p.describe()} vs shifted by {format_vector(self.shift)})"


class MassesVsSpheres(ToyProblem):
    r"""Point masses at centres :math:`c_k` (equal weights) against uniform spheres of radius ``r``
    around them (mass :math:`1/k` each), where no point of a sphere is nearer another centre than its
    own (centres at least ``2 r`` apart):

    .. math:: W_1(P, Q) = r

    (the coupling moves every point of a sphere to its centre, at cost r; the 1-Lipschitz critic
    :math:`\min_k \|x - c_k\|` takes the value 0 on P and r on Q, so it attains the same number).
    The toys :class:`PointVsSphere` and :class:`ThreeCones` place the centres.
    """

    shared_base = True

    radius: float

    def _place(self, dim: int, centers: list[list[float]], radius: float) -> None:
        """P and Q for the centres ``centers`` (padded with zeros to ``dim``) and the radius ``radius``."""
        self.radius = radius
        self.p: Source = PointMass(dim=dim, points=centers)
        self.q: Source = Sphere(dim=dim, radius=radius, centers=centers)

    def exact_w1(self) -> float:
        return self.radius

    def exact_w1_method(self) -> str:
        return "closed form r (each sphere's mass moves to its centre; the critic min_k ||x - c_k|| attains it)"


@register_problem
class PointVsSphere(MassesVsSpheres):
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
        self._place(check_dim(int(dim)), [[0.0]], check_positive("radius", radius))

    def describe(self) -> str:
        return f"PointVsSphere(dim={self.p.shape[0]}, radius={self.radius:g})"


@register_problem
class ThreeCones(MassesVsSpheres):
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
        self.spacing = check_positive("spacing", spacing)
        r = check_positive("radius", radius)
        if r > self.spacing / 2:
            raise SourceError(
                f"ThreeCones needs radius <= spacing / 2 for W1 = radius, got radius={radius!r}, spacing={spacing!r}"
            )
        self._place(2, [[-self.spacing, 0.0], [0.0, 0.0], [self.spacing, 0.0]], r)

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
        dim = check_dim(int(dim))
        pm = p_means if p_means is not None else ring(8, 2.0, 0.0)
        qm = q_means if q_means is not None else ring(8, 2.0, math.pi / 8)
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
