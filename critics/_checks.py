"""Argument checks shared by layers and architectures, with errors that name the owner and the value.

Integers are integers, not truncated floats (``2.5`` and ``True`` are refused).
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_int", "check_channels", "check_stride_one"]


def check_int(owner: str, name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer >= ``minimum`` (``bool`` and ``2.5`` refused, not
    truncated), else ``ValueError`` naming ``owner``, ``name`` and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{owner}: {name} must be {kind}; got {value!r}")
    return int(value)


def check_channels(layer: str, in_channels: int, out_channels: int, kernel_size: int) -> None:
    """Raise ``ValueError`` naming the value if a channel count or the kernel size is not a positive integer."""
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("kernel_size", kernel_size)):
        check_int(layer, name, value)


def check_stride_one(layer: str, stride: int) -> None:
    """Raise ``ValueError`` naming the value unless ``stride == 1`` (downsample by pixel unshuffle)."""
    if stride != 1:
        raise ValueError(
            f"{layer} supports stride=1 only; got stride={stride!r}. Downsample with "
            f"InvertibleDownsample (pixel unshuffle) followed by a stride-1 {layer}."
        )
