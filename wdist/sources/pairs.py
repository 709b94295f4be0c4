r"""Pairs (P, Q = T(P)) with exact W1 around any source: known-W1 benchmarks on real images.

Each construction is a map :math:`T` applied to every sample of a base source (Digits, CIFAR10,
STL10, ImageFolder, TensorFile, or an analytic sampler). Its W1 is exact because two certificates
meet:

* a **coupling**: :math:`X \mapsto T(X)` transports P onto Q at cost :math:`\mathbb E\|X - T(X)\|`,
  so :math:`W_1(P, Q) \le \mathbb E\|X - T(X)\|`;
* a **1-Lipschitz critic** :math:`f` with :math:`\mathbb E_P f - \mathbb E_Q f = \mathbb E\|X - T(X)\|`,
  so :math:`W_1(P, Q) \ge` the same number (Kantorovich–Rubinstein).

Every transport exposes both (:meth:`Transport.cost` per item, :meth:`Transport.critic` per item),
and the tests check that they agree with each other and with POT's exact OT.

=================  ==============================================  ==============================
construction       T(x)                                            exact W1, optimal critic
=================  ==============================================  ==============================
``translation``    ``x + v`` (v constant, smooth, checkerboard,    ``||v||``; linear
                   seeded signs; scaled to ``norm``)
``dilation``       ``c + lambda (x - c)``                          ``|lambda - 1| E||X - c||``;
                                                                   ``+-||x - c||`` (radial)
``anchors``        ``x + s (a(x) - x)``, ``a(x)`` the nearest of   ``s E min_j ||X - a_j||``;
                   ``k`` anchor items                              ``min_j ||x - a_j||`` (not
                                                                   linear, not radial)
=================  ==============================================  ==============================

On a finite source (a data set) the W1 of the pair is exact: W1 between the N items and their N
images. What an estimate bounds is the W1 of the distributions the items are drawn from: the same
``||v||`` for a translation, and for ``dilation`` / ``anchors`` a mean over the population that the
N items estimate (the method string gives its 95% interval). On an infinite source the mean is a
Monte-Carlo estimate on ``samples`` draws, with its interval.

Domain: a construction whose images would leave the domain (``[-1, 1]`` for images) is refused,
naming the range they reach; ``translation`` can instead map the base affinely into a sub-range
first (``rescale: true``, said in P's description). Dilations with ``factor <= 1`` about a point of
the domain and moves towards anchors are convex combinations of domain points and never leave it.

Distances are Euclidean on the flattened samples, in the domain's units. Q's items are computed in
float64 and stored as float32 (each item then differs from its float64 image by at most
``6e-8 sqrt(d)``, 2e-6 at d = 1024); ``exact_w1`` is the float64 value.

On a finite source P and Q share their split (one permutation splits both, :mod:`wdist.splits`):
Q's select and test items are the images of P's and Q trains on the images of P's training items,
so no held-out item of either side, nor its image, is ever trained on.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Literal, Optional, Union

import torch
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor

from wdist.sources.base import FiniteSource, LatentSource, Source, SourceError, TensorSource, ToyProblem
from wdist.sources.registry import PAIRS, register_problem
from wdist.sources.transforms import check_range

__all__ = [
    "Transport",
    "Translation",
    "Dilation",
    "TowardAnchors",
    "TransportedSource",
    "TranslatedPair",
    "DilatedPair",
    "AnchorPair",
    "PAIRS",
    "translation_pattern",
]

#: Seed-stream offset of the Monte-Carlo means of an infinite base (apart from a run's streams).
_MC_OFFSET = 5_000_011

Pattern = Literal["constant", "smooth", "checkerboard", "signs"]


def _flat(x: Tensor) -> Tensor:
    return x.flatten(1)


class Transport(ABC):
    """A map T of samples with an explicit coupling cost and an explicit 1-Lipschitz critic.

    Subclasses state, in their docstring, why ``critic`` is 1-Lipschitz and why
    ``mean(critic(X)) - mean(critic(T(X))) == mean(cost(X))`` for every sample ``X``.
    All methods take ``(n, *shape)`` tensors of any floating dtype and compute in that dtype.
    """

    #: Short name of the construction (``translation``, ``dilation``, ``anchors``).
    name: str

    @abstractmethod
    def __call__(self, x: Tensor) -> Tensor:
        """T(x), same shape and dtype."""

    @abstractmethod
    def critic(self, x: Tensor) -> Tensor:
        """The optimal 1-Lipschitz critic f at each sample, shape ``(n,)``."""

    def cost(self, x: Tensor) -> Tensor:
        """``||x - T(x)||_2`` per sample, shape ``(n,)``: the coupling's cost of each item."""
        return _flat(x - self(x)).norm(dim=1)

    def closed_form(self) -> Optional[float]:
        """W1 when it does not depend on P (a translation's ``||v||``), else ``None``."""
        return None

    @abstractmethod
    def describe(self) -> str:
        """One line naming T and its parameters."""


