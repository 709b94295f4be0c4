"""W1Monitor on a tiny GAN: one certified bound per interval, and the GAN left exactly as it was.

The GAN draws from every global stream the monitor could disturb (torch's latents and dropout,
the DataLoader's shuffling, NumPy and Python noise), so a monitor that touched any of them, or
the generator's weights, modes or gradients, would change the trained weights.
"""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import wdist.monitor
from wdist import W1Monitor

EPOCHS = 3


def _digits() -> torch.Tensor:
    from sklearn.datasets import load_digits

    return torch.from_numpy(load_digits().data.astype(np.float32) / 8.0 - 1.0).view(-1, 1, 8, 8)


class TinyGAN(pl.LightningModule):
    """A WGAN with weight clipping on 8 x 8 digits; dropout in the generator (a mode that matters)."""

    def __init__(self, latent_dim: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = nn.Sequential(
            nn.Linear(latent_dim, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 64), nn.Tanh(),
            nn.Unflatten(1, (1, 8, 8)),
        )  # fmt: skip
        self.discriminator = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))

    def training_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> None:
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        jitter = float(np.random.rand()) * 1e-3 + random.random() * 1e-3  # NumPy and Python streams in use
        z = torch.randn(real.shape[0], self.hparams.latent_dim)
        loss_d = self.discriminator(self.generator(z).detach()).mean() - self.discriminator(real).mean()
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        for p in self.discriminator.parameters():
            p.data.clamp_(-0.1, 0.1)
        z = torch.randn(real.shape[0], self.hparams.latent_dim)
        loss_g = -self.discriminator(self.generator(z)).mean() * (1 + jitter)
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        opt_g = torch.optim.Adam(self.generator.parameters(), 1e-3)
        return [opt_g, torch.optim.Adam(self.discriminator.parameters(), 1e-3)]


