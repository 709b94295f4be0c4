"""generators: frozen GAN generators that load public checkpoints, and their latent samplers.

Usable on its own (it never imports ``wdist`` or ``critics``)::

    import generators
    generators.available()          # registered names
    g = generators.load("mimicry/sngan-32", checkpoint="netG.pth")
    x = g.sample(64, seed=0)        # (64, 3, 32, 32) in [-1, 1], no gradients
    g = generators.load("digits/wgan-gp-8")   # the bundled, offline generator

Users' own networks: ``generators.load("torchscript:gen.pt", latent_dim=..., latent=...,
output_shape=..., output_range=...)`` or ``"python:module.path:callable"`` with the same options;
``latent_shape=(64, 1, 1)`` for a network taking z of that shape, ``latent`` one of
:data:`LATENTS` (``truncation`` for ``truncated-normal``), and ``n_classes``/``labels`` for a
conditional one. A registered generator without weights is an error unless
``random_weights=True``.
"""

# Registration is an import side effect: import every family module.
from generators._factory import MissingWeightsError, load
from generators._registry import (
    SCHEMES,
    GeneratorInfo,
    GeneratorLoadError,
    available,
    generator_info,
    register_generator,
)
from generators.architectures import custom as _custom  # noqa: F401
from generators.architectures import digits as _digits  # noqa: F401
from generators.architectures import lconvnet as _lconvnet  # noqa: F401
from generators.architectures import mimicry as _mimicry  # noqa: F401
from generators.base import FrozenGenerator
from generators.checkpoints import sha256_file
from generators.latents import LATENTS, LabelSpec, LatentSpec

__all__ = [
    "LATENTS",
    "SCHEMES",
    "FrozenGenerator",
    "GeneratorInfo",
    "GeneratorLoadError",
    "LabelSpec",
    "LatentSpec",
    "MissingWeightsError",
    "available",
    "generator_info",
    "load",
    "register_generator",
    "sha256_file",
]
