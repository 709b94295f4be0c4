"""The three-way split, selection on the select split, early stopping, weight averaging, and
related finite sides.

* train / select / test are disjoint, fixed by the seed; an infinite side draws fresh samples for
  select and for test; index-aligned sides are split with one permutation;
* the test split is read once, after training, and never before (counted where it is read);
* the reported bound comes from the selected state: training past it (here: making the critic
  worse) or stopping early changes nothing, and a finished run resumed reports the same state;
* the averaged weights are the ones evaluated and certified;
* two equally long finite sides whose rows are paired but were split independently are flagged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from run_helpers import negate_and_freeze

import critics
from wdist.averaging import WeightAverage
from wdist.config import ConfigError, load_config
from wdist.data import PairDataModule
from wdist.pipeline import build_run, estimate, fit_and_evaluate, make_trainer
from wdist.selection import Selection
from wdist.sources import Gaussian, SourceError, TensorSource
from wdist.splits import related_rows
from wdist.stats import mean_difference_interval

TOY = Path(__file__).resolve().parent.parent / "configs" / "toy" / "translation-2d.yaml"
FAST = [
    "--train.batch_size", "64", "--eval.n_eval", "512", "--eval.batch_size", "512", "--eval.ot_samples", "0",
    "--eval.empirical_lipschitz_samples", "0", "--trainer.accelerator", "cpu", "--train.threads", "1",
]  # fmt: skip


def _rows(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r) for r in x.flatten(1).tolist()}


# -- the split ----------------------------------------------------------------------------------------


def test_three_way_split_is_disjoint_fixed_by_the_seed_and_fresh_for_infinite_sides() -> None:
    p = TensorSource(torch.arange(300.0).reshape(100, 3), description="100 distinct rows")
    q = Gaussian(dim=3)
    dm = PairDataModule(p, q, batch_size=16, n_eval=30, n_select_p=20, n_select_q=40, seed=5)
    dm.setup()
    assert dm.select is not None and dm.test is not None
    train, select, test = _rows(dm.p_train.data), _rows(dm.select.p), _rows(dm.test.p)
    assert (len(train), len(select), len(test)) == (50, 20, 30)
    assert train | select | test == _rows(p.data) and not (train & select or train & test or select & test)
    assert (len(dm.select.q), len(dm.test.q)) == (40, 30) and not _rows(dm.select.q) & _rows(dm.test.q)
    assert dm.split_record()["p"] == {"kind": "finite", "items": 100, "train": 50, "select": 20, "test": 30}
    assert dm.split_record()["q"]["kind"] == "fresh samples"
    again = PairDataModule(p, q, batch_size=16, n_eval=30, n_select_p=20, n_select_q=40, seed=5)
    again.setup()
    assert torch.equal(again.select.p, dm.select.p) and torch.equal(again.test.q, dm.test.q)
    other = PairDataModule(p, q, batch_size=16, n_eval=30, n_select_p=20, n_select_q=40, seed=6)
    other.setup()
    assert not torch.equal(other.test.p, dm.test.p)


def test_aligned_sides_are_split_with_one_permutation() -> None:
    x = torch.randn(120, 4, generator=torch.Generator().manual_seed(0))
    p, q = TensorSource(x, description="P rows"), TensorSource(x + 10.0, description="Q rows (row i = P row i + 10)")
    dm = PairDataModule(p, q, batch_size=8, n_eval=30, n_select=20, n_eval_q=25, n_select_q=10, seed=1, aligned=True)
    dm.setup()
    assert torch.equal(dm.test.q, dm.test.p[:25] + 10.0) and torch.equal(dm.select.q, dm.select.p[:10] + 10.0)
    assert torch.equal(dm.q_train.data, dm.p_train.data + 10.0)  # no held-out row's partner is trained on
    assert dm.split_record()["q"]["kind"] == "aligned with P" and dm.related is None
    with pytest.raises(SourceError, match="no larger than P's sizes"):
        PairDataModule(p, q, 8, 30, n_select=20, n_eval_q=40, seed=1, aligned=True).setup()
    with pytest.raises(SourceError, match="both must be finite data sets of the same length"):
        PairDataModule(p, Gaussian(dim=4), 8, 30, n_select=20, aligned=True).setup()
    with pytest.raises(SourceError, match="both must be finite data sets of the same length"):
        PairDataModule(p, TensorSource(x[:100]), 8, 30, n_select=20, aligned=True).setup()


def test_related_rows_are_recognised_and_unrelated_ones_are_not() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(2000, 64, generator=gen), torch.rand(2000, 64, generator=gen)
    paired = related_rows(x + 0.05 * torch.randn(2000, 64, generator=gen), x, torch.Generator().manual_seed(1))
    independent = related_rows(x, y, torch.Generator().manual_seed(1))
    assert paired is not None and paired.related and paired.nearest >= 120 and paired.ratio < 0.3
    assert independent is not None and not independent.related and independent.nearest <= 5
    assert related_rows(x, y[:1999], torch.Generator()) is None  # lengths differ: nothing to say


def _npy(path: Path, x: torch.Tensor) -> str:
    np.save(path, x.numpy())
    return str(path)


def test_paired_files_split_independently_get_one_warning_and_aligned_ones_none(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    y = torch.rand(600, 8, generator=gen) * 2 - 1
    x = (0.8 * y + 0.1 * torch.rand(600, 8, generator=gen)).clamp(-1, 1)  # row i of P made from row i of Q
    cfg = {
        "p": {"class_path": "TensorFile", "init_args": {"path": _npy(tmp_path / "p.npy", x)}},
        "q": {"class_path": "TensorFile", "init_args": {"path": _npy(tmp_path / "q.npy", y)}},
        "critic": {"name": "bjorck-mlp", "options": {"width": 16, "depth": 1}},
        "train": {"steps": 4, "eval_every": 2, "batch_size": 32},
    }
    args = ["--eval.n_eval", "100", "--eval.n_select", "100", *FAST[4:]]
    warned = estimate(cfg, args, out=tmp_path / "independent", quiet=True)
    notes = [n for n in warned.notes if "look paired row by row" in n]
    assert len(notes) == 1 and "eval.aligned true" in notes[0]
    saved = json.loads((tmp_path / "independent" / "result.json").read_text())
    assert saved["run"]["split"]["related"]["related"] and saved["notes"].count(notes[0]) == 1
    assert warned.format_table().count("look paired row by row") == 1
    aligned = estimate(cfg, [*args, "--eval.aligned", "true"], quiet=True)
    assert not [n for n in aligned.notes if "paired" in n] and aligned.run.split["related"] is None
    assert aligned.run.split["q"]["kind"] == "aligned with P"


def test_bad_selection_settings_are_named() -> None:
    with pytest.raises(ConfigError, match=r"train.ema_decay must lie strictly between 0 and 1 .* got 1.0"):
        load_config(str(TOY), ["--train.ema_decay", "1.0"])
    with pytest.raises(ConfigError, match=r"train.swa_start .* in \[0, 1\); got 1.5"):
        load_config(str(TOY), ["--train.swa_start", "1.5"])
    with pytest.raises(ConfigError, match="train.average"):
        load_config(str(TOY), ["--train.average", "mean"])
    with pytest.raises(ConfigError, match="train.patience"):
        load_config(str(TOY), ["--train.patience", "0"])


# -- the test split is read once, at the end ------------------------------------------------------------


class _Watch(Callback):
    """Records the test split's read counts at every point of training and selection."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int, int]] = []

    def _look(self, trainer: pl.Trainer, where: str) -> None:
        self.dm = trainer.datamodule
        items = self.dm.test_items
        self.seen.append((where, int(trainer.global_step), items.reads, items.bulk_reads))

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        self._look(trainer, "train")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._look(trainer, "select")

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._look(trainer, "test start")
        self.candidates_before_test = pl_module.selection.candidates


