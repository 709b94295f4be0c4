"""The training system: a critic trained to maximise E_P f - E_Q f, selected on one split, reported on another.

The critic and (for generator sides) the frozen decoders are plain modules handed in; this
LightningModule owns the objective, the optimiser, the weight average and the evaluations. Every
evaluation during training (Lightning's validation) runs on the *select* split and is an
:class:`~wdist.evaluation.Evaluation` (per-sample values, certificate, raw and scaled interval),
computed once and appended to :attr:`CriticSystem.evaluations`, the bound curve; each is a
candidate of the :class:`~wdist.selection.Selection`. Lightning's test, run once after training,
evaluates the selected state on the *test* split: :attr:`CriticSystem.test_evaluation`, the
reported bound.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from typing import Any, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn
from torch import Tensor, nn

from wdist.averaging import WeightAverage
from wdist.config import EvalConfig, TrainConfig
from wdist.critic_init import initialise_critic
from wdist.data import PARTS, EvaluationItems
from wdist.errors import GeneratorRangeError, NonFiniteLossError, NonFiniteSamplesError
from wdist.evaluation import Evaluation, evaluate
from wdist.heldout import HeldOutValues
from wdist.objectives import gradient_penalty, kr_gap
from wdist.precision import full_precision
from wdist.seeds import GP_SALT, batch_seed
from wdist.selection import Selection
from wdist.sources.base import decode_latents
from wdist.sources.ranges import OUT_OF_RANGE_LIMIT, RangeSummary, RangeTally

__all__ = ["CriticSystem", "NonFiniteLossError", "SELECT_KEYS"]

# the select statistics are computed from values gathered over every process, so they are
# identical on all ranks: Lightning's advice to reduce them with sync_dist does not apply
warnings.filterwarnings("ignore", message=r".*self\.log\('select/.*sync_dist=True.*")

#: Keys of a curve point (:meth:`wdist.bound.Bound.to_dict`) logged as ``select/<key>``.
SELECT_KEYS = ("estimate", "lower_bound", "lower_bound_lo", "lower_bound_hi", "lipschitz_certificate", "stderr")
#: Training steps whose generator batches are checked against the declared output range at once;
#: the batches of later steps are checked at each evaluation on the select split.
RANGE_CHECKED_STEPS = 5
#: Keys of a curve point's ``train`` record (the train-subset diagnosis) logged as ``train_subset/<key>``,
#: beside ``train_subset/gap`` (its lower bound minus the select one).
TRAIN_SUBSET_KEYS = ("lower_bound", "lower_bound_lo", "lower_bound_hi")


class CriticSystem(pl.LightningModule):
    """Kantorovich–Rubinstein critic training.

    .. math::

        \\max_f \\; \\mathbb{E}_P f - \\mathbb{E}_Q f \\quad (\\text{loss } kr), \\qquad
        \\max_f \\; \\mathbb{E}_P f - \\mathbb{E}_Q f - \\lambda\\, \\mathbb{E}_{\\hat x}
        (\\|\\nabla f(\\hat x)\\|_2 - 1)^2 \\quad (\\text{loss } wgan\\text{-}gp)

    Parameters
    ----------
    critic : nn.Module
        Maps ``(N, *input_shape)`` to ``(N, 1)``; certified by :func:`critics.certify`.
    input_shape : tuple of int
        Shape of one sample.
    train : TrainConfig
        Objective, optimiser, schedule, steps and training batch size (which is also the chunk in
        which generator sides are decoded, :func:`~wdist.sources.base.decode_latents`); kept as
        given and stored in the checkpoints' hyperparameters (a settled configuration,
        :func:`wdist.config.resolve_config`, holds builtin values only).
    eval : EvalConfig
        Confidence, interval method and pairing of the evaluations, and whether a train subset is
        evaluated beside the select split (the data module provides the items).
    domain : (lo, hi) of bounded samples, or None (the a-priori range of Bernstein intervals).
    seed : the run's seed (:mod:`wdist.seeds`: the gradient penalty's interpolation weights).
    p_generator, q_generator : nn.Module or None
        Frozen networks decoding latent vectors for a generator side (``None``: the side's batches
        are samples already).

    Attributes
    ----------
    evaluations : list of Evaluation
        The select-split evaluations so far, one per evaluated step (restored from checkpoints).
    selection : Selection
        The candidate chosen so far (``train.select``, ``train.patience``) and its weights.
    critic_average : WeightAverage or None
        The running average of the critic's parameters (``train.average``), evaluated and
        certified in place of the critic once it has averaged a step.
    test_evaluation : Evaluation or None
        The selected state on the test split (after :meth:`pytorch_lightning.Trainer.test`).
    range_evaluated, range_training : dict of side -> RangeTally
        A generator side's outputs against its declared range (:mod:`wdist.sources.ranges`): on
        the samples evaluated (select and test sets, train subset, references) and on this
        process's training batches (kept in checkpoints). A side above
        :data:`~wdist.sources.ranges.OUT_OF_RANGE_LIMIT` stops the run (``GeneratorRangeError``):
        the evaluated samples when they are decoded (the select split before the first step, the
        test split at the end); the training batches at each of the first
        :data:`RANGE_CHECKED_STEPS` steps and at every evaluation.
    """

    def __init__(
        self,
        critic: nn.Module,
        input_shape: tuple[int, ...],
        train: Optional[TrainConfig] = None,
        eval: Optional[EvalConfig] = None,
        domain: Optional[tuple[float, float]] = None,
        seed: int = 0,
        p_generator: Optional[nn.Module] = None,
        q_generator: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        train = train if train is not None else TrainConfig()
        eval = eval if eval is not None else EvalConfig()
        self.save_hyperparameters(
            {
                "input_shape": tuple(int(s) for s in input_shape),
                "train": asdict(train),
                "eval": asdict(eval),
                "domain": None if domain is None else (float(domain[0]), float(domain[1])),
                "seed": int(seed),
            }
        )
        self.train_cfg, self.eval_cfg = train, eval
        self.critic = critic
        self.input_shape = tuple(int(s) for s in input_shape)
        self.domain = self.hparams["domain"]
        self.seed = int(seed)
        self.p_generator = p_generator
        self.q_generator = q_generator
        self.range_evaluated: dict[str, RangeTally] = {}
        self.range_training: dict[str, RangeTally] = {}
        for side, decoder in self._tallied():
            self.range_evaluated[side] = RangeTally(decoder.tally.declared)
            self.range_training[side] = RangeTally(decoder.tally.declared)
        self.evaluations: list[Evaluation] = []
        self.selection = Selection(train.select, train.patience)
        self.critic_average = None if train.average == "none" else WeightAverage(critic, train.average, train.ema_decay)
        self.test_evaluation: Optional[Evaluation] = None
        #: the last training step's objective E_P f - E_Q f on its batch (detached; not a bound)
        self.train_gap: Optional[Tensor] = None
        self.select_values = HeldOutValues(PARTS if eval.train_subset else PARTS[:2])
        self.test_values = HeldOutValues(PARTS[:2])
        self._decoded: dict[str, dict[str, Tensor]] = {}

    @property
    def last_evaluation(self) -> Optional[Evaluation]:
        """The latest select-split evaluation, or ``None`` before the first."""
        return self.evaluations[-1] if self.evaluations else None

    @property
    def selected_evaluation(self) -> Optional[Evaluation]:
        """The select-split evaluation of the selected step, or ``None`` before the first."""
        return next((ev for ev in reversed(self.evaluations) if ev.step == self.selection.step), None)

    @property
    def evaluated_critic(self) -> nn.Module:
        """What an evaluation runs and certifies: the averaged critic once it has averaged a step
        (``train.average``), else the critic."""
        average = self.critic_average
        if average is not None and int(average.n_averaged) > 0:
            return average.module
        return self.critic

    # -- inference ------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        return self.critic(x)

    def samples(self, batch: Tensor, decoder: Optional[nn.Module]) -> Tensor:
        """A batch of one side's samples: decoded when it holds a generator's latents."""
        if decoder is None:
            return batch
        return decode_latents(decoder, batch, chunk=int(self.train_cfg.batch_size), device=batch.device)

    # -- a generator's outputs against its declared range ---------------------------------------
    def _tallied(self) -> list[tuple[str, nn.Module]]:
        """The generator sides whose decoder counts its outputs against the declared range."""
        pairs = (("p", self.p_generator), ("q", self.q_generator))
        return [(side, dec) for side, dec in pairs if isinstance(getattr(dec, "tally", None), RangeTally)]

    def count_evaluated_draws(self, what: str) -> None:
        """Add what the generator sides decoded since the last count (select and test sets, train subset,
        references) to :attr:`range_evaluated` and stop the run when a side is out of its declared
        range (identical on every process: the same items are decoded everywhere)."""
        for side, decoder in self._tallied():
            self.range_evaluated[side].merge(decoder.tally.take())
            self.range_evaluated[side].summary().check(f"{side.upper()} generator {decoder.name!r}", what)

    def _count_draws(self, into: dict[str, RangeTally]) -> None:
        """Add what the generator sides decoded since the last count to ``into`` (no synchronisation)."""
        for side, decoder in self._tallied():
            into[side].merge(decoder.tally.take())

    def _check_training_ranges(self) -> None:
        """Stop every process when a generator side's training batches so far (on any process) are
        out of its declared range."""
        bad = {}
        for side, decoder in self._tallied():
            summary = self.range_training[side].summary()
            if summary.fraction > OUT_OF_RANGE_LIMIT:
                bad[side] = (decoder, summary)
        anywhere = bool(bad)
        if self.trainer is not None and self.trainer.world_size > 1:
            anywhere = bool(self.trainer.strategy.reduce_boolean_decision(anywhere, all=False))
        what = f"the training batches of its first {int(self.global_step) + 1} steps"
        for side, (decoder, summary) in bad.items():
            summary.check(f"{side.upper()} generator {decoder.name!r}", what)
        if anywhere:
            raise GeneratorRangeError(
                f"a generator's outputs left its declared output_range on another process of the distributed run "
                f"(its message names the ranges), in {what}. No result was written."
            )

    def range_records(self) -> dict[str, dict[str, Any]]:
        """Side -> the counts against the declared range, JSON-ready: ``evaluated`` and ``training``
        (:meth:`RangeSummary.record`), their sum ``all``, and ``limit``."""
        out = {}
        for side, _ in self._tallied():
            evaluated, training = self.range_evaluated[side].summary(), self.range_training[side].summary()
            out[side] = {
                "all": (evaluated + training).record(),
                "evaluated": evaluated.record(),
                "training": training.record(),
                "limit": OUT_OF_RANGE_LIMIT,
            }
        return out

    # -- training ---------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        self._count_draws(self.range_evaluated)  # decoded since the last step, if anything: not training
        xp = self.samples(batch[0], self.p_generator)
        xq = self.samples(batch[1], self.q_generator)
        self._count_draws(self.range_training)
        if int(self.global_step) < RANGE_CHECKED_STEPS:
            self._check_training_ranges()
        # one forward on both batches: the critic has no batch coupling, and its constrained
        # weights are then built (orthonormalised) once per step instead of twice
        f = self.critic(torch.cat([xp, xq.to(xp.dtype)]))
        fp, fq = f[: xp.shape[0]], f[xp.shape[0] :]
        gap = kr_gap(fp, fq)
        loss = -gap
        if self.train_cfg.loss == "wgan-gp":
            gp = self._gradient_penalty(xp, xq)
            loss = loss + self.train_cfg.gp_lambda * gp
            if self._logged_step():
                self.log("train/gp", gp.detach(), on_step=True, prog_bar=False)
        bad = not bool(torch.isfinite(loss))
        if self.trainer is not None and self.trainer.world_size > 1:
            # every process must stop at the same step, or the others wait forever in all-reduce
            bad = bool(self.trainer.strategy.reduce_boolean_decision(bad, all=False))
        if bad:
            self._raise_non_finite(xp, xq, loss)
        self.train_gap = gap.detach()  # the progress bar shows it at every step
        if self._logged_step():
            self.log("train/gap", self.train_gap, on_step=True)
        return loss

    def _logged_step(self) -> bool:
        """Whether the loggers record this training step's values: Lightning writes on-step values
        every ``trainer.log_every_n_steps`` optimiser steps and drops the others, and each
        ``self.log`` call costs its result bookkeeping (about a millisecond on a CPU, a tenth of
        a small critic's step), so the other steps do not log."""
        trainer = self._trainer
        if trainer is None:
            return True
        every = int(trainer.log_every_n_steps)
        return every > 0 and (int(self.global_step) + 1) % every == 0

    def _gradient_penalty(self, xp: Tensor, xq: Tensor) -> Tensor:
        # interpolation weights drawn from (seed, rank, step), like the batches: a resumed run
        # retraces the uninterrupted one exactly, and no global RNG state is consumed
        gen = torch.Generator().manual_seed(batch_seed(self.seed, self.global_rank, int(self.global_step), GP_SALT))
        return gradient_penalty(self.critic, xp, xq, gen)

    def _raise_non_finite(self, xp: Tensor, xq: Tensor, loss: Tensor) -> None:
        p_ok = bool(torch.isfinite(xp).all())
        q_ok = bool(torch.isfinite(xq).all())
        where = []
        if not p_ok:
            where.append("the P samples contain NaN/Inf")
        if not q_ok:
            where.append("the Q samples contain NaN/Inf (a generator producing non-finite output?)")
        step = int(self.global_step) + 1
        here = bool(torch.isfinite(loss))
        samples_bad = not (p_ok and q_ok)
        if self.trainer is not None and self.trainer.world_size > 1:  # bad input on any process is bad input
            samples_bad = bool(self.trainer.strategy.reduce_boolean_decision(samples_bad, all=False))
        if p_ok and q_ok and here:
            what = "the loss is NaN/Inf on another process of the distributed run (its message names the cause)"
        else:
            if p_ok and q_ok:
                where.append("the samples are finite, so the critic diverged (lower the learning rate?)")
            what = f"the loss is {loss.item()}; {'; '.join(where)}"
        raise (NonFiniteSamplesError if samples_bad else NonFiniteLossError)(
            f"Training stopped at training step {step} of {self.train_cfg.steps}: {what}. That update "
            "was not applied. The last good checkpoint, if any, is kept (resume from it with --resume "
            "after fixing the cause); no result was written."
        )

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        average, hp = self.critic_average, self.train_cfg
        if average is None:
            return
        if hp.average == "ema" or int(self.global_step) > int(hp.swa_start * hp.steps):
            average.update(self.critic)

    # -- evaluations: the select split during training, the test split once at the end ---------
    def on_fit_start(self) -> None:
        self._decode("select")
        # a critic that asks for it is placed from training items, once, before the first step
        initialise_critic(self, getattr(self._trainer, "datamodule", None))

    def on_validation_start(self) -> None:
        self._decode("select")  # a validate-only run (no fit) decodes here, once

    def on_test_start(self) -> None:
        self._use_selected_state()
        self._decode("test")

    def _items(self, split: str) -> Optional[EvaluationItems]:
        dm = getattr(self._trainer, "datamodule", None)
        if dm is None or getattr(dm, split, None) is None:
            return None
        return dm.select_items if split == "select" else dm.test_items

    def _decode(self, split: str) -> None:
        """Decode the evaluation latents of generator sides of ``split`` once, on this process's device.

        Every part of a generator side (its select or test samples and its train subset) goes
        through :func:`decode_latents` in index order, in chunks of the training batch size, and
        stays on the device: every evaluation reuses the same samples, drawn with the batch
        statistics of training-sized batches (the train subset's chunks are then exactly its
        training batches). A split without a generator side reads nothing here.
        """
        items = self._items(split)
        if split in self._decoded or items is None:
            return
        decoded: dict[str, Tensor] = {}
        generator_parts = [part for part in items.names if self._decoder(part) is not None]
        if generator_parts:
            parts = items.read_all()
            chunk = int(self.train_cfg.batch_size)
            for part in generator_parts:
                with full_precision(self.device):
                    decoded[part] = decode_latents(self._decoder(part), parts[part], chunk, device=self.device)
            self.count_evaluated_draws(f"its {split} samples" + (" and train subset" if split == "select" else ""))
        self._decoded[split] = decoded

    def _decoder(self, part: str) -> Optional[nn.Module]:
        return self.p_generator if part.startswith("p") else self.q_generator

    def select_samples(self) -> tuple[Tensor, Tensor]:
        """The whole select split of both sides as samples (decoded ones for generator sides)."""
        select = self.trainer.datamodule.select
        self._decode("select")
        decoded = self._decoded["select"]
        return decoded.get("p", select.p).to(self.device), decoded.get("q", select.q).to(self.device)

    def _samples_of(self, split: str, part: str, idx: Tensor, batch: Tensor) -> Tensor:
        decoded = self._decoded.get(split, {}).get(part)
        if decoded is not None:
            return decoded[idx.to(decoded.device)]
        if self._decoder(part) is not None:
            raise RuntimeError(
                f"{split} latents of a generator side reached the evaluation undecoded: the system decodes them when "
                "fit, validation or test starts, from the data module's evaluation items"
            )
        return batch

    def _use_selected_state(self) -> None:
        """Put the selected candidate's weights (averaged ones when averaging) into the critic."""
        if self.selection.state:
            self.critic.load_state_dict(self.selection.state)

    def _values(self, metric: HeldOutValues, split: str, batch: dict[str, tuple[Tensor, Tensor]], critic: nn.Module):
        # under mixed precision training runs in reduced precision; the values must come from the
        # very weights the certificate is computed on, so evaluation runs without autocast and
        # without TF32 (see wdist.precision). One forward per part keeps the peak memory of one
        # eval.batch_size batch; every process updates every part (possibly with no items), so the
        # gathered states line up across processes.
        for part in metric.parts:
            idx, items = batch[part] if part in batch else (torch.empty(0, dtype=torch.long, device=self.device), None)
            if items is None or idx.numel() == 0:
                metric.update(part, idx, torch.empty(0, dtype=torch.float64, device=idx.device))
                continue
            with full_precision(self.device):
                values = critic(self._samples_of(split, part, idx, items)).reshape(-1)
            metric.update(part, idx, values)

    def on_validation_epoch_start(self) -> None:
        self.select_values.reset()

    def validation_step(self, batch: dict[str, tuple[Tensor, Tensor]], batch_idx: int) -> None:
        self._values(self.select_values, "select", batch, self.evaluated_critic)

    def on_validation_epoch_end(self) -> None:
        self._check_training_ranges()
        values = self.select_values.compute()
        self._check_finite_values(values, "select")
        # the train subset when the data module provided one (a validate-only run on a data module
        # built without it leaves those parts empty)
        train = [values.get(part) for part in ("p_train", "q_train")]
        fp_train, fq_train = train if all(t is not None and t.numel() for t in train) else (None, None)
        critic = self.evaluated_critic
        # eval.paired is for the test split (equal sizes, checked with the configuration); on select
        # sides of unequal sizes the curve takes the two-sample interval (the choice uses the point
        # estimate, the same for both)
        paired = self.eval_cfg.paired and values["p"].numel() == values["q"].numel()
        ev = self._evaluate(critic, values["p"], values["q"], int(self.global_step), fp_train, fq_train, paired)
        if self.trainer.sanity_checking:
            return
        if self.evaluations and self.evaluations[-1].step == ev.step:
            self.evaluations[-1] = ev
        else:
            self.evaluations.append(ev)
        self._offer(ev, critic)
        row = ev.point("select")
        for key in SELECT_KEYS:  # for callbacks (e.g. a ModelCheckpoint monitoring the bound),
            # on every rank alike: the values are identical there, so no reduction is needed
            self.log(f"select/{key}", row[key], sync_dist=False, logger=False)
        self._log_select(row)

    def _offer(self, ev: Evaluation, critic: nn.Module) -> None:
        """Offer the evaluated state to the selection; stop training when patience has run out.

        The select values are gathered over every process, so every rank decides alike; rank 0's
        decision is broadcast all the same, so no rounding difference can split the ranks."""
        selection = self.selection
        selection.offer(ev.step, ev.bound.estimate, critic)
        stop = selection.exhausted and self.trainer.state.fn == TrainerFn.FITTING
        if self.trainer.world_size > 1:
            stop = bool(self.trainer.strategy.broadcast(stop, src=0))
        if stop:
            selection.stopped_early = int(self.global_step) < int(self.train_cfg.steps)
            self.trainer.should_stop = True

    def _evaluate(
        self, critic: nn.Module, fp: Tensor, fq: Tensor, step: int,
        fp_train: Optional[Tensor] = None, fq_train: Optional[Tensor] = None, paired: Optional[bool] = None,
    ) -> Evaluation:  # fmt: skip
        return evaluate(
            critic, self.input_shape, fp, fq, step, confidence=self.eval_cfg.confidence,
            method=self.eval_cfg.interval, domain=self.domain,
            paired=self.eval_cfg.paired if paired is None else paired, fp_train=fp_train, fq_train=fq_train,
        )  # fmt: skip

    def on_test_epoch_start(self) -> None:
        self.test_values.reset()

    def test_step(self, batch: dict[str, tuple[Tensor, Tensor]], batch_idx: int) -> None:
        self._values(self.test_values, "test", batch, self.critic)

    def on_test_epoch_end(self) -> None:
        values = self.test_values.compute()
        self._check_finite_values(values, "test")
        step = self.selection.step if self.selection.step is not None else int(self.global_step)
        self.test_evaluation = self._evaluate(self.critic, values["p"], values["q"], step)

    def _check_finite_values(self, values: dict[str, Tensor], split: str) -> None:
        bad = {part: int((~torch.isfinite(f)).sum()) for part, f in values.items()}
        if any(bad.values()):  # identical on every process (gathered values), so all stop together
            names = {
                "p": "P side",
                "q": "Q side",
                "p_train": "P side (train subset)",
                "q_train": "Q side (train subset)",
            }
            sides = [f"{n} of {values[part].numel()} on the {names[part]}" for part, n in bad.items() if n]
            from_generator = any(n and self._decoder(part) is not None for part, n in bad.items())
            hint = "a generator producing non-finite output?" if from_generator else "the critic diverged?"
            decoded = self._decoded.get(split, {}).values()  # the generator sides' decoded samples
            samples_bad = any(not bool(torch.isfinite(x).all()) for x in decoded)
            raise (NonFiniteSamplesError if samples_bad else NonFiniteLossError)(
                f"Evaluation on the {split} split stopped at step {int(self.global_step)}: {' and '.join(sides)} "
                f"critic values are NaN/Inf ({hint}). The last good checkpoint, if any, is kept; no result was written."
            )

    def _log_select(self, row: dict[str, Any]) -> None:
        """The select curve, its interval ends as separate series, at the true step, in float64; the
        train-subset diagnosis beside it (``train_subset/*``).

        Logged straight to the loggers (``self.log`` would convert to float32 and, during training,
        stamp the row with the previous step).
        """
        if self.trainer is None or not self.trainer.is_global_zero or self.trainer.sanity_checking:
            return
        metrics = {f"select/{k}": float(row[k]) for k in SELECT_KEYS}
        metrics["select/n_p"] = int(row["n_eval_p"])
        metrics["select/n_q"] = int(row["n_eval_q"])
        train = row["train"]
        if train is not None:
            metrics.update({f"train_subset/{k}": float(train[k]) for k in TRAIN_SUBSET_KEYS})
            metrics["train_subset/gap"] = float(train["lower_bound"] - row["lower_bound"])
        for lg in self.loggers:
            lg.log_metrics(metrics, step=int(row["step"]))
            lg.save()

    # -- checkpoints keep the evaluations, so a resumed run reports the whole curve --------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the curve as its bound records (Bound.to_dict, with what rebuilding each evaluation needs)
        checkpoint["wdist_curve"] = [ev.checkpoint_record() for ev in self.evaluations]
        checkpoint["wdist_selection"] = self.selection.state_dict()
        checkpoint["wdist_range_training"] = {side: t.summary().record() for side, t in self.range_training.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "wdist_curve" in checkpoint:
            self.evaluations = [Evaluation.from_checkpoint_record(r) for r in checkpoint["wdist_curve"]]
        else:  # written before the curve was kept as bound records
            self.evaluations = [Evaluation.from_state(s) for s in checkpoint.get("wdist_evaluations", [])]
        if "wdist_selection" in checkpoint:
            self.selection.load_state_dict(checkpoint["wdist_selection"])
        for side, record in checkpoint.get("wdist_range_training", {}).items():
            if side in self.range_training:  # the training batches of the segments before this one
                self.range_training[side] = RangeTally.from_summary(RangeSummary.from_record(record))

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.train_cfg
        groups = getattr(self.critic, "param_groups", None)  # per-group learning rates (cone heads)
        params = groups(hp.lr) if callable(groups) else [p for p in self.critic.parameters() if p.requires_grad]
        if hp.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        elif hp.optimizer == "rmsprop":
            opt = torch.optim.RMSprop(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        if hp.schedule == "none":
            return opt
        if hp.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, hp.steps))
        else:
            sched = torch.optim.lr_scheduler.MultiStepLR(
                opt, milestones=[int(hp.steps * 0.5), int(hp.steps * 0.75)], gamma=0.1
            )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
