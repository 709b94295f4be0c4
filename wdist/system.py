"""The training system: a critic trained to maximise E_P f - E_Q f, evaluated on held-out pairs.

The critic and (for generator sides) the frozen decoders are plain modules handed in; this
LightningModule owns the objective, the optimiser and the held-out evaluation. Every held-out
evaluation records, per step: the mean difference on the held-out set, the certified Lipschitz
constant of the weights at that step, the lower bound (their ratio) and its interval.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

import critics
from wdist.stats import mean_difference_interval

__all__ = ["CriticSystem", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or Inf loss; the message names the step and what was non-finite."""


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
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["critic", "p_decoder", "q_decoder"])
        self.critic = critic
        self.input_shape = tuple(input_shape)
        self.p_decoder = p_decoder
        self.q_decoder = q_decoder
        self.curve: list[dict[str, float]] = []
        self._val_idx: list[Tensor] = []
        self._val_fp: list[Tensor] = []
        self._val_fq: list[Tensor] = []
        self.last_eval: Optional[dict[str, Any]] = None

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
        fp, fq = self.critic(xp), self.critic(xq)
        gap = fp.mean() - fq.mean()
        loss = -gap
        if self.hparams.loss == "wgan-gp":
            gp = self._gradient_penalty(xp, xq)
            loss = loss + self.hparams.gp_lambda * gp
            self.log("train/gp", gp.detach(), on_step=True, prog_bar=False)
        if not torch.isfinite(loss):
            self._raise_non_finite(xp, xq, loss)
        self.log("train/gap", gap.detach(), on_step=True, prog_bar=True)
        return loss

    def _gradient_penalty(self, xp: Tensor, xq: Tensor) -> Tensor:
        n = min(xp.shape[0], xq.shape[0])
        t = torch.rand((n,) + (1,) * (xp.ndim - 1), device=xp.device, dtype=xp.dtype)
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
        if p_ok and q_ok:
            where.append("the samples are finite, so the critic diverged (lower the learning rate?)")
        raise NonFiniteLossError(
            f"Training stopped: the loss is {loss.item()} at step {self.global_step}; "
            f"{'; '.join(where)}. The last good checkpoint, if any, is kept; no result was written."
        )

    # -- held-out evaluation ------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_idx, self._val_fp, self._val_fq = [], [], []

    def validation_step(self, batch: tuple[Tensor, Tensor, Tensor], batch_idx: int) -> None:
        idx, bp, bq = batch
        xp = self._decode(bp, self.p_decoder)
        xq = self._decode(bq, self.q_decoder)
        self._val_idx.append(idx)
        self._val_fp.append(self.critic(xp).reshape(-1).double())
        self._val_fq.append(self.critic(xq).reshape(-1).double())

    def gather_heldout(self) -> tuple[Tensor, Tensor]:
        """Per-sample critic values on the whole held-out set, from every process, in index order."""
        idx = torch.cat(self._val_idx).to(self.device)
        fp, fq = torch.cat(self._val_fp), torch.cat(self._val_fq)
        if self.trainer is not None and self.trainer.world_size > 1:
            idx, fp, fq = (self.all_gather(t).reshape(-1) for t in (idx, fp, fq))
        # the distributed sampler pads shards with repeated items: keep each index once
        order = torch.argsort(idx, stable=True)
        idx, fp, fq = idx[order], fp[order], fq[order]
        keep = torch.ones_like(idx, dtype=torch.bool)
        keep[1:] = idx[1:] != idx[:-1]
        return fp[keep].cpu(), fq[keep].cpu()

    def on_validation_epoch_end(self) -> None:
        fp, fq = self.gather_heldout()
        cert = critics.certify(self.critic, self.input_shape)
        iv = mean_difference_interval(
            fp, fq, confidence=self.hparams.confidence, method=self.hparams.interval
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
        for key in ("estimate", "lower_bound", "lower_bound_lo", "lower_bound_hi", "certificate", "stderr"):
            self.log(f"heldout/{key}", point[key], rank_zero_only=True, sync_dist=False)

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
