"""How numbers are printed: the units line of every report and aligned (label, value) tables.

W1 is the Euclidean distance on the flattened samples, in the sources' value range, at their
shape (resolution); every report says so through :func:`domain_text`.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["domain_text", "format_rows", "range_text", "range_note"]


def domain_text(shape: Any, domain: Any) -> str:
    """``"shape (C, H, W), range [lo, hi], L2 distance on the flattened samples"``."""
    return f"shape {tuple(shape)}, range {domain if domain else 'unbounded'}, L2 distance on the flattened samples"


def format_rows(rows: Sequence[tuple[str, str]]) -> str:
    """Rows ``(label, value)`` as text, labels padded to one column."""
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def range_text(check: dict[str, Any]) -> str:
    """One line on a generator side's outputs against its declared range, from its record
    (``{"all": RangeSummary.record(), "evaluated": ..., "training": ..., "limit": ...}``)."""
    rec = check["all"]
    a, b = rec["declared"]
    seen = (
        f" ({check['evaluated']['samples']} evaluated samples, {check['training']['samples']} training samples)"
        if "evaluated" in check
        else ""
    )
    observed = "nothing seen" if rec["observed"] is None else "observed [{:.7g}, {:.7g}]".format(*rec["observed"])
    text = (
        f"{rec['outside']} of {rec['values']} values ({100 * rec['fraction_outside']:.3g}%) outside the declared "
        f"output_range [{a:g}, {b:g}]{seen}; {observed}"
    )
    if rec["outside"]:
        text += f"; clamped into the domain, moving a sample {rec['mean_distance_clamped']:.3g} on average"
    return text


def range_note(side: str, check: dict[str, Any]) -> list[str]:
    """A sentence when a generator side had values outside its declared range (under the limit,
    or the run would have stopped): they were clamped, and what that means for the bound."""
    rec = check["all"]
    if not rec["outside"]:
        return []
    a, b = rec["declared"]
    lo, hi = rec["observed"]
    return [
        f"{side.upper()}'s generator produced {100 * rec['fraction_outside']:.3g}% of its values outside its declared "
        f"output_range [{a:g}, {b:g}] (observed [{lo:.7g}, {hi:.7g}]; the run stops above "
        f"{100 * check['limit']:g}%). They were clamped into the domain, so the bound is to the clamped samples; W1 to "
        f"the generator's own samples is at least the bound minus {rec['mean_distance_clamped']:.3g}, the mean "
        "distance the clamp moved a sample."
    ]
