"""The data module: training streams of (P, Q) batches and a fixed held-out set, for any sources.

* Finite data sets are split once: training draws from one part, the held-out set is the other.
* Analytic samplers and generators are infinite: the held-out samples (or, for generators, the
  latent vectors) are drawn once from a seed stream that training never uses.
* A generator side carries latent vectors through the loaders; the training system decodes them
  on its own device, so sampling happens where the critic is.

The held-out set is indexed, so under DDP each process evaluates a shard and the per-sample values
are gathered and de-duplicated by index: the statistics do not depend on the number of processes.
"""

from __future__ import annotations

from typing import Iterator, Optional

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from wdist.seeds import HELDOUT_OFFSET, batch_seed, generator
from wdist.sources import FiniteSource, LatentSource, Source, SourceError

__all__ = ["PairDataModule", "HeldOutPairs", "TrainingStream"]


def _draw(source: Source, n: int, generator: torch.Generator) -> Tensor:
    """Samples, or latent vectors for a generator side, on the CPU."""
    if isinstance(source, LatentSource):
        return source.sample_latent(n, generator)
    return source.sample(n, generator)


def _check_finite(x: Tensor, what: str) -> None:
    if x.is_floating_point() and not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise SourceError(f"{what} contains {bad} NaN or Inf value(s); every sample must be finite.")


class TrainingStream(IterableDataset):
    """An endless stream of ``(p, q)`` batches; batch ``i`` is a function of (seed, rank, i) alone.

    Every process (``rank``) draws different samples (or, for a generator side, different latent
    vectors). Seeding each batch by its index makes the stream restartable: a run resumed after
    ``start`` optimiser steps continues with batch ``start``, exactly the batch the uninterrupted
    run would have drawn next.
    """

    def __init__(self, p: Source, q: Source, batch_size: int, seed: int, rank: int = 0, start: int = 0) -> None:
        self.p, self.q, self.batch_size, self.seed, self.rank = p, q, batch_size, seed, rank
        self.start = int(start)

    def batch(self, index: int) -> tuple[Tensor, Tensor]:
        """Training batch number ``index`` of this process."""
        gen = torch.Generator().manual_seed(batch_seed(self.seed, self.rank, index))
        return _draw(self.p, self.batch_size, gen), _draw(self.q, self.batch_size, gen)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        index = self.start
        while True:
            yield self.batch(index)
            index += 1


class HeldOutPairs(Dataset):
    """``n`` fixed held-out pairs ``(index, p_i, q_i)`` (samples or latent vectors)."""

    def __init__(self, p: Tensor, q: Tensor) -> None:
        if p.shape[0] != q.shape[0]:
            raise ValueError(f"held-out sets differ in size: {p.shape[0]} vs {q.shape[0]}")
        self.p, self.q = p, q

    def __len__(self) -> int:
        return int(self.p.shape[0])

    def __getitem__(self, i: int) -> tuple[int, Tensor, Tensor]:
        return i, self.p[i], self.q[i]

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """A whole batch by slicing (the DataLoader's batched fetch): no per-item Python loop."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return idx, self.p[idx], self.q[idx]


def _batch_as_is(batch: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Collate for :meth:`HeldOutPairs.__getitems__`, which already returns a batch."""
    return batch


class PairDataModule(pl.LightningDataModule):
    """Training streams and the held-out set for sources P and Q.

    Parameters
    ----------
    p, q : Source
        The two distributions; their shapes and domains must agree.
    batch_size : int
        Training batch per process.
    n_eval : int
        Size of the held-out set (per side). For a finite source it must be smaller than the data
        set, since the two parts must not share items.
    eval_batch_size : int
        Held-out batch per process.
    seed : int
        Seeds the training streams (with the rank) and the held-out draw.
    """

    def __init__(
        self, p: Source, q: Source, batch_size: int, n_eval: int, eval_batch_size: int = 1024, seed: int = 0
    ) -> None:
        super().__init__()
        self.p_all, self.q_all = p, q
        self.batch_size, self.n_eval, self.eval_batch_size, self.seed = batch_size, n_eval, eval_batch_size, seed
        self.p_train: Optional[Source] = None
        self.q_train: Optional[Source] = None
        self.heldout: Optional[HeldOutPairs] = None

    def _split(self, source: Source, gen: torch.Generator, side: str) -> tuple[Source, Tensor]:
        if isinstance(source, FiniteSource):
            if self.n_eval >= len(source):
                raise SourceError(
                    f"eval.n_eval = {self.n_eval} held-out samples requested, but {side} = {source.describe()} "
                    f"has only {len(source)} items and training needs some of them; set eval.n_eval below "
                    f"{len(source)} (e.g. {max(1, len(source) // 4)})."
                )
            return source.split(self.n_eval, gen)
        return source, _draw(source, self.n_eval, gen)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.heldout is not None:
            return
        gen = generator(self.seed, HELDOUT_OFFSET)
        self.p_train, p_eval = self._split(self.p_all, gen, "P")
        self.q_train, q_eval = self._split(self.q_all, gen, "Q")
        _check_finite(p_eval, f"P ({self.p_all.describe()}) held-out samples")
        _check_finite(q_eval, f"Q ({self.q_all.describe()}) held-out samples")
        self.heldout = HeldOutPairs(p_eval, q_eval)

    def _rank(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_rank) if trainer is not None else 0

    def _start(self) -> int:
        """Training batches already consumed: non-zero when a run resumes from a checkpoint.

        Lightning restores the loop state (and so ``global_step``) before it asks for the training
        loader, and every optimiser step consumes one batch (no gradient accumulation).
        """
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        return int(trainer.global_step) * int(getattr(trainer, "accumulate_grad_batches", 1) or 1)

    def train_dataloader(self) -> DataLoader:
        assert self.p_train is not None and self.q_train is not None
        stream = TrainingStream(self.p_train, self.q_train, self.batch_size, self.seed, self._rank(), self._start())
        return DataLoader(stream, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        assert self.heldout is not None
        return DataLoader(
            self.heldout, batch_size=self.eval_batch_size, shuffle=False, num_workers=0, collate_fn=_batch_as_is
        )
