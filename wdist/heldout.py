"""Per-sample critic values of one evaluation, gathered from every process in index order.

The evaluation items are indexed per part (held-out P, held-out Q, and the train subsets of P and
Q, of possibly different sizes; :class:`wdist.data.EvaluationItems`); under DDP each process
evaluates a shard (the distributed sampler pads the shards with repeated indices so they are equal
in length). The values are collected with a torchmetrics :class:`~torchmetrics.Metric` (its states
are concatenated across processes when it is computed) and de-duplicated by index within each
part, so the statistics are those of the whole sets whatever the number of processes.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["HeldOutValues"]


class HeldOutValues(Metric):
    """Critic values of the items of each part, gathered and de-duplicated.

    ``update(part, idx, values)`` per batch and part (possibly with no items); ``compute()`` returns
    ``{part: values}``, float64 CPU tensors in index order, each item once (the copies the
    distributed sampler added are dropped).

    Parameters
    ----------
    parts : sequence of str
        Names of the parts (e.g. ``("p", "q", "p_train", "q_train")``).
    """

    full_state_update = False

    def __init__(self, parts: Sequence[str] = ("p", "q")) -> None:
        super().__init__(sync_on_compute=True, compute_with_cache=False)
        self.parts = tuple(parts)
        for part in self.parts:
            self.add_state(f"idx_{part}", default=[], dist_reduce_fx="cat")
            self.add_state(f"f_{part}", default=[], dist_reduce_fx="cat")

    def update(self, part: str, idx: Tensor, values: Tensor) -> None:  # type: ignore[override]
        if part not in self.parts:
            raise ValueError(f"unknown part {part!r}; this metric gathers {self.parts}")
        getattr(self, f"idx_{part}").append(idx.reshape(-1).long())
        getattr(self, f"f_{part}").append(values.reshape(-1).double())

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        out = {}
        for part in self.parts:
            idx, f = (getattr(self, f"{kind}_{part}") for kind in ("idx", "f"))
            idx = (torch.cat(idx) if idx else torch.empty(0, dtype=torch.long)) if isinstance(idx, list) else idx
            f = (torch.cat(f) if f else torch.empty(0, dtype=torch.float64)) if isinstance(f, list) else f
            order = torch.argsort(idx.long(), stable=True)
            idx, f = idx.long()[order], f.double()[order]
            keep = torch.ones_like(idx, dtype=torch.bool)
            keep[1:] = idx[1:] != idx[:-1]
            out[part] = f[keep].cpu()
        return out
