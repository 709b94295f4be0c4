"""Sorting activations: GroupSort and MaxMin (gradient-norm-preserving, 1-Lipschitz)."""

from __future__ import annotations

from torch import Tensor, nn

from critics._checks import check_int
from critics.rules import register_certificate_rule

__all__ = ["GroupSort", "MaxMin"]


class GroupSort(nn.Module):
    r"""Sort the channels within contiguous groups of ``group_size``.

    .. math::

        y_{[g k, g k + g)} = \operatorname{sort}\big(x_{[g k, g k + g)}\big), \qquad
        k = 0, \dots, C / g - 1

    along the channel dimension (dim 1 for ``(N, C, *)``, which is the last one for ``(N, C)``),
    in descending order by default, independently at every sample and spatial position. Locally
    the map is a permutation, so its Jacobian is a permutation matrix wherever it exists:
    :math:`\|J^\top g\| = \|g\|` (gradient-norm preserving). Ties get a definite permutation
    (``torch.sort``), so this also holds on the ties.

    Lipschitz bound: 1 in L2, tight (equality at every point), no conditions.

    Shape
    -----
    (N, C, *) -> (N, C, *), with C divisible by ``group_size``.

    Parameters
    ----------
    group_size : int
        Channels per group (>= 1; 1 is the identity, C is a full sort).
    descending : bool
        Largest first (so ``GroupSort(2)`` is :class:`MaxMin`).

    References
    ----------
    .. [1] Anil, Lucas & Grosse, "Sorting out Lipschitz function approximation", ICML 2019.
    .. [2] Chernodub & Nowicki, "Norm-preserving orthogonal permutation linear unit
       activation functions (OPLU)", 2016.
    """

    def __init__(self, group_size: int, descending: bool = True) -> None:
        super().__init__()
        self.group_size = check_int(type(self).__name__, "group_size", group_size)
        self.descending = bool(descending)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, descending={self.descending}"

    def _check_channels(self, channels: int) -> None:
        if channels % self.group_size:
            raise ValueError(
                f"{type(self).__name__}: the channel count {channels} is not divisible by the "
                f"group size {self.group_size}"
            )

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 2:
            raise ValueError(f"{type(self).__name__} expects (N, C, *) inputs; got shape {tuple(x.shape)}")
        c = x.shape[1]
        self._check_channels(c)
        if self.group_size == 1:
            return x
        groups = x.unflatten(1, (c // self.group_size, self.group_size))
        return groups.sort(dim=2, descending=self.descending).values.flatten(1, 2)

    def lipschitz_bound(self, input_shape: tuple[int, ...]) -> float:
        """1.0 (a pointwise permutation); checks the channel count of ``input_shape``."""
        if input_shape:
            self._check_channels(int(input_shape[0]))
        return 1.0


class MaxMin(GroupSort):
    r"""MaxMin: ``GroupSort(2)``, each channel pair :math:`(a, b)` becomes
    :math:`(\max(a, b), \min(a, b))`.

    .. math::

        y_{2k} = \max(x_{2k}, x_{2k+1}), \qquad y_{2k+1} = \min(x_{2k}, x_{2k+1})

    Lipschitz bound: 1 in L2, tight, gradient-norm preserving, no conditions.

    Shape
    -----
    (N, C, *) -> (N, C, *), with C even.

    References
    ----------
    .. [1] Anil, Lucas & Grosse, "Sorting out Lipschitz function approximation", ICML 2019.
    """

    def __init__(self) -> None:
        super().__init__(group_size=2, descending=True)

    def extra_repr(self) -> str:
        return ""


register_certificate_rule(GroupSort, GroupSort.lipschitz_bound, user_asserted=False)
register_certificate_rule(MaxMin, MaxMin.lipschitz_bound, user_asserted=False)
