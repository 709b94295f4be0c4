r"""The three-way split of a finite side (train / select / test), and a check for related sides.

A finite side (a data set of :math:`N` items) is permuted once, from the run's seed; with
:math:`\pi` that permutation,

.. math::

    \text{test} = \{x_{\pi(i)}\}_{i < n_t}, \qquad
    \text{select} = \{x_{\pi(i)}\}_{n_t \le i < n_t + n_s}, \qquad
    \text{train} = \{x_{\pi(i)}\}_{i \ge n_t + n_s},

three disjoint parts: the critic is trained on the first, its training step (and averaging) is
chosen on the second, and the reported bound is computed once, at the end, on the third.

**Aligned sides.** When row :math:`i` of Q belongs with row :math:`i` of P (Q = T(P) of a data
set; two files made from the same rows or latents, ``eval.aligned``), one permutation splits
both, so no held-out item's partner is trained on. Q may hold out fewer items than P (its test
and select parts are the first rows of P's), never more: every other row of Q is a training row
whose partner is one of P's training rows or an unused held-out row.

**Related sides.** Two finite sides of the same length that were split independently are checked
on a small sample of rows (:func:`related_rows`): when row :math:`i` of Q is, for most sampled
rows, nearer to row :math:`i` of P than every other sampled Q row is, the rows are paired, and a
held-out item's partner is probably a training item of the other side (its values are then pulled
toward what the critic fitted, and the bound drops); the run says so and names ``eval.aligned``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor

from wdist.sources import FiniteSource, TensorSource

__all__ = [
    "FiniteParts",
    "split_three",
    "RelatedRows",
    "related_rows",
    "RELATED_SAMPLE",
    "RELATED_SHARE",
    "DEFAULT_SELECT_SIZE",
    "DEFAULT_SELECT_SIZE_FINITE",
    "default_select_size",
]

#: Select items of a generator or toy side whose select size is not given, at most (never more
#: than its test size).
DEFAULT_SELECT_SIZE = 1024
#: Select items of a data set whose select size is not given, at most (never more than its test
#: size, nor than a tenth of its items): every one is an item fewer to train on.
DEFAULT_SELECT_SIZE_FINITE = 256


def default_select_size(n_test: int, n_items: Optional[int] = None) -> int:
    r"""The select size of a side given none.

    .. math::

        n_s = \min(1024, n_t) \text{ (generator or toy side)}, \qquad
        n_s = \min(256, n_t, \max(2, \lfloor N / 10 \rfloor)) \text{ (a data set of } N \text{ items)}.

    The select split only ranks the candidates of one run, whose values on the same select items
    are strongly correlated, so their differences are measured far more precisely than each value;
    a generator's samples are free, but every item a data set gives up is one fewer to train on
    (measured on a 64-D funnel pair of 20,000 items per side: 1024 select items gave a lower bound
    than 256, docs/heldout-statistics.md).
    """
    if n_items is None:
        return min(DEFAULT_SELECT_SIZE, int(n_test))
    return min(DEFAULT_SELECT_SIZE_FINITE, int(n_test), max(2, int(n_items) // 10))


@dataclass(frozen=True)
class FiniteParts:
    """The three parts of one finite side.

    Attributes
    ----------
    train : TensorSource
        The training part (training batches are drawn from it uniformly).
    select, test : (n, *shape) tensors
        The select and test items (distinct items of the data set, not resamples).
    """

    train: TensorSource
    select: Tensor
    test: Tensor


def split_three(
    source: FiniteSource, perm: Tensor, n_test: int, n_select: int, held_test: int, held_select: int
) -> FiniteParts:
    """Split ``source`` along ``perm`` (a permutation of its indices) into disjoint parts.

    Test items are ``perm[:n_test]``, select items ``perm[held_test : held_test + n_select]`` and
    training items ``perm[held_test + held_select :]``: ``held_test`` and ``held_select`` are the
    sizes of the blocks held out (a side's own sizes, or, for a side aligned with P, P's), so
    ``n_test <= held_test``, ``n_select <= held_select`` and ``held_test + held_select < N``
    (the caller checks them and names its config keys).
    """
    n = len(source)
    assert 0 < n_test <= held_test and 0 < n_select <= held_select and held_test + held_select < n == len(perm)
    data = source.data
    train_idx = perm[held_test + held_select :]
    train = TensorSource(
        data[train_idx], domain=source.domain,
        description=f"{source.describe()} [training part: {len(train_idx)} of {n} items]",
    )  # fmt: skip
    return FiniteParts(train, data[perm[held_test : held_test + n_select]], data[perm[:n_test]])


#: Rows sampled by :func:`related_rows`.
RELATED_SAMPLE = 128
#: Share of sampled rows whose partner must be the nearest for two sides to count as related
#: (about ``1 / RELATED_SAMPLE`` when the rows are unrelated).
RELATED_SHARE = 0.5


@dataclass(frozen=True)
class RelatedRows:
    """Evidence that row ``i`` of Q belongs with row ``i`` of P.

    Attributes
    ----------
    rows : int
        Rows sampled.
    nearest : int
        Sampled rows ``i`` whose partner ``Q_i`` is nearer to ``P_i`` than every other sampled Q row.
    ratio : float
        Median over the sampled rows of ``||P_i - Q_i||`` divided by the median distance from ``P_i``
        to the other sampled Q rows.
    """

    rows: int
    nearest: int
    ratio: float

    @property
    def related(self) -> bool:
        """Whether at least :data:`RELATED_SHARE` of the sampled rows have their partner nearest."""
        return self.nearest >= RELATED_SHARE * self.rows

    def record(self) -> dict[str, Any]:
        return {"rows": self.rows, "nearest": self.nearest, "ratio": self.ratio, "related": self.related}


def related_rows(p: Tensor, q: Tensor, generator: torch.Generator, rows: int = RELATED_SAMPLE) -> Optional[RelatedRows]:
    r"""Whether two equally long finite sides look paired row by row, measured on ``rows`` rows.

    For sampled rows :math:`i \in S` (:math:`|S| = m`) and Euclidean distances
    :math:`d_{ij} = \|P_i - Q_j\|` on the flattened items,

    .. math::

        \text{nearest} = \#\{i \in S : d_{ii} < \min_{j \in S, j \ne i} d_{ij}\}, \qquad
        \text{ratio} = \operatorname{median}_i \frac{d_{ii}}{\operatorname{median}_{j \ne i} d_{ij}}.

    For unrelated rows :math:`\mathbb E[\text{nearest}] = 1` (each of the :math:`m` candidates is
    equally likely to be nearest); the sides count as related when ``nearest`` is at least
    :data:`RELATED_SHARE` of ``m``. Costs one :math:`m \times m` distance matrix (float32).

    Returns ``None`` when the sides differ in length or have fewer than 3 rows.
    """
    n = int(p.shape[0])
    if int(q.shape[0]) != n or n < 3:
        return None
    idx = torch.randperm(n, generator=generator)[: min(rows, n)]
    d = torch.cdist(p[idx].flatten(1).float(), q[idx].flatten(1).float())
    m = d.shape[0]
    partner = d.diagonal()
    off = ~torch.eye(m, dtype=torch.bool)
    others = d[off].reshape(m, m - 1)
    nearest = int((partner < others.min(dim=1).values).sum())
    ratio = float((partner / others.median(dim=1).values.clamp_min(torch.finfo(d.dtype).tiny)).median())
    return RelatedRows(m, nearest, ratio)
