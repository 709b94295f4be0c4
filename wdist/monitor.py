"""A Lightning callback that follows a certified W1 bound while a user's GAN trains.

:class:`W1Monitor` is added to the ``pl.Trainer`` of the user's own LightningModule GAN. Every
``every_n_epochs`` training epochs it estimates a held-out, certified lower bound on
:math:`W_1(P, G)` between held-out data ``P`` and the module's generator ``G`` as it is then,
through the one estimation path of wdist (:func:`wdist.pipeline.build_run`, an inner Lightning
Trainer made by :func:`wdist.pipeline.make_trainer`, the held-out :class:`~wdist.evaluation.Evaluation`),
and logs it to the outer trainer's loggers.

It leaves the GAN as it found it:

* the generator runs in eval mode, under ``torch.no_grad``, and every submodule gets its
  previous mode back; its parameters are never handed to an optimiser, and no gradient reaches them;
* the generator is not registered in the inner training system, so the inner Trainer neither
  moves it nor switches its mode;
* every random stream the GAN draws from (torch CPU and the current CUDA device, NumPy's and
  Python's global generators) is saved before and restored after, so the GAN's training is
  bit-identical with and without the monitor;
* the critic trains with the thread count the command line would choose for it
  (:mod:`wdist.threads`: one thread for a small critic), and the caller's count is restored after;
* the inner Trainer adds nothing to the user's log (its device lines, tips and "`Trainer.fit`
  stopped" lines are silenced) unless ``verbose=True``; warnings stay visible.
"""

from __future__ import annotations

import contextlib
import logging
import random
import warnings
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import Tensor, nn

from generators.latents import LatentSpec
from wdist.bound import Bound
from wdist.config import CriticConfig, EstimateConfig, EvalConfig, TrainConfig, TrainerConfig, load_config
from wdist.evaluation import Evaluation
from wdist.pipeline import build_run, fit_and_evaluate, make_trainer
from wdist.sources import LatentSource, Source, TensorSource
from wdist.warmstart import InitState

__all__ = ["W1Monitor"]


class _Unregistered(nn.Module):
    """Calls a generator without registering it as a submodule (so ``.to()``, ``.train()`` and
    ``.parameters()`` of the module holding this one never reach it), under ``no_grad``."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self._held = (generator,)  # a tuple attribute: not a submodule

    @torch.no_grad()
    def forward(self, z: Tensor) -> Tensor:
        return self._held[0](z).to(torch.float32)


class _ModuleGenerator(LatentSource):
    """The user's generator as a source: latents drawn as ``latent`` says, decoded by it."""

    def __init__(self, generator: nn.Module, latent: LatentSpec, shape: tuple[int, ...], domain: Any) -> None:
        self.latent = latent
        self.latent_dim = latent.dim
        self.shape = tuple(int(s) for s in shape)
        self.domain = domain
        self._module = _Unregistered(generator)

    @property
    def module(self) -> nn.Module:
        return self._module

    def sample_latent(self, n: int, generator: torch.Generator) -> Tensor:
        return self.latent.sample(n, generator)

    def describe(self) -> str:
        return f"the module's generator ({type(self._module._held[0]).__name__}, {self.latent.describe()})"


@contextlib.contextmanager
def _untouched_global_state(device: torch.device) -> Iterator[None]:
    """Inside: anything; on the way out torch's (CPU and ``device``) RNG, NumPy's and Python's
    global RNG states and torch's thread count are back as they were."""
    py_state, np_state, threads = random.getstate(), np.random.get_state(), torch.get_num_threads()
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_num_threads(threads)


def _keep_interop_threads() -> None:
    """Fix torch's inter-op thread count at the caller's value, so that the run's thread rule (which
    sets it to 1 where it still can: it can be set once per process, never restored) leaves it."""
    try:
        torch.set_num_interop_threads(torch.get_num_interop_threads())
    except RuntimeError:  # already fixed (set, or the pool already used): nothing can change it
        pass


#: Lightning's loggers, whose INFO lines (devices found, tips, why fit stopped) an inner Trainer writes.
_LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch")
#: Warnings of the inner Trainer that are about its set-up, not about the user's GAN.
_INNER_WARNINGS = (
    ".*does not have many workers.*",
    ".*`IterableDataset` has `__len__` defined.*",
    ".*GPU available but not used.*",
)


