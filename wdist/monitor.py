"""A Lightning callback that follows a certified W1 bound while a user's GAN trains.

:class:`W1Monitor` is added to the ``pl.Trainer`` of the user's own LightningModule GAN. Every
``every_n_epochs`` training epochs it estimates a held-out, certified lower bound on
:math:`W_1(P, G)` between held-out data ``P`` and the module's generator ``G`` as it is then, with
:func:`wdist.estimate` (the one estimation path), and logs it to the outer trainer's loggers. Each
estimate's configuration is the monitor's :class:`~wdist.config.EstimateConfig` with the data as
P and the live generator as Q (:class:`~wdist.sources.memory.ModuleGenerator`), derived with
:func:`dataclasses.replace`; its critic starts from the previous estimate's by the rule of ``wdist track``
(:func:`wdist.warmstart.warm_init`).

It leaves the GAN as it found it:

* the generator runs in eval mode, under ``torch.no_grad``, and every submodule gets its
  previous mode back; its parameters are never handed to an optimiser, and no gradient reaches them;
* the generator is not registered in the inner training system, so the inner Trainer neither
  moves it nor switches its mode;
* every random stream the GAN draws from (torch CPU and the initialised CUDA devices, NumPy's and
  Python's global generators) and Lightning's seed variables (``PL_GLOBAL_SEED``,
  ``PL_SEED_WORKERS``) are saved before and restored after, so the GAN's training is bit-identical
  with and without the monitor;
* the critic trains with the thread count the command line would choose for it
  (:mod:`wdist.threads`: one thread for a small critic), and the caller's count is restored after;
* the inner Trainer adds nothing to the user's log (its device lines, tips and "`Trainer.fit`
  stopped" lines are silenced; with ``verbose=True`` the estimate's thread line and progress
  lines are printed); warnings stay visible.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import replace
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import Tensor, nn

from generators.latents import LatentSpec
from wdist.auto import AUTO
from wdist.config import CriticConfig, EstimateConfig, EvalConfig, TrainConfig
from wdist.pipeline import estimate
from wdist.results import Result
from wdist.sources import ModuleGenerator, Source, TensorSource
from wdist.trainer import quiet_lightning
from wdist.warmstart import KeepCritic, warm_init

__all__ = ["W1Monitor", "monitor_config"]

#: Lightning's environment variables that ``pl.seed_everything`` (called by every estimate) sets.
_SEED_VARIABLES = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")


@contextlib.contextmanager
def _untouched_global_state(device: torch.device) -> Iterator[None]:
    """Inside: anything; on the way out torch's (CPU, ``device`` and every initialised CUDA device)
    RNG, NumPy's and Python's global RNG states, Lightning's seed variables and torch's thread
    count are back as they were."""
    py_state, np_state, threads = random.getstate(), np.random.get_state(), torch.get_num_threads()
    env = {name: os.environ.get(name) for name in _SEED_VARIABLES}
    cuda: list[int] = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = list(range(torch.cuda.device_count()))
    elif device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_num_threads(threads)
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _keep_interop_threads() -> None:
    """Fix torch's inter-op thread count at the caller's value, so that the run's thread rule (which
    sets it to 1 where it still can: it can be set once per process, never restored) leaves it."""
    try:
        torch.set_num_interop_threads(torch.get_num_interop_threads())
    except RuntimeError:  # already fixed (set, or the pool already used): nothing can change it
        pass


#: Warnings of the inner Trainer that are about its set-up, not about the user's GAN (besides
#: :data:`wdist.trainer.SET_UP_WARNINGS`).
_INNER_WARNINGS = (".*GPU available but not used.*",)


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """``module`` in eval mode inside; every submodule's own mode restored after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def monitor_config(n_items: int, n_eval: Optional[int] = None) -> EstimateConfig:
    """The monitor's settings where neither its ``config`` nor a keyword gives one, for data of
    ``n_items`` items: the command line's defaults, except 500 critic steps on batches of 128;
    ``n_eval`` (default a quarter of the items, at least 2) held-out items, ``4 n_eval`` held-out
    generated samples, evaluated in batches of ``max(n_eval, 256)``; no train-subset diagnosis,
    empirical-OT references or empirical Lipschitz check (each estimate reports its bound alone).
    """
    n_eval = max(2, int(n_items) // 4) if n_eval is None else int(n_eval)
    return EstimateConfig(
        train=TrainConfig(steps=500, batch_size=128),
        eval=EvalConfig(
            n_eval=n_eval, n_eval_q=4 * n_eval, batch_size=max(n_eval, 256), train_subset=False, ot_samples=0,
            ot_floor=False, empirical_lipschitz_samples=0,
        ),
    )  # fmt: skip


def _given(**values: Any) -> dict[str, Any]:
    """The keyword settings that were given (not ``None``)."""
    return {key: value for key, value in values.items() if value is not None}


class W1Monitor(Callback):
    r"""Certified held-out lower bounds on :math:`W_1(P, G)` while a LightningModule GAN trains.

    At the end of every ``every_n_epochs``-th training epoch :func:`wdist.estimate` trains a
    1-Lipschitz critic ``f`` to maximise :math:`\mathbb E_P f - \mathbb E_G f` on training items of
    ``data`` and samples of the module's generator, evaluates it at its last step on the select
    split (held-out items and fresh generated samples; the one candidate of :mod:`wdist.selection`),
    then once on the test split (other held-out items, other fresh samples), certifies its
    Lipschitz constant from its weights (:math:`L \ge \mathrm{Lip}(f)`), and reports

    .. math:: W_1(P, G) \ge (\hat{\mathbb E}_P f - \hat{\mathbb E}_G f) / L

    up to sampling error (the interval). W1 is the Euclidean distance on flattened samples, in the
    data's units. The critic of each call after the first starts from the previous call's (warm
    start, :func:`wdist.warmstart.warm_init`): every layer, but a head placed from data (the cone
    critics' :class:`~critics.layers.PotentialHead`) starts fresh and is placed again on this call's
    training items, so a critic that is all such head (``cones``) trains cold, ``train.steps`` steps.

    Logged to the trainer's loggers at the epoch's last step as ``<prefix>/<key>`` for the keys
    :data:`LOGGED` (keys of the bound record in result.json: ``lower_bound``, ``ci95_lo``, ``ci95_hi``,
    ``estimate``, ``lipschitz_certificate``), and kept in :attr:`history`.

    The estimates' settings are :attr:`config`: ``config`` when given, else :func:`monitor_config`
    for the data's size, with each keyword below that is given replacing its field
    (:func:`dataclasses.replace`). Its ``p``, ``q``, ``toy`` and ``out`` are the monitor's own (the
    data, the live generator, nothing written), as are ``train.eval_every`` (the last step) and
    the accelerator and device (the module's).

    Parameters
    ----------
    data : Tensor ``(N, *shape)`` or a finite Source
        Real samples in the generator's output space. ``eval.n_eval`` of them are held out for the
        estimate (the test split) and ``eval.n_select`` more for the select split (the same ones at
        every call, so no critic trains on them); the rest train the critic. Pass data the GAN is
        not trained on where you can.
    every_n_epochs : int
        Epochs between estimates.
    critic : str, optional
        ``critic.name``: a registered critic (``critics.available()``), e.g. ``bjorck-mlp`` or
        ``bcop-dcgan``; default: the one ``wdist estimate`` uses for the data's shape (``cones`` for
        images, ``bjorck-mlp`` for vectors; :func:`wdist.config.default_critic`).
    critic_options : dict, optional
        ``critic.options`` (of the default critic when ``critic`` is not given).
    generator : str or callable
        The attribute of the LightningModule holding the generator (default ``"generator"``), or
        a function ``module -> nn.Module``. It must map ``(n, *latent_shape)`` latents to
        ``(n, *shape)`` samples.
    latent_dim : int, optional
        Size of a flat latent ``(latent_dim,)``. Default: ``prod(latent_shape)`` when that is
        given, else the generator's ``latent_dim`` attribute, else the module's ``hparams.latent_dim``.
    latent_shape : sequence of int, optional
        Shape of one latent, e.g. ``(64, 1, 1)`` for a DCGAN-family generator; default ``(latent_dim,)``.
    latent : {"normal", "uniform", "uniform-symmetric", "truncated-normal"}
        Distribution of the latent's coordinates (:class:`generators.latents.LatentSpec`): N(0, 1),
        U[0, 1), U[-1, 1), or N(0, 1) truncated to ``[-truncation, truncation]``.
    truncation : float, optional
        ``t > 0``, with (and only with) ``latent="truncated-normal"``.
    steps : int, optional
        ``train.steps``: critic training steps at the first estimate (default 500).
    warm_steps : int, optional
        Critic steps of a warm-started estimate; default ``train.steps``. A cold one (the first,
        and every one of a critic that is all head placed from data, such as ``cones``) trains
        ``train.steps``.
    batch_size, lr : int, float, optional
        ``train.batch_size`` and ``train.lr``: critic training batch (of each side, default 128) and
        learning rate (default 1e-3).
    n_eval : int, optional
        ``eval.n_eval``: held-out data items; default a quarter of ``data``.
    n_eval_q : int, optional
        ``eval.n_eval_q``: held-out generated samples (fresh at every call); default ``4 * n_eval``.
    n_select : int, optional
        ``eval.n_select``: select items of each side; default ``min(256, n_eval, N // 10)`` of the
        ``N`` data items and ``min(1024, n_eval_q)`` generated samples
        (:func:`wdist.splits.default_select_size`).
    domain : (float, float), optional
        The value range of data and samples (e.g. ``(-1, 1)``) when ``data`` is a tensor: recorded,
        and used by Bernstein intervals; ``None`` for unbounded.
    confidence : float, optional
        ``eval.confidence``: interval confidence (default 0.95).
    seed : int, optional
        ``seed``: seeds the critic, its batches and the held-out draws (not the GAN's streams; default 0).
    prefix : str
        Metric name prefix.
    threads : "auto" or int, optional
        ``train.threads``: torch threads while the critic trains: ``auto`` (the default) applies the
        command line's rule (:mod:`wdist.threads`; ``OMP_NUM_THREADS`` when set, else one thread for a
        small critic); the caller's count is restored after each estimate.
    verbose : bool
        Print each estimate's thread line and progress lines, as ``wdist estimate`` does.
    config : EstimateConfig, optional
        The estimates' settings instead of :func:`monitor_config` (any optimiser, schedule,
        interval, selection or precision of ``wdist estimate``); the keywords above replace its fields.

    Attributes
    ----------
    config : EstimateConfig
        The settings every estimate derives its configuration from.
    history : list of dict
        One row per estimate: ``epoch``, ``global_step``, ``critic_steps``, ``warm_started``
        (whether its critic was warm-started from the previous estimate's, as a ``wdist track``
        point says) and the record of the test split's bound (:meth:`wdist.bound.Bound.to_dict`:
        ``estimate``, ``lower_bound``, ``ci95_lo``, ``ci95_hi``, ``lipschitz_certificate``,
        ``certified``, ``one_lipschitz``, ...).
    threads_used : list of int
        The torch thread count each estimate's critic trained with.
    """

    #: The keys of each history row logged as ``<prefix>/<key>``.
    LOGGED = ("lower_bound", "ci95_lo", "ci95_hi", "estimate", "lipschitz_certificate")

    def __init__(
        self,
        data: Union[Tensor, Source],
        every_n_epochs: int = 1,
        critic: Optional[str] = None,
        critic_options: Optional[dict[str, Any]] = None,
        generator: Union[str, Callable[[pl.LightningModule], nn.Module]] = "generator",
        latent_dim: Optional[int] = None,
        latent_shape: Optional[Sequence[int]] = None,
        latent: str = "normal",
        truncation: Optional[float] = None,
        steps: Optional[int] = None,
        warm_steps: Optional[int] = None,
        batch_size: Optional[int] = None,
        lr: Optional[float] = None,
        n_eval: Optional[int] = None,
        n_eval_q: Optional[int] = None,
        n_select: Optional[int] = None,
        domain: Optional[tuple[float, float]] = None,
        confidence: Optional[float] = None,
        seed: Optional[int] = None,
        prefix: str = "w1",
        threads: Union[str, int, None] = None,
        verbose: bool = False,
        config: Optional[EstimateConfig] = None,
    ) -> None:
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"W1Monitor: every_n_epochs must be a positive integer; got {every_n_epochs!r}")
        if isinstance(data, Tensor):
            data = TensorSource(data.detach().cpu(), domain=domain, description="W1Monitor data")
        if not isinstance(data, TensorSource) and not hasattr(data, "split"):
            raise ValueError(f"W1Monitor: data must be a tensor (N, ...) or a finite source; got {type(data).__name__}")
        if config is not None and not isinstance(config, EstimateConfig):
            raise ValueError(f"W1Monitor: config must be a wdist.config.EstimateConfig; got {type(config).__name__}")
        if (
            threads is not None
            and threads != "auto"
            and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1)
        ):
            raise ValueError(f"W1Monitor: threads must be 'auto' or a positive integer; got {threads!r}")
        self.data = data
        self.every_n_epochs = every_n_epochs
        self.generator = generator
        self.latent_dim = latent_dim
        self.latent_shape = None if latent_shape is None else tuple(latent_shape)
        # checked now (a bad distribution or truncation fails here, not at the first estimate)
        self.latent = LatentSpec(self.latent_shape or (1,), latent, truncation)
        if self.latent_shape is not None and latent_dim is not None and self.latent.dim != latent_dim:
            raise ValueError(
                f"W1Monitor: latent_dim={latent_dim} disagrees with latent_shape={list(self.latent_shape)} "
                f"({self.latent.dim} coordinates); give one of them."
            )
        base = config if config is not None else monitor_config(len(data), n_eval)
        chosen = base.critic
        if critic is not None or critic_options is not None:
            chosen = CriticConfig(critic if critic is not None else base.critic.name, dict(critic_options or {}))
        if chosen.name == AUTO:
            raise ValueError(
                f"W1Monitor: critic {AUTO!r} trains several candidates and cannot be warm-started; name one critic "
                "(e.g. 'bjorck-mlp' for vectors, 'cones' or 'bcop-dcgan' for images)."
            )
        train = _given(steps=steps, batch_size=batch_size, lr=lr, threads=threads)
        evaluation = _given(n_eval=n_eval, n_eval_q=n_eval_q, n_select=n_select, confidence=confidence)
        self.config = replace(
            base, toy=None, p=None, q=None, out=None, critic=chosen, train=replace(base.train, **train),
            eval=replace(base.eval, **evaluation), **_given(seed=seed),
        )  # fmt: skip
        self.warm_steps = int(warm_steps) if warm_steps is not None else int(self.config.train.steps)
        self.prefix, self.verbose = prefix, bool(verbose)
        self.history: list[dict[str, Any]] = []
        self.threads_used: list[int] = []
        self._critic_state: Optional[dict[str, Tensor]] = None

    # -- the hook -------------------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0 or trainer.sanity_checking:
            return
        gen = self._generator_of(pl_module)
        with _untouched_global_state(pl_module.device), _eval_mode(gen):
            result, warm = self._estimate(gen, self._latent_spec(gen, pl_module), pl_module.device, len(self.history))
        row = {
            "epoch": int(trainer.current_epoch),
            "global_step": int(trainer.global_step),
            "critic_steps": int(result.bound.step),
            "warm_started": warm,
            **result.bound.to_dict(),
        }
        self.history.append(row)
        values = {f"{self.prefix}/{key}": float(row[key]) for key in self.LOGGED}
        if trainer.loggers:  # else Lightning would warn, once per key, that there is no logger
            pl_module.log_dict(values, on_step=False, on_epoch=True, prog_bar=False, logger=True)

    # -- pieces ---------------------------------------------------------------------------------
    def _generator_of(self, pl_module: pl.LightningModule) -> nn.Module:
        if callable(self.generator):
            gen = self.generator(pl_module)
        else:
            gen = getattr(pl_module, self.generator, None)
        if not isinstance(gen, nn.Module):
            raise ValueError(
                f"W1Monitor: generator={self.generator!r} does not name an nn.Module of {type(pl_module).__name__}; "
                "give the attribute holding the generator, or a function module -> generator."
            )
        return gen

    def _latent_spec(self, gen: nn.Module, pl_module: pl.LightningModule) -> LatentSpec:
        """The latents the generator is fed: :attr:`latent_shape`, else ``(latent_dim,)``."""
        if self.latent_shape is not None:
            return self.latent
        shape = (self._latent_dim(gen, pl_module),)
        return LatentSpec(shape, self.latent.distribution, self.latent.truncation)

    def _latent_dim(self, gen: nn.Module, pl_module: pl.LightningModule) -> int:
        candidates = (self.latent_dim, getattr(gen, "latent_dim", None), getattr(pl_module.hparams, "latent_dim", None))
        for value in candidates:
            if isinstance(value, int) and value > 0:
                return value
        raise ValueError(
            "W1Monitor: cannot tell the generator's latent size; give latent_dim=... or latent_shape=..., or set a "
            "latent_dim attribute on the generator or in the module's hparams."
        )

    def _config(
        self, gen: nn.Module, latent: LatentSpec, device: torch.device, steps: int, draw: int
    ) -> EstimateConfig:
        """The configuration of one estimate: :attr:`config` with the data as P, ``gen`` as Q, ``steps``
        critic steps evaluated at the last, ``device``, and held-out draw ``draw`` of the generator."""
        q = ModuleGenerator(gen, latent, self.data.domain, name="the module's generator")
        if q.shape != tuple(self.data.shape):
            raise ValueError(
                f"W1Monitor: the generator maps latents of shape {tuple(latent.shape)} to samples of shape "
                f"{q.shape}, but the data's items have shape {tuple(self.data.shape)}; expected the "
                "generator's output to have the data's shape (give matching data, or latent_shape=...)."
            )
        accelerator = {"cuda": "gpu", "mps": "mps"}.get(device.type, "cpu")
        devices: Any = [device.index if device.index is not None else 0] if device.type == "cuda" else 1
        cfg = self.config
        return replace(
            cfg, p=self.data, q=q, train=replace(cfg.train, steps=steps, eval_every=steps),
            trainer=replace(cfg.trainer, accelerator=accelerator, devices=devices),
            eval=replace(cfg.eval, heldout_draw=draw),
        )  # fmt: skip

    def _estimate(self, gen: nn.Module, latent: LatentSpec, device: torch.device, draw: int) -> tuple[Result, bool]:
        """One certified test-split bound of a critic against ``gen``, and whether that critic was
        warm-started from the previous estimate's (:func:`wdist.warmstart.warm_init`: the whole
        critic, but a head placed from data is placed again, and a critic that is all such head
        starts cold with ``train.steps``)."""
        warm = None if self._critic_state is None else warm_init(self._critic_state)
        steps = self.warm_steps if warm is not None else int(self.config.train.steps)
        cfg = self._config(gen, latent, device, steps, draw)
        keep = KeepCritic()
        _keep_interop_threads()
        with quiet_lightning(*_INNER_WARNINGS):
            result = estimate(cfg, callbacks=[keep], init_state=warm, quiet=not self.verbose)
        self._critic_state = keep.state
        self.threads_used.append(int(result.run.threads["count"]))
        return result, warm is not None