class ModeProbe(pl.Callback):
    """Records the generator's mode and whether any of its parameters lost requires_grad, right after the monitor."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, bool]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        gen = pl_module.generator
        self.seen.append((all(m.training for m in gen.modules()), all(p.requires_grad for p in gen.parameters())))


def _train(tmp: Path, monitor: W1Monitor | None) -> tuple[dict[str, torch.Tensor], ModeProbe]:
    data = _digits()
    pl.seed_everything(7, verbose=False)
    gan = TinyGAN()
    loader = DataLoader(TensorDataset(data[:1200]), batch_size=100, shuffle=True)
    probe = ModeProbe()
    trainer = pl.Trainer(
        max_epochs=EPOCHS, accelerator="cpu", logger=pl.loggers.CSVLogger(str(tmp), name="", version=""),
        callbacks=[c for c in (monitor, probe) if c is not None], enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(gan, loader)
    return {k: v.detach().clone() for k, v in gan.state_dict().items()}, probe


class CriticRecorder(pl.Callback):
    """Inside each estimate of the monitor: the critic when training starts (after any warm start) and
    once the test split is evaluated (the reported state), and the torch threads it trains with."""

    def __init__(self) -> None:
        self.critics: list[tuple[dict, dict]] = []
        self.threads: list[int] = []
        self._start: dict[str, torch.Tensor] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = {k: v.detach().clone() for k, v in pl_module.critic.state_dict().items()}
        self.threads.append(torch.get_num_threads())

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.critics.append((self._start, {k: v.detach().clone() for k, v in pl_module.critic.state_dict().items()}))


def _record_estimates(mp: pytest.MonkeyPatch, recorder: CriticRecorder) -> None:
    """Every estimate the monitor runs (through wdist.estimate) gets ``recorder`` among its callbacks."""
    real_estimate = wdist.monitor.estimate

    def recording_estimate(cfg: Any, **kwargs: Any) -> Any:
        return real_estimate(cfg, **{**kwargs, "callbacks": [*kwargs.get("callbacks", ()), recorder]})

    mp.setattr(wdist.monitor, "estimate", recording_estimate)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    data = _digits()
    monitor = W1Monitor(
        data=data[1200:], every_n_epochs=1, critic="bjorck-mlp", critic_options={"width": 32}, steps=40, warm_steps=20,
        batch_size=64, n_eval=200, n_eval_q=400, domain=(-1.0, 1.0),
    )  # fmt: skip
    with_dir, without_dir = tmp_path_factory.mktemp("with"), tmp_path_factory.mktemp("without")
    recorder = CriticRecorder()
    with pytest.MonkeyPatch.context() as mp:
        _record_estimates(mp, recorder)
        with_monitor, probe = _train(with_dir, monitor)
    without_monitor, _ = _train(without_dir, None)
    return {
        "with": with_monitor, "without": without_monitor, "monitor": monitor, "probe": probe, "dir": with_dir,
        "critics": recorder.critics,
    }  # fmt: skip


def test_gan_is_bit_identical_with_and_without_the_monitor(runs: dict) -> None:
    assert runs["with"].keys() == runs["without"].keys()
    for key in runs["with"]:
        assert torch.equal(runs["with"][key], runs["without"][key]), key


def test_generator_keeps_its_mode_and_gradients(runs: dict) -> None:
    assert runs["probe"].seen == [(True, True)] * EPOCHS


def test_one_certified_bound_per_interval_logged(runs: dict) -> None:
    history = runs["monitor"].history
    assert [h["epoch"] for h in history] == list(range(EPOCHS))
    assert all(h["certified"] and h["ci95_lo"] < h["lower_bound"] < h["ci95_hi"] for h in history)
    assert all(h["lower_bound_lo"] == h["ci95_lo"] and h["split"] == "test" for h in history)  # confidence 0.95
    assert all(h["n_eval_p"] == 200 and h["n_eval_q"] == 400 for h in history)
    with open(runs["dir"] / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("w1/lower_bound")]
    assert len(rows) == EPOCHS
    logged = [float(r["w1/lower_bound"]) for r in rows]
    assert logged == pytest.approx([h["lower_bound"] for h in history], rel=1e-6)
    for key in W1Monitor.LOGGED:  # the names of result.json, ci95 written flat
        assert all(r.get(f"w1/{key}") for r in rows), key
    assert [float(r["w1/ci95_lo"]) for r in rows] == pytest.approx([h["ci95_lo"] for h in history], rel=1e-6)


def test_warm_start_carries_the_critic(runs: dict) -> None:
    """Each estimate after the first starts from the critic the previous one trained."""
    seen = runs["critics"]
    assert len(seen) == EPOCHS
    for (_, previous_end), (start, _) in zip(seen, seen[1:]):
        assert all(torch.equal(start[k], previous_end[k]) for k in previous_end)
    first_start, first_end = seen[0]
    assert not all(torch.equal(first_start[k], first_end[k]) for k in first_end)  # it trained


def test_a_critic_without_a_data_placed_head_is_warm_started_whole(runs: dict) -> None:
    """bjorck-mlp's last layer is a plain linear layer: every estimate after the first loads it all."""
    assert [h["warm_started"] for h in runs["monitor"].history] == [False, True, True]
    assert [h["critic_steps"] for h in runs["monitor"].history] == [40, 20, 20]


