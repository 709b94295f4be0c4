"""How numbers are printed: one vocabulary for every output, the units line of every report, the
interval of a lower bound (its negative end shown as 0, with one note), and aligned tables.

W1 is the Euclidean distance on the flattened samples, in the sources' value range, at their
shape (resolution); every report says so through :func:`domain_text`.

The vocabulary (:data:`KEYS` and :data:`LABELS`), the same in ``estimate``, ``compare``, ``track``,
``W1Monitor``, the plots and W&B:

* the **estimate** is the held-out mean difference :math:`\\hat\\Delta = \\hat{\\mathbb E}_P f -
  \\hat{\\mathbb E}_Q f` of the trained critic (critic units; a bound only when :math:`L \\le 1`);
* the **certified lower bound** is :math:`\\mathbb E[\\hat\\Delta] / L \\le W_1(P, Q)`, for any critic
  (``L`` certified from the weights); its point value ``lower_bound`` is the estimate divided by
  ``L`` and ``ci95`` is its 95% interval. "Certified" is said of this bound, and only of it;
* **1-Lipschitz** (``one_lipschitz``) says :math:`L \\le 1 + 10^{-3}`: the estimate is then within
  0.1% of the bound; otherwise dividing by ``L`` loosens the bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

from wdist.auto import auto_text

if TYPE_CHECKING:
    from wdist.results import Result

__all__ = [
    "KEYS",
    "LABELS",
    "CLIPPED_NOTE",
    "domain_text",
    "format_rows",
    "format_interval",
    "clipped",
    "one_lipschitz_text",
    "certificate_text",
    "range_text",
    "range_note",
    "selection_text",
    "summary_rows",
]

#: The key of each number in every output (result.json, comparison.json rows, track.json points,
#: ``W1Monitor.history``, W&B summaries); flat tables (CSV, W&B scalars) write ``ci95`` as
#: ``ci95_lo`` and ``ci95_hi``.
KEYS = ("estimate", "lower_bound", "ci95", "lipschitz_certificate", "certified", "one_lipschitz")

#: The printed label of each key of :data:`KEYS`.
LABELS = {
    "estimate": "estimate E_P f - E_Q f",
    "lower_bound": "certified W1 lower bound",
    "ci95": "95% CI",
    "lipschitz_certificate": "Lipschitz certificate L",
    "certified": "certified",
    "one_lipschitz": "1-Lipschitz (L <= 1.001)",
}

#: The one note every output carries when an interval of a lower bound reaches below 0.
CLIPPED_NOTE = (
    "0* marks an interval lower end below 0, shown as 0: W1 >= 0 always, so a negative end says nothing "
    "(no evidence that W1 > 0); the computed ends are kept in the .json files"
)


def domain_text(shape: Any, domain: Any) -> str:
    """``"shape (C, H, W), range [lo, hi], L2 distance on the flattened samples"``."""
    return f"shape {tuple(shape)}, range {domain if domain else 'unbounded'}, L2 distance on the flattened samples"


def clipped(lo: Optional[float]) -> bool:
    """Whether an interval of a W1 lower bound with lower end ``lo`` is printed clipped at 0."""
    return lo is not None and lo < 0


def format_interval(lo: float, hi: float, digits: int = 4) -> str:
    """The interval ``[lo, hi]`` of a W1 lower bound as printed everywhere: a lower end below 0 is
    shown as ``0*`` (see :data:`CLIPPED_NOTE`), an upper end below 0 as ``0``."""
    low = "0*" if clipped(lo) else f"{lo:.{digits}f}"
    return f"[{low}, {max(hi, 0.0):.{digits}f}]"


def certificate_text(certificate: float) -> str:
    """A Lipschitz certificate as printed: ``1 + 1.3e-13`` just above 1 (where six digits would read
    as 1, hiding that the raw estimate is then not itself a bound), else six significant digits."""
    if 1.0 < certificate < 1.001:
        return f"1 + {certificate - 1.0:.2g}"
    return f"{certificate:.6g}"


def one_lipschitz_text(one_lipschitz: bool, certificate: float) -> str:
    """``yes`` or ``no (L = 14.2)``: whether the critic is 1-Lipschitz within 0.1%."""
    return "yes" if one_lipschitz else f"no (L = {certificate:.4g})"


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


def selection_text(selection: dict[str, Any]) -> str:
    """One sentence on the choice of the reported step (``Result.selection``)."""
    if not selection or selection.get("step") is None:
        return ""
    text = f"step {selection['step']} on the select split"
    if selection.get("rule") == "last":
        text += f" (the last of {selection['candidates']} evaluations; train.select = last)"
    else:
        text += f" (the best of {selection['candidates']} evaluations, select bound {selection['value']:.4f}"
        if selection.get("last_step") is not None and selection["last_step"] != selection["step"]:
            text += f"; {selection['last_value']:.4f} at the last, step {selection['last_step']}"
        text += ")"
    if selection.get("stopped_early"):
        text += f"; stopped early after {selection['patience']} evaluations without improvement"
    return text


def summary_rows(result: "Result") -> list[tuple[str, str]]:
    """(label, value) rows of the table printed at the end of a run: the sources and their units,
    the critic and its budget, the certified bound with its interval (at the run's confidence) and
    the one-sided statement of its lower end, the raw estimate, the certificate, the diagnosis, the
    references, the verdict and the notes of a :class:`~wdist.results.Result`."""
    bound, run = result.bound, result.run
    conf = bound.confidence
    lo, hi = bound.lower_bound_lo, bound.lower_bound_hi
    bound_label = LABELS["lower_bound"] if bound.certified else "W1 lower bound, NOT certified (see verdict)"
    loosened = "" if bound.one_lipschitz else f"; loosened by 1/L, L = {bound.lipschitz_certificate:.4g}"
    rows = [("P", run.p), ("Q", run.q)]
    rows += [
        (f"{side.upper()} output range", range_text(gen["range_check"]))
        for side, gen in sorted(run.generators.items())
        if "range_check" in gen
    ]
    rows += [
        ("domain", domain_text(run.shape, run.domain)),
        (
            "critic",
            f"{run.critic} ({run.loss} loss, {run.steps} steps, {run.seconds:.1f} s on {run.device}"
            + (f", {run.precision}" if run.precision and run.precision != "32-true" else "")
            + ")",
        ),
        (
            bound_label,
            f"{bound.lower_bound:.4f} (point estimate, estimate / L)   {100 * conf:.0f}% CI "
            f"{format_interval(lo, hi)} ({bound.method}; n_P = {bound.n_eval_p}, n_Q = {bound.n_eval_q} "
            f"{bound.split}-split samples, evaluated once{loosened})",
        ),
    ]
    critic_choice = auto_text(result.auto)
    if critic_choice:
        rows.append(("critic chosen (auto)", critic_choice))
    chosen = selection_text(result.selection)
    if chosen:
        rows.append(("reported state", chosen))
    if bound.certified:
        # the point value lies above the bound it estimates about half the time; the guaranteed
        # statement is the interval's lower end, one-sided
        one_sided = 100 * (1 - (1 - conf) / 2)
        if lo > 0:
            statement = f"{lo:.4f} with {one_sided:.1f}% confidence (the lower end of the certified bound's CI)"
        else:  # W1 >= 0 always: a negative end says nothing
            statement = f"0: no evidence that W1 > 0 (the CI's lower end {lo:.4f} is not above 0)"
        rows.append(("W1 at least", statement))
    raw_note = "" if bound.lipschitz_certificate <= 1.0 or bound.one_lipschitz else "; NOT a bound: L > 1"
    rows += [
        (
            f"held-out {LABELS['estimate']}",
            f"{bound.estimate:.4f} ± {bound.stderr:.4f} (stderr; before dividing by L{raw_note})",
        ),
        (
            LABELS["lipschitz_certificate"],
            f"{certificate_text(bound.lipschitz_certificate)} (certified upper bound on Lip(f); "
            f"{LABELS['one_lipschitz']}: {'yes' if bound.one_lipschitz else 'no'})",
        ),
    ]
    if result.empirical_lipschitz is not None:
        rows.append(
            ("largest gradient norm seen", f"{result.empirical_lipschitz:.4f} (empirical lower estimate of Lip(f))")
        )
    train = result.diagnosis.train
    if train is not None:
        rows.append(
            (
                "train subset (diagnosis)",
                f"{train.lower_bound:.4f}   95% CI [{train.ci95_lo:.4f}, {train.ci95_hi:.4f}] on {train.n_eval_p} + "
                f"{train.n_eval_q} training items at the reported step (NOT a bound: the critic was fitted to them)",
            )
        )
    if result.diagnosis.text:
        rows.append(("what limits the bound", result.diagnosis.text))
    if result.exact is not None:
        rows.append(("exact W1", f"{result.exact.w1:.4f} ({result.exact.method})"))
    rows += result.references.rows()
    if len(run.segments) > 1:
        parts = [f"{s['from_step']}-{s['to_step']} ({s['seconds']:.1f} s, {s['ended']})" for s in run.segments]
        rows.append(("trained in segments", "steps " + ", ".join(parts)))
    rows.append(("verdict", result.verdict))
    rows += [("note", note) for note in result.notes]
    return rows
