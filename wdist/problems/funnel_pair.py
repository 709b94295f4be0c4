"""The MinFunnel pairs as a problem: P the ray-monotone move of a base Q, W1 exact by construction.

The potential, the move and why W1 is exact are in :mod:`wdist.problems.funnels`; here the two
sides are drawn (finite item sets from independent base samples, or samplers) and W1 computed.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor

from wdist.problems.base import ToyProblem
from wdist.problems.funnels import MinFunnels, load_parameters, recipe_parameters
from wdist.problems.registry import register_problem
from wdist.sources.base import FiniteSource, LatentSource, Source, SourceError, TensorSource

__all__ = ["FunnelPair", "FunnelSource"]

#: Seed-stream offsets of the pair's own draws (apart from a run's streams).
_Q_ITEMS_OFFSET, _P_ITEMS_OFFSET, _MC_OFFSET = 7_000_003, 7_000_019, 7_000_027


class FunnelSource(Source):
    """P of an infinite funnel pair: T of fresh base samples (the move of :class:`MinFunnels`)."""

    def __init__(self, base: Source, funnels: MinFunnels, domain: tuple[float, float]) -> None:
        self.base, self.funnels = base, funnels
        self.shape, self.domain = tuple(base.shape), domain

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return self.funnels.move(self.base.sample(n, generator).double()).float()

    def describe(self) -> str:
        n, deg = len(self.funnels.biases), self.funnels.deg
        return f"MinFunnel move of {self.base.describe()} ({n} funnels, deg {deg:g})"


class _Cube(Source):
    """Q of the vector pairs: uniform on [-h, h]^D."""

    def __init__(self, dim: int, half_width: float) -> None:
        self.shape, self.h = (int(dim),), float(half_width)
        self.domain = (-self.h, self.h)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        u = torch.rand(n, self.shape[0], generator=generator, dtype=torch.float64)
        return (self.h * (2 * u - 1)).to(torch.float32)

    def describe(self) -> str:
        return f"uniform on [-{self.h:g}, {self.h:g}]^{self.shape[0]}"


@register_problem(pair="funnels")
class FunnelPair(ToyProblem):
    r"""Korotin et al.'s MinFunnel pair: Q a base on :math:`[-h, h]^D`, P its ray-monotone move;
    W1 = E||T(Y) - Y|| exactly (derivation in :mod:`wdist.problems.funnels`).

    Parameters
    ----------
    source : Source, optional
        The base Q: any source whose samples lie in :math:`[-h, h]` (an image data set, a
        tensor file); ``None``: uniform on :math:`[-h, h]^{\text{dim}}` (the paper's vector pairs).
    dim : int
        D of the uniform base (ignored with a ``source``).
    funnels : int
        Number of funnels n.
    deg : float
        The exponent of the move (paper: 8 for vectors, 10 for 1 image funnel, 100 for 16).
    half_width : float
        h (paper: 2.5 for vectors, 1.2 for images).
    centre_range : float, optional
        Centres uniform in :math:`[-a, a]^D`; ``None``: h for the uniform base, the source's
        range otherwise (1 for images in [-1, 1], as in the paper).
    seed : int
        Of the recipe (paper: 987 for vectors, 295 for images).
    items : int, optional
        A finite pair: ``items`` base samples as Q and the moves of ``items`` other base samples
        as P (a data-set base: at most half its items each, from two disjoint halves); ``None``:
        infinite samplers (a data-set base is then split into its two halves).
    samples : int
        Draws of an infinite base for the Monte-Carlo W1 and its interval.
    parameters : str, optional
        A published parameter file (state dict with ``net.centers``, ``net.bias``) instead of the
        recipe.
    """

    def __init__(
        self,
        source: Optional[Source] = None,
        dim: PositiveInt = 64,
        funnels: PositiveInt = 4,
        deg: PositiveFloat = 8.0,
        half_width: PositiveFloat = 2.5,
        centre_range: Optional[PositiveFloat] = None,
        seed: NonNegativeInt = 987,
        items: Optional[PositiveInt] = None,
        samples: PositiveInt = 100_000,
        parameters: Optional[str] = None,
    ) -> None:
        for key, value in (("dim", dim), ("funnels", funnels), ("samples", samples)) + (
            (("items", items),) if items is not None else ()
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SourceError(f"FunnelPair: {key} must be a positive whole number; got {key}={value!r}")
        if isinstance(source, LatentSource):
            raise SourceError(
                f"FunnelPair wraps a data set or an analytic sampler; got the generator {source.describe()}"
            )
        h = float(half_width)
        base = _Cube(int(dim), h) if source is None else source
        if centre_range is None:
            centre_range = h if source is None or source.domain is None else max(map(abs, source.domain))
        d = base.dim
        centres, biases = (
            recipe_parameters(int(funnels), d, float(centre_range), int(seed))
            if parameters is None
            else load_parameters(parameters, int(funnels), d)
        )
        self.funnels = MinFunnels(centres, biases, h, float(deg))
        self.domain = (-h, h)
        self._what = f"{int(funnels)} funnels, deg {float(deg):g}, h {h:g}, " + (
            f"seed {int(seed)} recipe (centres in [-{float(centre_range):g}, {float(centre_range):g}])"
            if parameters is None
            else f"parameters from {parameters}"
        )
        self._set_sides(base, items, int(samples))

    def _set_sides(self, base: Source, items: Optional[int], samples: int) -> None:
        if isinstance(base, FiniteSource):
            data = base.data
            self._check_cube(data, base)
            order = torch.randperm(len(data), generator=torch.Generator().manual_seed(_Q_ITEMS_OFFSET))
            half = len(data) // 2
            if half < 1:
                raise SourceError(f"FunnelPair needs at least 2 items of {base.describe()} (two disjoint halves)")
            if items is not None and items > half:
                raise SourceError(
                    f"FunnelPair: items={items} is more than half the {len(data)} items of {base.describe()} (P and Q "
                    f"come from two disjoint halves); set items <= {half}"
                )
            n = half if items is None else items
            q_items, y_p = data[order[:n]], data[order[half : half + n]].double()
            self._set_finite(base, q_items, y_p)
            return
        if items is None:
            self.q = base if base.domain == self.domain else _Rebound(base, self.domain)
            self.p = FunnelSource(base, self.funnels, self.domain)
            y = base.sample(samples, torch.Generator().manual_seed(_MC_OFFSET)).double()
            self._check_cube(y, base)
            self._w1_from(y, f"Monte-Carlo mean over {samples} base samples")
            return
        q_items = base.sample(items, torch.Generator().manual_seed(_Q_ITEMS_OFFSET))
        y_p = base.sample(items, torch.Generator().manual_seed(_P_ITEMS_OFFSET)).double()
        self._check_cube(q_items, base)
        self._set_finite(base, q_items, y_p)

    def _set_finite(self, base: Source, q_items: Tensor, y_p: Tensor) -> None:
        self._check_cube(y_p, base)
        moved = self.funnels.move(y_p)
        n = len(q_items)
        what = f"{self._what}; {n} + {n} items from independent base samples"
        self.q = TensorSource(q_items, domain=self.domain, description=f"{base.describe()} [{n} items, Q of {what}]")
        self.p = TensorSource(moved.float(), domain=self.domain, description=f"MinFunnel move [{n} items, P of {what}]")
        how = f"mean over the {n} pairs (y, T(y)) behind P's items (Q: {n} independent base samples)"
        self._w1_from(y_p, how, moved)

    def _w1_from(self, y: Tensor, how: str, moved: Optional[Tensor] = None) -> None:
        moved = self.funnels.move(y) if moved is None else moved
        cost = (y.flatten(1) - moved.flatten(1)).norm(dim=1)
        self._w1 = float(cost.mean())
        self._half = 1.96 * float(cost.std()) / math.sqrt(len(cost)) if len(cost) > 1 else 0.0
        self._how = how

    def _check_cube(self, x: Tensor, base: Source) -> None:
        h = self.funnels.half_width
        if x.numel() and float(x.abs().max()) > h:
            raise SourceError(
                f"FunnelPair: {base.describe()} reaches {float(x.abs().max()):.4g}, outside the cube [-{h:g}, {h:g}]^D "
                "the construction moves points in; choose a larger half_width"
            )

    def exact_w1(self) -> float:
        return float(self._w1)

    def exact_w1_method(self) -> str:
        return (
            f"MinFunnel pair (Korotin et al. 2022; {self._what}): W1 = E||T(Y) - Y||, {self._how}; as the W1 of the "
            f"distributions: +-{self._half:.2g} (95%)"
        )

    def describe(self) -> str:
        return f"FunnelPair(P = {self.p.describe()}, Q = {self.q.describe()})"


class _Rebound(Source):
    """A source seen in a wider domain (the funnel cube contains its range)."""

    def __init__(self, base: Source, domain: tuple[float, float]) -> None:
        self.base, self.shape, self.domain = base, tuple(base.shape), domain

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return self.base.sample(n, generator)

    def describe(self) -> str:
        return self.base.describe()
