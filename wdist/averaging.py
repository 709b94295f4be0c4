r"""A running average of the critic's parameters (``train.average``), evaluated in its place.

With :math:`w_t` the critic's parameters after optimiser step :math:`t` and :math:`\bar w` their
average (the first averaged step copies :math:`w_t`):

.. math::

    \text{ema:}\quad \bar w \leftarrow \beta\, \bar w + (1 - \beta)\, w_t, \qquad
    \text{swa:}\quad \bar w \leftarrow \bar w + \frac{w_t - \bar w}{n + 1}

(:math:`\beta` = ``train.ema_decay``; :math:`n` the steps averaged so far, SWA from step
``train.swa_start * train.steps`` on). The parameters averaged are the critic's own, the
unconstrained ones of a parametrised layer included, so the averaged critic is built by the same
layers (orthogonalised, normalised) and certified like any other from the weights it uses
(:func:`critics.certify`); its certificate is that of the average, never borrowed from the critic.

The update is torch's (:func:`torch.optim.swa_utils.get_ema_multi_avg_fn`,
:func:`~torch.optim.swa_utils.get_swa_multi_avg_fn`, one foreach kernel per device and dtype).
Persistent buffers (e.g. power-iteration vectors) are copied from the critic; non-persistent
ones are the layers' own caches and are left to them.
"""

from __future__ import annotations

import copy
from typing import Iterator, Literal

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import get_ema_multi_avg_fn, get_swa_multi_avg_fn

__all__ = ["WeightAverage"]


def _persistent_buffers(module: nn.Module) -> Iterator[Tensor]:
    for sub in module.modules():
        for name, buf in sub.named_buffers(recurse=False):
            if name not in sub._non_persistent_buffers_set:
                yield buf


class WeightAverage(nn.Module):
    """The average of a critic's parameters over training steps.

    Parameters
    ----------
    critic : nn.Module
        The critic being trained; :attr:`module` is a copy of it that holds the average.
    kind : ``"ema"`` or ``"swa"``
    decay : float
        :math:`\\beta` of the EMA, in (0, 1).

    Attributes
    ----------
    module : nn.Module
        The averaged critic (its parameters take no gradient, so an optimiser or DDP ignores them).
    n_averaged : 0-d long tensor
        Steps averaged so far (a buffer: checkpoints carry it).
    """

    def __init__(self, critic: nn.Module, kind: Literal["ema", "swa"], decay: float = 0.99) -> None:
        super().__init__()
        if kind not in ("ema", "swa"):
            raise ValueError(f"kind must be 'ema' or 'swa'; got {kind!r}")
        self.kind, self.decay = kind, float(decay)
        self.module = copy.deepcopy(critic).requires_grad_(False)
        self.register_buffer("n_averaged", torch.tensor(0, dtype=torch.long))
        self._update = get_ema_multi_avg_fn(self.decay) if kind == "ema" else get_swa_multi_avg_fn()

    @torch.no_grad()
    def update(self, critic: nn.Module) -> None:
        """Average in the critic's current parameters (and copy its persistent buffers)."""
        mine = list(self.module.parameters())
        theirs = [p.detach().to(q.device) for p, q in zip(critic.parameters(), mine, strict=True)]
        if int(self.n_averaged) == 0:
            for a, b in zip(mine, theirs):
                a.copy_(b)
        else:
            groups: dict[tuple, tuple[list[Tensor], list[Tensor]]] = {}
            for a, b in zip(mine, theirs):
                group = groups.setdefault((a.device, a.dtype), ([], []))
                group[0].append(a)
                group[1].append(b)
            for a_list, b_list in groups.values():
                self._update(a_list, b_list, self.n_averaged.to(a_list[0].device))
        for a, b in zip(_persistent_buffers(self.module), _persistent_buffers(critic), strict=True):
            a.copy_(b)
        self.n_averaged += 1
