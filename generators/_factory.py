"""``generators.load``: one factory for registered, TorchScript and Python generators."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

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
from generators.checkpoints import MISSING_FILE_ADVICE, load_state_dict_strict, read_state_dict
from generators.latents import Labels, LabelSpec

__all__ = ["MissingWeightsError", "load"]

_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class MissingWeightsError(GeneratorLoadError):
    """A registered generator was asked for without a checkpoint (and has no bundled weights), so it
    would have random weights; ``random_weights=True`` asks for that on purpose.

    Attributes
    ----------
    name : str
        The registered name.
    url : str or None
        Where its published weights come from.
    """

    def __init__(self, name: str, url: str | None) -> None:
        self.name, self.url = name, url
        super().__init__(
            f"Generator {name!r} was asked for without a checkpoint: it has no bundled weights, so it would run "
            "with RANDOM weights and its samples would be noise. Give the weights file with checkpoint=PATH "
            f"(published weights: {url or 'n/a'}), or random_weights=True to use the randomly initialised "
            "network on purpose."
        )


def _latent_dim(latent_dim: int | None, latent_shape: Sequence[int] | None) -> int | None:
    """``latent_dim``, or the number of coordinates of ``latent_shape`` when only the shape is given
    (:class:`FrozenGenerator` checks the shape, and that the two agree when both are given)."""
    if latent_dim is None and latent_shape is not None:
        return math.prod(int(s) for s in latent_shape)
    return latent_dim


def _label_spec(
    name: str, n_classes: int | None, labels: Labels | None, label_arg: str | None, label_format: str
) -> LabelSpec | None:
    """The labels of a conditional generator, or ``None`` when no label option is given."""
    if n_classes is None:
        given = {"labels": labels, "label_arg": label_arg, "label_format": None if label_format == "index" else 1}
        stray = [k for k, v in given.items() if v is not None]
        if stray:
            raise GeneratorLoadError(
                f"{', '.join(stray)} given for generator {name!r} without n_classes: a conditional generator "
                "needs n_classes (the number of classes its labels take)."
            )
        return None
    try:
        return LabelSpec(
            int(n_classes),
            "uniform" if labels is None else (tuple(labels) if isinstance(labels, (list, tuple)) else labels),
            label_arg,
            label_format,
        )
    except ValueError as err:
        raise GeneratorLoadError(f"{err} (generator {name!r}).") from None


def load(
    name: str,
    checkpoint: str | os.PathLike[str] | None = None,
    *,
    sha256: str | None = None,
    device: str | torch.device | None = None,
    batchnorm: Literal["eval", "batch"] = "eval",
    latent_dim: int | None = None,
    latent: str | None = None,
    output_shape: tuple[int, ...] | None = None,
    output_range: tuple[float, float] | None = None,
    latent_shape: Sequence[int] | None = None,
    truncation: float | None = None,
    n_classes: int | None = None,
    labels: Labels | list[int] | None = None,
    label_arg: str | None = None,
    label_format: Literal["index", "one-hot"] = "index",
    random_weights: bool = False,
    forward_kwargs: dict[str, Any] | None = None,
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
        strict keys. A registered generator needs one (a :class:`MissingWeightsError` otherwise),
        except those with bundled weights (``digits/wgan-gp-8``), which load those, checked against
        the sha256 in their recipe, and except with ``random_weights=True``.
    sha256 : str, optional
        Expected hex digest of ``checkpoint`` (of the TorchScript file for ``torchscript:``).
    device : str or torch.device, optional
        Where the weights are loaded and the generator lives; default CPU (move it with ``.to()``,
        or let Lightning move it with the module that owns it).
    batchnorm : {"eval", "batch"}
        See :class:`FrozenGenerator`; ``"batch"`` reproduces the published LConvNet sampler.
    latent_dim, latent, output_shape, output_range : optional
        Required for ``torchscript:`` and ``python:`` generators (``latent_dim`` or
        ``latent_shape``). For registered ones they are fixed by the architecture; a value that
        differs is an error, except ``latent="truncated-normal"`` for a generator with a normal
        latent (the truncation trick). ``latent`` is one of ``normal`` (N(0, I)), ``uniform``
        (U[0, 1)), ``uniform-symmetric`` (U[-1, 1)), ``truncated-normal`` (with ``truncation``).
    latent_shape : sequence of int, optional
        Shape of one z, e.g. ``(64, 1, 1)`` for a DCGAN-family network; default ``(latent_dim,)``.
    truncation : float, optional
        ``t > 0`` of ``latent="truncated-normal"``: each coordinate is N(0, 1) conditioned on
        ``|z_i| <= t``.
    n_classes, labels, label_arg, label_format : optional
        For a conditional generator (forward ``G(z, y)``): the number of classes; ``"uniform"``
        (default), one class index or a list of classes drawn uniformly; the keyword under which
        forward takes y (default: second positional argument); ``index`` (int64) or ``one-hot``
        (see :class:`~generators.latents.LabelSpec`).
    random_weights : bool
        Use a registered architecture with its random initialisation on purpose (no checkpoint).
        For ``python:`` generators without a checkpoint it records that the network is untrained.
    forward_kwargs : dict, optional
        Fixed keyword arguments of every forward call, for a network whose forward takes more than
        z (and labels), e.g. ``{"truncation_psi": 0.7}``.

    Returns
    -------
    FrozenGenerator
        In eval (or batch-norm batch) mode, ``requires_grad=False``, on ``device``; its
        ``random_weights`` says whether no weights were loaded.

    Raises
    ------
    GeneratorLoadError
        Unknown name (the message lists the available ones), missing or inconsistent options,
        a registered generator without checkpoint (:class:`MissingWeightsError`), a checkpoint
        given with ``random_weights=True``, or any checkpoint problem (see
        :func:`generators.checkpoints.read_checkpoint`).
    """
    if batchnorm not in ("eval", "batch"):
        raise GeneratorLoadError(f"batchnorm must be 'eval' or 'batch', got {batchnorm!r}")
    latent_dim = _latent_dim(latent_dim, latent_shape)
    latent_shape = None if latent_shape is None else tuple(int(s) for s in latent_shape)
    label_spec = _label_spec(name, n_classes, labels, label_arg, label_format)
    if random_weights and checkpoint is not None:
        raise GeneratorLoadError(
            f"random_weights=True and checkpoint={str(checkpoint)!r} were both given for generator {name!r}: "
            "drop random_weights to load the checkpoint, or the checkpoint to use random weights."
        )
    target = torch.device(device) if device is not None else torch.device("cpu")
    ckpt_sha = sha256

    if name.startswith(TORCHSCRIPT_PREFIX) or name.startswith(PYTHON_PREFIX):
        require_options(
            name, latent_dim=latent_dim, latent=latent, output_shape=output_shape, output_range=output_range
        )
        assert latent_dim is not None and latent is not None and output_shape is not None and output_range is not None
        if name.startswith(TORCHSCRIPT_PREFIX):
            if random_weights:
                raise GeneratorLoadError(
                    f"random_weights=True was given for {name!r}, but a TorchScript file carries its own weights."
                )
            module = load_torchscript(name[len(TORCHSCRIPT_PREFIX) :], sha256=sha256, map_location=target)
            ckpt_sha = None  # the digest was for the TorchScript file itself
        else:
            module = build_python(name[len(PYTHON_PREFIX) :])
            if checkpoint is None and sha256 is not None:
                raise GeneratorLoadError(
                    f"sha256 was given for generator {name!r} but there is no checkpoint file to check."
                )
        meta = (int(latent_dim), latent, tuple(output_shape), tuple(output_range), latent_shape)
    else:
        info = generator_info(name)
        if label_spec is not None:
            raise GeneratorLoadError(
                f"n_classes was given for generator {name!r}, which is not conditional (it takes z alone)."
            )
        fixed_shape = info.latent_shape or (info.latent_dim,)
        given = {
            "latent_dim": latent_dim,
            "latent_shape": latent_shape,
            "latent": None if (latent == "truncated-normal" and info.latent == "normal") else latent,
            "output_shape": output_shape,
            "output_range": output_range,
        }
        fixed = {
            "latent_dim": info.latent_dim,
            "latent_shape": fixed_shape,
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
                else (tuple(int(v) for v in value) if key in ("output_shape", "latent_shape") else value)
            )
            if norm != fixed[key]:
                raise GeneratorLoadError(
                    f"Generator {name!r} has {key} {fixed[key]!r}, fixed by its architecture; got {value!r}. "
                    "Drop the option (or use 'python:...'/'torchscript:...' for a different network)."
                )
        module = info.builder()
        if checkpoint is None and info.bundled is not None and not random_weights:
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
            if not random_weights:
                raise MissingWeightsError(name, info.url)
        law = "truncated-normal" if latent == "truncated-normal" else info.latent
        meta = (info.latent_dim, law, info.output_shape, info.output_range, fixed_shape)

    if checkpoint is not None:
        url = None if name.startswith((TORCHSCRIPT_PREFIX, PYTHON_PREFIX)) else generator_info(name).url
        advice = (
            f"Give the path of its weights file (published weights: {url}; wdist does not download them)."
            if url
            else MISSING_FILE_ADVICE
        )
        state_dict = read_state_dict(checkpoint, sha256=ckpt_sha, map_location=target, missing_advice=advice)
        load_state_dict_strict(module, state_dict, name=name, path=checkpoint)
    module = module.to(target)
    try:
        return FrozenGenerator(
            module,
            name=name,
            latent_dim=meta[0],
            latent=meta[1],
            output_shape=meta[2],
            output_range=meta[3],
            batchnorm=batchnorm,
            latent_shape=meta[4],
            truncation=truncation,
            labels=label_spec,
            random_weights=checkpoint is None and random_weights,
            forward_kwargs=forward_kwargs,
        )
    except ValueError as e:
        raise GeneratorLoadError(str(e)) from e
