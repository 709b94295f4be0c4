"""``generators.load``: one factory for registered, TorchScript and Python generators."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

import torch

from generators._registry import GeneratorLoadError, generator_info
from generators.architectures.custom import (
    PYTHON_PREFIX,
    TORCHSCRIPT_PREFIX,
    build_python,
    load_torchscript,
    require_options,
)
from generators.base import FrozenGenerator
from generators.checkpoints import load_state_dict_strict, read_state_dict

__all__ = ["RandomWeightsWarning", "load"]

_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class RandomWeightsWarning(UserWarning):
    """A registered generator was loaded without a checkpoint, so its weights are random."""


def load(
    name: str,
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    sha256: str | None = None,
    device: str | torch.device | None = None,
    batchnorm: Literal["eval", "batch"] = "eval",
    latent_dim: int | None = None,
    latent: Literal["normal", "uniform"] | None = None,
    output_shape: tuple[int, ...] | None = None,
    output_range: tuple[float, float] | None = None,
    warn_random: bool = True,
) -> FrozenGenerator:
    """Build a generator, load its weights and return it frozen.

    Parameters
    ----------
    name : str
        A registered name (see :func:`generators.available`), ``"torchscript:PATH"`` or
        ``"python:module.path:callable"`` (a callable returning an ``nn.Module``).
    checkpoint : path-like, optional
        A ``torch.save`` file holding the state dict, raw or wrapped (Mimicry's
        ``{"model_state_dict", ...}``); loaded with ``weights_only=True``, ``map_location`` and
        strict keys. Without it a registered generator has random weights (and a
        :class:`RandomWeightsWarning`), except those with bundled weights (``digits/wgan-gp-8``),
        which load those, checked against the sha256 in their recipe.
    sha256 : str, optional
        Expected hex digest of ``checkpoint`` (of the TorchScript file for ``torchscript:``).
    device : str or torch.device, optional
        Where the weights are loaded and the generator lives; default CPU (move it with ``.to()``,
        or let Lightning move it with the module that owns it).
    batchnorm : {"eval", "batch"}
        See :class:`FrozenGenerator`; ``"batch"`` reproduces the published LConvNet sampler.
    latent_dim, latent, output_shape, output_range : optional
        Required for ``torchscript:`` and ``python:`` generators. For registered ones they are
        fixed by the architecture; a value that differs is an error.
    warn_random : bool
        Warn when a registered generator gets random weights.

    Returns
    -------
    FrozenGenerator
        In eval (or batch-norm batch) mode, ``requires_grad=False``, on ``device``.

    Raises
    ------
    GeneratorLoadError
        Unknown name (the message lists the available ones), missing options for a user's own
        generator, or any checkpoint problem (see :func:`generators.checkpoints.read_checkpoint`).
    """
    if batchnorm not in ("eval", "batch"):
        raise GeneratorLoadError(f"batchnorm must be 'eval' or 'batch', got {batchnorm!r}")
    if latent is not None and latent not in ("normal", "uniform"):
        raise GeneratorLoadError(f"latent must be 'normal' or 'uniform', got {latent!r}")
    target = torch.device(device) if device is not None else torch.device("cpu")
    ckpt_sha = sha256

    if name.startswith(TORCHSCRIPT_PREFIX) or name.startswith(PYTHON_PREFIX):
        require_options(
            name, latent_dim=latent_dim, latent=latent, output_shape=output_shape, output_range=output_range
        )
        assert latent_dim is not None and latent is not None and output_shape is not None and output_range is not None
        if name.startswith(TORCHSCRIPT_PREFIX):
            module = load_torchscript(name[len(TORCHSCRIPT_PREFIX) :], sha256=sha256, map_location=target)
            ckpt_sha = None  # the digest was for the TorchScript file itself
        else:
            module = build_python(name[len(PYTHON_PREFIX) :])
            if checkpoint is None and sha256 is not None:
                raise GeneratorLoadError(
                    f"sha256 was given for generator {name!r} but there is no checkpoint file to check."
                )
        meta = (int(latent_dim), latent, tuple(output_shape), tuple(output_range))
    else:
        info = generator_info(name)
        given = {"latent_dim": latent_dim, "latent": latent, "output_shape": output_shape, "output_range": output_range}
        fixed = {
            "latent_dim": info.latent_dim,
            "latent": info.latent,
            "output_shape": info.output_shape,
            "output_range": info.output_range,
        }
        for key, value in given.items():
            if value is None:
                continue
            norm = (
                tuple(float(v) for v in value)
                if key == "output_range"
                else (tuple(int(v) for v in value) if key == "output_shape" else value)
            )
            if norm != fixed[key]:
                raise GeneratorLoadError(
                    f"Generator {name!r} has {key} {fixed[key]!r}, fixed by its architecture; got {value!r}. "
                    "Drop the option (or use 'python:...'/'torchscript:...' for a different network)."
                )
        module = info.builder()
        if checkpoint is None and info.bundled is not None:
            checkpoint = _WEIGHTS_DIR / info.bundled
            if sha256 is None:
                if info.sha256 is None:
                    raise GeneratorLoadError(
                        f"The bundled weights of {name!r} have no recorded sha256 (is "
                        f"{str(checkpoint.with_suffix('.json'))!r} missing?); retrain with "
                        "python -m generators.train_digits or reinstall wdist."
                    )
                ckpt_sha = info.sha256
        elif checkpoint is None:
            if sha256 is not None:
                raise GeneratorLoadError(
                    f"sha256 was given for generator {name!r} but there is no checkpoint file to check."
                )
            if warn_random:
                warnings.warn(
                    f"Generator {name!r} was loaded without a checkpoint: its weights are RANDOM, so its "
                    f"samples are noise. Pass checkpoint=PATH (published weights: {info.url or 'n/a'}).",
                    RandomWeightsWarning,
                    stacklevel=2,
                )
        meta = (info.latent_dim, info.latent, info.output_shape, info.output_range)

    if checkpoint is not None:
        state_dict = read_state_dict(checkpoint, sha256=ckpt_sha, map_location=target)
        load_state_dict_strict(module, state_dict, name=name, path=checkpoint)
    module = module.to(target)
    try:
        return FrozenGenerator(
            module,
            name=name,
            latent_dim=meta[0],
            latent=meta[1],  # type: ignore[arg-type]
            output_shape=meta[2],
            output_range=meta[3],
            batchnorm=batchnorm,
        )
    except ValueError as e:
        raise GeneratorLoadError(str(e)) from e
