"""The data module: training streams of (P, Q) batches, the select and test splits, a train subset.

* Every side is split three ways (:mod:`wdist.splits`): *train* (what training batches are drawn
  from), *select* (every evaluation during training: the bound curve, the choice of the reported
  step, early stopping) and *test* (the reported bound, evaluated once at the end). A finite data
  set is permuted once by the seed; a side Q = T(P) made from a data set P, or a Q declared
  index-aligned with P (``eval.aligned``), is split with P's permutation.
* Analytic samplers and generators are infinite: their select and test samples (or, for
  generators, latent vectors) are drawn once from seed streams that training never uses.
* The P and Q samples of a split are independent and their sizes may differ (``eval.n_eval_p``,
  ``eval.n_eval_q`` for test, ``eval.n_select_p``, ``eval.n_select_q`` for select): a generator
  side can afford many more samples than a finite data set.
* The train subset holds, for each side, as many items the critic is trained on as the side has
  select samples (:meth:`PairDataModule.train_subset`); evaluated with the select split, it tells
  whether the bound is limited by generalisation.
* A generator side carries latent vectors through the loaders; the training system decodes them
  on its own device, so sampling happens where the critic is.

The evaluation items are indexed, so under DDP each process evaluates a shard and the per-sample
values are gathered and de-duplicated by index: the statistics do not depend on the number of
processes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Optional

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from wdist.config import ConfigError, EvalConfig, Sides
from wdist.problems import TransportedSource
from wdist.seeds import (
    HELDOUT_OFFSET,
    RELATED_CHECK_OFFSET,
    SELECT_OFFSET,
    TRAIN_SUBSET_OFFSET,
    batch_seed,
    generator,
    heldout_draw_seed,
    select_draw_seed,
)
from wdist.sources import FiniteSource, LatentSource, Source, SourceError
from wdist.splits import FiniteParts, RelatedRows, default_select_size, related_rows, split_three

__all__ = ["PairDataModule", "SidePair", "SideSplit", "EvaluationItems", "PARTS", "TrainingStream"]


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

    Reads are counted where the items are handed out: :attr:`reads` counts the indices served
    (one pass over the set on one process adds ``len(self)``), :attr:`bulk_reads` the whole-part
    reads of :meth:`read_all` (a generator side's latents, decoded at once). The test split's
    counts show that it is read once, at the end, and never before.
    """

    def __init__(self, parts: dict[str, Tensor]) -> None:
        unknown = sorted(set(parts) - set(PARTS))
        if unknown:
            raise ValueError(f"unknown evaluation part(s) {unknown}; the parts are {PARTS}")
        self._parts = {name: parts[name] for name in PARTS if name in parts}
        self.reads = 0
        self.bulk_reads = 0

    @property
    def names(self) -> tuple[str, ...]:
        """The parts held, in :data:`PARTS` order."""
        return tuple(self._parts)

    def sizes(self) -> dict[str, int]:
        """Items per part (reading no item)."""
        return {name: int(t.shape[0]) for name, t in self._parts.items()}

    def read_all(self) -> dict[str, Tensor]:
        """Every part whole (counted in :attr:`bulk_reads`)."""
        self.bulk_reads += 1
        return dict(self._parts)

    def __len__(self) -> int:
        return max(self.sizes().values(), default=0)

    def __getitem__(self, i: int) -> dict[str, tuple[Tensor, Tensor]]:
        return self.__getitems__([i])

    def __getitems__(self, indices: list[int]) -> dict[str, tuple[Tensor, Tensor]]:
        """A whole batch by slicing (the DataLoader's batched fetch): no per-item Python loop."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        self.reads += int(idx.numel())
        batch = {}
        for name, items in self._parts.items():
            mine = idx[idx < items.shape[0]]
            batch[name] = (mine, items[mine])
        return batch


def _batch_as_is(batch: dict[str, tuple[Tensor, Tensor]]) -> dict[str, tuple[Tensor, Tensor]]:
    """Collate for :meth:`EvaluationItems.__getitems__`, which already returns a batch."""
    return batch


@dataclass(frozen=True)
class SideSplit:
    """How one side's items were divided (recorded in result.json as ``split.p`` / ``split.q``).

    Attributes
    ----------
    kind : str
        ``"finite"`` (a data set permuted by the seed), ``"aligned with P"`` (a finite Q split with
        P's permutation) or ``"fresh samples"`` (an infinite side: select and test are fresh draws).
    items, train : int or None
        The data set's size and its training part's (``None`` for an infinite side).
    select, test : int
        Items (or samples) of the select and test splits.
    """

    kind: str
    items: Optional[int]
    train: Optional[int]
    select: int
    test: int

    def record(self) -> dict[str, Any]:
        return asdict(self)


#: Fewest items a finite data set can have in an estimate: two held out (an interval needs two
#: pairs) and one to train on.
MIN_ITEMS = 3


def check_enough_items(sides: Sides) -> None:
    """Raise :class:`ConfigError` naming the side when a finite data set has fewer than :data:`MIN_ITEMS` items."""
    for name, side in (("P", sides.p), ("Q", sides.q)):
        if isinstance(side, FiniteSource) and len(side) < MIN_ITEMS:
            raise ConfigError(
                f"Invalid configuration: {name} = {side.describe()} holds {len(side)} item"
                f"{'s' if len(side) != 1 else ''}; an estimate needs at least {MIN_ITEMS} (two held out for the "
                "confidence interval, one to train on), and thousands are usual."
            )


class PairDataModule(pl.LightningDataModule):
    """Training streams, the select and test splits and the train subset for sources P and Q.

    Three disjoint splits of every side (:mod:`wdist.splits`): training draws from the first;
    every evaluation during training uses the second (the *select* split: the bound curve, the
    choice of the reported step, early stopping); the reported bound and its interval come from
    the third (the *test* split), read once, at the end (:meth:`test_dataloader`).

    Parameters
    ----------
    p, q : Source
        The two distributions; their shapes and domains must agree.
    batch_size : int
        Training batch per process.
    n_eval : int
        Size of the test split of each side whose own size is not given.
    eval_batch_size : int
        Indices per evaluation batch and process (each index carries an item of every part).
    seed : int
        Seeds the training streams (with the rank), the splits and draws, and the train subset.
    n_eval_p, n_eval_q : int, optional
        Test sizes of P and Q when they differ from ``n_eval`` (a generator side can afford
        many more samples than a finite data set can spare).
    train_subset : bool
        Also evaluate a train subset of the select split's sizes (:meth:`train_subset`).
    heldout_draw : int
        Which independent select and test samples an infinite side takes: 0 (the default) draws
        its test samples from the split's stream right after the finite sides' permutations and
        its select samples from their own stream; ``k > 0`` both from streams of their own
        (:func:`wdist.seeds.heldout_draw_seed`, :func:`wdist.seeds.select_draw_seed`). A finite
        side's split is the same for every ``k``, so a critic trained at one draw never saw the
        held-out items of another.
    n_select, n_select_p, n_select_q : int, optional
        Select sizes: ``n_select_p`` of P and ``n_select_q`` of Q, each ``n_select`` when not
        given, else :func:`wdist.splits.default_select_size` of the side's test size (and, for a
        finite side, its number of items).
    aligned : bool
        Row ``i`` of Q belongs with row ``i`` of P (two finite sides of equal length, e.g. files
        made from the same rows or latents): both are split with one permutation. A finite
        Q = T(P) of a data set P is always split so.

    Attributes
    ----------
    select, test : SidePair
        The select and test samples (latents for a generator side), drawn once; never trained on.
    train_items : SidePair or None
        The train subset (see :meth:`train_subset`).
    splits : dict of str to SideSplit
        How each side (``"p"``, ``"q"``) was divided.
    related : RelatedRows or None
        For two finite sides of equal length split independently: the check of
        :func:`wdist.splits.related_rows` (``related.related`` is the warning).
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
        n_select: Optional[int] = None,
        n_select_p: Optional[int] = None,
        n_select_q: Optional[int] = None,
        aligned: bool = False,
    ) -> None:
        super().__init__()
        self.heldout_draw = int(heldout_draw)
        self.p_all, self.q_all = p, q
        self.batch_size, self.n_eval, self.eval_batch_size, self.seed = batch_size, n_eval, eval_batch_size, seed
        self.n_eval_p = int(n_eval if n_eval_p is None else n_eval_p)
        self.n_eval_q = int(n_eval if n_eval_q is None else n_eval_q)

        def select_size(own: Optional[int], test: int, source: Source) -> tuple[int, str]:
            if own is not None:
                return int(own), "own"
            if n_select is not None:
                return int(n_select), "eval.n_select"
            items = len(source) if isinstance(source, FiniteSource) else None
            rule = "min(1024, test size)" if items is None else "min(256, test size, items / 10)"
            return default_select_size(test, items), f"the default {rule}"

        (self.n_select_p, from_p), (self.n_select_q, from_q) = (
            select_size(n_select_p, self.n_eval_p, p), select_size(n_select_q, self.n_eval_q, q)
        )  # fmt: skip
        self._size_keys = {
            "P": (
                "eval.n_eval" if n_eval_p is None else "eval.n_eval_p",
                "eval.n_select_p" if from_p == "own" else f"eval.n_select_p (from {from_p})",
            ),
            "Q": (
                "eval.n_eval" if n_eval_q is None else "eval.n_eval_q",
                "eval.n_select_q" if from_q == "own" else f"eval.n_select_q (from {from_q})",
            ),
        }
        self.aligned = bool(aligned)
        self.q_follows_p = False  # set by setup: Q split with P's permutation
        self.with_train_subset = bool(train_subset)
        self.p_train: Optional[Source] = None
        self.q_train: Optional[Source] = None
        self.select: Optional[SidePair] = None
        self.test: Optional[SidePair] = None
        self.train_items: Optional[SidePair] = None
        self.splits: dict[str, SideSplit] = {}
        self.related: Optional[RelatedRows] = None
        self._select_items: Optional[EvaluationItems] = None
        self._test_items: Optional[EvaluationItems] = None

    @classmethod
    def of(cls, sides: Sides, eval: EvalConfig, *, batch_size: int, seed: int) -> "PairDataModule":
        """The data module of a run: its sides, its ``eval.*`` settings (split sizes, the held-out
        draw, the train subset, aligned rows), its training batch per process and its seed. A finite
        side with fewer than :data:`MIN_ITEMS` items is refused (:func:`check_enough_items`)."""
        check_enough_items(sides)
        return cls(
            sides.p, sides.q, batch_size, eval.n_eval, eval.batch_size, seed, eval.n_eval_p, eval.n_eval_q,
            eval.train_subset, eval.heldout_draw, n_select=eval.n_select, n_select_p=eval.n_select_p,
            n_select_q=eval.n_select_q, aligned=eval.aligned,
        )  # fmt: skip

    # -- the split ------------------------------------------------------------------------------
    def _follows_p(self) -> bool:
        """Whether Q is split with P's permutation: a finite Q = T(P), or ``aligned``."""
        p, q = self.p_all, self.q_all
        transported = isinstance(q, TransportedSource) and q.base is p and isinstance(p, FiniteSource)
        if transported or not self.aligned:
            return transported
        if not (isinstance(p, FiniteSource) and isinstance(q, FiniteSource)) or len(p) != len(q):
            sizes = [f"{len(s)} items" if isinstance(s, FiniteSource) else "infinite" for s in (p, q)]
            raise SourceError(
                f"eval.aligned = true splits P and Q with one permutation, so both must be finite data sets of the "
                f"same length; got P = {p.describe()} ({sizes[0]}) and Q = {q.describe()} ({sizes[1]}). Set "
                "eval.aligned false for sides whose rows do not correspond."
            )
        return True

    def _check_sizes(self, source: FiniteSource, side: str, n_test: int, n_select: int) -> None:
        n = len(source)
        if n_test + n_select < n:
            return
        test_key, select_key = self._size_keys[side]
        own_test, own_select = f"eval.n_eval_{side.lower()}", f"eval.n_select_{side.lower()}"
        if n_select < n - 1:  # a smaller test split fits: this side's own key, the other side keeps its size
            other = "Q" if side == "P" else "P"
            fix = f"set {own_test} below {n - n_select} (e.g. {max(1, min(n // 4, n - n_select - 1))})"
            if test_key != own_test:
                fix += f"; it sets {side}'s held-out size alone, and {other} keeps {test_key}"
        elif n_test < n - 2:  # only a smaller select split fits (it needs 2 items)
            fix = f"set {own_select} below {n - n_test} (e.g. {max(2, min(n // 10, n - n_test - 1))})"
        else:
            fix = f"keep {own_test} + {own_select} below {n} (e.g. {max(1, n // 4)} and {max(2, n // 10)})"
        raise SourceError(
            f"{test_key} = {n_test} test items and {select_key} = {n_select} select items requested, but {side} = "
            f"{source.describe()} has only {n} items and training needs some of them; {fix}."
        )

    def _finite(self, source: FiniteSource, perm: Tensor, side: str, held: tuple[int, int], kind: str) -> FiniteParts:
        n_test, n_select = (self.n_eval_p, self.n_select_p) if side == "P" else (self.n_eval_q, self.n_select_q)
        if kind == "aligned with P" and (n_test > held[0] or n_select > held[1]):
            raise SourceError(
                f"Q ({source.describe()}) is split with P's permutation (its row i belongs with row i of P), so its "
                f"test and select items are partners of P's: it can hold out at most P's {held[0]} test and {held[1]} "
                f"select items; got eval.n_eval_q = {n_test} and eval.n_select_q = {n_select}. Set them no larger "
                "than P's sizes."
            )
        self._check_sizes(source, side, *held)
        parts = split_three(source, perm, n_test, n_select, *held)
        self.splits[side.lower()] = SideSplit(kind, len(source), len(parts.train), n_select, n_test)
        return parts

    def _infinite(self, source: Source, side: str, fresh: torch.Generator, fresh_select: torch.Generator) -> SidePair:
        n_test, n_select = (self.n_eval_p, self.n_select_p) if side == "P" else (self.n_eval_q, self.n_select_q)
        test = _draw(source, n_test, fresh)
        self.splits[side.lower()] = SideSplit("fresh samples", None, None, n_select, n_test)
        return SidePair(_draw(source, n_select, fresh_select), test)  # (select, test)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.test is not None:
            return
        gen = generator(self.seed, HELDOUT_OFFSET)
        # draw 0 takes its test samples from the split's stream (as it always has); draw k > 0
        # from its own; select samples always come from a stream of their own
        draw = self.heldout_draw
        fresh = gen if draw == 0 else torch.Generator().manual_seed(heldout_draw_seed(self.seed, draw))
        fresh_select = (
            generator(self.seed, SELECT_OFFSET) if draw == 0
            else torch.Generator().manual_seed(select_draw_seed(self.seed, draw))
        )  # fmt: skip
        follows = self.q_follows_p = self._follows_p()
        p, q = self.p_all, self.q_all
        held_p = (self.n_eval_p, self.n_select_p)
        perm_p: Optional[Tensor] = None
        if isinstance(p, FiniteSource):
            perm_p = torch.randperm(len(p), generator=gen)
            parts = self._finite(p, perm_p, "P", held_p, "finite")
            self.p_train, p_select, p_test = parts.train, parts.select, parts.test
        else:
            self.p_train = p
            p_select, p_test = dataclasses.astuple(self._infinite(p, "P", fresh, fresh_select))
        if follows:
            assert isinstance(q, FiniteSource) and perm_p is not None
            parts = self._finite(q, perm_p, "Q", held_p, "aligned with P")
            self.q_train, q_select, q_test = parts.train, parts.select, parts.test
        elif isinstance(q, FiniteSource):
            perm_q = torch.randperm(len(q), generator=gen)
            parts = self._finite(q, perm_q, "Q", (self.n_eval_q, self.n_select_q), "finite")
            self.q_train, q_select, q_test = parts.train, parts.select, parts.test
            if isinstance(p, FiniteSource):
                self.related = related_rows(p.data, q.data, generator(self.seed, RELATED_CHECK_OFFSET))
        else:
            self.q_train = q
            q_select, q_test = dataclasses.astuple(self._infinite(q, "Q", fresh, fresh_select))
        for what, x in (("select", p_select), ("test", p_test)):
            _check_finite(x, f"P ({p.describe()}) {what} samples")
        for what, x in (("select", q_select), ("test", q_test)):
            _check_finite(x, f"Q ({q.describe()}) {what} samples")
        self.select, self.test = SidePair(p_select, q_select), SidePair(p_test, q_test)
        self.train_items = self.train_subset() if self.with_train_subset else None
        parts_select = {"p": p_select, "q": q_select}
        if self.train_items is not None:
            parts_select.update(p_train=self.train_items.p, q_train=self.train_items.q)
        self._select_items = EvaluationItems(parts_select)
        self._test_items = EvaluationItems({"p": p_test, "q": q_test})

    def train_subset(self) -> SidePair:
        """Items of each side the critic is trained on, as many as the side's select samples.

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

        * A Q split with P's permutation (its row i the partner of P's row i): the partners of P's
          subset, so that the train subset is paired like the held-out splits, and a 1-Lipschitz
          critic's mean difference on it is at most the pairs' mean distance, as on the splits.

        Select and test items are never in it: a finite source's training part excludes them, and
        the training streams do not use the select or test seed streams.
        """
        assert self.p_train is not None and self.q_train is not None
        sizes = {"p": self.n_select_p, "q": self.n_select_q}
        sources = {"p": self.p_train, "q": self.q_train}
        infinite = [side for side, src in sources.items() if not isinstance(src, FiniteSource)]
        n_batches = max((-(-sizes[side] // self.batch_size) for side in infinite), default=0)
        stream = TrainingStream(self.p_train, self.q_train, self.batch_size, self.seed, rank=0)
        batches = [stream.batch(i) for i in range(n_batches)]
        gen = generator(self.seed, TRAIN_SUBSET_OFFSET)
        items, order_p = {}, None
        for k, (side, src) in enumerate(sources.items()):
            if isinstance(src, FiniteSource):
                partners = side == "q" and self.q_follows_p and order_p is not None
                order = order_p if partners else torch.randperm(len(src), generator=gen)
                order_p = order if side == "p" else order_p
                items[side] = src.data[order[: sizes[side]]]
            else:
                items[side] = torch.cat([b[k] for b in batches])[: sizes[side]]
        return SidePair(items["p"], items["q"])

    @property
    def select_items(self) -> EvaluationItems:
        """The select split and (when on) the train subset, as one indexed data set: what every
        evaluation during training runs the critic on."""
        assert self._select_items is not None, "setup() first"
        return self._select_items

    @property
    def test_items(self) -> EvaluationItems:
        """The test split, as an indexed data set; read once, at the end (its reads are counted)."""
        assert self._test_items is not None, "setup() first"
        return self._test_items

    def split_record(self) -> dict[str, Any]:
        """How the sides were split, for result.json: ``p`` and ``q`` (:class:`SideSplit`) and, for
        two finite sides split independently, ``related`` (:func:`wdist.splits.related_rows`)."""
        record: dict[str, Any] = {side: self.splits[side].record() for side in ("p", "q") if side in self.splits}
        record["related"] = None if self.related is None else self.related.record()
        return record

    # -- loaders --------------------------------------------------------------------------------
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

    def _loader(self, items: EvaluationItems) -> DataLoader:
        return DataLoader(
            items, batch_size=self.eval_batch_size, shuffle=False, num_workers=0, collate_fn=_batch_as_is,
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        """The select split (and train subset): every evaluation during training."""
        return self._loader(self.select_items)

    def test_dataloader(self) -> DataLoader:
        """The test split: the one evaluation of the selected critic, at the end."""
        return self._loader(self.test_items)
