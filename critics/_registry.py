"""Name -> builder registry for critic architectures (timm-style).

An entrypoint only fixes architecture arguments and calls a family's private builder::

    @register_critic("bjorck-mlp")
    def bjorck_mlp(input_shape, width=256, depth=3, activation="maxmin"): ...

``build(name, input_shape, **options)`` checks the name and the option names against the
entrypoint's signature before calling it, so a typo is an error that lists what is allowed.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable

from torch import nn

_CRITICS: dict[str, Callable[..., nn.Module]] = {}


def register_critic(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator recording ``name -> fn``; a duplicate name is a programming error."""

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _CRITICS:
            raise RuntimeError(f"critic name {name!r} registered twice")
        _CRITICS[name] = fn
        return fn

    return decorate


def available() -> list[str]:
    """Sorted names of every registered critic."""
    return sorted(_CRITICS)


def critic_options(name: str) -> dict[str, Any]:
    """The options an entrypoint accepts (other than ``input_shape``) and their defaults."""
    fn = _entrypoint(name)
    sig = inspect.signature(fn)
    return {
        k: (None if p.default is inspect.Parameter.empty else p.default)
        for k, p in sig.parameters.items()
        if k != "input_shape"
    }


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    if name not in _CRITICS:
        close = difflib.get_close_matches(name, _CRITICS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown critic {name!r}. Available critics: {', '.join(available())}.{hint}"
        )
    return _CRITICS[name]


def build(name: str, input_shape: tuple[int, ...] | list[int], **options: Any) -> nn.Module:
    """Build the critic registered as ``name`` for inputs of shape ``input_shape`` (no batch dim).

    Options set to ``None`` are dropped (so the entrypoint's default applies). An unknown option
    is a ``ValueError`` naming it and listing the accepted ones.
    """
    fn = _entrypoint(name)
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive sizes; got {tuple(input_shape)!r}")
    allowed = critic_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {', '.join(map(repr, unknown))} for critic {name!r}. "
            f"Accepted options: {', '.join(f'{k}={v!r}' for k, v in allowed.items())}."
        )
    kwargs = {k: v for k, v in options.items() if v is not None}
    return fn(shape, **kwargs)
