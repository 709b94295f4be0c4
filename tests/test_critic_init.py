"""The data-dependent placement of a critic: training items only (counted), the same draw on every
process, once (not again on resume), through every side (data set, analytic sampler, generator)."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pytorch_lightning.callbacks import Callback

import critics
from critics.architectures.cones import ConeCritic
from critics.layers.cones import SAMPLE_ITEMS
from wdist.critic_init import INIT_ITEMS, INIT_NUMBERS, finite_items, initialisation_items, initialise_critic
from wdist.data import PairDataModule
from wdist.pipeline import estimate
from wdist.sources import Gaussian, TensorFile


def _rows_in(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many rows of ``a`` are equal to some row of ``b``."""
    return int((torch.cdist(a.flatten(1).double(), b.flatten(1).double()) == 0).any(dim=1).sum())


def _files(tmp_path: Path, n: int = 300) -> tuple[str, str]:
    gen = np.random.default_rng(0)
    paths = []
    for name in ("p", "q"):
        path = tmp_path / f"{name}.npy"
        np.save(path, gen.uniform(-1, 1, size=(n, 1, 4, 4)).astype(np.float32))  # distinct rows
        paths.append(str(path))
    return paths[0], paths[1]


def test_initialisation_items_are_training_items_only(tmp_path: Path) -> None:
    p_path, q_path = _files(tmp_path)
    dm = PairDataModule(TensorFile(p_path), TensorFile(q_path), batch_size=16, n_eval=100, seed=3)
    dm.setup()
    p, q = initialisation_items(dm.p_train, dm.q_train, seed=3)
    # every training item (fewer than INIT_ITEMS), distinct: 300 less 100 test and 30 select items
    assert len(p) == len(q) == 170
    assert _rows_in(p, dm.test.p) == 0 and _rows_in(q, dm.test.q) == 0
    assert _rows_in(p, dm.select.p) == 0 and _rows_in(q, dm.select.q) == 0
    assert _rows_in(p, dm.p_train.data) == 170 and _rows_in(q, dm.q_train.data) == 170
    again = initialisation_items(dm.p_train, dm.q_train, seed=3)  # what every other process draws
    assert torch.equal(again[0], p) and torch.equal(again[1], q)
    few = initialisation_items(dm.p_train, Gaussian(dim=16), seed=3, items=50)
    assert few[0].shape == (50, 1, 4, 4) and few[1].shape == (50, 16)


def test_a_finite_side_hands_every_training_item_up_to_the_cap(tmp_path: Path) -> None:
    """A critic placed by ``kmeans-all`` or ``kmeans-both`` asks for every training item: with more training items than
    INIT_ITEMS a finite side gives all of them (distinct, none held out) while they fit INIT_NUMBERS
    numbers; an infinite side still gives INIT_ITEMS draws, and the ``kmeans`` placement a sample."""
    assert critics.build("cones", (3,), init="kmeans-all").init_all_items
    assert critics.build("cones", (3,)).init_all_items  # the default, kmeans-both
    assert not critics.build("cones", (3,), init="kmeans").init_all_items
    n = INIT_ITEMS + 904
    path = tmp_path / "big.npy"
    np.save(path, np.random.default_rng(1).uniform(-1, 1, size=(n, 3)).astype(np.float32))
    dm = PairDataModule(TensorFile(str(path)), Gaussian(dim=3), batch_size=16, n_eval=500, seed=2)
    dm.setup()
    assert len(initialisation_items(dm.p_train, dm.q_train, seed=2)[0]) == INIT_ITEMS
    p, q = initialisation_items(dm.p_train, dm.q_train, seed=2, all_items=True)
    assert len(p) == len(dm.p_train) > INIT_ITEMS and torch.unique(p, dim=0).shape[0] == len(p)
    assert _rows_in(p, dm.test.p) == 0 and _rows_in(p, dm.select.p) == 0
    assert q.shape == (INIT_ITEMS, 3)
    critic = critics.build("cones", (3,), centres=4, init="kmeans-all")
    assert critic.init_from_samples(p, q) and torch.isfinite(critic.head.heads["down"].centres).all()
    assert finite_items(10**6, 3 * 32 * 32) == INIT_NUMBERS // 3072 == 10922  # images: the cap in numbers
    assert finite_items(10**6, 10**8) == INIT_ITEMS and finite_items(100, 10**8) == 100  # at least INIT_ITEMS
    assert finite_items(200_000, 128) == 200_000
    assert SAMPLE_ITEMS == INIT_ITEMS  # kmeans-both's sample is the items the kmeans placement is handed


