r"""One held-out evaluation of a critic, as a value: computed once, then passed on.

At a training step the critic :math:`f` is evaluated on the held-out samples
:math:`x_1..x_n \sim P`, :math:`y_1..y_n \sim Q` (never used in training); its weights are
certified, :math:`\mathrm{Lip}(f) \le L`; and

.. math::

    \hat\Delta = \frac1n \sum_i f(x_i) - f(y_i), \qquad
    \text{lower bound} = \hat\Delta / L \;\; (\le W_1(P, Q) \text{ in expectation}),

with a confidence interval for :math:`\mathbb E_P f - \mathbb E_Q f` (critic units) and the same
interval divided by :math:`L` (W1 units: Euclidean distance on the flattened samples, in the
sources' domain). :func:`evaluate` computes all of it once; the training system keeps the list of
evaluations (the bound curve), and the run's :class:`~wdist.results.Result` is built from the last
one without recomputing anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

from torch import Tensor, nn

import critics
from critics.certificates import LayerCertificate
from wdist.stats import Interval, mean_difference_interval, scale_interval

__all__ = ["Evaluation", "evaluate", "difference_range", "CERTIFIED_TOLERANCE"]

#: A certificate ``L <= 1 + CERTIFIED_TOLERANCE`` makes the raw held-out estimate itself a bound.
CERTIFIED_TOLERANCE = 1e-3


def difference_range(certificate: float, domain: Optional[tuple[float, float]], dim: int) -> Optional[float]:
    r"""An a-priori width of an interval holding every :math:`d_i = f(x_i) - f(y_i)`, or ``None``.

    For samples in a bounded domain :math:`[lo, hi]^D` and a certified :math:`\mathrm{Lip}(f) \le L`,
    :math:`|d_i| \le L \|x_i - y_i\| \le L (hi - lo) \sqrt D`, so :math:`d_i` lies in an interval of
    width :math:`2 L (hi - lo) \sqrt D` (critic units). Loose, but known before looking at the data,
    as the empirical Bernstein bound requires. Unbounded (toy) domains have none.
    """
    if domain is None:
        return None
    return 2.0 * float(certificate) * (domain[1] - domain[0]) * math.sqrt(dim)


@dataclass(frozen=True)
class Evaluation:
    """The held-out evaluation of the critic at one training step.

    Attributes
    ----------
    step : int
        Optimiser steps taken when the critic was evaluated.
    interval : Interval
        :math:`\\mathbb E_P f - \\mathbb E_Q f` with its interval at the run's confidence (critic units).
    bound : Interval
        ``interval`` divided by the certificate: the lower-bound estimate and its interval (W1 units).
    bound95 : Interval
        The same at 95% confidence (``bound`` itself when the run's confidence is 95%).
    certificate : float
        :math:`L \\ge \\mathrm{Lip}(f)`, the product of ``certificate_layers``.
    certificate_layers : tuple of LayerCertificate
        The per-layer factors.
    value_range : float or None
        The a-priori range of the differences used by Bernstein intervals (:func:`difference_range`).
    fp, fq : (n,) float64 tensors or None
        Per-sample critic values on the held-out P and Q samples, in index order (``None`` for an
        evaluation restored from a checkpoint).
    """

    step: int
    interval: Interval
    bound: Interval
    bound95: Interval
    certificate: float
    certificate_layers: tuple[LayerCertificate, ...]
    value_range: Optional[float]
    fp: Optional[Tensor] = field(default=None, repr=False, compare=False)
    fq: Optional[Tensor] = field(default=None, repr=False, compare=False)

    @property
    def n_eval(self) -> int:
        """Held-out pairs the statistics use."""
        return int(self.interval.n)

    @property
    def certified(self) -> bool:
        """Whether ``certificate <= 1 + CERTIFIED_TOLERANCE`` (the raw estimate is then a bound)."""
        return self.certificate <= 1.0 + CERTIFIED_TOLERANCE

    def row(self) -> dict[str, float]:
        """One point of the bound curve (plain numbers, as written to result.json and the loggers)."""
        return {
            "step": int(self.step),
            "estimate": float(self.interval.estimate),
            "stderr": float(self.interval.stderr),
            "estimate_lo": float(self.interval.lo),
            "estimate_hi": float(self.interval.hi),
            "certificate": float(self.certificate),
            "lower_bound": float(self.bound.estimate),
            "lower_bound_lo": float(self.bound.lo),
            "lower_bound_hi": float(self.bound.hi),
            "n_eval": int(self.n_eval),
        }

    def state(self) -> dict[str, Any]:
        """Everything but the per-sample values, in plain Python types (for checkpoints)."""
        return {
            "step": int(self.step),
            "interval": asdict(self.interval),
            "bound": asdict(self.bound),
            "bound95": asdict(self.bound95),
            "certificate": float(self.certificate),
            "certificate_layers": [
                {**asdict(layer), "input_shape": list(layer.input_shape)} for layer in self.certificate_layers
            ],
            "value_range": self.value_range,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Evaluation":
        """The inverse of :meth:`state` (no per-sample values)."""
        layers = tuple(
            LayerCertificate(d["name"], d["kind"], tuple(d["input_shape"]), float(d["bound"]))
            for d in state["certificate_layers"]
        )
        return cls(
            step=int(state["step"]),
            interval=Interval(**state["interval"]),
            bound=Interval(**state["bound"]),
            bound95=Interval(**state["bound95"]),
            certificate=float(state["certificate"]),
            certificate_layers=layers,
            value_range=state["value_range"],
        )


def evaluate(
    critic: nn.Module,
    input_shape: tuple[int, ...],
    fp: Tensor,
    fq: Tensor,
    step: int,
    confidence: float = 0.95,
    method: str = "normal",
    domain: Optional[tuple[float, float]] = None,
) -> Evaluation:
    """The evaluation of a critic from its per-sample held-out values.

    Certifies ``critic`` (:func:`critics.certificate_report`, on the weights as they are now),
    derives the a-priori range of the differences from the certificate and the domain, and computes
    the interval of :math:`\\mathbb E_P f - \\mathbb E_Q f` and its division by the certificate, at
    ``confidence`` and at 95%. See :func:`wdist.stats.mean_difference_interval` for ``method``.

    Parameters
    ----------
    critic : nn.Module
        The critic whose values ``fp``, ``fq`` are.
    input_shape : tuple of int
        Shape of one sample (the certificate depends on the spatial size).
    fp, fq : (n,) tensors
        Critic values on the held-out samples of P and of Q.
    step : int
        The training step.
    confidence, method, domain
        Interval confidence and method; the sources' value range (``None``: unbounded).
    """
    report = critics.certificate_report(critic, input_shape)
    cert = float(report.total)
    value_range = difference_range(cert, domain, math.prod(input_shape))
    fp, fq = fp.detach().double().cpu(), fq.detach().double().cpu()
    raw = mean_difference_interval(fp, fq, confidence=confidence, method=method, value_range=value_range)
    bound = _divided(raw, cert)
    if abs(confidence - 0.95) < 1e-12:
        bound95 = bound
    else:
        raw95 = mean_difference_interval(fp, fq, confidence=0.95, method=method, value_range=value_range)
        bound95 = _divided(raw95, cert)
    return Evaluation(int(step), raw, bound, bound95, cert, tuple(report.layers), value_range, fp, fq)


def _divided(interval: Interval, certificate: float) -> Interval:
    """``interval / certificate`` with the method text of the raw interval (see scale_interval)."""
    return replace(scale_interval(interval, certificate), method=interval.method)
