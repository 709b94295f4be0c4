"""The training system: a critic trained to maximise E_P f - E_Q f, evaluated on held-out pairs.

The critic and (for generator sides) the frozen decoders are plain modules handed in; this
LightningModule owns the objective, the optimiser and the held-out evaluation. Every held-out
evaluation records, per step: the mean difference on the held-out set, the certified Lipschitz
constant of the weights at that step, the lower bound (their ratio) and its interval.
"""

from __future__ import annotations

import math

import contextlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins import TorchCheckpointIO
from torch import Tensor, nn

import critics
from wdist.data import batch_seed
from wdist.stats import mean_difference_interval

__all__ = ["CriticSystem", "NonFiniteLossError", "AtomicCheckpointIO", "StepCheckpoint", "HELDOUT_KEYS", "ieee_float32"]

# the held-out statistics are computed from values gathered over every process, so they are
# identical on all ranks: Lightning's advice to reduce them with sync_dist does not apply
warnings.filterwarnings("ignore", message=r".*self\.log\('heldout/.*sync_dist=True.*")

HELDOUT_KEYS = ("estimate", "lower_bound", "lower_bound_lo", "lower_bound_hi", "certificate", "stderr")


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or Inf loss; the message names the step and what was non-finite."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint writes that a kill cannot leave half-done.

    Lightning's own ``_atomic_save`` goes through an fsspec transaction whose temporary file lies
    in the system temp folder: when that is another file system the final ``shutil.move`` is a
    copy into the destination (a kill mid-copy leaves a truncated ``last.ckpt``), and the data
    are never fsync'ed. Here the checkpoint is written to a temporary file in the destination
    folder, flushed to disk, then renamed over the old one (atomic on POSIX): a reader sees the
    previous checkpoint or the new one, never a partial file. Remote URLs fall back to Lightning.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options; got {storage_options!r}")
        text = str(path)
        if "://" in text and not text.startswith("file://"):
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(text[len("file://") :] if text.startswith("file://") else text)
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{target.name}.*.tmp"):  # left by a run killed mid-write
            with contextlib.suppress(OSError):
                stale.unlink()
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable
            dfd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


class StepCheckpoint(ModelCheckpoint):
    """``every_n_train_steps`` checkpoints that include the held-out evaluation of their step.

    Lightning saves step checkpoints in ``on_train_batch_end``, before the validation that runs
    after the same batch; a run resumed from such a checkpoint would never evaluate that step
    again, and its bound curve would miss the point. When a validation follows the batch, the
    save is deferred to the end of that validation (ModelCheckpoint's own deferral mechanism).
    """

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any) -> None:
        step = trainer.global_step
        if (
            self._every_n_train_steps >= 1
            and step % self._every_n_train_steps == 0
            and not self._should_skip_saving_checkpoint(trainer)
            and _validation_follows(trainer)
        ):
            self._defer_save_until_validation = True
            return
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)


