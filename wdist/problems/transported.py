"""Q = T(P) as a source: the images under a transport of the samples of a base source."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from wdist.problems.transports import Transport
from wdist.sources.base import FiniteSource, LatentSource, Source, SourceError

__all__ = ["TransportedSource", "transported"]


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


def transported(
    base: Source, transport: Transport, domain: Optional[tuple[float, float]], images: Optional[Tensor] = None
) -> TransportedSource:
    """Q = T(``base``) (``images``: T of a finite base's items, when the caller has them already):
    a finite source over a finite base, else a sampler."""
    cls = _TransportedFinite if isinstance(base, FiniteSource) else TransportedSource
    return cls(base, transport, domain, images)
