r"""Which training step is reported: chosen on the select split, never on the test split.

Every evaluation during training offers a *candidate*: the critic's state at that step (its
averaged weights when ``train.average`` is on) with its select-split lower bound
:math:`b_s = \hat\Delta_{\text{select}} / L`. With rule ``best`` the selected candidate is

.. math::

    s^\star = \min \operatorname*{arg\,max}_s b_s

(the earliest of the highest), with rule ``last`` the final one. The test split is evaluated once,
on the state of :math:`s^\star`, after training: the choice depends on the select items only, so
the test items are independent of it and the test interval keeps its confidence. Early stopping
(``train.patience``: stop after that many candidates in a row below the best) uses the same
select values.

:class:`Selection` holds the choice and the state it chose; it travels in checkpoints, so a
resumed run selects the same step with the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from torch import Tensor, nn

__all__ = ["Selection"]


@dataclass
class Selection:
    """The selected candidate so far, and the state of the critic it selected.

    Attributes
    ----------
    rule : ``"best"`` or ``"last"``
    patience : int or None
        Candidates in a row without improvement after which training stops (``None``: never).
    step, value : int, float or None
        Step and select-split lower bound of the selected candidate (``None`` before the first).
    candidates : int
        Candidates compared (evaluations at distinct steps).
    since_best : int
        Candidates since the selected one (0 when the last candidate is selected).
    last_step, last_value : int, float or None
        The latest candidate.
    stopped_early : bool
        Whether training stopped on ``patience`` before ``train.steps``.
    state : dict of str to Tensor
        The selected critic's ``state_dict`` (CPU copies).
    """

    rule: Literal["best", "last"] = "best"
    patience: Optional[int] = None
    step: Optional[int] = None
    value: Optional[float] = None
    candidates: int = 0
    since_best: int = 0
    last_step: Optional[int] = None
    last_value: Optional[float] = None
    stopped_early: bool = False
    state: dict[str, Tensor] = field(default_factory=dict, repr=False)

    def offer(self, step: int, value: float, critic: nn.Module) -> bool:
        """Offer the critic at ``step`` with select-split lower bound ``value``; return whether it
        is now the selected candidate (its state is then copied).

        A second offer at the step of the latest candidate (the final step evaluated again)
        replaces that candidate instead of adding one.
        """
        step, value = int(step), float(value)
        again = self.last_step == step
        if not again:
            self.candidates += 1
        selected = self.rule == "last" or self.value is None or value > self.value or (again and self.step == step)
        self.last_step, self.last_value = step, value
        if selected:
            self.step, self.value, self.since_best = step, value, 0
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in critic.state_dict().items()}
        elif not again:
            self.since_best += 1
        return selected

    @property
    def exhausted(self) -> bool:
        """Whether ``patience`` candidates in a row have not improved on the selected one."""
        return self.patience is not None and self.since_best >= self.patience

    def record(self) -> dict[str, Any]:
        """What result.json says about the choice (no weights)."""
        return {
            "split": "select",
            "rule": self.rule,
            "step": self.step,
            "value": self.value,
            "candidates": self.candidates,
            "last_step": self.last_step,
            "last_value": self.last_value,
            "patience": self.patience,
            "stopped_early": self.stopped_early,
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything, the selected weights included, in types ``torch.load(weights_only=True)`` reads."""
        return {**self.record(), "since_best": self.since_best, "state": dict(self.state)}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """The inverse of :meth:`state_dict` (the rule and patience stay those of this run)."""
        self.step, self.value = saved.get("step"), saved.get("value")
        self.candidates, self.since_best = int(saved.get("candidates", 0)), int(saved.get("since_best", 0))
        self.last_step, self.last_value = saved.get("last_step"), saved.get("last_value")
        self.stopped_early = bool(saved.get("stopped_early", False))
        self.state = dict(saved.get("state", {}))