def _validation_follows(trainer: pl.Trainer) -> bool:
    """Whether the fit loop runs a validation right after the current training batch."""
    if not trainer.enable_validation:
        return False
    loop = trainer.fit_loop.epoch_loop
    try:
        return bool(loop._should_check_val_fx(trainer.fit_loop._data_fetcher))  # Lightning's own test
    except (AttributeError, TypeError):  # a Lightning without that private hook: the step rule
        every = trainer.val_check_batch
        return isinstance(every, int) and every > 0 and trainer.global_step % every == 0


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """float32 matrix products and convolutions in IEEE float32 inside (no TF32), restored after.

    On Ampere and later GPUs cuDNN convolutions default to TF32 (10-bit mantissa): a relative
    error near 1e-3 per layer, as large as the certificate's own tolerance. The held-out values
    must be the certified function evaluated to float32 accuracy, so evaluation switches TF32
    off (training keeps the user's setting). Uses torch's ``fp32_precision`` settings where they
    exist (torch >= 2.9), else the legacy ``allow_tf32`` flags; no effect on the CPU.
    """
    if hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv"):
        knobs = [torch.backends.cuda.matmul, torch.backends.cudnn.conv]
        saved = [k.fp32_precision for k in knobs]
        try:
            for k in knobs:
                k.fp32_precision = "ieee"
            yield
        finally:
            for k, v in zip(knobs, saved):
                k.fp32_precision = v
    else:  # pragma: no cover - torch < 2.9
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        try:
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextlib.contextmanager
def _full_precision(device: torch.device) -> Iterator[None]:
    """Autocast off and TF32 off: held-out values come from the float32 weights that are certified,
    computed in IEEE float32."""
    try:
        no_autocast: contextlib.AbstractContextManager = torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):  # a device type autocast does not know
        no_autocast = contextlib.nullcontext()
    with no_autocast, ieee_float32():
        yield


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
    p_decoder, q_decoder : nn.Module or None
        Frozen networks decoding latent vectors for a generator side (``None``: the side's batches
        are samples already).
    loss, gp_lambda, optimizer, lr, betas, momentum, weight_decay, schedule, max_steps
        See :class:`wdist.config.TrainConfig`.
    confidence, interval
        See :class:`wdist.config.EvalConfig`.
    domain : (lo, hi) of bounded samples, or None (the a-priori range of Bernstein intervals).
    seed : the run's seed; the gradient penalty's interpolation weights of step ``i`` on rank
        ``r`` are drawn from ``batch_seed(seed, r, i)`` (exact resumes).
    """

    def __init__(
        self,
        critic: nn.Module,
        input_shape: tuple[int, ...],
        p_decoder: Optional[nn.Module] = None,
        q_decoder: Optional[nn.Module] = None,
        loss: Literal["kr", "wgan-gp"] = "kr",
        gp_lambda: float = 10.0,
        optimizer: Literal["adam", "rmsprop", "sgd"] = "adam",
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.5, 0.9),
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        schedule: Literal["none", "cosine", "step"] = "none",
        max_steps: int = 1000,
        confidence: float = 0.95,
        interval: Literal["normal", "bernstein", "bootstrap"] = "normal",
        domain: Optional[tuple[float, float]] = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        # plain Python types only (the config hands over jsonargparse's float/int subclasses), so
        # that a checkpoint loads with torch.load(weights_only=True), as Lightning resumes it
        self.save_hyperparameters(
            {
                "input_shape": tuple(int(s) for s in input_shape),
                "loss": str(loss),
                "gp_lambda": float(gp_lambda),
                "optimizer": str(optimizer),
                "lr": float(lr),
                "betas": tuple(float(b) for b in betas),
                "momentum": float(momentum),
                "weight_decay": float(weight_decay),
                "schedule": str(schedule),
                "max_steps": int(max_steps),
                "confidence": float(confidence),
                "interval": str(interval),
                "domain": None if domain is None else (float(domain[0]), float(domain[1])),
                "seed": int(seed),
            }
        )
        self.critic = critic
        self.input_shape = tuple(input_shape)
        self.p_decoder = p_decoder
        self.q_decoder = q_decoder
        self.curve: list[dict[str, float]] = []
        self._val_idx: list[Tensor] = []
        self._val_fp: list[Tensor] = []
        self._val_fq: list[Tensor] = []
        self.last_eval: Optional[dict[str, Any]] = None
        self._decoded: dict[str, Tensor] = {}  # held-out samples of generator sides, decoded once

    def difference_range(self, certificate: float) -> Optional[float]:
        """An a-priori width of the interval holding every d_i = f(x_i) - f(y_i), or ``None``.

        For samples in a bounded domain [lo, hi]^D and Lip(f) <= L (certified),
        |d_i| <= L ||x_i - y_i|| <= L (hi - lo) sqrt(D), so d_i lies in an interval of width
        2 L (hi - lo) sqrt(D). Loose, but known before looking at the data, as the empirical
        Bernstein bound requires. Unbounded (toy) domains have none.
        """
        domain = self.hparams.get("domain")
        if domain is None:
            return None
        return 2.0 * float(certificate) * (domain[1] - domain[0]) * math.sqrt(math.prod(self.input_shape))

    # -- inference ------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        return self.critic(x)

    def _decode(self, batch: Tensor, decoder: Optional[nn.Module]) -> Tensor:
        if decoder is None:
            return batch
        with torch.no_grad():
            return decoder(batch)

    # -- training ---------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        xp = self._decode(batch[0], self.p_decoder)
        xq = self._decode(batch[1], self.q_decoder)
        # one forward on both batches: the critic has no batch coupling, and its constrained
        # weights are then built (orthonormalised) once per step instead of twice
        f = self.critic(torch.cat([xp, xq.to(xp.dtype)]))
        fp, fq = f[: xp.shape[0]], f[xp.shape[0] :]
        gap = fp.mean() - fq.mean()
        loss = -gap
        if self.hparams.loss == "wgan-gp":
            gp = self._gradient_penalty(xp, xq)
            loss = loss + self.hparams.gp_lambda * gp
            self.log("train/gp", gp.detach(), on_step=True, prog_bar=False)
        bad = not bool(torch.isfinite(loss))
        if self.trainer is not None and self.trainer.world_size > 1:
            # every process must stop at the same step, or the others wait forever in all-reduce
            bad = bool(self.trainer.strategy.reduce_boolean_decision(bad, all=False))
        if bad:
            self._raise_non_finite(xp, xq, loss)
        self.log("train/gap", gap.detach(), on_step=True, prog_bar=True)
        return loss

    def _gradient_penalty(self, xp: Tensor, xq: Tensor) -> Tensor:
        n = min(xp.shape[0], xq.shape[0])
        # interpolation weights drawn from (seed, rank, step), like the batches: a resumed run
        # retraces the uninterrupted one exactly, and no global RNG state is consumed
        gen = torch.Generator().manual_seed(
            batch_seed(int(self.hparams.get("seed", 0)), self.global_rank, int(self.global_step), salt=0x6770)
        )
        t = torch.rand((n,) + (1,) * (xp.ndim - 1), generator=gen).to(device=xp.device, dtype=xp.dtype)
        x_hat = (t * xp[:n] + (1 - t) * xq[:n]).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.critic(x_hat).sum(), x_hat, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()

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
        if p_ok and q_ok and here:
            what = "the loss is NaN/Inf on another process of the distributed run (its message names the cause)"
        else:
            if p_ok and q_ok:
                where.append("the samples are finite, so the critic diverged (lower the learning rate?)")
            what = f"the loss is {loss.item()}; {'; '.join(where)}"
        raise NonFiniteLossError(
            f"Training stopped at training step {step} of {self.hparams.max_steps}: {what}. That update "
            "was not applied. The last good checkpoint, if any, is kept (resume from it with --resume "
            "after fixing the cause); no result was written."
        )

    # -- held-out evaluation ------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_idx, self._val_fp, self._val_fq = [], [], []

    def _heldout_samples(self, side: str, idx: Tensor, batch: Tensor) -> Tensor:
        """Held-out samples of one side for the items ``idx``.

        A generator side is decoded once, the first time it is needed: the whole held-out latent
        set, in consecutive chunks of the training batch size, in index order (under autocast off
        and TF32 off), and kept on the device. So a generator whose output depends on its batch
        (batch-norm on batch statistics) gives every held-out item the same sample whatever the
        evaluation batch size or the number of processes, drawn with the same batch statistics
        as in training; and the frozen generator is not run again at every evaluation.
        """
        decoder = self.p_decoder if side == "p" else self.q_decoder
        if decoder is None:
            return batch
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        heldout = getattr(dm, "heldout", None)
        if heldout is None:  # outside a Trainer with a PairDataModule: decode this batch
            return self._decode(batch, decoder)
        cache = self._decoded.get(side)
        if cache is None:
            latents, step = (heldout.p if side == "p" else heldout.q), int(dm.batch_size)
            chunks = [self._decode(latents[i : i + step].to(self.device), decoder) for i in range(0, len(latents), step)]
            cache = self._decoded[side] = torch.cat(chunks)
        return cache[idx.to(cache.device)]

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        idx, bp, bq = batch
        # under mixed precision training runs in reduced precision; the held-out values must come
        # from the very weights the certificate is computed on, so evaluation runs without autocast
        # and without TF32 (see ieee_float32)
        with _full_precision(self.device):
            xp = self._heldout_samples("p", idx, bp)
            xq = self._heldout_samples("q", idx, bq)
            self._val_idx.append(idx)
            self._val_fp.append(self.critic(xp).reshape(-1).double())
            self._val_fq.append(self.critic(xq).reshape(-1).double())

    def gather_heldout(self) -> tuple[Tensor, Tensor]:
        """Per-sample critic values on the whole held-out set, from every process, in index order."""
        idx = torch.cat(self._val_idx).to(self.device)
        fp, fq = torch.cat(self._val_fp), torch.cat(self._val_fq)
        trainer = self._trainer  # (None outside a Trainer: one process)
        if trainer is not None and trainer.world_size > 1:
            idx, fp, fq = (self.all_gather(t).reshape(-1) for t in (idx, fp, fq))
        # the distributed sampler pads shards with repeated items: keep each index once
        order = torch.argsort(idx, stable=True)
        idx, fp, fq = idx[order], fp[order], fq[order]
        keep = torch.ones_like(idx, dtype=torch.bool)
        keep[1:] = idx[1:] != idx[:-1]
        return fp[keep].cpu(), fq[keep].cpu()

    def on_validation_epoch_end(self) -> None:
        fp, fq = self.gather_heldout()
        bad_p, bad_q = int((~torch.isfinite(fp)).sum()), int((~torch.isfinite(fq)).sum())
        if bad_p or bad_q:  # identical on every process (gathered values), so all stop together
            sides = [f"{n} on the {s} side" for n, s in ((bad_p, "P"), (bad_q, "Q")) if n]
            from_generator = (bad_q and self.q_decoder is not None) or (bad_p and self.p_decoder is not None)
            hint = "a generator producing non-finite output?" if from_generator else "the critic diverged?"
            raise NonFiniteLossError(
                f"Held-out evaluation stopped at step {int(self.global_step)}: {' and '.join(sides)} of "
                f"{fp.numel()} critic values are NaN/Inf ({hint}). The last good checkpoint, if any, is "
                "kept; no result was written."
            )
        cert = critics.certify(self.critic, self.input_shape)
        iv = mean_difference_interval(
            fp, fq, confidence=self.hparams.confidence, method=self.hparams.interval,
            value_range=self.difference_range(cert),
        )
        point = {
            "step": int(self.global_step),
            "estimate": float(iv.estimate),
            "stderr": float(iv.stderr),
            "estimate_lo": float(iv.lo),
            "estimate_hi": float(iv.hi),
            "certificate": float(cert),
            "lower_bound": float(iv.estimate / cert),
            "lower_bound_lo": float(iv.lo / cert),
            "lower_bound_hi": float(iv.hi / cert),
            "n_eval": int(fp.numel()),
        }
        self.last_eval = {**point, "fp": fp, "fq": fq, "interval": iv}
        if not self.trainer.sanity_checking:
            if not self.curve or self.curve[-1]["step"] != point["step"]:
                self.curve.append(point)
            else:
                self.curve[-1] = point
        for key in HELDOUT_KEYS:  # for callbacks (e.g. a ModelCheckpoint monitoring the bound),
            # on every rank alike: the values are identical there, so no reduction is needed
            self.log(f"heldout/{key}", point[key], sync_dist=False, logger=False)
        self._log_heldout(point)

    def _log_heldout(self, point: dict[str, Any]) -> None:
        """The bound curve, its interval ends as separate series, at the true step, in float64.

        Logged straight to the loggers (``self.log`` would convert to float32 and, during training,
        stamp the row with the previous step).
        """
        if self.trainer is None or not self.trainer.is_global_zero or self.trainer.sanity_checking:
            return
        metrics = {f"heldout/{k}": float(point[k]) for k in HELDOUT_KEYS}
        metrics["heldout/n_eval"] = int(point["n_eval"])
        for lg in self.loggers:
            lg.log_metrics(metrics, step=int(point["step"]))
            lg.save()

    # -- checkpoints keep the curve, so a resumed run plots all of it -------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["wdist_curve"] = list(self.curve)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.curve = list(checkpoint.get("wdist_curve", []))

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        params = [p for p in self.critic.parameters() if p.requires_grad]
        if hp.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        elif hp.optimizer == "rmsprop":
            opt = torch.optim.RMSprop(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        if hp.schedule == "none":
            return opt
        if hp.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, hp.max_steps))
        else:
            sched = torch.optim.lr_scheduler.MultiStepLR(
                opt, milestones=[int(hp.max_steps * 0.5), int(hp.max_steps * 0.75)], gamma=0.1
            )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
