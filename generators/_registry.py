"""Name -> entrypoint registry for frozen generator architectures (timm style).

An entrypoint only fixes architecture arguments and returns the bare ``nn.Module``; everything a
loader needs to know about the published weights sits beside it as metadata::

    @register_generator("family/name-32", latent_dim=128, latent="normal",
                        output_shape=(3, 32, 32), paper="...", data="CIFAR-10 32x32", ...)
    def family_name_32() -> nn.Module:
        return FamilyGenerator(size=32)

(a family of several published files registers each with ``functools.partial`` of one builder,
as ``generators/architectures/mimicry.py`` does).

Registration is an import side effect: ``generators/__init__.py`` imports every family module.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from generators.latents import LATENTS

__all__ = [
    "GeneratorInfo",
    "GeneratorLoadError",
    "SCHEMES",
    "available",
    "generator_info",
    "register_generator",
]

#: Name prefixes for users' own generators, handled by :mod:`generators.architectures.custom`.
SCHEMES: tuple[str, ...] = ("torchscript:PATH", "python:module.path:callable")


class GeneratorLoadError(ValueError):
    """A generator could not be built or its checkpoint could not be loaded.

    The message is one paragraph that names the file or value at fault and says what was expected.
    """


@dataclass(frozen=True)
class GeneratorInfo:
    """Metadata of one registered generator.

    Attributes
    ----------
    name : str
        Registry name, ``family/variant``.
    builder : callable
        Entrypoint returning the bare architecture (random weights).
    latent_dim : int
        Number of coordinates of the latent z.
    latent : {"normal", "uniform", "uniform-symmetric"}
        z ~ N(0, I), U[0, 1) or U[-1, 1) per coordinate.
    output_shape : tuple of int
        Shape of one sample, ``(C, H, W)``.
    output_range : tuple of float
        Closed interval that every output value lies in (e.g. ``(-1.0, 1.0)`` for a tanh head).
    file_format : {"raw", "mimicry"}
        How the published file wraps its state dict: ``raw`` is ``torch.save(state_dict)``,
        ``mimicry`` is ``{"model_state_dict", "optimizer_state_dict", "global_step"}``.
    paper, data, url : str or None
        Where the weights come from and what they were trained on.
    sha256 : str or None
        Hex digest of the published file, when known.
    bundled : str or None
        File name under ``generators/weights/`` of weights shipped with the package; loaded when no
        checkpoint is given.
    latent_shape : tuple of int or None
        Shape of one z the network takes, e.g. ``(100, 1, 1)``; ``None``: flat, ``(latent_dim,)``.
    """

    name: str
    builder: Callable[[], nn.Module]
    latent_dim: int
    latent: str
    output_shape: tuple[int, ...]
    output_range: tuple[float, float] = (-1.0, 1.0)
    file_format: str = "raw"
    paper: str | None = None
    data: str | None = None
    url: str | None = None
    sha256: str | None = None
    bundled: str | None = None
    latent_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        plain = tuple(law for law in LATENTS if law != "truncated-normal")  # truncation is the user's choice
        if self.latent not in plain:
            raise RuntimeError(
                f"generator {self.name!r}: latent must be one of {', '.join(plain)}, got {self.latent!r}"
            )
        shape = None if self.latent_shape is None else tuple(int(s) for s in self.latent_shape)
        if shape is not None and math.prod(shape) != self.latent_dim:
            raise RuntimeError(
                f"generator {self.name!r}: latent_shape {self.latent_shape} does not hold latent_dim {self.latent_dim}"
            )
        if self.file_format not in ("raw", "mimicry"):
            raise RuntimeError(f"generator {self.name!r}: unknown file_format {self.file_format!r}")
        # the metadata as the loaders compare it: whole numbers and floats in tuples
        object.__setattr__(self, "latent_dim", int(self.latent_dim))
        object.__setattr__(self, "output_shape", tuple(int(s) for s in self.output_shape))
        object.__setattr__(self, "output_range", (float(self.output_range[0]), float(self.output_range[1])))
        object.__setattr__(self, "latent_shape", shape)


_GENERATORS: dict[str, GeneratorInfo] = {}


def register_generator(name: str, **metadata: Any) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """Decorator recording ``name -> entrypoint`` with its metadata: the keyword fields of
    :class:`GeneratorInfo` (all but ``name`` and ``builder``; ``latent_dim``, ``latent`` and
    ``output_shape`` required).

    A duplicate name, an unknown field, latent distribution or file format is a programming error.
    """

    def decorate(fn: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        if name in _GENERATORS:
            raise RuntimeError(f"generator name {name!r} registered twice")
        _GENERATORS[name] = GeneratorInfo(name=name, builder=fn, **metadata)
        return fn

    return decorate


def available(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered generators, optionally filtered by a glob ``pattern``.

    Users' own generators are reached through the prefixes in :data:`SCHEMES`
    (``torchscript:PATH``, ``python:module.path:callable``), which are not listed here.
    """
    names = sorted(_GENERATORS)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def generator_info(name: str) -> GeneratorInfo:
    """Metadata of the registered generator ``name``.

    Raises
    ------
    GeneratorLoadError
        If ``name`` is not registered; the message lists every available name and scheme.
    """
    if name not in _GENERATORS:
        close = difflib.get_close_matches(name, _GENERATORS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise GeneratorLoadError(
            f"Unknown generator {name!r}. Available generators: {', '.join(available())}; "
            f"or your own as {' or '.join(repr(s) for s in SCHEMES)}.{hint}"
        )
    return _GENERATORS[name]
