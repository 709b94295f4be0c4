r"""One held-out evaluation of a critic, as a value: computed once, then passed on.

At a training step the critic :math:`f` is evaluated on held-out samples (the select split during
training, the test split once at the end; :mod:`wdist.data`)
:math:`x_1..x_{n_P} \sim P`, :math:`y_1..y_{n_Q} \sim Q` (never used in training, independent, of
possibly different sizes); its weights are certified, :math:`\mathrm{Lip}(f) \le L`; and

.. math::

    \hat\Delta = \frac1{n_P} \sum_i f(x_i) - \frac1{n_Q} \sum_j f(y_j), \qquad
    \text{lower bound} = \hat\Delta / L \;\; (\le W_1(P, Q) \text{ in expectation}),

with a confidence interval for :math:`\mathbb E_P f - \mathbb E_Q f` (critic units) and the same
interval divided by :math:`L` (W1 units: Euclidean distance on the flattened samples, in the
sources' domain).

The same statistic is computed on a fixed *train subset* (items of the training part, see
:mod:`wdist.data`): it is not a bound (the critic was fitted to those items), only a diagnosis.
When it lies clearly above the select-split value the bound is limited by generalisation; when the
two agree, by optimisation or capacity (:func:`diagnose`).

:func:`evaluate` computes all of it once; the training system keeps the list of evaluations (the
select curve), and the run's :class:`~wdist.results.Result` is built from the test evaluation of
the selected state and the select evaluation of its step, without recomputing anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from torch import Tensor, nn

import critics
from critics.certificates import LayerCertificate
from wdist.bound import ONE_LIPSCHITZ_TOLERANCE, Bound
from wdist.stats import Interval, mean_difference_interval, scale_interval

__all__ = ["Evaluation", "evaluate", "critic_value_range", "diagnose", "CERTIFIED_TOLERANCE", "Z95"]

#: A certificate ``L <= 1 + CERTIFIED_TOLERANCE`` makes the critic 1-Lipschitz within 0.1%: its raw
#: estimate is then within 0.1% of the certified bound estimate / L (itself a bound only when L <= 1).
CERTIFIED_TOLERANCE = ONE_LIPSCHITZ_TOLERANCE


def critic_value_range(certificate: float, domain: Optional[tuple[float, float]], dim: int) -> Optional[float]:
    r"""An a-priori width of an interval holding every critic value :math:`f(x)`, or ``None``.

    For samples in a bounded domain :math:`[lo, hi]^D` and a certified :math:`\mathrm{Lip}(f) \le L`,
    :math:`|f(x) - f(x')| \le L \|x - x'\| \le L (hi - lo) \sqrt D` for any two points of the domain,
    so all values of :math:`f` on it lie in an interval of width :math:`L (hi - lo) \sqrt D`
    (critic units; the differences :math:`f(x) - f(y)` in one of twice that width). Loose, but
    known before looking at the data, as the empirical Bernstein bound requires. Unbounded (toy)
    domains have none.
    """
    if domain is None:
        return None
    return float(certificate) * (domain[1] - domain[0]) * math.sqrt(dim)


#: What :func:`diagnose` can conclude (``Evaluation.limited_by``).
LIMITED_BY = ("generalisation", "optimisation or capacity", "unclear", "unknown")


#: Two-sided 95% normal quantile: the margin of the train-minus-select gap in :func:`diagnose`.
Z95 = 1.959963984540054


def diagnose(
    heldout: Interval, train: Optional[Interval], train_items: Optional[str] = None, selection: Optional[str] = None
) -> tuple[str, str]:
    r"""What limits the bound, from the held-out (select-split) and train-subset bounds at 95%.

    With :math:`b_t, b_s` the train-subset and select bounds (W1 units) and :math:`s_t, s_s` their
    standard errors (the two sets of items are disjoint and sampled independently),

    .. math::

        g = b_t - b_s, \qquad m = z_{0.975} \sqrt{s_t^2 + s_s^2},

    and ``(limited_by, sentence)`` is returned, ``limited_by`` one of :data:`LIMITED_BY`:

    * ``generalisation``: :math:`g > m` (the critic scores the items it was fitted to clearly
      higher than fresh ones);
    * ``optimisation or capacity``: :math:`|g| \le m` (train and held-out agree within sampling
      error), so fitting the training items better is what would raise the bound;
    * ``unclear``: :math:`g < -m` (not expected from fitting; e.g. a split that is not random);
    * ``unknown``: no train-subset evaluation.

    A test of the gap itself, not of two intervals that do not overlap (which would need
    :math:`g > z (s_t + s_s)` and misses gaps a small select split measures). ``train_items`` (e.g.
    ``"P's 1197 training items"``) names the data the critic fitted, and ``selection`` says what
    choosing the step on the select split recovered; both go into the sentence on generalisation.
    """
    if train is None:
        return "unknown", "no train-subset evaluation (an evaluation restored from an older checkpoint)"
    gap = train.estimate - heldout.estimate
    margin = Z95 * math.hypot(train.stderr, heldout.stderr)
    both = (
        f"train subset {train.estimate:.4g} [{train.lo:.4g}, {train.hi:.4g}] vs select {heldout.estimate:.4g} "
        f"[{heldout.lo:.4g}, {heldout.hi:.4g}], gap {gap:+.4g} ± {margin:.2g} at 95%"
    )
    if gap > margin:
        fitted = f"its training items ({train_items})" if train_items else "its training items"
        chose = f"; {selection}" if selection else ""
        return "generalisation", (
            f"limited by generalisation: the critic scores {fitted} clearly higher than select ones ({both}){chose}"
        )
    if -gap > margin:
        return "unclear", (
            f"unclear: select items score clearly higher than training items ({both}), which fitting does not "
            "explain (is the split random?)"
        )
    return "optimisation or capacity", (
        f"limited by optimisation or capacity, not generalisation: train and select agree within sampling error "
        f"({both})"
    )


@dataclass(frozen=True)
class Evaluation:
    """The held-out evaluation of the critic at one training step, with its train-subset diagnosis.

    Attributes
    ----------
    step : int
        Optimiser steps taken when the critic was evaluated.
    interval : Interval
        :math:`\\mathbb E_P f - \\mathbb E_Q f` with its interval at the run's confidence (critic
        units), from the held-out samples.
    bound : Interval
        ``interval`` divided by the certificate: the lower-bound estimate and its interval (W1 units).
    bound95 : Interval
        The same at 95% confidence (``bound`` itself when the run's confidence is 95%).
    certificate : float
        :math:`L \\ge \\mathrm{Lip}(f)`, the product of ``certificate_layers``.
    certificate_layers : tuple of LayerCertificate
        The per-layer factors.
    value_range : float or None
        The a-priori width of an interval holding every critic value, used by Bernstein intervals
        (:func:`critic_value_range`).
    train_interval, train_bound, train_bound95 : Interval or None
        The same three statistics on the train subset (items the critic was trained on): *not* a
        bound, a diagnosis only (:func:`diagnose`). ``None`` for an evaluation without one.
    fp, fq : (n_P,), (n_Q,) float64 tensors or None
        Per-sample critic values on the held-out P and Q samples, in index order (``None`` for an
        evaluation restored from a checkpoint).
    fp_train, fq_train : float64 tensors or None
        The same on the train subset.
    """

    step: int
    interval: Interval
    bound: Interval
    bound95: Interval
    certificate: float
    certificate_layers: tuple[LayerCertificate, ...]
    value_range: Optional[float]
    train_interval: Optional[Interval] = None
    train_bound: Optional[Interval] = None
    train_bound95: Optional[Interval] = None
    fp: Optional[Tensor] = field(default=None, repr=False, compare=False)
    fq: Optional[Tensor] = field(default=None, repr=False, compare=False)
    fp_train: Optional[Tensor] = field(default=None, repr=False, compare=False)
    fq_train: Optional[Tensor] = field(default=None, repr=False, compare=False)

    @property
    def n_eval_p(self) -> int:
        """Held-out P samples the statistics use."""
        return int(self.interval.n_p)

    @property
    def n_eval_q(self) -> int:
        """Held-out Q samples the statistics use."""
        return int(self.interval.n_q)

    @property
    def certified(self) -> bool:
        """Whether ``certificate <= 1 + CERTIFIED_TOLERANCE``: the critic is 1-Lipschitz within 0.1%
        (the certified bound is ``estimate / certificate`` either way)."""
        return self.certificate <= 1.0 + CERTIFIED_TOLERANCE

    @property
    def diagnosis(self) -> tuple[str, str]:
        """``(limited_by, sentence)`` of :func:`diagnose` on the 95% statistics of the two bounds."""
        return diagnose(self.bound95, self.train_bound95)

    def point(self, split: str = "select") -> dict[str, Any]:
        """One point of the bound curve: :meth:`wdist.bound.Bound.to_dict` of this evaluation on
        ``split``, with ``train`` the same record on the train subset (a diagnosis, not a bound;
        ``None`` without one)."""
        train = Bound.train_of(self)
        return {**Bound.from_evaluation(self, split).to_dict(), "train": None if train is None else train.to_dict()}

    def checkpoint_record(self) -> dict[str, Any]:
        """What a checkpoint keeps of this select-split evaluation, in plain Python types: its curve
        point (:meth:`point`, the :meth:`wdist.bound.Bound.to_dict` records of the select split and
        the train subset), the per-layer certificate and the a-priori range of the critic's values;
        :meth:`from_checkpoint_record` rebuilds the evaluation from it (without per-sample values)."""
        return {
            **self.point("select"),
            "certificate_layers": [layer.as_dict() for layer in self.certificate_layers],
            "critic_value_range": self.value_range,
        }

    @classmethod
    def from_checkpoint_record(cls, record: dict[str, Any]) -> "Evaluation":
        """The inverse of :meth:`checkpoint_record`: the same evaluation, field for field (no per-sample values)."""
        interval, bound, bound95 = _intervals(Bound.from_dict(record))
        train = (None, None, None) if record.get("train") is None else _intervals(Bound.from_dict(record["train"]))
        return cls(
            int(record["step"]), interval, bound, bound95, float(record["lipschitz_certificate"]),
            _layers(record["certificate_layers"]), record["critic_value_range"], *train,
        )  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Evaluation":
        """An evaluation as checkpoints written before :meth:`checkpoint_record` kept it (its intervals
        as dicts of :class:`~wdist.stats.Interval`; no per-sample values).

        A state without ``critic_value_range`` holds the older ``value_range`` of the paired
        differences, twice the width of the critic values.
        """
        layers = _layers(state["certificate_layers"])
        if "critic_value_range" in state:
            value_range = state["critic_value_range"]
        else:
            value_range = None if state.get("value_range") is None else state["value_range"] / 2.0

        def interval(key: str) -> Optional[Interval]:
            return None if state.get(key) is None else Interval.from_dict(state[key])

        return cls(
            step=int(state["step"]),
            interval=Interval.from_dict(state["interval"]),
            bound=Interval.from_dict(state["bound"]),
            bound95=Interval.from_dict(state["bound95"]),
            certificate=float(state["certificate"]),
            certificate_layers=layers,
            value_range=value_range,
            train_interval=interval("train_interval"),
            train_bound=interval("train_bound"),
            train_bound95=interval("train_bound95"),
        )


def _layers(records: list[dict[str, Any]]) -> tuple[LayerCertificate, ...]:
    """Per-layer certificates from their plain records (:meth:`LayerCertificate.as_dict`)."""
    return tuple(
        LayerCertificate(d["name"], d["kind"], tuple(d["input_shape"]), float(d["bound"]), bool(d.get("user_asserted")))
        for d in records
    )


def _intervals(record: Bound) -> tuple[Interval, Interval, Interval]:
    """The intervals a bound record was taken from (:meth:`Bound.from_evaluation`): of
    :math:`\\mathbb E_P f - \\mathbb E_Q f` at the run's confidence (critic units), of its division by
    L at that confidence and at 95% (W1 units). The standard error of a division is the raw one
    divided by L, as :func:`~wdist.stats.scale_interval` computes it; every interval method's
    estimate, standard error and method text are those of any confidence."""
    raw = Interval(
        record.estimate, record.stderr, record.estimate_lo, record.estimate_hi, record.confidence, record.method,
        record.n_eval_p, record.n_eval_q,
    )  # fmt: skip
    stderr = record.stderr / record.lipschitz_certificate
    bound = replace(raw, estimate=record.lower_bound, stderr=stderr, lo=record.lower_bound_lo, hi=record.lower_bound_hi)
    if abs(record.confidence - 0.95) < 1e-12:
        return raw, bound, bound
    return raw, bound, replace(bound, lo=record.ci95_lo, hi=record.ci95_hi, confidence=0.95)


def evaluate(
    critic: nn.Module,
    input_shape: tuple[int, ...],
    fp: Tensor,
    fq: Tensor,
    step: int,
    confidence: float = 0.95,
    method: str = "normal",
    domain: Optional[tuple[float, float]] = None,
    paired: bool = False,
    fp_train: Optional[Tensor] = None,
    fq_train: Optional[Tensor] = None,
) -> Evaluation:
    """The evaluation of a critic from its per-sample held-out (and train-subset) values.

    Certifies ``critic`` (:func:`critics.certificate_report`, on the weights as they are now),
    derives the a-priori range of its values from the certificate and the domain, and computes
    the interval of :math:`\\mathbb E_P f - \\mathbb E_Q f` and its division by the certificate, at
    ``confidence`` and at 95%, on the held-out values and, when given, on the train-subset values.
    See :func:`wdist.stats.mean_difference_interval` for ``method`` and ``paired``.

    Parameters
    ----------
    critic : nn.Module
        The critic whose values ``fp``, ``fq`` are.
    input_shape : tuple of int
        Shape of one sample (the certificate depends on the spatial size).
    fp, fq : (n_P,), (n_Q,) tensors
        Critic values on the held-out samples of P and of Q.
    step : int
        The training step.
    confidence, method, domain, paired
        Interval confidence, method and pairing; the sources' value range (``None``: unbounded).
    fp_train, fq_train : tensors, optional
        Critic values on the train subsets of P and Q (both or neither). With ``paired`` the
        longer one is cut to the length of the shorter (a finite training part can be smaller
        than the held-out size).
    """
    report = critics.certificate_report(critic, input_shape)
    cert = float(report.total)
    value_range = critic_value_range(cert, domain, math.prod(input_shape))
    fp, fq = fp.detach().double().cpu(), fq.detach().double().cpu()

    def statistics(a: Tensor, b: Tensor) -> tuple[Interval, Interval, Interval]:
        def interval(c: float) -> Interval:
            return mean_difference_interval(a, b, c, method, value_range, paired=paired)  # type: ignore[arg-type]

        raw = interval(confidence)
        bound = _divided(raw, cert)
        return raw, bound, (bound if abs(confidence - 0.95) < 1e-12 else _divided(interval(0.95), cert))

    raw, bound, bound95 = statistics(fp, fq)
    train: tuple[Optional[Interval], ...] = (None, None, None)
    if (fp_train is None) != (fq_train is None):
        raise ValueError("give both fp_train and fq_train (the train subsets of P and Q), or neither")
    if fp_train is not None and fq_train is not None:
        fp_train, fq_train = fp_train.detach().double().cpu(), fq_train.detach().double().cpu()
        if paired:
            n = min(len(fp_train), len(fq_train))
            fp_train, fq_train = fp_train[:n], fq_train[:n]
        train = statistics(fp_train, fq_train)
    return Evaluation(
        int(step), raw, bound, bound95, cert, tuple(report.layers), value_range, *train,
        fp=fp, fq=fq, fp_train=fp_train, fq_train=fq_train,
    )  # fmt: skip


def _divided(interval: Interval, certificate: float) -> Interval:
    """``interval / certificate`` with the method text of the raw interval (see scale_interval)."""
    return replace(scale_interval(interval, certificate), method=interval.method)
