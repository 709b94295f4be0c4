"""The result of one estimate: every number labelled with what it is, written atomically.

* ``estimate``: held-out mean difference E_P f - E_Q f of the trained critic (a bound on its own
  only when L <= 1);
* ``lipschitz_certificate``: L >= Lip(f), certified from the weights used (``certificate_layers``
  its factors; ``certificate_user_asserted`` the layers whose rule a user registered, which wdist
  applies as given);
* ``lower_bound = estimate / L``: the certified lower bound on W1, for any critic (up to sampling
  error: ``ci95`` and ``ci`` are its intervals);
* ``certified``: whether ``lower_bound`` is certified: always, unless a gradient norm observed on
  held-out samples exceeds L (then the certificate is wrong for this critic: INCONSISTENT);
* ``one_lipschitz``: L <= 1 + 1e-3, the critic is 1-Lipschitz within 0.1% (its estimate is then
  within 0.1% of the bound; otherwise dividing by L loosens the bound);
* ``exact_w1``: a closed form (toys) or ``None``;
* ``empirical_ot_w1``: exact OT between finite samples, an upper reference biased upwards, with
  ``empirical_ot_floor`` (P against a disjoint sample of P) beside it;
* ``generators``: what each generator side sampled, with ``range_check``: its outputs counted
  against its declared ``output_range`` (values outside, observed range, mean distance the clamp
  into the domain moved a sample; :mod:`wdist.sources.ranges`);
* ``train_lower_bound`` / ``train_ci95``: the same statistic on items the critic was trained on,
  *not* a bound: with ``generalisation_gap``, ``limited_by`` and ``diagnosis`` it says whether the
  bound is limited by generalisation or by optimisation/capacity (at the selected step, against the
  select split).

The bound and its interval come from the *test* split (``bound_split``), evaluated once, at the
end, on the state selected on the *select* split (``bound_step``; ``selection``: split, rule,
step, value, candidates, early stop); the curve is the select split's. Nothing is chosen on the
test items, so the test interval keeps its meaning. ``split`` records how each side was divided.
With ``critic.name: auto`` the critic, too, is chosen on the select split (``auto``: the candidates
compared, each one's select value, selected step and steps spent, and the chosen one); ``critic``
is then the chosen critic, and the test split was read for it alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from wdist.advice import advice
from wdist.auto import auto_text
from wdist.evaluation import CERTIFIED_TOLERANCE, Evaluation, diagnose
from wdist.files import atomic_write_text
from wdist.references import References
from wdist.report import (
    CLIPPED_NOTE,
    LABELS,
    certificate_text,
    clipped,
    domain_text,
    format_interval,
    format_rows,
    range_note,
    range_text,
)

__all__ = [
    "Result",
    "RunRecord",
    "verdict",
    "bound_certified",
    "evaluation_record",
    "run_notes",
    "certificate_notes",
    "interval_notes",
    "selection_text",
    "CERTIFIED_TOLERANCE",
]


@dataclass(frozen=True)
class RunRecord:
    """What ran: the critic and its loss (with the one its family is made for), the two sources and
    their units, the training budget actually spent (steps, seconds of training proper summed over
    segments, device, torch threads per process and why), the precision Lightning trained in (and
    the one asked), library versions, the config, the run's segments (one per process that
    trained it: the first run, then each resume), and what each generator side sampled
    (``generators``: side -> ``Generator.record()``, with its latent and ``random_weights``), and
    how each side was split (``split``: :meth:`wdist.data.PairDataModule.split_record`)."""

    critic: str
    loss: str
    p: str
    q: str
    shape: list[int]
    domain: Optional[list[float]]
    steps: int
    seconds: float
    device: str
    versions: dict[str, str]
    config: dict[str, Any]
    precision: str = "32-true"
    precision_requested: Optional[str] = None
    loss_default: Optional[str] = None
    segments: list[dict[str, Any]] = field(default_factory=list)
    threads: Optional[dict[str, Any]] = None
    generators: dict[str, dict[str, Any]] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)


def run_notes(run: RunRecord) -> list[str]:
    """Sentences on where what ran differs from what was asked or from the usual: the precision
    Lightning fell back to, a loss other than the critic family's own, a generator with random
    weights, a generator whose values were clamped into its declared range."""
    notes = []
    for side, gen in sorted(run.generators.items()):
        if "range_check" in gen:
            notes += range_note(side, gen["range_check"])
        if gen.get("random_weights"):
            notes.append(
                f"{side.upper()} is generator {gen.get('name')!r} RANDOMLY INITIALISED (random_weights: true): no "
                "trained weights were loaded, so the bound is to an untrained network's samples."
            )
    if run.precision_requested is not None and run.precision != run.precision_requested:
        notes.append(
            f"trainer.precision={run.precision_requested!r} was asked, but Lightning trained in {run.precision!r} "
            "(its fallback on this device); the numbers are those of the precision that ran."
        )
    if run.loss_default is not None and run.loss != run.loss_default:
        notes.append(
            f"trained with train.loss={run.loss!r}, set explicitly; critic {run.critic!r} is made for "
            f"{run.loss_default!r}."
        )
    related = run.split.get("related")
    if related and related.get("related"):
        notes.append(
            f"P and Q look paired row by row (same length; in {related['rows']} sampled rows, row i of Q was the "
            f"nearest sampled Q row to row i of P in {related['nearest']}, at a median {related['ratio']:.3g} of the "
            "distance to the others) but were split independently, so a held-out item's partner may be a training "
            "item of the other side, which pulls the held-out values toward the fitted ones and lowers the bound. If "
            "row i of Q belongs with row i of P, set eval.aligned true (one permutation splits both)."
        )
    return notes


def certificate_notes(evaluation: Evaluation) -> list[str]:
    """A sentence when a factor of the certificate rests on a user-asserted rule
    (:func:`critics.register_certificate_rule`): wdist applied it as given and cannot vouch for it."""
    layers = [c for c in evaluation.certificate_layers if c.user_asserted]
    if not layers:
        return []
    names = ", ".join(f"{c.name!r} ({c.kind})" for c in layers)
    return [
        f"USER-ASSERTED certificate: the bound of {names} comes from a certificate rule registered outside wdist "
        "(critics.register_certificate_rule), applied as given and not checked by wdist; the certificate, and so "
        "the bound, is only as true as that rule."
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


def _generalisation_context(split: dict[str, Any], selection: dict[str, Any]) -> tuple[Optional[str], Optional[str]]:
    """What the diagnosis on generalisation names: the training items fitted, and what selection recovered."""
    fitted = [
        f"{side.upper()}'s {split[side]['train']} training items"
        for side in ("p", "q")
        if isinstance(split.get(side), dict) and split[side].get("train") is not None
    ]
    recovered = None
    if selection.get("rule") == "best" and selection.get("last_step") not in (None, selection.get("step")):
        recovered = (
            f"selection kept step {selection['step']}, select bound {selection['value']:.4g} against "
            f"{selection['last_value']:.4g} at the last step {selection['last_step']} "
            f"({selection['value'] - selection['last_value']:+.4g})"
        )
    elif selection.get("step") is not None:
        recovered = f"selection kept the last step evaluated ({selection['step']}): nothing to recover"
    return (" and ".join(fitted) or None), recovered


def interval_notes(evaluation: Evaluation) -> list[str]:
    """The note every output carries (:data:`~wdist.report.CLIPPED_NOTE`) when an interval of the
    lower bound (at the run's confidence or at 95%) reaches below 0, with the computed ends."""
    shown = [iv for iv in dict.fromkeys((evaluation.bound, evaluation.bound95)) if clipped(iv.lo)]
    if not shown:
        return []
    ends = "; ".join(f"{100 * iv.confidence:.0f}% interval [{iv.lo:.4g}, {iv.hi:.4g}]" for iv in shown)
    return [f"{CLIPPED_NOTE} (here: {ends})."]


def bound_certified(certificate: float, empirical_lipschitz: Optional[float]) -> bool:
    """Whether the bound ``estimate / certificate`` is certified: the certificate is computed from
    the critic's weights, so it is, unless an observed gradient norm exceeds it (the certificate is
    then wrong for this critic)."""
    return empirical_lipschitz is None or empirical_lipschitz <= certificate * (1 + 1e-6)


def evaluation_record(evaluation: Evaluation, empirical_lipschitz: Optional[float] = None) -> dict[str, Any]:
    """The numbers of one held-out evaluation under the keys every result uses (:data:`wdist.report.KEYS`):
    ``estimate`` and ``stderr`` (critic units), ``lipschitz_certificate``, ``lower_bound`` (estimate / L)
    with ``ci95`` (its 95% interval) and ``ci`` (both intervals at the run's confidence, with the
    method), ``certified`` (:func:`bound_certified`), ``one_lipschitz``, ``n_eval_p``, ``n_eval_q``.
    Result files, comparison rows, track points and ``W1Monitor.history`` all take them from here."""
    raw, bound = evaluation.interval, evaluation.bound
    return {
        "estimate": float(raw.estimate),
        "stderr": float(raw.stderr),
        "lipschitz_certificate": float(evaluation.certificate),
        "lower_bound": float(bound.estimate),
        "ci95": [float(evaluation.bound95.lo), float(evaluation.bound95.hi)],
        "ci": {
            "confidence": raw.confidence,
            "method": raw.method,
            "estimate_lo": float(raw.lo),
            "estimate_hi": float(raw.hi),
            "lower_bound_lo": float(bound.lo),
            "lower_bound_hi": float(bound.hi),
        },
        "certified": bound_certified(evaluation.certificate, empirical_lipschitz),
        "one_lipschitz": bool(evaluation.certified),
        "n_eval_p": evaluation.n_eval_p,
        "n_eval_q": evaluation.n_eval_q,
    }


def verdict(evaluation: Evaluation, empirical_lipschitz: Optional[float]) -> str:
    r"""One sentence saying what the numbers are, following the certificate L exactly.

    ``certified`` is said only of :math:`\hat\Delta / L` (the estimate divided by L): a lower bound
    on W1 for any L. The raw estimate is called a bound only when :math:`L \le 1`; for
    :math:`1 < L \le 1 + 10^{-3}` it is within 0.1% of the bound but not itself certified; above,
    dividing by L loosens the bound. An observed gradient norm above L makes the result INCONSISTENT.
    """
    cert, iv = evaluation.certificate, evaluation.interval
    if not bound_certified(cert, empirical_lipschitz):
        return (
            f"INCONSISTENT: an observed gradient norm {empirical_lipschitz:.6g} exceeds the certificate {cert:.6g}; "
            "the certificate is wrong for this critic; do not use the bound (please report this)."
        )
    bound = evaluation.bound.estimate
    statement = (
        f"certified: Lip(f) <= L = {certificate_text(cert)}, so estimate / L = {bound:.6g} is a lower bound on W1 "
        f"up to sampling error ({100 * iv.confidence:.0f}% interval, {iv.method})"
    )
    if cert <= 1.0:
        return f"{statement}; as L <= 1, the raw estimate {iv.estimate:.6g} is a lower bound too."
    if evaluation.certified:
        return (
            f"{statement}. The raw estimate {iv.estimate:.6g} is within {CERTIFIED_TOLERANCE:.1%} of it but is not "
            "itself certified (L > 1)."
        )
    return (
        f"{statement}, loosened by 1/L: the critic is not 1-Lipschitz (L > 1 + {CERTIFIED_TOLERANCE:g}), so the raw "
        f"estimate {iv.estimate:.4g} is NOT a bound on W1."
    )


@dataclass
class Result:
    """One estimate of W1(P, Q). Distances are Euclidean on the flattened samples, in ``domain``."""

    estimate: float
    lipschitz_certificate: float
    lower_bound: float
    stderr: float
    ci95: list[float]
    ci: dict[str, Any]
    certified: bool
    one_lipschitz: bool
    verdict: str
    exact_w1: Optional[float]
    exact_w1_method: Optional[str]
    empirical_ot_w1: Optional[float]
    empirical_ot_floor: Optional[float]
    empirical_ot_n: Optional[int]
    empirical_lipschitz: Optional[float]
    certificate_layers: list[dict[str, Any]]
    n_eval_p: int
    n_eval_q: int
    steps: int
    seconds: float
    device: str
    critic: str
    loss: str
    p: str
    q: str
    shape: list[int]
    domain: Optional[list[float]]
    versions: dict[str, str]
    curve: list[dict[str, float]] = field(default_factory=list)
    empirical_ot_floor_n: Optional[int] = None
    config: dict[str, Any] = field(default_factory=dict)
    precision: Optional[str] = None
    segments: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    train_estimate: Optional[float] = None
    train_lower_bound: Optional[float] = None
    train_ci95: Optional[list[float]] = None
    generalisation_gap: Optional[float] = None
    n_train_p: Optional[int] = None
    n_train_q: Optional[int] = None
    limited_by: str = "unknown"
    diagnosis: str = ""
    threads: Optional[dict[str, Any]] = None
    generators: dict[str, dict[str, Any]] = field(default_factory=dict)
    certificate_user_asserted: list[str] = field(default_factory=list)
    bound_split: str = "test"
    bound_step: Optional[int] = None
    selection: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    auto: Optional[dict[str, Any]] = None

    @classmethod
    def from_evaluation(
        cls,
        evaluation: Evaluation,
        run: RunRecord,
        curve: Sequence[Evaluation],
        references: References,
        exact_w1: Optional[float] = None,
        exact_w1_method: Optional[str] = None,
        empirical_lipschitz: Optional[float] = None,
        selection: Optional[dict[str, Any]] = None,
        selected: Optional[Evaluation] = None,
        auto: Optional[dict[str, Any]] = None,
    ) -> "Result":
        """The result of a run: the bound from ``evaluation`` (the test split, on the selected
        state), the diagnosis from ``selected`` (the select split and train subset at the selected
        step; ``evaluation`` itself when not given), the curve from ``curve`` (the select split).
        Every number is taken from them (nothing is recomputed); the references, the run record
        the ``selection`` record (:meth:`wdist.selection.Selection.record`) and, for ``critic.name:
        auto``, the choice of critic (:func:`wdist.auto.auto_record`) are added."""
        selection = dict(selection or {})
        diagnosed = selected if selected is not None else evaluation
        train_raw, train95 = diagnosed.train_interval, diagnosed.train_bound95
        fitted, recovered = _generalisation_context(run.split, selection)
        limited_by, finding = diagnose(diagnosed.bound95, train95, fitted, recovered)
        rows = [ev.row() for ev in curve]
        return cls(
            **evaluation_record(evaluation, empirical_lipschitz),
            verdict=verdict(evaluation, empirical_lipschitz),
            exact_w1=None if exact_w1 is None else float(exact_w1),
            exact_w1_method=exact_w1_method,
            empirical_ot_w1=references.empirical_ot_w1,
            empirical_ot_floor=references.empirical_ot_floor,
            empirical_ot_n=references.empirical_ot_n,
            empirical_ot_floor_n=references.empirical_ot_floor_n,
            empirical_lipschitz=empirical_lipschitz,
            certificate_layers=[c.as_dict() for c in evaluation.certificate_layers],
            certificate_user_asserted=[c.name for c in evaluation.certificate_layers if c.user_asserted],
            steps=run.steps,
            seconds=run.seconds,
            device=run.device,
            critic=run.critic,
            loss=run.loss,
            p=run.p,
            q=run.q,
            shape=list(run.shape),
            domain=run.domain,
            versions=run.versions,
            curve=rows,
            config=run.config,
            precision=run.precision,
            segments=[dict(seg) for seg in run.segments],
            notes=run_notes(run) + certificate_notes(evaluation) + interval_notes(evaluation) + references.notes(),
            train_estimate=None if train_raw is None else float(train_raw.estimate),
            train_lower_bound=None if train95 is None else float(train95.estimate),
            train_ci95=None if train95 is None else [float(train95.lo), float(train95.hi)],
            generalisation_gap=None if train95 is None else float(train95.estimate - diagnosed.bound95.estimate),
            n_train_p=None if train_raw is None else int(train_raw.n_p),
            n_train_q=None if train_raw is None else int(train_raw.n_q),
            limited_by=limited_by,
            diagnosis=f"{finding}; {advice(limited_by, rows)}" if rows else finding,
            threads=run.threads,
            generators={side: dict(rec) for side, rec in run.generators.items()},
            bound_split="test",
            bound_step=int(evaluation.step),
            selection=selection,
            split=dict(run.split),
            auto=None if auto is None else dict(auto),
        )

    @property
    def references(self) -> References:
        """The empirical-OT references of this result."""
        return References(self.empirical_ot_w1, self.empirical_ot_n, self.empirical_ot_floor, self.empirical_ot_floor_n)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)

    def save(self, path: os.PathLike | str) -> Path:
        """Write the result as JSON atomically; returns the path."""
        atomic_write_text(path, self.to_json() + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: os.PathLike | str) -> "Result":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if "n_eval" in data:  # written before the two held-out sizes were recorded: equal sizes
            data.setdefault("n_eval_p", data["n_eval"])
            data.setdefault("n_eval_q", data["n_eval"])
        if "one_lipschitz" not in data:  # written when ``certified`` meant L <= 1 + CERTIFIED_TOLERANCE
            data["one_lipschitz"] = bool(data.get("certified"))
            data["certified"] = not str(data.get("verdict", "")).startswith("INCONSISTENT")
        # written before the three splits: the bound was the held-out split's, at the final step
        data.setdefault("bound_split", "held-out")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value) rows for the table printed at the end of a run."""
        conf = self.ci.get("confidence", 0.95)
        lo, hi = self.ci["lower_bound_lo"], self.ci["lower_bound_hi"]
        bound_label = LABELS["lower_bound"] if self.certified else "W1 lower bound, NOT certified (see verdict)"
        loosened = "" if self.one_lipschitz else f"; loosened by 1/L, L = {self.lipschitz_certificate:.4g}"
        rows = [("P", self.p), ("Q", self.q)]
        rows += [
            (f"{side.upper()} output range", range_text(gen["range_check"]))
            for side, gen in sorted(self.generators.items())
            if "range_check" in gen
        ]
        rows += [
            ("domain", domain_text(self.shape, self.domain)),
            (
                "critic",
                f"{self.critic} ({self.loss} loss, {self.steps} steps, {self.seconds:.1f} s on {self.device}"
                + (f", {self.precision}" if self.precision and self.precision != "32-true" else "")
                + ")",
            ),
            (
                bound_label,
                f"{self.lower_bound:.4f} (point estimate, estimate / L)   {100 * conf:.0f}% CI "
                f"{format_interval(lo, hi)} ({self.ci.get('method')}; n_P = {self.n_eval_p}, n_Q = {self.n_eval_q} "
                f"{self.bound_split}-split samples, evaluated once{loosened})",
            ),
        ]
        critic_choice = auto_text(self.auto)
        if critic_choice:
            rows.append(("critic chosen (auto)", critic_choice))
        chosen = selection_text(self.selection)
        if chosen:
            rows.append(("reported state", chosen))
        if self.certified:
            # the point value lies above the bound it estimates about half the time; the guaranteed
            # statement is the interval's lower end, one-sided
            one_sided = 100 * (1 - (1 - conf) / 2)
            if lo > 0:
                statement = f"{lo:.4f} with {one_sided:.1f}% confidence (the lower end of the certified bound's CI)"
            else:  # W1 >= 0 always: a negative end says nothing
                statement = f"0: no evidence that W1 > 0 (the CI's lower end {lo:.4f} is not above 0)"
            rows.append(("W1 at least", statement))
        raw_note = "" if self.lipschitz_certificate <= 1.0 or self.one_lipschitz else "; NOT a bound: L > 1"
        rows += [
            (
                f"held-out {LABELS['estimate']}",
                f"{self.estimate:.4f} ± {self.stderr:.4f} (stderr; before dividing by L{raw_note})",
            ),
            (
                LABELS["lipschitz_certificate"],
                f"{certificate_text(self.lipschitz_certificate)} (certified upper bound on Lip(f); "
                f"{LABELS['one_lipschitz']}: {'yes' if self.one_lipschitz else 'no'})",
            ),
        ]
        if self.empirical_lipschitz is not None:
            rows.append(
                ("largest gradient norm seen", f"{self.empirical_lipschitz:.4f} (empirical lower estimate of Lip(f))")
            )
        if self.train_ci95 is not None and self.train_lower_bound is not None:
            tlo, thi = self.train_ci95
            rows.append(
                (
                    "train subset (diagnosis)",
                    f"{self.train_lower_bound:.4f}   95% CI [{tlo:.4f}, {thi:.4f}] on {self.n_train_p} + "
                    f"{self.n_train_q} training items at the reported step (NOT a bound: the critic was fitted to "
                    "them)",
                )
            )
        if self.diagnosis:
            rows.append(("what limits the bound", self.diagnosis))
        if self.exact_w1 is not None:
            rows.append(("exact W1", f"{self.exact_w1:.4f} ({self.exact_w1_method})"))
        rows += self.references.rows()
        if len(self.segments) > 1:
            parts = [
                f"{seg['from_step']}-{seg['to_step']} ({seg['seconds']:.1f} s, {seg['ended']})" for seg in self.segments
            ]
            rows.append(("trained in segments", "steps " + ", ".join(parts)))
        rows.append(("verdict", self.verdict))
        rows += [("note", note) for note in self.notes]
        return rows

    def format_table(self) -> str:
        """The summary table printed at the end of a run."""
        return format_rows(self.summary_rows())
