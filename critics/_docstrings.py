"""Numpydoc sections shared by the critic entrypoints' docstrings (``fill_doc``, as mne and matplotlib).

A docstring line that holds only ``%(key)s`` is replaced by :data:`SECTIONS` ``[key]``, each of its
lines indented as the placeholder was, when the module is imported; so ``help(fn)`` and ``fn.__doc__``
show every section whole. A reader of the source text alone (griffe's static analysis) sees the
placeholders: an API page of these modules needs mkdocstrings' ``force_inspection`` option.
"""

from __future__ import annotations

import re
from typing import Callable, TypeVar

__all__ = ["SECTIONS", "fill_doc"]

F = TypeVar("F", bound=Callable[..., object])

#: The shared sections by key.
SECTIONS: dict[str, str] = {
    "image_shape": "Shape\n-----\n(N, C, H, W) -> (N, 1)",
    "vector_shape": "Shape\n-----\n(N, *input_shape) -> (N, 1)",
    "input_shape": "input_shape : (C, H, W)",
    "width": (
        "width : float or None\n"
        "    Multiplier of the widths 64-128-256-512, rounded to even counts (``None``: 0.25 up to\n"
        "    16 x 16 inputs, else 1)."
    ),
    "sorting_activation": 'activation : str\n    ``"maxmin"``, ``"groupsortN"`` (e.g. ``"groupsort4"``) or ``"relu"``.',
    "gp_activation": 'activation : str\n    ``"leakyrelu"`` (slope 0.2) or ``"relu"``.',
    "bjorck_iters": "bjorck_iters : int\n    Maximum Björck iterations per training step (convergence-tested).",
    "lipschitz_image_parameters": (
        "Parameters\n----------\ninput_shape : (C, H, W)\n"
        "width : float or None\n"
        "    Multiplier of the widths 64-128-256-512, rounded to even counts (``None``: 0.25 up to\n"
        "    16 x 16 inputs, else 1).\n"
        'activation : str\n    ``"maxmin"``, ``"groupsortN"`` (e.g. ``"groupsort4"``) or ``"relu"``.'
    ),
    "gp_mlp_parameters": (
        "input_shape : tuple of int\n"
        "width, depth : int\n"
        "    Hidden width and number of hidden layers.\n"
        'activation : str\n    ``"leakyrelu"`` (slope 0.2) or ``"relu"``.'
    ),
    "conv_shape_and_channels": (
        "Shape\n-----\n(N, c_in, H, W) -> (N, c_out, H, W)\n\n"
        "Parameters\n----------\nin_channels, out_channels, kernel_size : int"
    ),
    "conv_shape_and_channel_counts": (
        "Shape\n-----\n(N, c_in, H, W) -> (N, c_out, H, W)\n\n"
        "Parameters\n----------\nin_channels, out_channels : int\n    Channel counts (>= 1)."
    ),
    "gulrajani": '.. [1] Gulrajani et al., "Improved training of Wasserstein GANs", NeurIPS 2017.',
}

_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)%\((?P<key>\w+)\)s[ \t]*$", re.M)


def fill_doc(fn: F) -> F:
    """Replace each ``%(key)s`` line of ``fn.__doc__`` by the indented section ``SECTIONS[key]``.

    Raises ``KeyError`` naming an unknown key (at import, so a typo never reaches a user)."""

    def section(match: re.Match[str]) -> str:
        key = match["key"]
        if key not in SECTIONS:
            raise KeyError(f"{fn.__qualname__}: unknown docstring section %({key})s; known: {sorted(SECTIONS)}")
        return "\n".join(match["indent"] + line if line else line for line in SECTIONS[key].splitlines())

    if fn.__doc__:
        fn.__doc__ = _PLACEHOLDER.sub(section, fn.__doc__)
    return fn