@contextlib.contextmanager
def _silent_lightning(verbose: bool) -> Iterator[None]:
    """Inside: Lightning's INFO lines silenced (unless ``verbose``) and the inner Trainer's set-up
    warnings ignored; on the way out the loggers' levels are back as they were."""
    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for pattern in _INNER_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        try:
            if not verbose:
                for lg in loggers:
                    lg.setLevel(max(logging.WARNING, lg.getEffectiveLevel()))
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


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


class W1Monitor(Callback):
    r"""Certified held-out lower bounds on :math:`W_1(P, G)` while a LightningModule GAN trains.

    At the end of every ``every_n_epochs``-th training epoch a 1-Lipschitz critic ``f`` is trained
    to maximise :math:`\mathbb E_P f - \mathbb E_G f` on training items of ``data`` and samples of
    the module's generator, evaluated at its last step on the select split (held-out items and
    fresh generated samples; the one candidate of :mod:`wdist.selection`), then once on the test
    split (other held-out items, other fresh samples); its Lipschitz constant is certified from
    its weights (:math:`L \ge \mathrm{Lip}(f)`), and

    .. math:: W_1(P, G) \ge (\hat{\mathbb E}_P f - \hat{\mathbb E}_G f) / L

    up to sampling error (the interval). W1 is the Euclidean distance on flattened samples, in the
    data's units. The critic of each call starts from the previous call's (warm start).

    Logged to the trainer's loggers at the epoch's last step as ``<prefix>/<key>`` for the keys
    :data:`LOGGED` (keys of the bound record in result.json: ``lower_bound``, ``ci95_lo``, ``ci95_hi``,
    ``estimate``, ``lipschitz_certificate``), and kept in :attr:`history`.

    Parameters
    ----------
    data : Tensor ``(N, *shape)`` or a finite Source
        Real samples in the generator's output space. ``n_eval`` of them are held out for the
        estimate (the test split) and ``n_select`` more for the select split (the same ones at
        every call, so no critic trains on them); the rest train the critic. Pass data the GAN is
        not trained on where you can.
    every_n_epochs : int
        Epochs between estimates.
    critic : str, optional
        A registered critic (``critics.available()``), e.g. ``bjorck-mlp`` or ``bcop-dcgan``;
        default: the one ``wdist estimate`` uses for the data's shape (``cones`` for images,
        ``bjorck-mlp`` for vectors; :func:`wdist.config.default_critic`).
    critic_options : dict, optional
        Options of that critic (of the default one when ``critic`` is not given).
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
    steps : int
        Critic training steps at the first estimate.
    warm_steps : int, optional
        Critic steps at later estimates (warm-started); default ``steps``.
    batch_size, lr : int, float
        Critic training batch (of each side) and Adam learning rate.
    n_eval : int, optional
        Held-out data items; default a quarter of ``data``.
    n_eval_q : int, optional
        Held-out generated samples (fresh at every call); default ``4 * n_eval``.
    n_select : int, optional
        Select items of each side; default ``min(256, n_eval, N // 10)`` of the ``N`` data items
        and ``min(1024, n_eval_q)`` generated samples (:func:`wdist.splits.default_select_size`).
    domain : (float, float), optional
        The value range of data and samples (e.g. ``(-1, 1)``): recorded, and used by Bernstein
        intervals; ``None`` for unbounded.
    confidence : float
        Interval confidence.
    seed : int
        Seeds the critic, its batches and the held-out draws (not the GAN's streams).
    prefix : str
        Metric name prefix.
    threads : "auto" or int
        Torch threads while the critic trains: ``auto`` applies the command line's rule
        (:mod:`wdist.threads`; ``OMP_NUM_THREADS`` when set, else one thread for a small critic);
        the caller's count is restored after each estimate.
    verbose : bool
        Let the inner Trainer's INFO lines (devices, tips, why fit stopped) through.

    Attributes
    ----------
    history : list of dict
        One row per estimate: ``epoch``, ``global_step``, ``critic_steps`` and the record of the
        test split's bound (:meth:`wdist.bound.Bound.to_dict`: ``estimate``, ``lower_bound``,
        ``ci95_lo``, ``ci95_hi``, ``lipschitz_certificate``, ``certified``, ``one_lipschitz``, ...).
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
        steps: int = 500,
        warm_steps: Optional[int] = None,
        batch_size: int = 128,
        lr: float = 1e-3,
        n_eval: Optional[int] = None,
        n_eval_q: Optional[int] = None,
        n_select: Optional[int] = None,
        domain: Optional[tuple[float, float]] = None,
        confidence: float = 0.95,
        seed: int = 0,
        prefix: str = "w1",
        threads: Union[str, int] = "auto",
        verbose: bool = False,
    ) -> None:
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"W1Monitor: every_n_epochs must be a positive integer; got {every_n_epochs!r}")
        if isinstance(data, Tensor):
            data = TensorSource(data.detach().cpu(), domain=domain, description="W1Monitor data")
        if not isinstance(data, TensorSource) and not hasattr(data, "split"):
            raise ValueError(f"W1Monitor: data must be a tensor (N, ...) or a finite source; got {type(data).__name__}")
        self.data = data
        self.every_n_epochs = every_n_epochs
        self.critic = CriticConfig(critic, dict(critic_options or {}))
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
        self.steps, self.warm_steps = int(steps), int(warm_steps if warm_steps is not None else steps)
        self.batch_size, self.lr = int(batch_size), float(lr)
        self.n_eval = int(n_eval) if n_eval is not None else max(2, len(data) // 4)
        self.n_eval_q = int(n_eval_q) if n_eval_q is not None else 4 * self.n_eval
        self.n_select = None if n_select is None else int(n_select)
        self.domain = domain if domain is None else (float(domain[0]), float(domain[1]))
        self.confidence, self.seed, self.prefix = float(confidence), int(seed), prefix
        if threads != "auto" and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"W1Monitor: threads must be 'auto' or a positive integer; got {threads!r}")
        self.threads, self.verbose = threads, bool(verbose)
        self.history: list[dict[str, Any]] = []
        self.threads_used: list[int] = []
        self._critic_state: Optional[dict[str, Tensor]] = None

    # -- the hook -------------------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs != 0 or trainer.sanity_checking:
            return
        gen = self._generator_of(pl_module)
        with _untouched_global_state(pl_module.device), _eval_mode(gen):
            ev = self._estimate(gen, self._latent_spec(gen, pl_module), pl_module.device, draw=len(self.history))
        row = {
            "epoch": int(trainer.current_epoch),
            "global_step": int(trainer.global_step),
            "critic_steps": int(ev.step),
            **Bound.from_evaluation(ev, "test").to_dict(),
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
        accelerator = {"cuda": "gpu", "mps": "mps"}.get(device.type, "cpu")
        devices: Any = [device.index if device.index is not None else 0] if device.type == "cuda" else 1
        q = _ModuleGenerator(gen, latent, tuple(self.data.shape), self.data.domain)
        probe = q.module(latent.sample(2, torch.Generator().manual_seed(0)).to(device))
        if tuple(probe.shape[1:]) != tuple(self.data.shape):
            raise ValueError(
                f"W1Monitor: the generator maps latents of shape {tuple(latent.shape)} to samples of shape "
                f"{tuple(probe.shape[1:])}, but the data's items have shape {tuple(self.data.shape)}; expected the "
                "generator's output to have the data's shape (give matching data, or latent_shape=...)."
            )
        cfg = EstimateConfig(
            p=self.data, q=q, critic=self.critic,
            train=TrainConfig(
                steps=steps, batch_size=self.batch_size, lr=self.lr, eval_every=steps, threads=self.threads
            ),
            trainer=TrainerConfig(accelerator=accelerator, devices=devices, enable_progress_bar=False),
            eval=EvalConfig(
                n_eval=self.n_eval, n_eval_q=self.n_eval_q, n_select=self.n_select, batch_size=max(self.n_eval, 256),
                confidence=self.confidence, train_subset=False, ot_samples=0, ot_floor=False,
                empirical_lipschitz_samples=0, heldout_draw=draw,
            ),
            seed=self.seed,
        )  # fmt: skip
        return load_config(cfg)

    def _estimate(self, gen: nn.Module, latent: LatentSpec, device: torch.device, draw: int) -> Evaluation:
        """One certified test-split evaluation of a (warm-started) critic against ``gen``."""
        steps = self.steps if self._critic_state is None else self.warm_steps
        cfg = self._config(gen, latent, device, steps, draw)
        torch.default_generator.manual_seed(self.seed + draw)  # the critic's initialisation (state restored after)
        _keep_interop_threads()
        with _silent_lightning(self.verbose):
            warm = None if self._critic_state is None else InitState(self._critic_state)
            run = build_run(cfg, init_state=warm)  # sets the run's thread count (restored after the estimate)
            self.threads_used.append(torch.get_num_threads())
            trainer = make_trainer(cfg, [], [], None)
            ev = fit_and_evaluate(trainer, run, None)
        self._critic_state = {k: v.detach().cpu().clone() for k, v in run.system.critic.state_dict().items()}
        return ev
