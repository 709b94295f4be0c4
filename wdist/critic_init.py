"""Data-dependent initialisation of a critic that asks for it, from training items only.

A critic with an ``init_from_samples(p, q)`` method (the cone critics,
:class:`critics.architectures.cones.ConeCritic`) is handed, once, before the first training step,
samples of both sides drawn from their **training** parts: held-out items are never among them
(centres placed on held-out items would push f down exactly there and void the interval). The
draw comes from its own seed stream (``seed + CRITIC_INIT_OFFSET``), the same on every process,
so every DDP rank is handed the same items, and process 0's placement is then broadcast to the
others (:func:`share_placement`: a multi-threaded k-means need not sum in the same order on
every process); the critic records that it was placed (a buffer saved
with its weights), so a resumed or warm-started critic is not placed again.

=================  ===============================================================
side               items handed to the critic
=================  ===============================================================
finite (data set)  up to ``items`` distinct items of its training part; a critic
                   whose ``init_all_items`` is true (``init: kmeans-both``, the
                   default, or ``kmeans-all``) gets every item of it, up to
                   :data:`INIT_NUMBERS` numbers in all
infinite           ``items`` fresh samples (a generator side: decoded latents)
=================  ===============================================================

An infinite side costs a draw (a generator's forward pass) per item, and its training batches
are fresh draws anyway.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from wdist.seeds import CRITIC_INIT_OFFSET, generator
from wdist.sources import FiniteSource, LatentSource, Source

__all__ = ["initialisation_items", "initialise_critic", "share_placement", "finite_items", "INIT_ITEMS", "INIT_NUMBERS"]

#: Items of an infinite side handed to ``init_from_samples`` (and the least of a finite side).
INIT_ITEMS = 4096

#: Numbers (items times their size) of a finite side handed to ``init_from_samples`` at most:
#: 2^25, 128 MiB in float32 (every item of a 200,000-item 128-D set; 10,922 items of 3 x 32 x 32).
INIT_NUMBERS = 1 << 25


def finite_items(length: int, item_size: int, items: int = INIT_ITEMS) -> int:
    """How many training items a finite side of ``length`` items of ``item_size`` numbers hands over:
    all of them up to :data:`INIT_NUMBERS` numbers, and at least ``min(items, length)``."""
    return min(int(length), max(int(items), INIT_NUMBERS // max(1, int(item_size))))


def initialisation_items(
    p_train: Source, q_train: Source, seed: int, items: int = INIT_ITEMS, all_items: bool = False
) -> tuple[Tensor, Tensor]:
    """Items of the training parts of P and Q (latent vectors for a generator side), on the CPU.

    A finite side gives ``min(items, len)`` distinct items of its training part (a seeded
    permutation; with ``all_items``, :func:`finite_items` of them: all when they fit
    :data:`INIT_NUMBERS`), an infinite side ``items`` draws; both from ``seed + CRITIC_INIT_OFFSET``.
    """
    gen = generator(seed, CRITIC_INIT_OFFSET)
    out = []
    for side in (p_train, q_train):
        if isinstance(side, FiniteSource):
            size = side.data[0].numel() if len(side) else 1
            count = finite_items(len(side), size, items) if all_items else min(items, len(side))
            out.append(side.data[torch.randperm(len(side), generator=gen)[:count]])
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
    all_items = bool(getattr(critic, "init_all_items", False))
    p_items, q_items = initialisation_items(p_train, q_train, system.seed, items, all_items)
    xp = system.samples(p_items.to(system.device), system.p_generator)
    xq = system.samples(q_items.to(system.device), system.q_generator)
    if not init(xp, xq):
        return None
    share_placement(critic)
    return int(xp.shape[0]), int(xq.shape[0])


def share_placement(critic: torch.nn.Module) -> None:
    """Every process takes process 0's placement (its parameters and buffers, in place).

    Each rank places the critic from the same items, but a multi-threaded k-means may sum in
    another order on another process; DDP keeps ranks equal only if they start equal. Nothing
    happens in a single process.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    with torch.no_grad():
        for tensor in critic.state_dict().values():
            if tensor.is_floating_point():  # the integer and bool buffers are set alike on every rank
                dist.broadcast(tensor, src=0)