def translation_pattern(pattern: str, shape: tuple[int, ...], norm: float, seed: int) -> Tensor:
    r"""The translation vector ``v`` of a pattern, float64, shape ``shape``, with ``||v||_2 = norm``.

    * ``constant``: every entry equal (a brightness shift);
    * ``smooth``: :math:`\cos(\pi a (i + 1/2) / H + \phi) \cos(\pi b (j + 1/2) / W + \psi)` with
      seeded :math:`a, b \in \{1, 2\}` and phases (one or two half-cycles across the image), the same
      on every channel;
    * ``checkerboard``: :math:`(-1)^{i + j}`, the highest spatial frequency;
    * ``signs``: seeded independent :math:`\pm 1` entries (white, every frequency).

    ``smooth`` and ``checkerboard`` need images ``(C, H, W)``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    if pattern == "constant":
        v = torch.ones(shape, dtype=torch.float64)
    elif pattern == "signs":
        v = torch.randint(0, 2, shape, generator=gen).to(torch.float64) * 2 - 1
    elif pattern in ("smooth", "checkerboard"):
        if len(shape) != 3:
            raise SourceError(f"translation pattern {pattern!r} needs images of shape (C, H, W); got {tuple(shape)}")
        c, h, w = shape
        i = torch.arange(h, dtype=torch.float64)[:, None]
        j = torch.arange(w, dtype=torch.float64)[None, :]
        if pattern == "checkerboard":
            plane = 1.0 - 2.0 * ((i + j) % 2)
        else:
            a, b = (int(k) for k in torch.randint(1, 3, (2,), generator=gen))
            phi, psi = (float(p) for p in torch.rand(2, generator=gen, dtype=torch.float64) * 2 * math.pi)
            plane = torch.cos(math.pi * a * (i + 0.5) / h + phi) * torch.cos(math.pi * b * (j + 0.5) / w + psi)
        v = plane.expand(c, h, w).clone()
    else:
        raise SourceError(
            f"unknown translation pattern={pattern!r}; choose one of constant, smooth, checkerboard, signs"
        )
    return v * (norm / v.norm())


class Translation(Transport):
    r"""T(x) = x + v.

    .. math:: W_1(P, P + v) = \|v\|_2

    Critic :math:`f(x) = -\langle x, v\rangle / \|v\|` is linear with gradient of norm 1, so
    1-Lipschitz, and :math:`\mathbb E_P f - \mathbb E_Q f = \langle v, v\rangle / \|v\| = \|v\|`
    for every P. Coupling :math:`x \mapsto x + v` moves every item by exactly :math:`\|v\|`.
    """

    name = "translation"

    def __init__(self, v: Tensor, pattern: str = "given") -> None:
        if not torch.isfinite(v).all() or float(v.norm()) == 0.0:
            raise SourceError(f"translation vector must be finite and non-zero; got norm {float(v.norm())}")
        self.v = v.to(torch.float64)
        self.pattern = pattern

    def __call__(self, x: Tensor) -> Tensor:
        return x + self.v.to(x.dtype)

    def critic(self, x: Tensor) -> Tensor:
        u = (self.v / self.v.norm()).to(x.dtype).reshape(-1)
        return -(_flat(x) @ u)

    def closed_form(self) -> float:
        return float(self.v.norm())

    def describe(self) -> str:
        lo, hi = float(self.v.min()), float(self.v.max())
        return f"translation ({self.pattern}, ||v|| = {float(self.v.norm()):.4g}, entries in [{lo:.3g}, {hi:.3g}])"


class Dilation(Transport):
    r"""T(x) = c + lambda (x - c), a dilation about the point ``c`` by ``factor`` lambda > 0.

    .. math:: W_1(P, T_\# P) = |\lambda - 1|\, \mathbb E \|X - c\|_2

    Coupling :math:`x \mapsto T(x)` moves x by :math:`|\lambda - 1| \|x - c\|`. Critic
    :math:`f(x) = \operatorname{sign}(1 - \lambda) \|x - c\|` is 1-Lipschitz (a norm, by the
    triangle inequality), and :math:`\|T(x) - c\| = \lambda \|x - c\|`, so
    :math:`\mathbb E_P f - \mathbb E_Q f = |1 - \lambda|\, \mathbb E\|X - c\|`: the two agree.
    """

    name = "dilation"

    def __init__(self, center: Tensor, factor: float) -> None:
        if not (math.isfinite(factor) and factor > 0 and factor != 1):
            raise SourceError(f"dilation factor must be positive and not 1 (W1 would be 0); got factor={factor!r}")
        self.center = center.to(torch.float64)
        self.factor = float(factor)

    def __call__(self, x: Tensor) -> Tensor:
        c = self.center.to(x.dtype)
        return c + self.factor * (x - c)

    def critic(self, x: Tensor) -> Tensor:
        sign = 1.0 if self.factor < 1 else -1.0
        return sign * _flat(x - self.center.to(x.dtype)).norm(dim=1)

    def cost(self, x: Tensor) -> Tensor:
        return abs(1.0 - self.factor) * _flat(x - self.center.to(x.dtype)).norm(dim=1)

    def describe(self) -> str:
        return f"dilation by {self.factor:g} about c (||c|| = {float(self.center.norm()):.4g})"


class TowardAnchors(Transport):
    r"""T(x) = x + s (a(x) - x): each sample moves the fraction ``s`` of the way to its nearest anchor.

    With anchors :math:`a_1, \dots, a_k` and :math:`g(x) = \min_j \|x - a_j\|`:

    .. math:: W_1(P, T_\# P) = s\, \mathbb E\, g(X)

    Critic :math:`g` is 1-Lipschitz (a minimum of 1-Lipschitz functions) with
    :math:`\|\nabla g\| = 1` almost everywhere: T moves x along a gradient line of g. Let
    :math:`a_j` be the anchor nearest x (lowest index on ties). Its Voronoi cell
    :math:`V_j = \{y : \|y - a_j\| \le \|y - a_i\|\ \forall i\}` is an intersection of half-spaces,
    so convex; it holds x and :math:`a_j`, hence the segment between them and T(x). So
    :math:`g(T(x)) = \|T(x) - a_j\| = (1 - s) g(x)` and
    :math:`\mathbb E_P g - \mathbb E_Q g = s\, \mathbb E g(X)`, which is the cost
    :math:`\mathbb E\|x - T(x)\| = s\, \mathbb E g(X)` of the coupling. The optimal critic is a
    minimum of cones: neither linear nor radial.
    """

    name = "anchors"

    def __init__(self, anchors: Tensor, fraction: float) -> None:
        if not (math.isfinite(fraction) and 0 < fraction <= 1):
            raise SourceError(f"anchors fraction must be in (0, 1]; got fraction={fraction!r}")
        if anchors.ndim < 2 or anchors.shape[0] < 1:
            raise SourceError(
                f"need at least one anchor of the sample shape; got anchors of shape {tuple(anchors.shape)}"
            )
        self.anchors = anchors.to(torch.float64)
        self.fraction = float(fraction)

    def _nearest(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Index of the nearest anchor and the distance to it, per sample (in chunks of 4096)."""
        a = _flat(self.anchors).to(x.dtype)
        idx, dist = [], []
        for part in _flat(x).split(4096):
            d = torch.cdist(part, a, compute_mode="donot_use_mm_for_euclid_dist")
            m = d.min(dim=1)
            idx.append(m.indices)
            dist.append(m.values)
        return torch.cat(idx), torch.cat(dist)

    def __call__(self, x: Tensor) -> Tensor:
        idx, _ = self._nearest(x)
        target = self.anchors.to(x.dtype)[idx]
        return x + self.fraction * (target - x)

    def critic(self, x: Tensor) -> Tensor:
        return self._nearest(x)[1]

    def cost(self, x: Tensor) -> Tensor:
        return self.fraction * self._nearest(x)[1]

    def describe(self) -> str:
        k = self.anchors.shape[0]
        return f"anchors (each item moved {self.fraction:g} of the way to the nearest of {k} anchor items)"


class TransportedSource(Source):
    """Q = T(P): the images under ``transport`` of the samples of ``base``.

    A finite base gives a finite Q (the images of its items, in the same order); an infinite one
    maps each sample as it is drawn (from the same generator state, so ``Q.sample`` is ``T``
    of the samples ``P.sample`` would give).
    """

    def __init__(
        self,
        base: Source,
        transport: Transport,
        domain: Optional[tuple[float, float]],
        images: Optional[Tensor] = None,
    ) -> None:
        if isinstance(base, LatentSource):
            raise SourceError(
                f"known-W1 pairs wrap a data set or an analytic sampler; got the generator {base.describe()} "
                "(its samples are made on the training device, out of reach of the transport)"
            )
        self.base, self.transport = base, transport
        self.shape, self.domain = tuple(base.shape), domain
        if not isinstance(base, FiniteSource):
            self._data = None
        else:  # ``images``: T of the base's items, when the caller has them already
            self._data = (transport(base.data.double()) if images is None else images).float()

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return self.transport(self.base.sample(n, generator).double()).float()

    def describe(self) -> str:
        return f"{self.transport.describe()} of {self.base.describe()}"


class _TransportedFinite(TransportedSource, FiniteSource):
    """A :class:`TransportedSource` over a finite base: a finite source of the images."""

    @property
    def data(self) -> Tensor:
        assert self._data is not None
        return self._data

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return FiniteSource.sample(self, n, generator)


def _transported(
    base: Source, transport: Transport, domain: Optional[tuple[float, float]], images: Optional[Tensor] = None
) -> TransportedSource:
    cls = _TransportedFinite if isinstance(base, FiniteSource) else TransportedSource
    return cls(base, transport, domain, images)


class _Pair(ToyProblem):
    """Common part: the domain, the base as P, the transport, and W1 from the transport's two
    certificates (closed form, the mean over a finite base, or a Monte-Carlo mean with its CI)."""

    construction: str
    transport: Transport

    def _setup_domain(self, source: Source, domain: Optional[tuple[float, float]]) -> Optional[tuple[float, float]]:
        if isinstance(source, LatentSource):
            raise SourceError(
                f"known-W1 pairs wrap a data set or an analytic sampler; got the generator {source.describe()}"
            )
        if domain is not None:
            return check_range("domain", domain)
        return None if source.domain is None else (float(source.domain[0]), float(source.domain[1]))

    @staticmethod
    def _check_samples(source: Source, samples: int) -> None:
        """An infinite base needs at least 2 draws for a Monte-Carlo W1 with an interval."""
        if isinstance(source, FiniteSource):
            return
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
            raise SourceError(
                f"samples must be a whole number >= 2 (draws of {source.describe()} for the Monte-Carlo W1 and its "
                f"interval); got samples={samples!r}"
            )

    def _base_samples(self, source: Source, samples: int) -> Tensor:
        """All items of a finite base, else ``samples`` draws from a stream of their own; float64."""
        if isinstance(source, FiniteSource):
            return source.data.double()
        if samples < 1:
            return torch.empty((0, *source.shape), dtype=torch.float64)
        return source.sample(int(samples), torch.Generator().manual_seed(_MC_OFFSET)).double()

    def _finish(self, base: Source, domain: Optional[tuple[float, float]], samples: int) -> None:
        """Set P and Q, check Q stays in the domain, and compute W1."""
        x = self._base_samples(base, samples)
        if domain is not None and base.domain is not None:
            lo, hi = float(base.domain[0]), float(base.domain[1])
            if lo < domain[0] or hi > domain[1]:
                raise SourceError(
                    f"the base {base.describe()} lies in [{lo:g}, {hi:g}], outside the pair's domain "
                    f"[{domain[0]:g}, {domain[1]:g}]"
                )
        images = self.transport(x) if isinstance(base, FiniteSource) else None  # T of every item, once
        self._check_reach(images, len(x), base, domain)
        self.p = base
        if domain is not None and base.domain != domain:
            if not isinstance(base, FiniteSource):
                raise SourceError(
                    f"a pair's domain can differ from its base's only for a data set; got {base.describe()}"
                )
            self.p = TensorSource(base.data, domain=domain, description=f"{base.describe()} (in the domain {domain})")
        self.q = _transported(self.p, self.transport, domain, images)
        self._finite = isinstance(base, FiniteSource)
        closed = self.transport.closed_form()
        self._n = len(x)
        if closed is not None:
            self._w1, self._half = closed, 0.0
        else:
            cost = self.transport.cost(x)
            self._w1 = float(cost.mean())
            self._half = 1.96 * float(cost.std()) / math.sqrt(self._n) if self._n > 1 else 0.0

    def _check_reach(
        self, images: Optional[Tensor], n: int, base: Source, domain: Optional[tuple[float, float]]
    ) -> None:
        """Raise :class:`SourceError` naming the range T reaches (``images``: T of the base's ``n``
        items) when it leaves ``domain``."""
        if domain is None or images is None:
            return  # an infinite base: a bounded one would be a generator, which pairs do not wrap
        lo, hi, how = float(images.min()), float(images.max()), f"the {n} items"
        if lo < domain[0] - 1e-12 or hi > domain[1] + 1e-12:
            raise SourceError(
                f"{self.transport.describe()} takes {how} of {base.describe()} to values in [{lo:.4g}, {hi:.4g}], "
                f"outside the domain [{domain[0]:g}, {domain[1]:g}]. {self._fix_hint()}"
            )

    def _fix_hint(self) -> str:
        return "Choose a smaller move, or give the base a narrower range and the pair a wider domain."

    def exact_w1(self) -> float:
        return float(self._w1)

    def exact_w1_method(self) -> str:
        closed = self.transport.closed_form()
        if closed is not None:
            how = "closed form ||v||, for any P"
        elif self._finite:
            how = (
                f"mean transport distance over the {self._n} items, exact for them (the critic and the coupling "
                f"agree); as the mean of the distribution they are drawn from: +-{self._half:.2g} (95%)"
            )
        else:
            how = f"Monte-Carlo mean over {self._n} samples, 95% CI +-{self._half:.2g}"
        return f"{self.transport.describe()}; {how}"

    def describe(self) -> str:
        return f"{type(self).__name__}(Q = {self.q.describe()})"


@register_problem(pair="translation")
class TranslatedPair(_Pair):
    r"""P = a source, Q = P + v: W1 = ||v|| exactly (see :class:`Translation`).

    Parameters
    ----------
    source : Source
        The base (a data set such as ``Digits``, ``CIFAR10``, ``TensorFile``; or an analytic sampler).
    norm : float
        :math:`\|v\|_2`, in the domain's units (the exact W1).
    pattern : {"constant", "smooth", "checkerboard", "signs"}
        The direction of v (:func:`translation_pattern`).
    seed : int
        Seeds the ``smooth`` and ``signs`` patterns.
    rescale : bool
        When P + v would leave the domain, first map the base affinely (one scale and offset for
        every entry) onto the largest sub-range :math:`[lo - \min(v, 0), hi - \max(v, 0)]` that
        keeps P and P + v inside; P's description says so. Otherwise (default) such a pair is an
        error naming the range P + v reaches.
    domain : (float, float), optional
        The domain of P and Q; the base's when ``None``.
    """

    construction = "translation"

    def __init__(
        self,
        source: Source,
        norm: PositiveFloat = 1.0,
        pattern: Pattern = "constant",
        seed: NonNegativeInt = 0,
        rescale: bool = False,
        domain: Optional[tuple[float, float]] = None,
    ) -> None:
        dom = self._setup_domain(source, domain)
        if not (isinstance(norm, (int, float)) and math.isfinite(norm) and norm > 0):
            raise SourceError(f"translation norm must be a positive number; got norm={norm!r}")
        v = translation_pattern(pattern, tuple(source.shape), float(norm), int(seed))
        self.transport = Translation(v, pattern)
        if rescale and dom is not None:
            source = self._rescaled(source, v, dom)
        self._finish(source, dom, 0)

    @staticmethod
    def _rescaled(source: Source, v: Tensor, dom: tuple[float, float]) -> Source:
        if not isinstance(source, FiniteSource):
            raise SourceError(f"rescale needs a data set as the base; got {source.describe()}")
        # 1e-6 inside, so that float32 rounding of the rescaled items cannot push P + v out
        lo, hi = dom[0] - min(float(v.min()), 0.0) + 1e-6, dom[1] - max(float(v.max()), 0.0) - 1e-6
        if not lo < hi:
            raise SourceError(
                f"rescale: P + v cannot fit in [{dom[0]:g}, {dom[1]:g}]: v's entries span [{float(v.min()):.4g}, "
                f"{float(v.max()):.4g}], wider than the domain; choose a smaller norm"
            )
        x = source.data.double()
        a, b = float(x.min()), float(x.max())
        if a >= lo and b <= hi:
            return source
        y = (x - a) / max(b - a, 1e-300) * (hi - lo) + lo
        how = f"rescaled from [{a:.4g}, {b:.4g}] onto [{lo:.4g}, {hi:.4g}] so that P + v stays in {list(dom)}"
        return TensorSource(y.float().clamp_(lo, hi), domain=source.domain, description=f"{source.describe()}, {how}")

    def _fix_hint(self) -> str:
        return "Set rescale: true to map the base into a sub-range that fits first, or choose a smaller norm."


@register_problem(pair="dilation")
class DilatedPair(_Pair):
    r"""P = a source, Q = c + lambda (P - c): W1 = |lambda - 1| E||X - c|| (see :class:`Dilation`).

    Parameters
    ----------
    source : Source
        The base.
    factor : float
        lambda > 0, not 1. With ``factor < 1`` (a contraction) and c in the domain, Q stays in the
        (convex) domain; ``factor > 1`` is refused when it leaves it, naming the range.
    center : "mean", "middle" or float
        c: the mean of the base (over its items, or ``samples`` draws), the middle of the domain,
        or this value in every entry.
    samples : int
        Draws of an infinite base for its mean and for W1 (a Monte-Carlo mean with its interval).
    domain : (float, float), optional
        The domain of P and Q; the base's when ``None``.
    """

    construction = "dilation"

    def __init__(
        self,
        source: Source,
        factor: PositiveFloat = 0.8,
        center: Union[Literal["mean", "middle"], float] = "mean",
        samples: PositiveInt = 100_000,
        domain: Optional[tuple[float, float]] = None,
    ) -> None:
        dom = self._setup_domain(source, domain)
        self._check_samples(source, samples)
        if center == "mean":
            c = self._base_samples(source, samples).mean(dim=0)
        elif center == "middle":
            if dom is None:
                raise SourceError(f"center='middle' needs a bounded domain; {source.describe()} has none")
            c = torch.full(tuple(source.shape), (dom[0] + dom[1]) / 2, dtype=torch.float64)
        elif isinstance(center, (int, float)) and not isinstance(center, bool) and math.isfinite(center):
            c = torch.full(tuple(source.shape), float(center), dtype=torch.float64)
        else:
            raise SourceError(f"dilation center must be 'mean', 'middle' or a number; got center={center!r}")
        self.transport = Dilation(c, float(factor))
        self._finish(source, dom, samples)

    def _fix_hint(self) -> str:
        return "A factor below 1 (a contraction about a point of the domain) always stays inside."


@register_problem(pair="anchors")
class AnchorPair(_Pair):
    r"""P = a source, Q: each sample moved ``fraction`` of the way to the nearest of ``anchors``
    seeded items of P. W1 = fraction E min_j ||X - a_j|| (see :class:`TowardAnchors`); the
    optimal critic is a minimum of cones, nonlinear.

    Parameters
    ----------
    source : Source
        The base.
    anchors : int
        How many anchors, drawn without replacement from the base's items (or sampled from an
        infinite base) with ``seed``.
    fraction : float
        s in (0, 1].
    seed : int
        Chooses the anchors.
    samples : int
        Draws of an infinite base for the Monte-Carlo W1 and its interval.
    domain : (float, float), optional
        The domain of P and Q; the base's when ``None``.
    """

    construction = "anchors"

    def __init__(
        self,
        source: Source,
        anchors: PositiveInt = 8,
        fraction: PositiveFloat = 0.5,
        seed: NonNegativeInt = 0,
        samples: PositiveInt = 100_000,
        domain: Optional[tuple[float, float]] = None,
    ) -> None:
        dom = self._setup_domain(source, domain)
        if isinstance(anchors, bool) or not isinstance(anchors, int) or anchors < 1:
            raise SourceError(f"anchors must be a positive whole number of anchor items; got anchors={anchors!r}")
        self._check_samples(source, samples)
        gen = torch.Generator().manual_seed(int(seed))
        if isinstance(source, FiniteSource):
            if anchors > len(source):
                raise SourceError(f"anchors={anchors} is more than the {len(source)} items of {source.describe()}")
            a = source.data[torch.randperm(len(source), generator=gen)[:anchors]]
        else:
            a = source.sample(int(anchors), gen)
        self.transport = TowardAnchors(a, float(fraction))
        self._finish(source, dom, samples)
