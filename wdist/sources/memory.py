"""A source held in memory by the program that runs the estimate: a live generator module.

A configuration file names its sources by class (:mod:`wdist.sources.registry`); a program may put
source objects into an :class:`~wdist.config.EstimateConfig` instead. Items already in memory are a
:class:`~wdist.sources.base.TensorSource`; a network the program is itself training (the generator
:class:`~wdist.monitor.W1Monitor` follows) is a :class:`ModuleGenerator`. Neither is registered:
no configuration file can name an object that lives only in a running program.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from generators.latents import LatentSpec
from wdist.sources.base import DEFAULT_DECODE_CHUNK, LatentSource, decode_latents

__all__ = ["ModuleGenerator"]

#: Latents decoded to find a module's output shape (from a generator seeded with 0).
PROBE_LATENTS = 2


class _Held(nn.Module):
    """Calls a module without registering it as a submodule (so ``.to()``, ``.train()``,
    ``.parameters()`` and ``.state_dict()`` of the modules holding this one never reach it), under
    ``no_grad``, with float32 outputs."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self._held = (module,)  # a tuple attribute: not a submodule

    @property
    def held(self) -> nn.Module:
        return self._held[0]

    @torch.no_grad()
    def forward(self, z: Tensor) -> Tensor:
        return self._held[0](z).to(torch.float32)


class ModuleGenerator(LatentSource):
    r"""Samples :math:`G(z)` of a live ``nn.Module`` :math:`G`, with :math:`z` drawn as ``latent`` says.

    The module is used as it is, in the mode it is in (the caller puts it in eval mode), on the
    device it is on, without gradients; it is held, not registered, so a run's training system
    neither moves it, switches its mode, hands its parameters to an optimiser nor saves its
    weights in a checkpoint. Samples are float32, in the units of the module's output.

    Parameters
    ----------
    module : nn.Module
        Maps latents ``(n, *latent.shape)`` to samples ``(n, *shape)``.
    latent : LatentSpec
        The shape and distribution of one latent.
    domain : (float, float), optional
        The value range the samples lie in (``None``: unbounded).
    shape : tuple of int, optional
        The shape of one sample; ``None``: found by decoding :data:`PROBE_LATENTS` latents.
    name : str
        What :meth:`describe` calls the module.

    Raises
    ------
    SourceError
        The module fails on a batch of latents (the message names it and the batch's shape).
    """

    def __init__(
        self,
        module: nn.Module,
        latent: LatentSpec,
        domain: Optional[tuple[float, float]] = None,
        shape: Optional[tuple[int, ...]] = None,
        name: str = "generator module",
    ) -> None:
        self.latent = latent
        self.latent_dim = latent.dim
        self.domain = None if domain is None else (float(domain[0]), float(domain[1]))
        self.name = name
        self._module = _Held(module)
        if shape is None:
            probe = self.decode(latent.sample(PROBE_LATENTS, torch.Generator().manual_seed(0)), PROBE_LATENTS)
            shape = tuple(probe.shape[1:])
        self.shape = tuple(int(s) for s in shape)

    @property
    def module(self) -> nn.Module:
        return self._module

    @property
    def device(self) -> torch.device:
        """Where the module's weights are (the CPU for a module without any)."""
        return next(iter(self._module.held.parameters()), torch.empty(0)).device

    def sample_latent(self, n: int, generator: torch.Generator) -> Tensor:
        return self.latent.sample(n, generator)

    def decode(self, z: Tensor, chunk: int = DEFAULT_DECODE_CHUNK) -> Tensor:
        """Samples from latents (:func:`~wdist.sources.base.decode_latents`), on the module's device."""
        return decode_latents(self._module, z, chunk, device=self.device)

    def describe(self) -> str:
        return f"{self.name} ({type(self._module.held).__name__}, {self.latent.describe()})"
