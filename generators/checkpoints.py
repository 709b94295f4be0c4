"""Reading generator checkpoints: sha256, ``torch.load(weights_only=True)``, unwrapping, strict keys.

Every file is read with ``map_location`` (CPU unless a device is given), so checkpoints saved from
CUDA tensors load on machines without a GPU, and with ``weights_only=True``, so a file holding
pickled Python objects is refused rather than executed. A file that is not a torch.save file at
all (random bytes, text, another archive) is told apart from one holding pickled objects, by its
first bytes and ZIP index (:mod:`generators.filetypes`), before torch reads it. Every failure is a
:class:`~generators.GeneratorLoadError` whose message names the file and says what was expected.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from generators._registry import GeneratorLoadError, available, generator_info
from generators.filetypes import describe_file, is_legacy_torch_file, is_torch_archive, refused_globals

__all__ = [
    "WRAPPER_KEYS",
    "check_sha256",
    "checked_file",
    "extract_state_dict",
    "load_state_dict_strict",
    "matching_architectures",
    "read_checkpoint",
    "read_state_dict",
    "sha256_file",
]

#: Keys under which wrapping dicts keep the generator's state dict, in the order they are tried
#: (Mimicry's ``netG.pth`` uses ``model_state_dict``).
WRAPPER_KEYS: tuple[str, ...] = ("model_state_dict", "state_dict", "generator", "netG", "G", "model")

_MAX_LISTED = 12


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 digest of the file at ``path`` (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: What a missing file's message says to do, unless the caller knows better (a registered
#: generator names where its published weights come from).
MISSING_FILE_ADVICE = "Give the path of a file saved with torch.save(generator.state_dict(), path)."


def checked_file(
    path: str | os.PathLike[str],
    sha256: str | None = None,
    *,
    what: str = "checkpoint",
    advice: str = MISSING_FILE_ADVICE,
) -> Path:
    """The regular file at ``path`` (``~`` expanded), its sha256 checked when ``sha256`` is given.

    Raises :class:`GeneratorLoadError` for a missing file (naming the ``what`` file and giving
    ``advice``), a path that is not a regular file, or a sha256 mismatch (:func:`check_sha256`).
    """
    p = Path(path).expanduser()
    if not p.exists():
        resolved = str(p.resolve())
        raise GeneratorLoadError(f"The {what} file {str(p)!r} does not exist (resolved to {resolved!r}). {advice}")
    if not p.is_file():
        raise GeneratorLoadError(f"The {what} path {str(p)!r} is not a regular file (a directory?).")
    if sha256 is not None:
        check_sha256(p, sha256)
    return p


def check_sha256(path: str | os.PathLike[str], expected: str) -> None:
    """Raise :class:`GeneratorLoadError` unless the file's sha256 equals ``expected`` (64 hex digits)."""
    want = expected.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", want):
        raise GeneratorLoadError(
            f"sha256 {expected!r} is not a sha256 hex digest (64 characters 0-9a-f); "
            f"it was given to check {str(path)!r}."
        )
    got = sha256_file(path)
    if got != want:
        raise GeneratorLoadError(
            f"The sha256 of {str(path)!r} is {got}, but {want} was expected: the file is not the "
            "one asked for (a different release, an incomplete download or a corrupted copy). "
            "Replace the file, or drop/correct the sha256 if you meant to load this one."
        )


def read_checkpoint(
    path: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    map_location: str | torch.device = "cpu",
    missing_advice: str = MISSING_FILE_ADVICE,
) -> Any:
    """Load the object in a ``torch.save`` file, safely.

    Parameters
    ----------
    path : path-like
        The file.
    sha256 : str, optional
        Expected hex digest, checked before the file is parsed.
    map_location : str or torch.device
        Where the tensors are placed (CPU by default, whatever device they were saved from).

    Returns
    -------
    object
        What ``torch.load(path, map_location=..., weights_only=True)`` returns.

    Raises
    ------
    GeneratorLoadError
        Missing file, sha256 mismatch, a file that is not a ``torch.save`` file at all (the message
        says what it looks like instead), one that is truncated or damaged, or one holding pickled
        objects that ``weights_only`` refuses (the message names them; nothing in it is run).
    """
    p = checked_file(path, sha256, advice=missing_advice)
    if _is_torchscript(p):
        raise GeneratorLoadError(
            f"{str(p)!r} is a TorchScript archive, not a state dict: load it as 'torchscript:{p}' "
            "(with latent_dim, latent, output_shape and output_range options) instead of as a checkpoint."
        )
    if not (is_torch_archive(p) or is_legacy_torch_file(p)):
        raise GeneratorLoadError(
            f"{str(p)!r} cannot be read as a PyTorch checkpoint: it is {describe_file(p)}. Expected a complete file "
            "written by torch.save (a ZIP archive holding data.pkl) with the generator's state dict."
        )
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        refused = refused_globals(p, e, _MAX_LISTED)
        if refused:
            raise GeneratorLoadError(
                f"Refused to load {str(p)!r}: it is a torch.save file that holds pickled Python objects, not only "
                f"tensors (it refers to {', '.join(refused)}), such as a whole model saved with torch.save(model). "
                "Unpickling those objects would run code from the file, so wdist reads checkpoints with "
                "torch.load(weights_only=True) only. Expected a state dict (or a dict wrapping one under "
                f"{', '.join(WRAPPER_KEYS)}): save one where the network is defined, with "
                "torch.save(model.state_dict(), path)."
            ) from e
        raise _corrupt(p, e) from e
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError, IndexError) as e:
        raise _corrupt(p, e) from e