@pytest.mark.parametrize("generator_side", [False, True], ids=["toy", "generator"])
def test_the_test_split_is_read_once_at_the_end_and_never_before(generator_side: bool) -> None:
    watch = _Watch()
    if generator_side:  # the digits default (Q a generator): its test latents are decoded once, at the end
        args = ["--train.steps", "6", "--train.eval_every", "3", "--train.batch_size", "32", "--eval.n_eval", "64",
                "--eval.n_eval_q", "80", "--eval.n_select", "50", *FAST[6:]]  # fmt: skip
        result = estimate(None, args, callbacks=[watch], quiet=True)
    else:
        args = ["--train.steps", "40", "--train.eval_every", "10", *FAST]
        result = estimate(str(TOY), args, callbacks=[watch], quiet=True)
    before = [s for s in watch.seen if s[0] != "test start"]
    assert len([s for s in before if s[0] == "select"]) >= 2
    assert all(reads == 0 and bulk == 0 for _, _, reads, bulk in before)  # never read during training
    assert watch.seen[-1][0] == "test start" and watch.seen[-1][2:] == (0, 0)
    assert watch.candidates_before_test == result.selection["candidates"]  # every candidate chosen before
    items = watch.dm.test_items
    assert items.reads == len(items)  # one pass over the test split, on one process
    assert items.bulk_reads == (1 if generator_side else 0)  # the generator's latents, decoded once
    assert result.bound.split == "test" and result.bound.step == result.selection["step"]
    assert (result.bound.n_eval_p, result.bound.n_eval_q) == ((64, 80) if generator_side else (512, 512))


