"""What to try next: advice on what limits the bound, from the steps run and the select curve's trend.

:func:`wdist.evaluation.diagnose` says *what* limits the bound (generalisation, or optimisation
and capacity) from the select-split and train-subset intervals of the reported step. What to
change next also depends on how the select bound moved while the critic trained: a bound still
rising at the last step gains from more steps whatever limits it, and one that peaked and fell
from the peak does not (the selection, :mod:`wdist.selection`, already reported the peak's state).
:func:`trend` reads that from the select curve; :func:`advice` joins the two. Reading the curve
for advice chooses nothing: only the selection does, on the same select split.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["trend", "advice", "TREND_TOLERANCE"]

#: A change of the select bound counts when it exceeds this fraction of the last point's interval
#: half-width. The select samples are the same at every evaluation, so the difference between two
#: steps has far less sampling noise than either interval.
TREND_TOLERANCE = 0.1


def trend(curve: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """How the select bound moved: ``(kind, sentence)``, ``kind`` one of ``rising``, ``falling``,
    ``flat`` or ``unknown``.

    With :math:`b_t` the bound at evaluation step :math:`t`, :math:`T` the last step, :math:`r` the
    first evaluation at or after :math:`T/2` (the one before :math:`T` when that is :math:`T`) and
    :math:`\\tau` = :data:`TREND_TOLERANCE` times the last interval's half-width:

    .. math::

        \\text{falling}: \\max_t b_t - b_T > \\tau \\text{ (peak before } T); \\quad
        \\text{rising}: b_T - b_r > \\tau; \\quad \\text{flat otherwise.}

    Parameters
    ----------
    curve : rows with ``step``, ``lower_bound``, ``lower_bound_lo``, ``lower_bound_hi`` (W1 units),
        in step order.
    """
    if len(curve) < 2:
        step = int(curve[-1]["step"]) if curve else 0
        return "unknown", (
            f"one select evaluation (step {step}), so no trend is known (set train.eval_every below train.steps "
            "to follow the bound)"
        )
    last = curve[-1]
    later = [c for c in curve[:-1] if c["step"] >= last["step"] / 2] or [curve[-2]]
    ref = later[0]
    tol = TREND_TOLERANCE * max(0.0, (last["lower_bound_hi"] - last["lower_bound_lo"]) / 2)
    peak = max(curve, key=lambda c: c["lower_bound"])
    if peak is not last and peak["lower_bound"] - last["lower_bound"] > tol:
        return "falling", (
            f"the select bound peaked at step {peak['step']} ({peak['lower_bound']:.4g}) and fell to "
            f"{last['lower_bound']:.4g} by step {last['step']}"
        )
    moved = f"{ref['lower_bound']:.4g} at step {ref['step']} -> {last['lower_bound']:.4g} at step {last['step']}"
    if last["lower_bound"] - ref["lower_bound"] > tol:
        return "rising", f"the select bound was still rising at the last step ({moved})"
    return "flat", f"the select bound was flat over the second half of training ({moved})"


#: What may raise the bound, by (what limits it, the curve's trend).
_ADVICE = {
    ("generalisation", "rising"): "more steps may still raise it; more training data or a smaller critic would "
    "narrow the train/select gap",
    ("generalisation", "falling"): "fewer steps, a smaller critic or more training data may help",
    ("generalisation", "flat"): "more training data or a smaller critic may help; more steps are unlikely to",
    ("optimisation or capacity", "rising"): "more steps should raise it",
    ("optimisation or capacity", "falling"): "a smaller learning rate or a decaying schedule may help",
    ("optimisation or capacity", "flat"): "more steps are unlikely to help; a wider critic, another layer "
    "family or a larger learning rate may raise it",
    ("optimisation or capacity", "unknown"): "more steps, a wider critic or another layer family may raise it",
    ("generalisation", "unknown"): "more training data or a smaller critic may help",
}


def advice(limited_by: str, curve: Sequence[dict[str, Any]]) -> str:
    """The sentence after the diagnosis: the curve's :func:`trend` and, for a known ``limited_by``
    (``generalisation`` or ``optimisation or capacity``), what may raise the bound given that trend."""
    kind, said = trend(curve)
    tip = _ADVICE.get((limited_by, kind))
    return f"{said}: {tip}" if tip else said
