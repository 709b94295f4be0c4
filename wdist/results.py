"""The result of one estimate: every number labelled with what it is, written atomically.

result.json nests what :class:`Result` holds:

* ``bound``: the certified bound (:class:`wdist.bound.Bound`, its one record): ``estimate`` (the held-out
  mean difference E_P f - E_Q f of the trained critic, a bound on its own only when L <= 1),
  ``lipschitz_certificate`` (L >= Lip(f), certified from the weights used), ``lower_bound`` (estimate / L,
  the certified lower bound on W1 for any critic, up to sampling error) with its intervals (``ci95_lo``,
  ``ci95_hi`` at 95%, ``lower_bound_lo``, ``lower_bound_hi`` at the run's confidence), ``certified``
  (always, unless a gradient norm observed on held-out samples exceeds L: INCONSISTENT),
  ``one_lipschitz`` (L <= 1 + 1e-3), the ``split`` (``test``) and the ``step`` (selected on the select
  split) it comes from;
* ``certificate``: ``layers`` (the factors of L), ``user_asserted`` (layers whose rule a user registered,
  applied as given) and ``empirical_lipschitz`` (the largest gradient norm observed, a lower estimate);
* ``exact``: a closed form (toys) ``{"w1", "method"}`` or ``None``; ``references``: the empirical OT
  between finite samples (an upper reference biased upwards) and its floor (P against a disjoint
  sample of P), :class:`wdist.references.References`;
* ``diagnosis``: the same statistic on items the critic was trained on (``train``, a Bound of split
  ``train``: *not* a bound), ``generalisation_gap``, ``limited_by`` and ``text``: whether the bound is
  limited by generalisation or by optimisation/capacity (at the selected step, against the select split);
* ``selection`` (split, rule, step, value, candidates, early stop), ``auto`` (with ``critic.name: auto``:
  the candidates compared on the select split and the chosen one), ``curve`` (the select split's
  points, :meth:`wdist.evaluation.Evaluation.point`);
* ``run``: what ran (:class:`RunRecord`: critic, loss, sources, shape and domain, steps, seconds, device,
  threads, precision, versions, config, segments, generators with their ``range_check``, split);
* ``verdict`` and ``notes``: sentences.

The bound and its interval come from the *test* split, evaluated once, at the end, on the state
selected on the *select* split; the curve is the select split's. Nothing is chosen on the test
items, so the test interval keeps its meaning. :meth:`Result.load` also reads the flat result.json of
earlier versions.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from wdist.advice import advice
from wdist.bound import Bound
from wdist.evaluation import CERTIFIED_TOLERANCE, Evaluation, diagnose
from wdist.files import atomic_write_text
from wdist.references import References
from wdist.report import CLIPPED_NOTE, certificate_text, clipped, format_rows, range_note, summary_rows

__all__ = [
    "Result",
    "RunRecord",
    "Exact",
    "Diagnosis",
    "verdict",
    "bound_certified",
    "run_notes",
    "certificate_notes",
    "interval_notes",
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


@dataclass(frozen=True)
class Exact:
    """A closed-form W1 (a toy's): ``w1`` (W1 units) and the ``method`` that gives it."""

    w1: float
    method: Optional[str] = None


@dataclass(frozen=True)
class Diagnosis:
    """What limits the bound (:func:`wdist.evaluation.diagnose`), at the selected step.

    ``train`` is the statistic on the train subset (a :class:`~wdist.bound.Bound` of split
    ``train``: *not* a bound) and ``generalisation_gap`` its 95% lower bound minus the select
    split's (W1 units); ``limited_by`` is one of :data:`wdist.evaluation.LIMITED_BY` and ``text``
    the finding with its advice."""

    limited_by: str = "unknown"
    text: str = ""
    train: Optional[Bound] = None
    generalisation_gap: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "limited_by": self.limited_by,
            "text": self.text,
            "train": None if self.train is None else self.train.to_dict(),
            "generalisation_gap": self.generalisation_gap,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Diagnosis":
        train = data.get("train")
        return cls(
            data.get("limited_by", "unknown"), data.get("text", ""),
            None if train is None else Bound.from_dict(train), data.get("generalisation_gap"),
        )  # fmt: skip


def _of_bound(name: str) -> property:
    """A read-only attribute of a :class:`Result` that is its bound's attribute ``name``."""
    return property(lambda result: getattr(result.bound, name), doc=f"``bound.{name}`` (see :class:`Bound`).")


@dataclass
class Result:
    """One estimate of W1(P, Q). Distances are Euclidean on the flattened samples, in ``run.domain``.

    ``bound`` is the certified bound (test split, selected step); ``estimate``, ``lower_bound``,
    ``ci95``, ``lipschitz_certificate``, ``certified`` and ``one_lipschitz`` read it (the vocabulary
    of :data:`wdist.report.KEYS`). The printed summary is :func:`wdist.report.summary_rows`."""

    bound: Bound
    verdict: str
    run: RunRecord
    certificate_layers: list[dict[str, Any]] = field(default_factory=list)
    certificate_user_asserted: list[str] = field(default_factory=list)
    empirical_lipschitz: Optional[float] = None
    exact: Optional[Exact] = None
    references: References = field(default_factory=References)
    diagnosis: Diagnosis = field(default_factory=Diagnosis)
    selection: dict[str, Any] = field(default_factory=dict)
    auto: Optional[dict[str, Any]] = None
    curve: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

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
        train95 = diagnosed.train_bound95
        fitted, recovered = _generalisation_context(run.split, selection)
        certified = bound_certified(evaluation.certificate, empirical_lipschitz)
        verdict_text = verdict(evaluation, empirical_lipschitz)
        notes = run_notes(run) + certificate_notes(evaluation) + interval_notes(evaluation) + references.notes()
        limited_by, finding = diagnose(diagnosed.bound95, train95, fitted, recovered)
        rows = [ev.point("select") for ev in curve]
        return cls(
            bound=Bound.from_evaluation(evaluation, "test", certified),
            verdict=verdict_text,
            run=run,
            certificate_layers=[c.as_dict() for c in evaluation.certificate_layers],
            certificate_user_asserted=[c.name for c in evaluation.certificate_layers if c.user_asserted],
            empirical_lipschitz=empirical_lipschitz,
            exact=None if exact_w1 is None else Exact(float(exact_w1), exact_w1_method),
            references=references,
            diagnosis=Diagnosis(
                limited_by=limited_by,
                text=f"{finding}; {advice(limited_by, rows)}" if rows else finding,
                train=Bound.train_of(diagnosed),
                generalisation_gap=None if train95 is None else float(train95.estimate - diagnosed.bound95.estimate),
            ),
            selection=selection,
            auto=None if auto is None else dict(auto),
            curve=rows,
            notes=notes,
        )

    # the vocabulary of every output (wdist.report.KEYS), read from the bound
    estimate = _of_bound("estimate")
    lower_bound = _of_bound("lower_bound")
    ci95 = _of_bound("ci95")
    lipschitz_certificate = _of_bound("lipschitz_certificate")
    certified = _of_bound("certified")
    one_lipschitz = _of_bound("one_lipschitz")

    def to_dict(self) -> dict[str, Any]:
        """The nested record written as result.json (see the module's docstring)."""
        return {
            "bound": self.bound.to_dict(),
            "verdict": self.verdict,
            "certificate": {
                "layers": self.certificate_layers,
                "user_asserted": self.certificate_user_asserted,
                "empirical_lipschitz": self.empirical_lipschitz,
            },
            "exact": None if self.exact is None else asdict(self.exact),
            "references": asdict(self.references),
            "diagnosis": self.diagnosis.to_dict(),
            "selection": self.selection,
            "auto": self.auto,
            "curve": self.curve,
            "notes": self.notes,
            "run": asdict(self.run),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Result":
        """The inverse of :meth:`to_dict`; a flat record of an earlier version is read too."""
        if "bound" not in data:
            data = _nested(data)
        certificate, exact = data.get("certificate") or {}, data.get("exact")
        run_fields = RunRecord.__dataclass_fields__
        return cls(
            bound=Bound.from_dict(data["bound"]),
            verdict=data.get("verdict", ""),
            run=RunRecord(**{k: v for k, v in data["run"].items() if k in run_fields}),
            certificate_layers=list(certificate.get("layers", [])),
            certificate_user_asserted=list(certificate.get("user_asserted", [])),
            empirical_lipschitz=certificate.get("empirical_lipschitz"),
            exact=None if exact is None else Exact(**exact),
            references=References(**(data.get("references") or {})),
            diagnosis=Diagnosis.from_dict(data.get("diagnosis") or {}),
            selection=dict(data.get("selection") or {}),
            auto=data.get("auto"),
            curve=list(data.get("curve", [])),
            notes=list(data.get("notes", [])),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)

    def save(self, path: os.PathLike | str) -> Path:
        """Write the result as JSON atomically; returns the path."""
        atomic_write_text(path, self.to_json() + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: os.PathLike | str) -> "Result":
        """A result.json, of this version or an earlier (flat) one."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def format_table(self) -> str:
        """The summary table printed at the end of a run (:func:`wdist.report.summary_rows`)."""
        return format_rows(summary_rows(self))


#: Keys of the flat result.json of earlier versions that :func:`_nested` reads into ``run``.
_FLAT_RUN_KEYS = tuple(RunRecord.__dataclass_fields__)


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """The nested record of a flat result.json written by an earlier version.

    Older still: one held-out size ``n_eval``; ``certified`` meaning L <= 1 + 1e-3 (before
    ``one_lipschitz``); no splits (the bound was the ``held-out`` split's, at the final step)."""
    n_p, n_q = flat.get("n_eval_p", flat.get("n_eval")), flat.get("n_eval_q", flat.get("n_eval"))
    certified = flat.get("certified")
    if "one_lipschitz" not in flat:
        certified = not str(flat.get("verdict", "")).startswith("INCONSISTENT")
    ci = flat.get("ci") or {}
    ci95 = flat.get("ci95") or [None, None]
    bound = {
        "step": flat.get("bound_step", flat.get("steps")),
        "split": flat.get("bound_split", "held-out"),
        "estimate": flat["estimate"],
        "stderr": flat.get("stderr"),
        "estimate_lo": ci.get("estimate_lo"),
        "estimate_hi": ci.get("estimate_hi"),
        "lipschitz_certificate": flat["lipschitz_certificate"],
        "lower_bound": flat["lower_bound"],
        "lower_bound_lo": ci.get("lower_bound_lo", ci95[0]),
        "lower_bound_hi": ci.get("lower_bound_hi", ci95[1]),
        "ci95_lo": ci95[0],
        "ci95_hi": ci95[1],
        "confidence": ci.get("confidence", 0.95),
        "method": ci.get("method", ""),
        "n_eval_p": n_p,
        "n_eval_q": n_q,
        "certified": bool(certified),
    }
    train = None
    if flat.get("train_lower_bound") is not None and flat.get("train_ci95") is not None:
        train = {
            **bound,
            "split": "train",
            "estimate": flat.get("train_estimate"),
            "lower_bound": flat["train_lower_bound"],
            "lower_bound_lo": flat["train_ci95"][0],
            "lower_bound_hi": flat["train_ci95"][1],
            "ci95_lo": flat["train_ci95"][0],
            "ci95_hi": flat["train_ci95"][1],
            "estimate_lo": None,
            "estimate_hi": None,
            "stderr": None,
            "n_eval_p": flat.get("n_train_p"),
            "n_eval_q": flat.get("n_train_q"),
            "certified": False,
        }
    exact = None if flat.get("exact_w1") is None else {"w1": flat["exact_w1"], "method": flat.get("exact_w1_method")}
    return {
        "bound": bound,
        "verdict": flat.get("verdict", ""),
        "certificate": {
            "layers": flat.get("certificate_layers", []),
            "user_asserted": flat.get("certificate_user_asserted", []),
            "empirical_lipschitz": flat.get("empirical_lipschitz"),
        },
        "exact": exact,
        "references": {k: flat.get(k) for k in References.__dataclass_fields__},
        "diagnosis": {
            "limited_by": flat.get("limited_by", "unknown"),
            "text": flat.get("diagnosis", ""),
            "train": train,
            "generalisation_gap": flat.get("generalisation_gap"),
        },
        "selection": flat.get("selection") or {},
        "auto": flat.get("auto"),
        "curve": [_nested_point(row) for row in flat.get("curve", [])],
        "notes": flat.get("notes", []),
        "run": {k: flat[k] for k in _FLAT_RUN_KEYS if k in flat},
    }


def _nested_point(row: dict[str, Any]) -> dict[str, Any]:
    """A curve point of an earlier version under the keys of :meth:`wdist.evaluation.Evaluation.point`."""
    renamed = {"certificate": "lipschitz_certificate"}
    point = {renamed.get(k, k): v for k, v in row.items() if not k.startswith(("train_", "n_train_"))}
    point.setdefault("split", "select")
    if "train_lower_bound" in row:
        point["train"] = {
            "step": row.get("step"), "split": "train", "estimate": row.get("train_estimate"),
            "lower_bound": row["train_lower_bound"], "lower_bound_lo": row.get("train_lower_bound_lo"),
            "lower_bound_hi": row.get("train_lower_bound_hi"), "n_eval_p": row.get("n_train_p"),
            "n_eval_q": row.get("n_train_q"), "certified": False,
        }  # fmt: skip
    else:
        point["train"] = None
    return point
