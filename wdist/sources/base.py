"""What a source of samples is: the contract every P and Q honours.

A *source* yields samples of one fixed shape in one stated domain. Three flavours:

* analytic samplers (toy distributions): infinite, sampled on the CPU from a ``torch.Generator``;
* finite data sets (digits, CIFAR-10, tensor files, image folders): a tensor of all items in the
  domain; training draws from a training part, held-out evaluation from a disjoint part;
* frozen generators: infinite, sampled on the training device from latent vectors (the latent
  vectors of the held-out set are drawn on the CPU, so the held-out set is the same whatever the
  device or the number of processes).

A *toy problem* is a pair (P, Q) with, where one exists, the closed-form W1.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["Source", "FiniteSource", "LatentSource", "ToyProblem", "SourceError", "check_compatible"]


class SourceError(ValueError):
    """A source was configured or used wrongly; the message names the value and what was expected."""


class Source(ABC):
    """A distribution we can sample from.

    Attributes
    ----------
    shape : tuple of int
        Shape of one sample (no batch dimension), e.g. ``(2,)`` or ``(3, 32, 32)``.
    domain : (float, float) or None
        Value range every sample lies in (``(-1.0, 1.0)`` for images); ``None`` for unbounded
        analytic distributions.
    """

    shape: tuple[int, ...]
    domain: Optional[tuple[float, float]] = None

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` i.i.d. samples, float32, shape ``(n, *shape)``, on the CPU, deterministic in ``generator``."""

    def describe(self) -> str:
        """One line saying what the source is (shown in results and tables)."""
        return type(self).__name__

    @property
    def dim(self) -> int:
        """Dimension of the flattened sample, the space W1 is measured in."""
        return math.prod(self.shape)


class FiniteSource(Source):
    """A finite data set held as one tensor, already mapped into the domain.

    ``split(n_heldout, generator)`` returns a training view and a held-out tensor that share no
    item, so the held-out estimate is unbiased for the trained critic.
    """

    @property
    @abstractmethod
    def data(self) -> Tensor:
        """All items, float32, shape ``(N, *shape)``, in ``domain``."""

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        idx = torch.randint(len(self), (n,), generator=generator)
        return self.data[idx]


class LatentSource(Source):
    """A source that maps latent vectors through a frozen ``nn.Module`` on the training device.

    The module is registered inside the training system, so it moves with the critic; sampling
    happens there in eval mode without gradients.
    """

    latent_dim: int

    @property
    @abstractmethod
    def module(self) -> nn.Module:
        """The frozen network mapping latents to samples in ``domain`` (with the range map applied)."""

    @abstractmethod
    def sample_latent(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` latent vectors on the CPU, shape ``(n, latent_dim)``."""

    def decode(self, z: Tensor) -> Tensor:
        """Samples from latents, on ``z``'s device, without gradients."""
        with torch.no_grad():
            return self.module(z)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        z = self.sample_latent(n, generator)
        dev = next(iter(self.module.parameters()), torch.empty(0)).device
        return self.decode(z.to(dev)).cpu()


class ToyProblem(ABC):
    """A pair of analytic distributions (P, Q), with the closed-form W1 where one exists."""

    p: Source
    q: Source

    @abstractmethod
    def exact_w1(self) -> Optional[float]:
        """The closed-form (or exactly computable, e.g. 1-D) W1(P, Q); ``None`` when there is none."""

    def exact_w1_method(self) -> Optional[str]:
        """How ``exact_w1`` is obtained, e.g. ``'closed form ||v||'``; ``None`` when there is none."""
        return None

    def describe(self) -> str:
        return type(self).__name__


def check_compatible(p: Source, q: Source) -> None:
    """Raise :class:`SourceError` unless P and Q share shape and domain (naming both when not)."""
    if tuple(p.shape) != tuple(q.shape) or p.domain != q.domain:
        raise SourceError(
            f"P and Q must live in the same domain: P = {p.describe()} has shape {tuple(p.shape)} "
            f"and range {p.domain}, Q = {q.describe()} has shape {tuple(q.shape)} and range {q.domain}. "
            "Set the same resize/crop and range on both sources (images default to [-1, 1])."
        )
