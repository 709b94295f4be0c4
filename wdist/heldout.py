"""Per-sample critic values on the held-out set, gathered from every process in index order.

The held-out set is indexed; under DDP each process evaluates a shard (the distributed sampler
pads the shards with repeated items so they are equal in length). The values are collected with a
torchmetrics :class:`~torchmetrics.Metric` (its states are concatenated across processes when it
is computed) and de-duplicated by index, so the statistics are those of the whole held-out set
whatever the number of processes.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["HeldOutValues"]


class HeldOutValues(Metric):
    """Critic values ``f(x_i)``, ``f(y_i)`` of held-out items ``i``, gathered and de-duplicated.

    ``update(idx, fp, fq)`` per batch; ``compute()`` returns ``(fp, fq)`` as float64 CPU tensors in
    index order, each item once (the copies the distributed sampler added are dropped).
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__(sync_on_compute=True, compute_with_cache=False)
        self.add_state("idx", default=[], dist_reduce_fx="cat")
        self.add_state("fp", default=[], dist_reduce_fx="cat")
        self.add_state("fq", default=[], dist_reduce_fx="cat")

    def update(self, idx: Tensor, fp: Tensor, fq: Tensor) -> None:  # type: ignore[override]
        self.idx.append(idx.reshape(-1).long())
        self.fp.append(fp.reshape(-1).double())
        self.fq.append(fq.reshape(-1).double())

    def compute(self) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        idx, fp, fq = (torch.cat(s) if isinstance(s, list) else s for s in (self.idx, self.fp, self.fq))
        order = torch.argsort(idx, stable=True)
        idx, fp, fq = idx[order], fp[order], fq[order]
        keep = torch.ones_like(idx, dtype=torch.bool)
        keep[1:] = idx[1:] != idx[:-1]
        return fp[keep].cpu(), fq[keep].cpu()
