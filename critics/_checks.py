"""Argument checks shared by layers and architectures: integers are integers, not truncated floats."""

from __future__ import annotations

from typing import Any

__all__ = ["check_int"]


def check_int(owner: str, name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer >= ``minimum`` (``bool`` and ``2.5`` refused, not
    truncated), else ``ValueError`` naming ``owner``, ``name`` and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{owner}: {name} must be {kind}; got {value!r}")
    return int(value)