def test_estimate_places_the_critic_from_training_items_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through ``wdist estimate``: the critic is handed training items of both sides before its first
    step (none of them held out: counted), and a resumed run does not place it again."""
    seen: list[tuple[torch.Tensor, torch.Tensor, int]] = []
    place = ConeCritic.init_from_samples

    def spy(self: ConeCritic, p: torch.Tensor, q: torch.Tensor) -> bool:
        placed = place(self, p, q)
        seen.append((p.clone(), q.clone(), int(placed)))
        return placed

    monkeypatch.setattr(ConeCritic, "init_from_samples", spy)

    class Keep(Callback):
        def on_fit_start(self, trainer, pl_module) -> None:
            self.dm = trainer.datamodule

    p_path, q_path = _files(tmp_path)
    config = {
        "p": {"class_path": "TensorFile", "init_args": {"path": p_path}},
        "q": {"class_path": "TensorFile", "init_args": {"path": q_path}},
        "critic": {"name": "cones", "options": {"centres": 8}},
        # no learning-rate schedule: the run is resumed for more steps below
        "train": {"steps": 4, "batch_size": 16, "eval_every": 2, "checkpoint_every": 2, "schedule": "none"},
        "trainer": {"enable_progress_bar": False},
        "eval": {"n_eval": 100, "batch_size": 100, "ot_samples": 0, "ot_floor": False},
    }
    keep = Keep()
    estimate(config, out=tmp_path / "run", callbacks=[keep], quiet=True)
    assert len(seen) == 1 and seen[0][2] == 1
    p, q, _ = seen[0]
    assert _rows_in(p, keep.dm.test.p) == 0 and _rows_in(q, keep.dm.test.q) == 0
    assert _rows_in(p, keep.dm.select.p) == 0 and _rows_in(q, keep.dm.select.q) == 0
    assert _rows_in(p, keep.dm.p_train.data) == len(p) == 170
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    saved = checkpoint["critic.head.heads.up.centres"]
    placed = {}

    class Placed(Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            placed["up"] = pl_module.critic.head.heads["up"].centres.detach().clone()
            placed["step"] = int(trainer.global_step)

    estimate(config, ["--train.steps", "6"], resume=tmp_path / "run", callbacks=[Placed()], quiet=True)
    # asked again when the resumed fit starts, it declines: the restored head says it was placed
    assert len(seen) == 2 and seen[1][2] == 0
    assert placed["step"] == 4 and torch.equal(placed["up"], saved)


def test_a_generator_side_is_decoded_for_the_placement() -> None:
    """The offline default's Q is a generator: its latents are decoded on the training device."""
    captured = {}

    class Grab(Callback):
        def on_train_start(self, trainer, pl_module) -> None:  # placed, before the first step
            captured["head"] = copy.deepcopy(pl_module.critic.head)

    estimate(
        None,
        ["--critic.name", "cones", "--critic.options", '{"centres": 8}', "--train.steps", "1", "--eval.n_eval", "50",
         "--eval.n_eval_q", "50", "--eval.ot_samples", "0", "--trainer.enable_progress_bar", "false"],
        callbacks=[Grab()], quiet=True,
    )  # fmt: skip
    head = captured["head"]
    assert bool(head.initialised)
    up = head.heads["up"].centres.detach()
    assert up.shape == (8, 64) and float(up.abs().max()) <= 1.0  # means of generated digits in [-1, 1]


def test_nothing_is_placed_after_the_first_step_or_without_the_method() -> None:
    calls = []
    critic = SimpleNamespace(init_from_samples=lambda p, q: calls.append(1) or True)
    system = SimpleNamespace(critic=critic, global_step=5, seed=0)
    assert initialise_critic(system, SimpleNamespace(p_train=None, q_train=None)) is None and not calls
    plain = SimpleNamespace(critic=torch.nn.Linear(2, 1), global_step=0, seed=0)
    assert initialise_critic(plain, None) is None
