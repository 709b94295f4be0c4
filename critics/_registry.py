"""Name -> builder registry for critic architectures (timm-style).

An entrypoint only fixes architecture arguments and calls a family's private builder::

    @register_critic("bjorck-mlp")
    def bjorck_mlp(input_shape, width=256, depth=3, activation="maxmin"): ...

    @register_critic("gp-mlp", loss="wgan-gp")   # the objective the family is trained with
    def gp_mlp(input_shape, width=256, depth=3, activation="leakyrelu"): ...

``build(name, input_shape, **options)`` checks the name and the option names against the
entrypoint's signature before calling it, so a typo is an error that lists what is allowed.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from typing import Any, Callable

import torch
from torch import nn

from critics.rules import wdist_hook

_CRITICS: dict[str, Callable[..., nn.Module]] = {}
_LOSSES: dict[str, str] = {}
_INPUTS: dict[str, str] = {}

#: Training objectives a critic family can be made for: ``kr``, the plain Kantorovich-Rubinstein
#: objective (for critics that are 1-Lipschitz by construction), and ``wgan-gp``, that objective
#: plus a gradient penalty (for unconstrained critics, Gulrajani et al. 2017).
LOSSES = ("kr", "wgan-gp")

#: What a critic family takes: ``images`` of shape (C, H, W), ``vectors`` of shape (D,), or
#: ``any`` shape (flattened).
INPUTS = ("images", "vectors", "any")


def register_critic(
    name: str, *, loss: str = "kr", inputs: str = "images"
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator recording ``name -> fn``, the training objective the family is made for
    (``loss``, one of :data:`LOSSES`) and the inputs it takes (``inputs``, one of :data:`INPUTS`);
    a duplicate name is a programming error."""
    if loss not in LOSSES:
        raise RuntimeError(f"critic {name!r} registered with loss {loss!r}; expected one of {LOSSES}")
    if inputs not in INPUTS:
        raise RuntimeError(f"critic {name!r} registered with inputs {inputs!r}; expected one of {INPUTS}")

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _CRITICS:
            raise RuntimeError(f"critic name {name!r} registered twice")
        _CRITICS[name] = fn
        _LOSSES[name] = loss
        _INPUTS[name] = inputs
        return fn

    return decorate


def default_loss(name: str) -> str:
    """The training objective the critic family ``name`` is made for: ``wgan-gp`` for the
    unconstrained gradient-penalty critics (``gp-*``), ``kr`` for the Lipschitz ones."""
    _entrypoint(name)
    return _LOSSES[name]


def available(inputs: str | None = None) -> list[str]:
    """Sorted names of every registered critic; with ``inputs`` (``"images"`` or ``"vectors"``)
    only those that take such inputs (the ``any``-shape families count for both)."""
    if inputs is None:
        return sorted(_CRITICS)
    if inputs not in ("images", "vectors"):
        raise ValueError(f"available(inputs=...) takes 'images' or 'vectors'; got {inputs!r}")
    return sorted(n for n, kind in _INPUTS.items() if kind in (inputs, "any"))


def critic_inputs(name: str) -> str:
    """What the critic family ``name`` takes: ``images`` (C, H, W), ``vectors`` (D,) or ``any``
    shape (flattened)."""
    _entrypoint(name)
    return _INPUTS[name]


def listing() -> str:
    """One line per registered critic: its name and the inputs it takes."""
    return "\n".join(f"{n} ({_INPUTS[n]})" for n in available())


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
        listed = ", ".join(f"{n} ({_INPUTS[n]})" for n in available())
        raise ValueError(f"Unknown critic {name!r}. Available critics (and the inputs they take): {listed}.{hint}")
    return _CRITICS[name]


def build(name: str, input_shape: tuple[int, ...] | list[int], **options: Any) -> nn.Module:
    """Build the critic registered as ``name`` for inputs of shape ``input_shape`` (no batch dim).

    Options set to ``None`` are dropped (so the entrypoint's default applies). An unknown option
    is a ``ValueError`` naming it and listing the accepted ones.
    """
    fn = _entrypoint(name)
    if (
        not isinstance(input_shape, (tuple, list))
        or not input_shape
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in input_shape)
    ):
        raise ValueError(f"input_shape must be a non-empty tuple of positive integers; got {input_shape!r}")
    shape = tuple(int(s) for s in input_shape)
    allowed = critic_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {', '.join(map(repr, unknown))} for critic {name!r}. "
            f"Accepted options: {', '.join(f'{k}={v!r}' for k, v in allowed.items())}."
        )
    kwargs = {k: v for k, v in options.items() if v is not None}
    model = fn(shape, **kwargs)
    model.register_forward_pre_hook(wdist_hook(functools.partial(_check_input_shape, name, shape)))
    return model


def _check_input_shape(name: str, shape: tuple[int, ...], module: nn.Module, args: tuple) -> None:
    """Forward pre-hook: a batch of the shape the critic was built for, or an error naming both."""
    x = args[0] if args else None
    if isinstance(x, torch.Tensor) and tuple(x.shape[1:]) != shape:
        raise ValueError(
            f"critic {name!r} was built for inputs of shape (N, {', '.join(map(str, shape))}); "
            f"got a batch of shape {tuple(x.shape)}. Build it with input_shape={shape!r} matching the data "
            "(channels, height, width for images)."
        )
