"""Users' own generators: ``torchscript:PATH`` and ``python:module.path:callable``.

Neither carries metadata, so ``latent_dim`` (or ``latent_shape``), ``latent``, ``output_shape``
and ``output_range`` must be given as options (from the config).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from generators._registry import GeneratorLoadError
from generators.checkpoints import checked_file

__all__ = ["TORCHSCRIPT_PREFIX", "PYTHON_PREFIX", "require_options", "load_torchscript", "build_python"]

TORCHSCRIPT_PREFIX = "torchscript:"
PYTHON_PREFIX = "python:"


def require_options(name: str, **options: Any) -> None:
    """Raise :class:`GeneratorLoadError` naming every option in ``options`` that is ``None``."""
    missing = [k for k, v in options.items() if v is None]
    if missing:
        raise GeneratorLoadError(
            f"Generator {name!r} is a user's own network, so wdist cannot know its "
            f"{', '.join(missing)}: give {'them' if len(missing) > 1 else 'it'} as option(s) "
            "(e.g. latent_dim: 128, latent: normal, output_shape: [3, 32, 32], output_range: [-1, 1]; "
            "latent_shape: [128, 1, 1] instead of latent_dim for a network that takes z of that shape)."
        )


def load_torchscript(
    path: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    map_location: str | torch.device = "cpu",
) -> nn.Module:
    """Load a TorchScript generator with ``torch.jit.load``.

    Parameters
    ----------
    path : path-like
        A file written by ``torch.jit.save`` (or ``ScriptModule.save``).
    sha256 : str, optional
        Expected hex digest of the file.
    map_location : str or torch.device
        Where the tensors go.

    Raises
    ------
    GeneratorLoadError
        Missing file, sha256 mismatch, or a file that is not a TorchScript archive.
    """
    advice = "Give the path of a file written by torch.jit.save(torch.jit.script(G), path)."
    p = checked_file(path, sha256, what="TorchScript", advice=advice)
    try:
        return torch.jit.load(str(p), map_location=map_location)
    except (RuntimeError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise GeneratorLoadError(
            f"Could not load {str(p)!r} as TorchScript ({first}). Expected a file written by "
            "torch.jit.save(torch.jit.script(generator), path); a state dict goes to checkpoint= with "
            "'python:module.path:callable' or a registered name instead."
        ) from e


def build_python(spec: str) -> nn.Module:
    """Import ``module.path:callable`` and call it with no arguments to get the generator.

    ``callable`` may be dotted (``Class.factory``). The current working directory is importable,
    as with ``python -m``.

    Raises
    ------
    GeneratorLoadError
        Malformed spec, module not importable (missing, a syntax error, its top-level code
        raising), attribute missing or not callable, the callable raising, or a result that is not
        an ``nn.Module``; each message names the generator.
    """
    mod_name, sep, attr = spec.rpartition(":")
    if not sep or not mod_name or not attr:
        raise GeneratorLoadError(
            f"'python:{spec}' is not of the form 'python:module.path:callable' "
            "(e.g. 'python:mypkg.models:make_generator')."
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as e:
        raise GeneratorLoadError(
            f"Could not import module {mod_name!r} for generator 'python:{spec}': {e}. "
            f"The module must be importable from {str(Path.cwd())!r} or the Python path."
        ) from e
    except SyntaxError as e:
        raise GeneratorLoadError(
            f"Module {mod_name!r} of generator 'python:{spec}' has a syntax error: {e.msg} "
            f"({e.filename}, line {e.lineno}). Fix the module, then run again."
        ) from e
    except Exception as e:  # the module's own top-level code failed
        raise GeneratorLoadError(
            f"Importing module {mod_name!r} of generator 'python:{spec}' failed: its top-level code raised "
            f"{type(e).__name__}: {e}. (--debug shows the traceback)."
        ) from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise GeneratorLoadError(f"Module {mod_name!r} has no attribute {attr!r} (generator 'python:{spec}').")
        obj = getattr(obj, part)
    if not callable(obj):
        raise GeneratorLoadError(f"{mod_name}:{attr} is not callable (generator 'python:{spec}').")
    try:
        module = obj()
    except Exception as e:  # the user's factory failed: name it, and say what it raised
        raise GeneratorLoadError(
            f"Generator 'python:{spec}': calling {mod_name}:{attr}() raised {type(e).__name__}: {e}. Expected it "
            "to return the generator (a torch.nn.Module) when called with no arguments. (--debug shows the traceback)."
        ) from e
    if not isinstance(module, nn.Module):
        raise GeneratorLoadError(
            f"{mod_name}:{attr}() returned {type(module).__name__}, not a torch.nn.Module (generator 'python:{spec}')."
        )
    return module
