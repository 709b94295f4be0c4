"""The errors wdist raises on purpose, each with a message that names the value at fault.

Importing this module costs nothing, so the command line can tell them apart without loading the
training stack.
"""

from __future__ import annotations

__all__ = ["ConfigError", "NonFiniteLossError"]


class ConfigError(ValueError):
    """An invalid configuration; the message names the offending key or value and what is allowed."""


class NonFiniteLossError(FloatingPointError):
    """Training or evaluation produced NaN or Inf; the message names the step and what was non-finite."""
