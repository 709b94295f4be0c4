"""Data-dependent initialisation of a critic that asks for it, from training items only.

A critic with an ``init_from_samples(p, q)`` method (the cone critics,
:class:`critics.architectures.cones.ConeCritic`) is handed, once, before the first training step,
samples of both sides drawn from their **training** parts: held-out items are never among them
(centres placed on held-out items would push f down exactly there and void the interval). The
draw comes from its own seed stream (``seed + CRITIC_INIT_OFFSET``), the same on every process,
so every DDP rank places the same centres; the critic records that it was placed (a buffer saved
with its weights), so a resumed or warm-started critic is not placed again.

=================  ===============================================================
side               items handed to the critic
=================  ===============================================================
finite (data set)  up to ``items`` distinct items of its training part
infinite           ``items`` fresh samples (a generator side: decoded latents)
=================  ===============================================================
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from wdist.seeds import CRITIC_INIT_OFFSET, generator
from wdist.sources import FiniteSource, LatentSource, Source

__all__ = ["initialisation_items", "initialise_critic", "INIT_ITEMS"]

#: Items of each side handed to ``init_from_samples``.
INIT_ITEMS = 4096


def initialisation_items(p_train: Source, q_train: Source, seed: int, items: int = INIT_ITEMS) -> tuple[Tensor, Tensor]:
    """Items of the training parts of P and Q (latent vectors for a generator side), on the CPU.

    A finite side gives ``min(items, len)`` distinct items of its training part (a seeded
    permutation), an infinite side ``items`` draws; both from ``seed + CRITIC_INIT_OFFSET``.
    """
    gen = generator(seed, CRITIC_INIT_OFFSET)
    out = []
    for side in (p_train, q_train):
        if isinstance(side, FiniteSource):
            out.append(side.data[torch.randperm(len(side), generator=gen)[:items]])
        elif isinstance(side, LatentSource):
            out.append(side.sample_latent(items, gen))
        else:
            out.append(side.sample(items, gen))
    return out[0], out[1]


def initialise_critic(system: Any, datamodule: Any, items: int = INIT_ITEMS) -> Optional[tuple[int, int]]:
    """Call ``system.critic.init_from_samples(p, q)`` with training items, before the first step.

    Does nothing (returns ``None``) when the critic has no such method, when training has
    already advanced, or when the critic declines because it was placed before: Lightning restores
    a resumed run's weights (with the critic's record that it was placed) before ``on_fit_start``
    but its step count after, so on resume it is that record that keeps the checkpoint's centres
    (and where a strategy restores the weights later, they overwrite any placement). Returns the
    numbers of P and Q items used.
    """
    critic = system.critic
    init = getattr(critic, "init_from_samples", None)
    if not callable(init) or int(system.global_step) > 0 or datamodule is None:
        return None
    p_train, q_train = getattr(datamodule, "p_train", None), getattr(datamodule, "q_train", None)
    if p_train is None or q_train is None:
        return None
    p_items, q_items = initialisation_items(p_train, q_train, system.seed, items)
    xp = system.samples(p_items.to(system.device), system.p_generator)
    xq = system.samples(q_items.to(system.device), system.q_generator)
    if not init(xp, xq):
        return None
    return int(xp.shape[0]), int(xq.shape[0])