def _is_torchscript(p: Path) -> bool:
    try:
        with zipfile.ZipFile(p) as zf:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False


def _corrupt(p: Path, e: BaseException) -> GeneratorLoadError:
    size = p.stat().st_size
    text = str(e).strip()
    msg = text.splitlines()[0].split(". ")[0].rstrip(".") if text else "no details"
    return GeneratorLoadError(
        f"Could not read {str(p)!r} ({size} bytes), {describe_file(p)}, with torch.load ({type(e).__name__}: "
        f"{msg}): the file is truncated or damaged (an interrupted download or copy?). Expected a complete file "
        "written by torch.save."
    )


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = list(obj.keys())
        shown = ", ".join(repr(k) for k in keys[:_MAX_LISTED]) + (" ..." if len(keys) > _MAX_LISTED else "")
        return f"a {type(obj).__name__} with {len(keys)} keys ({shown})"
    return f"an object of type {type(obj).__name__}"


def extract_state_dict(obj: Any, path: str | os.PathLike[str] = "<checkpoint>") -> dict[str, Tensor]:
    """The generator's state dict inside a loaded checkpoint object.

    Accepts a raw state dict (``str -> Tensor``) or a dict wrapping one under one of
    :data:`WRAPPER_KEYS` (such as Mimicry's ``{"model_state_dict", "optimizer_state_dict",
    "global_step"}``). A ``module.`` prefix on every key (``nn.DataParallel``) is removed.

    Raises
    ------
    GeneratorLoadError
        If no state dict is found; the message describes what the file holds instead.
    """
    sd: Mapping[str, Tensor] | None = None
    if _is_state_dict(obj):
        sd = obj
    elif isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if key in obj and _is_state_dict(obj[key]):
                sd = obj[key]
                break
    if sd is None:
        raise GeneratorLoadError(
            f"{str(path)!r} holds {_describe(obj)}, not a generator state dict. Expected a dict of "
            f"parameter name -> tensor (torch.save(generator.state_dict())) or a dict wrapping one under "
            f"one of {', '.join(map(repr, WRAPPER_KEYS))} (Mimicry's netG.pth uses 'model_state_dict')."
        )
    out = dict(sd)
    if all(k.startswith("module.") for k in out):
        out = {k[len("module.") :]: v for k, v in out.items()}
    return out


def read_state_dict(
    path: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    map_location: str | torch.device = "cpu",
    missing_advice: str = MISSING_FILE_ADVICE,
) -> dict[str, Tensor]:
    """:func:`read_checkpoint` then :func:`extract_state_dict`."""
    checkpoint = read_checkpoint(path, sha256=sha256, map_location=map_location, missing_advice=missing_advice)
    return extract_state_dict(checkpoint, path)


@lru_cache(maxsize=None)
def _signature(name: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Sorted (key, shape) pairs of a registered architecture, built on the meta device (no memory)."""
    with torch.device("meta"):
        module = generator_info(name).builder()
    return tuple(sorted((k, tuple(v.shape)) for k, v in module.state_dict().items()))


def matching_architectures(state_dict: Mapping[str, Tensor]) -> tuple[list[str], list[str]]:
    """Registered generators whose state dict the given one resembles.

    Returns
    -------
    exact : list of str
        Names whose keys and tensor shapes all equal the given state dict's.
    same_keys : list of str
        Names with the same key names but some different shapes.
    """
    keys = {k: tuple(v.shape) for k, v in state_dict.items()}
    exact, same_keys = [], []
    for name in available():
        sig = dict(_signature(name))
        if sig.keys() == keys.keys():
            (exact if sig == keys else same_keys).append(name)
    return exact, same_keys


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


def _listing(items: list[str]) -> str:
    head = ", ".join(items[:_MAX_LISTED])
    return head + (f", ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def load_state_dict_strict(
    module: nn.Module,
    state_dict: Mapping[str, Tensor],
    *,
    name: str,
    path: str | os.PathLike[str] = "<checkpoint>",
) -> None:
    """``module.load_state_dict(state_dict, strict=True)`` with a useful error.

    Keys and shapes are compared first; any difference raises :class:`GeneratorLoadError` listing
    the missing keys, the unexpected keys and the shape mismatches, and naming the registered
    architecture(s) that the file's keys match, if any. Tensors are cast to the module's dtype.
    """
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [
        f"{k} (file {_fmt(got[k])}, expected {_fmt(expected[k])})"
        for k in expected
        if k in got and got[k] != expected[k]
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {_listing(shapes)}")
        exact, same_keys = matching_architectures(state_dict)
        others = [n for n in exact if n != name]
        if others:
            looks = (
                f"The file's keys and shapes match registered generator(s) {', '.join(others)}: "
                "load it under that name."
            )
        elif same_keys:
            looks = (
                f"The file's key names match {', '.join(n for n in same_keys)} but some shapes differ "
                "(another size or width of the same family?)."
            )
        else:
            sample = ", ".join(list(got)[:6])
            looks = (
                f"The file's {len(got)} keys (starting {sample}) match no registered architecture; "
                "for your own network use 'python:module.path:callable' with this checkpoint."
            )
        raise GeneratorLoadError(
            f"Checkpoint {str(path)!r} does not fit generator {name!r} (strict key check): "
            + "; ".join(parts)
            + f". {looks}"
        )
    module.load_state_dict(dict(state_dict), strict=True)
