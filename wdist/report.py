"""How numbers are printed: the units line of every report and aligned (label, value) tables.

W1 is the Euclidean distance on the flattened samples, in the sources' value range, at their
shape (resolution); every report says so through :func:`domain_text`.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["domain_text", "format_rows"]


def domain_text(shape: Any, domain: Any) -> str:
    """``"shape (C, H, W), range [lo, hi], L2 distance on the flattened samples"``."""
    return f"shape {tuple(shape)}, range {domain if domain else 'unbounded'}, L2 distance on the flattened samples"


def format_rows(rows: Sequence[tuple[str, str]]) -> str:
    """Rows ``(label, value)`` as text, labels padded to one column."""
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