# -- the reported bound comes from the selected state -----------------------------------------------------


class _WorseAfter(Callback):
    """After step ``after``: the critic's output negated once and its learning rate set to 0, so
    every later candidate scores minus what the critic scored, far below the best."""

    def __init__(self, after: int) -> None:
        self.after = after

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if trainer.global_step == self.after + 1:
            negate_and_freeze(trainer, pl_module)


# no learning-rate schedule: with one laid out over train.steps, a run of 40 and one of 80 steps
# would differ before step 40, and "training past the selected step" would not be the only difference
SELECT_ARGS = ["--train.eval_every", "10", "--train.checkpoint_every", "10", "--train.schedule", "none", *FAST]


@pytest.fixture(scope="module")
def selected_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("selection")
    runs = {
        "short": estimate(str(TOY), ["--train.steps", "40", *SELECT_ARGS], out=root / "short", quiet=True),
        "longer": estimate(
            str(TOY),
            ["--train.steps", "80", *SELECT_ARGS],
            out=root / "longer",
            callbacks=[_WorseAfter(40)],
            quiet=True,
        ),  # fmt: skip
        "patient": estimate(
            str(TOY),
            ["--train.steps", "80", "--train.patience", "2", *SELECT_ARGS],
            callbacks=[_WorseAfter(40)],
            quiet=True,
        ),  # fmt: skip
    }
    runs["resumed"] = estimate(resume=root / "longer", quiet=True)  # finished: trains nothing, tests the best state
    runs["root"] = root
    return runs


def test_training_past_the_selected_step_does_not_change_the_reported_bound(selected_runs: dict) -> None:
    short, longer = selected_runs["short"], selected_runs["longer"]
    assert longer.selection["step"] == short.selection["step"] <= 40
    assert longer.selection["candidates"] == 8 and longer.selection["last_step"] == 80
    assert longer.selection["last_value"] < 0 < longer.selection["value"]  # the later candidates are worse
    assert longer.run.steps == 80 and longer.bound.step == short.bound.step
    assert longer.lower_bound == short.lower_bound and longer.ci95 == short.ci95  # the same state, the same items
    assert [c["step"] for c in longer.curve] == list(range(10, 90, 10))  # the curve is the select split's
    saved = json.loads((selected_runs["root"] / "longer" / "result.json").read_text())
    assert saved["bound"]["split"] == "test" and saved["selection"]["split"] == "select"
    assert saved["bound"]["step"] == saved["selection"]["step"] == short.selection["step"]


def test_early_stopping_ends_training_and_keeps_the_selected_state(selected_runs: dict) -> None:
    short, patient = selected_runs["short"], selected_runs["patient"]
    # stopped at the second candidate below the best (all later than the best are below it)
    assert patient.selection["stopped_early"] and patient.run.steps == short.selection["step"] + 20 < 80
    assert patient.selection["step"] == short.selection["step"] and patient.lower_bound == short.lower_bound
    assert "stopped early after 2 evaluations without improvement" in patient.format_table()


def test_a_finished_run_resumed_reports_the_checkpointed_selected_state(selected_runs: dict) -> None:
    longer, resumed = selected_runs["longer"], selected_runs["resumed"]
    # the critic in last.ckpt is the negated one: the bound can only match through the checkpointed best state
    assert resumed.selection == longer.selection
    assert resumed.lower_bound == longer.lower_bound and resumed.ci95 == longer.ci95


# -- weight averaging -------------------------------------------------------------------------------------


def test_weight_average_follows_the_ema_and_swa_formulas_and_certifies_its_own_weights() -> None:
    torch.manual_seed(0)
    critic = critics.build("bjorck-mlp", (3,), width=8, depth=1)
    ema, swa = WeightAverage(critic, "ema", decay=0.9), WeightAverage(critic, "swa")
    snapshots = []
    for _ in range(4):
        with torch.no_grad():
            for p in critic.parameters():
                p.add_(torch.randn_like(p))
        snapshots.append([p.detach().clone() for p in critic.parameters()])
        ema.update(critic)
        swa.update(critic)
    for i, (a, b) in enumerate(zip(ema.module.parameters(), swa.module.parameters())):
        expected = snapshots[0][i]
        for snap in snapshots[1:]:
            expected = 0.9 * expected + 0.1 * snap[i]
        assert torch.allclose(a, expected, atol=1e-6)
        assert torch.allclose(b, torch.stack([s[i] for s in snapshots]).mean(0), atol=1e-6)
        assert not a.requires_grad
    assert int(ema.n_averaged) == 4
    # the average is a critic of its own: certified from its weights, at least its Jacobian norm
    x = torch.randn(64, 3, requires_grad=True)
    (grad,) = torch.autograd.grad(ema.module(x).sum(), x)
    assert float(grad.norm(dim=1).max()) <= critics.certify(ema.module, (3,)) * (1 + 1e-6)


