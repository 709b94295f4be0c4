r"""Pairs (P, Q = T(P)) with exact W1 around any source: known-W1 benchmarks on real images.

Each construction is a map :math:`T` applied to every sample of a base source (Digits, CIFAR10,
STL10, ImageFolder, TensorFile, or an analytic sampler). Its W1 is exact because two certificates
meet:

* a **coupling**: :math:`X \mapsto T(X)` transports P onto Q at cost :math:`\mathbb E\|X - T(X)\|`,
  so :math:`W_1(P, Q) \le \mathbb E\|X - T(X)\|`;
* a **1-Lipschitz critic** :math:`f` with :math:`\mathbb E_P f - \mathbb E_Q f = \mathbb E\|X - T(X)\|`,
  so :math:`W_1(P, Q) \ge` the same number (Kantorovich–Rubinstein).

Every transport (:mod:`wdist.problems.transports`) exposes both (its ``cost`` and its ``critic`` per item),
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
from typing import Literal, Optional, Union

import torch
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor

from wdist.problems.base import ToyProblem
from wdist.problems.registry import register_problem
from wdist.problems.transported import transported
from wdist.problems.transports import (
    DilationMap,
    Pattern,
    TowardAnchors,
    TranslationMap,
    Transport,
    translation_pattern,
)
from wdist.sources.base import FiniteSource, LatentSource, Source, SourceError, TensorSource
from wdist.sources.transforms import check_range

__all__ = ["TransportPair", "TranslatedPair", "DilatedPair", "AnchorPair"]

#: Seed-stream offset of the Monte-Carlo means of an infinite base (apart from a run's streams).
_MC_OFFSET = 5_000_011


class TransportPair(ToyProblem):
    r"""P = a base source, Q = T(P) for a :class:`~wdist.problems.transports.Transport` T, with

    .. math:: W_1(P, T_\# P) = \mathbb E\|X - T(X)\|

    from the transport's two certificates: a closed form, the mean over a finite base's items, or
    a Monte-Carlo mean over draws of an infinite base with its interval. Subclasses set
    ``transport`` and call :meth:`_finish`.

    The arguments every pair takes: ``source``, the base (a data set such as ``Digits``,
    ``CIFAR10``, ``TensorFile``, or an analytic sampler; not a generator); ``domain``, the domain
    of P and Q (the base's when ``None``); and, where W1 is a mean, ``samples``, the draws of an
    infinite base behind it.
    """

    shared_base = True

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
        self.q = transported(self.p, self.transport, domain, images)
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
class TranslatedPair(TransportPair):
    r"""P = a source, Q = P + v: W1 = ||v|| exactly (see :class:`~wdist.problems.transports.TranslationMap`).

    Parameters
    ----------
    source, domain
        The base and the domain of P and Q (:class:`TransportPair`).
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
    """

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
        self.transport = TranslationMap(v, pattern)
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
class DilatedPair(TransportPair):
    r"""P = a source, Q = c + lambda (P - c): W1 = |lambda - 1| E||X - c||
    (see :class:`~wdist.problems.transports.DilationMap`).

    Parameters
    ----------
    source, domain, samples
        The base, the domain of P and Q, and the draws of an infinite base (:class:`TransportPair`).
    factor : float
        lambda > 0, not 1. With ``factor < 1`` (a contraction) and c in the domain, Q stays in the
        (convex) domain; ``factor > 1`` is refused when it leaves it, naming the range.
    center : "mean", "middle" or float
        c: the mean of the base (over its items, or ``samples`` draws), the middle of the domain,
        or this value in every entry.
    """

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
        self.transport = DilationMap(c, float(factor))
        self._finish(source, dom, samples)

    def _fix_hint(self) -> str:
        return "A factor below 1 (a contraction about a point of the domain) always stays inside."


@register_problem(pair="anchors")
class AnchorPair(TransportPair):
    r"""P = a source, Q: each sample moved ``fraction`` of the way to the nearest of ``anchors``
    seeded items of P. W1 = fraction E min_j ||X - a_j|| (see :class:`~wdist.problems.transports.TowardAnchors`); the
    optimal critic is a minimum of cones, nonlinear.

    Parameters
    ----------
    source, domain, samples
        The base, the domain of P and Q, and the draws of an infinite base (:class:`TransportPair`).
    anchors : int
        How many anchors, drawn without replacement from the base's items (or sampled from an
        infinite base) with ``seed``.
    fraction : float
        s in (0, 1].
    seed : int
        Chooses the anchors.
    """

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
