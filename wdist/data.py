"""The data module: training streams of (P, Q) batches, a fixed held-out set and a train subset.

* Finite data sets are split once: training draws from one part, the held-out set is the other.
  A side Q = T(P) made from a data set P follows P's split (the images of P's parts).
* Analytic samplers and generators are infinite: the held-out samples (or, for generators, the
  latent vectors) are drawn once from a seed stream that training never uses.
* The held-out P and Q sets are independent samples whose sizes may differ (``eval.n_eval_p``,
  ``eval.n_eval_q``): a generator side can afford many more samples than a finite data set.
* The train subset holds, for each side, as many items the critic is trained on as the side has
  held-out samples (:meth:`PairDataModule.train_subset`); evaluated with the held-out set, it
  tells whether the bound is limited by generalisation.
* A generator side carries latent vectors through the loaders; the training system decodes them
  on its own device, so sampling happens where the critic is.

The evaluation items are indexed, so under DDP each process evaluates a shard and the per-sample
values are gathered and de-duplicated by index: the statistics do not depend on the number of
processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from wdist.seeds import HELDOUT_OFFSET, TRAIN_SUBSET_OFFSET, batch_seed, generator, heldout_draw_seed
from wdist.sources import FiniteSource, LatentSource, Source, SourceError, TransportedSource

__all__ = ["PairDataModule", "SidePair", "EvaluationItems", "PARTS", "TrainingStream"]


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


@dataclass(frozen=True)
class SidePair:
    """One set of items of each side: samples, or latent vectors for a generator side (CPU tensors).

    The two sides are independent samples and may differ in size.
    """

    p: Tensor
    q: Tensor


#: The parts of an evaluation, in the order the critic sees them: the held-out samples of P and Q,
#: and the train subsets of P and Q (:meth:`PairDataModule.train_subset`).
PARTS = ("p", "q", "p_train", "q_train")


class EvaluationItems(Dataset):
    """Every item one evaluation runs the critic on, indexed so that processes can share the work.

    ``parts`` maps names of :data:`PARTS` to tensors of possibly different lengths. The data set
    has ``max(lengths)`` indices; index ``i`` stands for item ``i`` of every part that has one, so
    a (distributed) sampler over the indices covers every item of every part, and the gathered
    values can be de-duplicated by (part, index). A batch is a dict ``part -> (indices, items)``.
    """

    def __init__(self, parts: dict[str, Tensor]) -> None:
        unknown = sorted(set(parts) - set(PARTS))
        if unknown:
            raise ValueError(f"unknown evaluation part(s) {unknown}; the parts are {PARTS}")
        self.parts = {name: parts[name] for name in PARTS if name in parts}

    def __len__(self) -> int:
        return max((int(t.shape[0]) for t in self.parts.values()), default=0)

    def __getitem__(self, i: int) -> dict[str, tuple[Tensor, Tensor]]:
        return self.__getitems__([i])

    def __getitems__(self, indices: list[int]) -> dict[str, tuple[Tensor, Tensor]]:
        """A whole batch by slicing (the DataLoader's batched fetch): no per-item Python loop."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        batch = {}
        for name, items in self.parts.items():
            mine = idx[idx < items.shape[0]]
            batch[name] = (mine, items[mine])
        return batch


def _batch_as_is(batch: dict[str, tuple[Tensor, Tensor]]) -> dict[str, tuple[Tensor, Tensor]]:
    """Collate for :meth:`EvaluationItems.__getitems__`, which already returns a batch."""
    return batch


class PairDataModule(pl.LightningDataModule):
    """Training streams, the held-out set and the train subset for sources P and Q.

    Parameters
    ----------
    p, q : Source
        The two distributions; their shapes and domains must agree.
    batch_size : int
        Training batch per process.
    n_eval : int
        Size of the held-out set of each side whose own size is not given. For a finite source it
        must be smaller than the data set, since the two parts must not share items.
    eval_batch_size : int
        Indices per held-out batch and process (each index carries an item of every part).
    seed : int
        Seeds the training streams (with the rank), the held-out draw and the train subset.
    n_eval_p, n_eval_q : int, optional
        Held-out sizes of P and Q when they differ from ``n_eval`` (a generator side can afford
        many more samples than a finite data set can spare).
    train_subset : bool
        Also evaluate a train subset of the same sizes (:meth:`train_subset`).
    heldout_draw : int
        Which independent held-out sample an infinite side takes: 0 (the default) draws it from
        the held-out stream right after the finite sides' splits; ``k > 0`` from its own stream
        (:func:`wdist.seeds.heldout_draw_seed`). A finite side's split is the same for every
        ``k``, so a critic trained at one draw never saw the held-out items of another.

    Attributes
    ----------
    heldout : SidePair
        Held-out samples (latents for a generator side), drawn once; never used in training.
    train_items : SidePair or None
        The train subset (see :meth:`train_subset`).
    """

    def __init__(
        self,
        p: Source,
        q: Source,
        batch_size: int,
        n_eval: int,
        eval_batch_size: int = 1024,
        seed: int = 0,
        n_eval_p: Optional[int] = None,
        n_eval_q: Optional[int] = None,
        train_subset: bool = True,
        heldout_draw: int = 0,
    ) -> None:
        super().__init__()
        self.heldout_draw = int(heldout_draw)
        self.p_all, self.q_all = p, q
        self.batch_size, self.n_eval, self.eval_batch_size, self.seed = batch_size, n_eval, eval_batch_size, seed
        self.n_eval_p = int(n_eval if n_eval_p is None else n_eval_p)
        self.n_eval_q = int(n_eval if n_eval_q is None else n_eval_q)
        self._size_keys = {
            "P": "eval.n_eval" if n_eval_p is None else "eval.n_eval_p",
            "Q": "eval.n_eval" if n_eval_q is None else "eval.n_eval_q",
        }
        self.with_train_subset = bool(train_subset)
        self.p_train: Optional[Source] = None
        self.q_train: Optional[Source] = None
        self.heldout: Optional[SidePair] = None
        self.train_items: Optional[SidePair] = None

    def _split(
        self, source: Source, n: int, gen: torch.Generator, side: str, fresh: torch.Generator
    ) -> tuple[Source, Tensor]:
        """A finite side split with ``gen``; an infinite side's held-out draw from ``fresh``."""
        if isinstance(source, FiniteSource):
            if n >= len(source):
                key = self._size_keys[side]
                own = f"eval.n_eval_{side.lower()}"  # this side's size alone: the other side keeps its own
                other = "Q" if side == "P" else "P"
                also = "" if key == own else f"; it sets {side}'s held-out size alone, and {other} keeps {key}"
                raise SourceError(
                    f"{key} = {n} held-out samples requested, but {side} = {source.describe()} has only "
                    f"{len(source)} items and training needs some of them; set {own} below {len(source)} "
                    f"(e.g. {max(1, len(source) // 4)}){also}."
                )
            return source.split(n, gen)
        return source, _draw(source, n, fresh)

    def train_subset(self) -> SidePair:
        """Items of each side the critic is trained on, as many as the side's held-out samples.

        * A finite side (a data set): ``n`` distinct items of its training part, a uniform subset
          drawn from the seed stream ``seed + TRAIN_SUBSET_OFFSET`` (all of the training part when
          it has fewer than ``n`` items). Training samples the training part uniformly, so this
          subset estimates the objective the critic is fitted to.
        * An infinite side (an analytic sampler or a generator): the first ``n`` items of the
          training batches ``0, 1, ...`` of process 0, re-drawn from their seeds: exactly the
          samples (for a generator, the latent vectors) of its first training steps. A sample
          seen once is statistically a fresh one, so such a side adds no gap beyond sampling
          error; the gap measures how far the critic fits a finite training part rather than its
          distribution.

        Held-out items are never in it: a finite source's training part excludes them, and the
        training streams do not use the held-out seed stream.
        """
        assert self.p_train is not None and self.q_train is not None
        sizes = {"p": self.n_eval_p, "q": self.n_eval_q}
        sources = {"p": self.p_train, "q": self.q_train}
        infinite = [side for side, src in sources.items() if not isinstance(src, FiniteSource)]
        n_batches = max((-(-sizes[side] // self.batch_size) for side in infinite), default=0)
        stream = TrainingStream(self.p_train, self.q_train, self.batch_size, self.seed, rank=0)
        batches = [stream.batch(i) for i in range(n_batches)]
        gen = generator(self.seed, TRAIN_SUBSET_OFFSET)
        items = {}
        for k, (side, src) in enumerate(sources.items()):
            if isinstance(src, FiniteSource):
                items[side] = src.data[torch.randperm(len(src), generator=gen)[: sizes[side]]]
            else:
                items[side] = torch.cat([b[k] for b in batches])[: sizes[side]]
        return SidePair(items["p"], items["q"])

    def setup(self, stage: Optional[str] = None) -> None:
        if self.heldout is not None:
            return
        gen = generator(self.seed, HELDOUT_OFFSET)
        # draw 0 shares the split's stream (as it always has); draw k > 0 has its own
        fresh = gen if self.heldout_draw == 0 else torch.Generator().manual_seed(
            heldout_draw_seed(self.seed, self.heldout_draw)
        )  # fmt: skip
        self.p_train, p_eval = self._split(self.p_all, self.n_eval_p, gen, "P", fresh)
        if (
            isinstance(self.q_all, TransportedSource)
            and self.q_all.base is self.p_all
            and isinstance(self.p_all, FiniteSource)
        ):
            # Q = T(P) on a data set: Q follows P's split, so no held-out item's image is trained on
            self.q_train, q_eval = self.q_all.split_like(self.p_train, p_eval, self.n_eval_q)
        else:
            self.q_train, q_eval = self._split(self.q_all, self.n_eval_q, gen, "Q", fresh)
        _check_finite(p_eval, f"P ({self.p_all.describe()}) held-out samples")
        _check_finite(q_eval, f"Q ({self.q_all.describe()}) held-out samples")
        self.heldout = SidePair(p_eval, q_eval)
        self.train_items = self.train_subset() if self.with_train_subset else None

    def evaluation_items(self) -> EvaluationItems:
        """The held-out set and (when on) the train subset, as one indexed data set."""
        assert self.heldout is not None
        parts = {"p": self.heldout.p, "q": self.heldout.q}
        if self.train_items is not None:
            parts.update(p_train=self.train_items.p, q_train=self.train_items.q)
        return EvaluationItems(parts)

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
        return DataLoader(
            self.evaluation_items(), batch_size=self.eval_batch_size, shuffle=False, num_workers=0,
            collate_fn=_batch_as_is,
        )  # fmt: skip
