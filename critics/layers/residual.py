"""A plain residual connection ``x + branch(x)``: the export form of the residual Lipschitz blocks."""

from __future__ import annotations

from torch import Tensor, nn

from critics.certificates import certificate_report
from critics.norms import round_up
from critics.rules import register_certificate_rule

__all__ = ["Residual"]


class Residual(nn.Module):
    r""":math:`y = x + g(x)` for a chain ``branch`` :math:`= g` of plain modules.

    What :meth:`SLLConv2d.export <critics.layers.SLLConv2d.export>` returns: torch has no
    residual module, and this one holds nothing but its branch (plain ``nn.Conv2d`` and
    ``nn.ReLU``), so the export still loads with torch alone given this six-line class.

    Lipschitz bound: :math:`1 + \mathrm{Lip}(g)` (triangle inequality), with
    :math:`\mathrm{Lip}(g)` the product certificate of the branch (:func:`critics.certify`); valid
    for any branch but blind to the structure that makes an SLL block 1-Lipschitz, so certify the
    block, not its export.

    Shape
    -----
    Whatever ``branch`` maps to its own input's shape.
    """

    def __init__(self, branch: nn.Module) -> None:
        super().__init__()
        self.branch = branch

    def forward(self, x: Tensor) -> Tensor:
        return x + self.branch(x)

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """``1 + certify(branch)`` on inputs of ``input_shape``, the sum rounded up."""
        return round_up(1.0 + certificate_report(self.branch, input_shape).total, 1)


register_certificate_rule(Residual, Residual.lipschitz_bound, user_asserted=False)
