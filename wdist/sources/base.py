"""What a source of samples is: the contract every P and Q honours.

A *source* yields samples of one fixed shape in one stated domain. Three flavours:

* analytic samplers (toy distributions): infinite, sampled on the CPU from a ``torch.Generator``;
* finite data sets (digits, CIFAR-10, tensor files, image folders): a tensor of all items in the
  domain; training draws from a training part, held-out evaluation from a disjoint part;
* frozen generators: infinite, sampled on the training device from latent vectors (the latent
  vectors of the held-out set are drawn on the CPU, so the held-out set is the same whatever the
  device or the number of processes).

Pairs (P, Q) with their exact W1 (toy problems, known-W1 pairs) are built from sources in
:mod:`wdist.problems`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Optional

import torch
from torch import Tensor, nn

__all__ = [
    "Source",
    "FiniteSource",
    "TensorSource",
    "LatentSource",
    "SourceError",
    "check_compatible",
    "decode_latents",
    "DEFAULT_DECODE_CHUNK",
]


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

    def draw(
        self, n: int, generator: torch.Generator, chunk: int, device: Optional[torch.device] = None
    ) -> Tensor:
        """``n`` samples on the CPU for a measurement apart from training (the exact-OT references,
        the startup benchmark), deterministic in ``generator``: :meth:`sample` here; a finite set
        gives a subset without replacement, a generator decodes ``chunk`` latents at a time on ``device``."""
        return self.sample(n, generator)

    def disjoint_pair(
        self, n: int, generator: torch.Generator, chunk: int, device: Optional[torch.device] = None
    ) -> tuple[Tensor, Tensor]:
        """Two independent samples of at most ``n`` each (:meth:`draw` twice; a finite set gives two
        disjoint halves, so fewer than ``n`` items each when it has fewer than ``2 n``)."""
        return self.draw(n, generator, chunk, device), self.draw(n, generator, chunk, device)

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

    def draw(
        self, n: int, generator: torch.Generator, chunk: int, device: Optional[torch.device] = None
    ) -> Tensor:
        """``min(n, len(self))`` distinct items, in random order."""
        return self.data[torch.randperm(len(self), generator=generator)[: min(n, len(self))]]

    def disjoint_pair(
        self, n: int, generator: torch.Generator, chunk: int, device: Optional[torch.device] = None
    ) -> tuple[Tensor, Tensor]:
        """Two disjoint sets of ``min(n, len(self) // 2)`` distinct items each."""
        m = min(n, len(self) // 2)
        perm = torch.randperm(len(self), generator=generator)
        return self.data[perm[:m]], self.data[perm[m : 2 * m]]

    def split(self, n_heldout: int, generator: torch.Generator) -> tuple["FiniteSource", Tensor]:
        """A training view and a held-out tensor that share no item.

        Parameters
        ----------
        n_heldout : int
            Number of items held out, ``1 <= n_heldout < len(self)``.
        generator : torch.Generator
            Draws the random permutation; the split is a function of its state alone.

        Returns
        -------
        train : FiniteSource
            The remaining ``len(self) - n_heldout`` items, same shape and domain.
        heldout : Tensor, shape ``(n_heldout, *shape)``
            The held-out items (distinct indices of the data set, not a resample).

        Raises
        ------
        SourceError
            If ``n_heldout`` is not in ``[1, len(self) - 1]`` (the message names both values).
        """
        n = len(self)
        if isinstance(n_heldout, bool) or not isinstance(n_heldout, int) or n_heldout < 1 or n_heldout >= n:
            raise SourceError(
                f"cannot hold out n_heldout={n_heldout!r} items of {self.describe()}, which has {n} items: "
                f"need 1 <= n_heldout <= {n - 1} so that training keeps at least one item"
            )
        perm = torch.randperm(n, generator=generator)
        heldout = self.data[perm[:n_heldout]]
        train = TensorSource(
            self.data[perm[n_heldout:]],
            domain=self.domain,
            description=f"{self.describe()} [training part: {n - n_heldout} of {n} items]",
        )
        return train, heldout


class TensorSource(FiniteSource):
    """A finite source over an in-memory tensor (used for training views made by ``split``).

    Parameters
    ----------
    data : Tensor, shape ``(N, *shape)``
        The items, already in ``domain``; stored as float32.
    domain : (float, float) or None
        The range the items lie in.
    description : str
        What :meth:`describe` returns.
    """

    def __init__(self, data: Tensor, domain: Optional[tuple[float, float]] = None, description: str = "tensor") -> None:
        if data.ndim < 2 or data.shape[0] < 1:
            raise SourceError(f"{description}: need a tensor of shape (N, ...) with N >= 1, got {tuple(data.shape)}")
        self._data = data.to(torch.float32)
        self.shape = tuple(int(s) for s in data.shape[1:])
        self.domain = None if domain is None else (float(domain[0]), float(domain[1]))
        self._description = description

    @property
    def data(self) -> Tensor:
        return self._data

    def describe(self) -> str:
        return self._description


#: Latents decoded at once outside a run (inside a run: ``train.batch_size``).
DEFAULT_DECODE_CHUNK = 256


def decode_latents(module: nn.Module, latents: Tensor, chunk: int, device: Optional[torch.device] = None) -> Tensor:
    """Samples of a frozen generator: the one decode path of every generator side.

    The latents are decoded in consecutive chunks of ``chunk`` items, in index order, without
    gradients, on ``device`` (default: the module's device), and returned there as float32. A run
    uses its training batch size as ``chunk`` everywhere (training batches, the held-out set, the
    empirical Lipschitz check, the OT references), so a generator whose output depends on its
    batch (batch norm on batch statistics) produces every sample with the batch statistics of a
    training-sized batch, and the same latents give the same samples wherever they are decoded.

    Parameters
    ----------
    module : nn.Module
        Maps ``(m, *latent_shape)`` latents to ``(m, *shape)`` samples.
    latents : (n, *latent_shape) tensor
    chunk : int
        Latents per forward pass, >= 1.
    device : torch.device, optional

    Returns
    -------
    (n, *shape) float32 tensor on ``device``.

    Raises
    ------
    SourceError
        When the generator raises (its own code failing on the latents): the message names the
        generator and the batch shape; running out of memory is passed on as it is.
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise SourceError(f"decode chunk must be a positive integer; got chunk={chunk!r}")
    if device is None:
        device = next(iter(module.parameters()), torch.empty(0)).device
    parts = []
    with torch.no_grad():
        for i in range(0, len(latents), chunk):
            z = latents[i : i + chunk].to(device)
            try:
                parts.append(module(z).to(torch.float32))
            except torch.OutOfMemoryError:
                raise
            except Exception as err:  # the generator's own code failed: say which generator, on what
                raise SourceError(
                    f"generator {_generator_name(module)!r} failed on a batch of latents of shape {tuple(z.shape)} "
                    f"({z.dtype}, on {z.device}): {type(err).__name__}: {str(err).rstrip('.')}. Expected it to map "
                    "latents of that shape to samples; --debug shows the traceback."
                ) from err
    return torch.cat(parts) if parts else latents.new_empty((0,)).to(device)


def _generator_name(module: nn.Module) -> str:
    """The registry name of the generator inside ``module`` (a ``FrozenGenerator``, possibly wrapped),
    else the module's class name."""
    for sub in module.modules():
        name = getattr(sub, "name", None)
        if isinstance(name, str) and name:
            return name
    return type(module).__name__


class LatentSource(Source):
    """A source that maps latent vectors through a frozen ``nn.Module`` on the training device.

    The module is registered inside the training system, so it moves with the critic; sampling
    happens there in eval mode without gradients, through :func:`decode_latents`.
    """

    latent_dim: int

    @property
    @abstractmethod
    def module(self) -> nn.Module:
        """The frozen network mapping latents to samples in ``domain`` (with the range map applied)."""

    @abstractmethod
    def sample_latent(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` latents on the CPU, shape ``(n, *latent_shape)`` (what :attr:`module` takes;
        a conditional generator appends its class labels, see ``Generator.sample_latent``)."""

    def decode(self, z: Tensor, chunk: int = DEFAULT_DECODE_CHUNK) -> Tensor:
        """Samples from latents (:func:`decode_latents`), on the module's device."""
        return decode_latents(self.module, z, chunk)

    def sample(self, n: int, generator: torch.Generator, chunk: int = DEFAULT_DECODE_CHUNK) -> Tensor:
        """``n`` samples on the CPU: latents from ``generator``, decoded in chunks of ``chunk``."""
        return self.decode(self.sample_latent(n, generator), chunk).cpu()

    def draw(
        self, n: int, generator: torch.Generator, chunk: int, device: Optional[torch.device] = None
    ) -> Tensor:
        """``n`` samples on the CPU, their latents from ``generator``, decoded on ``device`` (the
        module is moved there first; default: where it is)."""
        module = self.module if device is None else self.module.to(device)
        return decode_latents(module, self.sample_latent(n, generator), chunk, device).cpu()


def check_compatible(p: Source, q: Source) -> None:
    """Raise :class:`SourceError` unless P and Q share shape and domain (naming both when not)."""
    if tuple(p.shape) != tuple(q.shape) or p.domain != q.domain:
        raise SourceError(
            f"P and Q must live in the same domain: P = {p.describe()} has shape {tuple(p.shape)} "
            f"and range {p.domain}, Q = {q.describe()} has shape {tuple(q.shape)} and range {q.domain}. "
            "Set the same resize/crop and range on both sources (images default to [-1, 1])."
        )