@pytest.mark.parametrize(
    ("critic", "options", "warm"),
    [("cones", {"centres": 8}, False), ("bjorck-cones", {"width": 16, "depth": 1, "centres": 8}, True)],
)
def test_a_data_placed_head_is_placed_again_and_a_critic_that_is_all_head_trains_cold(
    critic: str, options: dict, warm: bool, tmp_path: Path
) -> None:
    """The cone critics' head is placed from data once per fit: the monitor's next estimate starts it
    fresh (placed again on that estimate's samples) and loads the layers below it, so ``cones``, one
    layer, trains cold with ``steps`` and its row says so, and ``bjorck-cones`` keeps its trunk."""
    data = _digits()
    monitor = W1Monitor(
        data=data[1200:], critic=critic, critic_options=options, steps=12, warm_steps=6, batch_size=64, n_eval=100,
        n_eval_q=200, domain=(-1.0, 1.0),
    )  # fmt: skip
    recorder = CriticRecorder()
    with pytest.MonkeyPatch.context() as mp:
        _record_estimates(mp, recorder)
        pl.seed_everything(7, verbose=False)
        trainer = pl.Trainer(
            max_epochs=2, limit_train_batches=2, accelerator="cpu", logger=False, callbacks=[monitor],
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        trainer.fit(TinyGAN(), DataLoader(TensorDataset(data[:1200]), batch_size=100, shuffle=True))
    assert [h["warm_started"] for h in monitor.history] == [False, warm]
    assert [h["critic_steps"] for h in monitor.history] == [12, 6 if warm else 12]
    assert all(h["certified"] for h in monitor.history)
    (first_start, first_end), (second_start, second_end) = recorder.critics
    head = [k for k in first_end if k.startswith("head.")]
    trunk = [k for k in first_end if not k.startswith("head.")]
    assert head and bool(first_end["head.initialised"]) and bool(second_end["head.initialised"])
    for key in head:  # the second fit's head starts as the first's did: fresh, placed in that fit
        assert torch.equal(second_start[key], first_start[key]), key
    assert not bool(second_start["head.initialised"])
    assert not torch.equal(second_start["head.heads.up.centres"], first_end["head.heads.up.centres"])
    assert bool(trunk) == warm
    for key in trunk:  # the trained trunk carries over
        assert torch.equal(second_start[key], first_end[key]), key
    assert not warm or any(not torch.equal(first_end[k], first_start[k]) for k in trunk)  # it trained


def test_every_n_epochs_is_checked() -> None:
    with pytest.raises(ValueError, match="every_n_epochs"):
        W1Monitor(data=torch.zeros(10, 2), every_n_epochs=0)


class _ConvGenerator(nn.Module):
    """DCGAN-style: z of shape (n, 4, 1, 1) -> (n, 1, 8, 8); records every latent batch it is fed."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.ConvTranspose2d(4, 1, 8), nn.Tanh())
        self.fed: list[torch.Tensor] = []

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.fed.append(z.detach().clone())
        return self.net(z)


class _ConvGAN(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.generator = _ConvGenerator()

    def training_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.generator(torch.rand(batch[0].shape[0], 4, 1, 1) * 2 - 1).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.generator.parameters(), 1e-3)


def test_latent_shape_and_distribution_reach_the_generator(tmp_path: Path) -> None:
    """latent_shape and latent (a LatentSpec) decide what the monitor feeds the generator."""
    data = _digits()
    monitor = W1Monitor(
        data=data[:300], critic="bjorck-mlp", critic_options={"width": 16}, steps=5, batch_size=32, n_eval=100,
        latent_shape=(4, 1, 1), latent="uniform-symmetric", domain=(-1.0, 1.0),
    )  # fmt: skip
    gan = _ConvGAN()
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=1, accelerator="cpu", logger=False, callbacks=[monitor],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(gan, DataLoader(TensorDataset(data[:32]), batch_size=32))
    fed = torch.cat([z for z in gan.generator.fed[1:]])  # [0] is the GAN's own step
    assert fed.shape[1:] == (4, 1, 1) and fed.shape[0] >= 100
    assert fed.min() >= -1.0 and fed.max() < 1.0 and fed.min() < -0.9  # U[-1, 1), not N(0, 1)
    assert len(monitor.history) == 1 and monitor.history[0]["certified"]


def test_generator_and_data_of_other_shapes_are_named() -> None:
    monitor = W1Monitor(
        data=_digits()[:300].flatten(1), critic="bjorck-mlp", critic_options={"width": 16}, steps=5, batch_size=32,
        n_eval=100, latent_shape=(4, 1, 1), domain=(-1.0, 1.0),
    )  # fmt: skip
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=1, accelerator="cpu", logger=False, callbacks=[monitor],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"samples of shape \(1, 8, 8\), but the data's items have shape \(64,\)"):
        trainer.fit(_ConvGAN(), DataLoader(TensorDataset(_digits()[:32]), batch_size=32))


def test_latent_options_are_checked() -> None:
    with pytest.raises(ValueError, match="truncation"):
        W1Monitor(data=torch.zeros(10, 2), latent="truncated-normal")
    with pytest.raises(ValueError, match="latent_dim=5 disagrees with latent_shape"):
        W1Monitor(data=torch.zeros(10, 2), latent_dim=5, latent_shape=(4, 1, 1))


# -- the docs' Lightning GAN with the monitor: the command line's threads, no Trainer chatter -------------

README = Path(__file__).resolve().parents[1] / "docs" / "tracking.md"
#: (docs text, what runs instead): smaller settings, each asserted present in the docs' block.
SNIPPET_ADAPTATIONS = [
    ("every_n_epochs=5, steps=300", "every_n_epochs=1, steps=20, batch_size=64"),
    ("max_epochs=20", "max_epochs=2, limit_train_batches=3"),
]
#: Lines an inner Trainer writes when Lightning's INFO logging is on.
CHATTER = ("GPU available", "`Trainer.fit` stopped", "Tip:")


def _readme_monitor_snippet() -> str:
    import re

    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)]
    (code,) = [b for b in blocks if "W1Monitor(" in b]
    assert "import pytorch_lightning as pl" in code  # the package the README names
    for text, small in SNIPPET_ADAPTATIONS:
        assert text in code, f"README's W1Monitor block changed: {text!r} not found; update this test"
        code = code.replace(text, small)
    return code


@pytest.fixture
def lightning_log() -> Any:
    """Every line Lightning logs, as its own handler would print it, with its INFO lines on as in a
    fresh process (an estimate earlier in this process turns them off)."""
    import logging

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Keep(level=logging.DEBUG)
    names = ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch")
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for lg, _ in saved:
        lg.setLevel(logging.INFO)
        lg.addHandler(handler)
    yield lines
    for lg, level in saved:
        lg.setLevel(level)
        lg.removeHandler(handler)


def test_readme_gan_monitor_uses_the_cli_threads_and_adds_no_chatter(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture, lightning_log: list[str]
) -> None:
    """The README's GAN, trained with 2 torch threads on a 2-core machine: each estimate's critic
    trains with the thread count the command line chooses for it (1: a small critic), the GAN gets
    its 2 back, and the log holds the outer Trainer's lines only."""
    from wdist.config import load_config
    from wdist.cores import Cores
    from wdist.critic_build import build_critic
    from wdist.threads import run_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("wdist.threads.available_cores", lambda: Cores(2, 2, None))
    recorder = CriticRecorder()
    seen = recorder.threads  # what each critic trains with
    _record_estimates(monkeypatch, recorder)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        namespace: dict[str, Any] = {}
        exec(compile(_readme_monitor_snippet(), "docs/tracking.md (W1Monitor)", "exec"), namespace)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    monitor = namespace["monitor"]
    out, err = capfd.readouterr()
    # the command line's choice for this critic and data, by its own rule
    cfg = load_config({"p": {"class_path": "Digits"}, "q": {"class_path": "Digits"}})
    cli_threads = run_threads(cfg, (1, 8, 8), build_critic(cfg, (1, 8, 8))).count
    assert cli_threads == 1 and seen == [cli_threads] * 2 and monitor.threads_used == seen
    assert after == 2  # the GAN's own count, restored
    log = "\n".join([*lightning_log, out, err])
    for line in CHATTER:  # the outer Trainer's own lines stay: each at most once
        assert log.count(line) <= 1, f"{line!r} {log.count(line)} times:\n{log[-3000:]}"
    assert "GPU available" in log  # Lightning's INFO lines are on (the outer Trainer's are there)
    assert "W1Monitor" not in err and "warn" not in err.lower()
    # the same keys as a result
    from wdist.report import KEYS

    assert len(monitor.history) == 2
    for row in monitor.history:
        assert set(KEYS) - {"ci95"} | {"ci95_lo", "ci95_hi"} <= set(row) and row["certified"]
        assert row["critic_steps"] in (20, 10)
        assert row["ci95_lo"] < row["lower_bound"] < row["ci95_hi"]
    printed = [line for line in out.splitlines() if line.startswith(("0 ", "1 "))]
    assert len(printed) == 2 and all(line.endswith(" True") for line in printed)


# -- the settings: an EstimateConfig, or keywords that replace the monitor's defaults ---------------------


def _one_epoch(monitor: W1Monitor) -> None:
    """One GAN step, then the monitor's estimate (the _ConvGAN's generator, latents (4, 1, 1))."""
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=1, accelerator="cpu", logger=False, callbacks=[monitor],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    torch.manual_seed(0)
    trainer.fit(_ConvGAN(), DataLoader(TensorDataset(_digits()[:32]), batch_size=32))


def test_keywords_are_a_replace_of_the_defaults_or_of_a_given_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same settings given as keywords or as an EstimateConfig give the same bound, bit for bit,
    and keywords replace the fields of a given config; Lightning's seed variables are left as found."""
    from dataclasses import replace

    from wdist.config import CriticConfig, EstimateConfig

    monkeypatch.setenv("PL_GLOBAL_SEED", "123")
    monkeypatch.delenv("PL_SEED_WORKERS", raising=False)
    data = _digits()[:300]
    small = dict(critic="bjorck-mlp", critic_options={"width": 16}, steps=5, batch_size=32, n_eval=100)
    by_keywords = W1Monitor(data=data, latent_shape=(4, 1, 1), domain=(-1.0, 1.0), seed=3, **small)
    defaults = wdist.monitor.monitor_config(len(data), n_eval=100)
    config = replace(
        defaults, critic=CriticConfig("bjorck-mlp", {"width": 16}), seed=3,
        train=replace(defaults.train, steps=5, batch_size=32),
    )  # fmt: skip
    by_config = W1Monitor(data=data, latent_shape=(4, 1, 1), domain=(-1.0, 1.0), config=config)
    assert by_config.config == by_keywords.config and by_keywords.config.eval.n_eval_q == 400
    for monitor in (by_keywords, by_config):
        _one_epoch(monitor)
    assert by_keywords.history == by_config.history and by_keywords.history[0]["certified"]
    assert by_keywords.history[0]["critic_steps"] == 5
    assert os.environ["PL_GLOBAL_SEED"] == "123" and "PL_SEED_WORKERS" not in os.environ

    given = EstimateConfig(critic=CriticConfig("bjorck-mlp", {"width": 8}), seed=5)
    over = W1Monitor(data=data, config=given, critic_options={"width": 16}, steps=7, n_eval=50, seed=None)
    assert over.config.critic == CriticConfig("bjorck-mlp", {"width": 16}) and over.config.seed == 5
    assert (over.config.train.steps, over.warm_steps, over.config.eval.n_eval) == (7, 7, 50)
    assert over.config.eval.n_eval_q is None and over.config.out is None  # the config's own, nothing written
    with pytest.raises(ValueError, match="critic 'auto'"):
        W1Monitor(data=data, critic="auto")
    with pytest.raises(ValueError, match="config must be a wdist.config.EstimateConfig; got dict"):
        W1Monitor(data=data, config={"seed": 1})  # type: ignore[arg-type]


def test_the_generator_source_holds_the_module_without_owning_it() -> None:
    """ModuleGenerator: samples of the live module, its shape found by decoding, and the module out of
    reach of whatever holds the source's decoder (no parameters, no state dict entries, no mode change)."""
    from generators.latents import LatentSpec
    from wdist.sources import ModuleGenerator

    gen = _ConvGenerator()
    source = ModuleGenerator(gen, LatentSpec((4, 1, 1), "uniform"), domain=(-1, 1), name="G")
    assert source.shape == (1, 8, 8) and source.domain == (-1.0, 1.0) and source.latent_dim == 4
    holder = nn.Module()
    holder.decoder = source.module
    assert list(holder.parameters()) == [] and holder.state_dict() == {}
    gen.train()
    holder.eval()
    assert gen.training
    x = source.sample(5, torch.Generator().manual_seed(1))
    z = LatentSpec((4, 1, 1), "uniform").sample(5, torch.Generator().manual_seed(1))
    assert torch.equal(x, gen(z).detach()) and not x.requires_grad
    assert source.describe() == "G (_ConvGenerator, " + LatentSpec((4, 1, 1), "uniform").describe() + ")"