@pytest.mark.parametrize("average", ["ema", "swa"])
def test_the_averaged_weights_are_evaluated_certified_and_reported(average: str) -> None:
    cfg = load_config(
        str(TOY), ["--train.steps", "30", "--train.eval_every", "10", "--train.average", average,
                   "--train.swa_start", "0.3", "--train.ema_decay", "0.8", "--trainer.enable_progress_bar", "false",
                   *FAST]
    )  # fmt: skip
    run = build_run(cfg, cfg.sides())
    trainer = make_trainer(cfg, [], [], None)
    trained_at_end = {}

    class _Snapshot(Callback):
        def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            trained_at_end.update({k: v.clone() for k, v in pl_module.critic.state_dict().items()})

    trainer.callbacks.append(_Snapshot())
    test = fit_and_evaluate(trainer, run, None)
    system, selection = run.system, run.system.selection
    average_state = system.critic_average.module.state_dict()
    assert int(system.critic_average.n_averaged) == (30 if average == "ema" else 21)
    if selection.step == 30:  # the selected state is the average at that step, not the trained critic
        assert all(torch.equal(v, average_state[k]) for k, v in selection.state.items())
    assert any(not torch.equal(v, trained_at_end[k]) for k, v in selection.state.items())
    # the critic now holds the selected (averaged) weights; the bound was computed and certified on them
    assert all(torch.equal(v, selection.state[k]) for k, v in system.critic.state_dict().items())
    assert test.certificate == critics.certify(system.critic, (2,))
    dm = run.datamodule
    with torch.no_grad():
        fp, fq = system.critic.eval()(dm.test.p).reshape(-1), system.critic(dm.test.q).reshape(-1)
    assert mean_difference_interval(fp.double(), fq.double()).estimate == pytest.approx(
        test.interval.estimate, abs=1e-6, rel=0
    )
    assert test.step == selection.step and test.bound.estimate > 1.5  # W1 = 2


def test_selection_offers_replace_a_repeated_step_and_count_candidates() -> None:
    critic = torch.nn.Linear(2, 1)
    sel = Selection("best", patience=2)
    assert sel.offer(10, 1.0, critic) and sel.step == 10
    assert not sel.offer(20, 0.5, critic) and sel.since_best == 1
    assert not sel.offer(20, 0.5, critic) and sel.candidates == 2 and sel.since_best == 1  # the same step again
    assert sel.offer(30, 1.0 + 1e-9, critic) and sel.step == 30 and sel.since_best == 0
    assert not sel.offer(40, 1.0, critic) and not sel.offer(50, 0.2, critic) and sel.exhausted
    restored = Selection("best", patience=2)
    restored.load_state_dict(sel.state_dict())
    assert restored.record() == sel.record() and restored.state.keys() == sel.state.keys()
    last = Selection("last")
    assert all(last.offer(s, v, critic) for s, v in ((10, 2.0), (20, 1.0)))
    assert last.step == 20 and last.value == 1.0


def test_a_result_written_before_the_three_splits_says_so(tmp_path: Path) -> None:
    from wdist.results import Result

    # a flat result.json (tests/test_results_flat.py) without what the three splits added
    data = json.loads((Path(__file__).parent / "data" / "result_flat_bbabf54.json").read_text())
    for key in ("bound_split", "bound_step", "selection", "split"):
        del data[key]
    (tmp_path / "result.json").write_text(json.dumps(data))
    old = Result.load(tmp_path / "result.json")
    assert old.bound.split == "held-out" and old.selection == {} and old.bound.step == data["steps"]
    table = old.format_table()
    assert "held-out-split samples" in table and "reported state" not in table


def test_every_seed_stream_has_its_own_offset() -> None:
    """Two uses of one stream would draw the same numbers (e.g. select samples equal to the items a
    critic is placed on): every offset and salt of wdist.seeds is distinct."""
    import wdist.seeds as seeds

    offsets = {name: getattr(seeds, name) for name in dir(seeds) if name.endswith("_OFFSET")}
    salts = {name: getattr(seeds, name) for name in dir(seeds) if name.endswith("_SALT")}
    assert len(offsets) >= 7 and len(set(offsets.values())) == len(offsets), offsets
    assert len(set(salts.values())) == len(salts), salts
