"""Every random stream of a run, derived from the run's one ``seed``.

A run draws from separate streams so that no two uses of randomness can influence each other (a
longer training run does not change the held-out set; adding a reference does not change the
critic):

============================  ===========================================================
stream                        seed of its ``torch.Generator``
============================  ===========================================================
training batch ``i``, rank r  ``batch_seed(seed, r, i)``
gradient-penalty weights      ``batch_seed(seed, r, i, salt=GP_SALT)``
split of finite sides, test   ``seed + HELDOUT_OFFSET``
select set (infinite sides)   ``seed + SELECT_OFFSET``
OT references                 ``seed + REFERENCES_OFFSET``
empirical Lipschitz check     ``seed + EMPIRICAL_LIPSCHITZ_OFFSET``
train subset (finite sides)   ``seed + TRAIN_SUBSET_OFFSET``
critic initialisation items   ``seed + CRITIC_INIT_OFFSET`` (the same on every rank)
test draw ``k > 0``            ``heldout_draw_seed(seed, k)`` (infinite sides only)
select draw ``k > 0``          ``select_draw_seed(seed, k)`` (infinite sides only)
related-sides check           ``seed + RELATED_CHECK_OFFSET``
============================  ===========================================================

Per-step streams are hashed (:func:`batch_seed`), so a resumed run redraws exactly the batches the
uninterrupted run would have drawn; the others are a fixed offset from ``seed``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "batch_seed",
    "generator",
    "BATCH_SALT",
    "GP_SALT",
    "HELDOUT_OFFSET",
    "REFERENCES_OFFSET",
    "EMPIRICAL_LIPSCHITZ_OFFSET",
    "TRAIN_SUBSET_OFFSET",
    "CRITIC_INIT_OFFSET",
    "HELDOUT_DRAW_SALT",
    "heldout_draw_seed",
    "SELECT_OFFSET",
    "SELECT_DRAW_SALT",
    "select_draw_seed",
    "RELATED_CHECK_OFFSET",
]

BATCH_SALT = 0x7D157
GP_SALT = 0x6770
HELDOUT_OFFSET = 1_000_003
REFERENCES_OFFSET = 2_000_029
EMPIRICAL_LIPSCHITZ_OFFSET = 3_000_017
TRAIN_SUBSET_OFFSET = 4_000_037
CRITIC_INIT_OFFSET = 6_000_011
HELDOUT_DRAW_SALT = 0x4E1D
SELECT_OFFSET = 8_000_009
SELECT_DRAW_SALT = 0x5E1EC7
RELATED_CHECK_OFFSET = 9_000_011


def batch_seed(seed: int, rank: int, index: int, salt: int = BATCH_SALT) -> int:
    """The seed of per-step stream ``index`` on process ``rank``: distinct for every quadruple.

    Mixed by NumPy's ``SeedSequence`` (a hash) into 63 bits, so neighbouring seeds, ranks and step
    indices give unrelated streams; ``salt`` separates the streams of one step (the training
    batch, :data:`BATCH_SALT`; the gradient penalty's interpolation weights, :data:`GP_SALT`).
    """
    words = np.random.SeedSequence([int(seed), int(rank), int(index), int(salt)]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def generator(seed: int, offset: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed + offset`` (one of the offsets above)."""
    return torch.Generator().manual_seed(int(seed) + int(offset))


def heldout_draw_seed(seed: int, draw: int) -> int:
    """The seed of held-out draw ``draw >= 1`` of an infinite side (a hashed stream, like the
    training batches', that no other use of ``seed`` shares)."""
    return batch_seed(seed, 0, draw, HELDOUT_DRAW_SALT)


def select_draw_seed(seed: int, draw: int) -> int:
    """The seed of select draw ``draw >= 1`` of an infinite side (hashed like :func:`heldout_draw_seed`,
    with its own salt: the select and test draws of one ``draw`` are independent)."""
    return batch_seed(seed, 0, draw, SELECT_DRAW_SALT)
