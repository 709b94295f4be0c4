"""``critic.name: auto``: the candidates are trained on the same splits, the one with the best
select-split bound is chosen, the test split is read once and for it alone, result.json says so,
and a resumed run neither retrains finished candidates nor changes the choice or the bound."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from run_helpers import negate_and_freeze

import critics
import wdist.candidates
from wdist.auto import IMAGE_CANDIDATES, VECTOR_CANDIDATES, Candidate, CandidateRecord, candidates_for, choose
from wdist.config import ConfigError, load_config
from wdist.errors import RunInterrupted
from wdist.files import set_aside_previous_result
from wdist.pipeline import build_critic, estimate

TOY = Path(__file__).resolve().parent.parent / "configs" / "toy" / "translation-2d.yaml"
FAST = [
    "--critic.name", "auto", "--critic.options", "{}", "--train.batch_size", "64", "--eval.n_eval", "512",
    "--eval.batch_size", "512", "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0",
    "--trainer.accelerator", "cpu", "--train.threads", "1",
]  # fmt: skip

#: Three small candidates; ``loser`` is sabotaged by :class:`_Sabotage` (its critic is the only one of width 8).
SMALL = (
    Candidate("loser", "bjorck-mlp", {"width": 8, "depth": 1}, 0.25),
    Candidate("winner", "bjorck-mlp", {"width": 16, "depth": 1}, 0.5),
    Candidate("other", "bjorck-mlp", {"width": 12, "depth": 1}, 0.25),
)


def _width(system: pl.LightningModule) -> int:
    return next(m for m in system.critic.modules() if isinstance(m, torch.nn.Linear)).out_features


class _Sabotage(pl.Callback):
    """After the first step of the width-8 critic: its output negated and its learning rate set to 0,
    so every select value of that candidate is minus a bound (far below the others)."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if _width(pl_module) == 8 and trainer.global_step == 1:
            negate_and_freeze(trainer, pl_module)


class _Watch(pl.Callback):
    """Every candidate's system and data module, the training steps run, and who read the test split."""

    def __init__(self) -> None:
        self.fitted: list[tuple[pl.LightningModule, object]] = []
        self.tested: list[pl.LightningModule] = []
        self.batches: dict[int, int] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.fitted.append((pl_module, trainer.datamodule))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        self.batches[_width(pl_module)] = self.batches.get(_width(pl_module), 0) + 1

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        reads = [dm.test_items.reads + dm.test_items.bulk_reads for _, dm in self.fitted]
        assert reads == [0] * len(reads)  # nothing read the test split before the choice
        self.tested.append(pl_module)


@pytest.fixture()
def small_candidates(monkeypatch: pytest.MonkeyPatch) -> tuple[Candidate, ...]:
    monkeypatch.setattr(wdist.candidates, "candidates_for", lambda shape: SMALL)
    return SMALL


def test_auto_chooses_the_best_select_value_and_reads_the_test_split_once_for_it(
    small_candidates: tuple[Candidate, ...], tmp_path: Path
) -> None:
    watch = _Watch()
    args = ["--train.steps", "40", "--train.eval_every", "10", *FAST]
    result = estimate(str(TOY), args, out=tmp_path / "run", callbacks=[_Sabotage(), watch], quiet=True)
    auto = result.auto
    assert auto is not None and auto["split"] == "select" and auto["compared"] == 3
    values = {c["label"]: c["select_value"] for c in auto["candidates"]}
    assert values["loser"] < 0 < min(values["winner"], values["other"])  # the sabotage worked
    assert auto["chosen"]["label"] == max(values, key=values.get)
    assert auto["chosen"] == {
        "label": auto["chosen"]["label"],
        "critic": "bjorck-mlp",
        "options": auto["chosen"]["options"],
    }
    steps = {c["label"]: (c["budget"], c["steps"]) for c in auto["candidates"]}
    assert steps == {"loser": (10, 10), "winner": (20, 20), "other": (10, 10)}  # the shares of 40 steps
    assert auto["steps_spent"] == 40
    # the test split: read once, for the chosen candidate only, after every candidate was trained
    assert len(watch.fitted) == 3 and len(watch.tested) == 1
    chosen_system = watch.tested[0]
    assert chosen_system.selection.value == values[auto["chosen"]["label"]]
    for system, dm in watch.fitted:
        items = dm.test_items
        if system is chosen_system:
            assert items.reads == len(items) and items.bulk_reads == 0
        else:
            assert items.reads == 0 and items.bulk_reads == 0
    # the reported bound is the chosen critic's test bound at its selected step
    assert result.run.critic == "bjorck-mlp" and result.bound.split == "test"
    assert (
        result.bound.step
        == result.selection["step"]
        == auto["candidates"][1 if values["winner"] > values["other"] else 2]["select_step"]
    )
    assert result.lower_bound == pytest.approx(result.estimate / result.lipschitz_certificate)
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["auto"] == json.loads(json.dumps(auto)) and saved["run"]["config"]["critic"]["name"] == "auto"
    assert "critic chosen (auto)" in result.format_table() and "the best of 3 candidates" in result.format_table()


def test_choose_takes_the_highest_value_and_the_first_of_equals() -> None:
    def rec(label: str, value: float) -> CandidateRecord:
        return CandidateRecord(label, "cones", {}, 0.5, 10, 10, value, 10, 1.0)

    assert choose([rec("a", 0.5), rec("b", 0.7), rec("c", 0.6)]) == 1
    assert choose([rec("a", 0.7), rec("b", 0.7)]) == 0
    with pytest.raises(ValueError, match="no finite select value"):
        choose([rec("a", float("nan"))])


@pytest.mark.parametrize("shape", [(64,), (1, 8, 8)], ids=["vectors", "images"])
def test_the_candidate_lists_are_certified_kr_critics_sharing_the_whole_budget(shape: tuple[int, ...]) -> None:
    cands = candidates_for(shape)
    assert cands == (VECTOR_CANDIDATES if len(shape) == 1 else IMAGE_CANDIDATES)
    assert sum(c.share for c in cands) == pytest.approx(1.0) and len({c.label for c in cands}) == len(cands)
    assert sum(c.steps(2000) for c in cands) == 2000
    for c in cands:
        assert critics.default_loss(c.name) == "kr" and not c.name.startswith("gp")  # a bound, not a GP value
        critic = critics.build(c.name, shape, **c.options)
        assert critics.certificate_report(critic, shape) is not None


def test_auto_takes_no_options_and_only_estimate_trains_it() -> None:
    with pytest.raises(ConfigError, match=r"critic.options must be empty.*--critic.options '\{\}'"):
        load_config(str(TOY), ["--critic.name", "auto"])  # the file's bjorck-mlp options
    cfg = load_config(str(TOY), FAST[:4])
    assert cfg.critic.name == "auto"
    with pytest.raises(ConfigError, match="only `wdist estimate`"):
        build_critic(cfg, (2,))


# -- resume ---------------------------------------------------------------------------------------------------


class _InterruptSecond(pl.Callback):
    """SIGINT once the second candidate trained has done ``step`` steps (an evaluated step)."""

    def __init__(self, step: int) -> None:
        self.step, self.fits = step, 0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.fits += 1

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if self.fits == 2 and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_a_resumed_auto_run_trains_no_finished_candidate_and_reports_the_same(
    small_candidates: tuple[Candidate, ...], tmp_path: Path
) -> None:
    args = ["--train.steps", "40", "--train.eval_every", "10", "--train.checkpoint_every", "10", *FAST]
    whole = estimate(str(TOY), args, out=tmp_path / "whole", quiet=True)
    out = tmp_path / "cut"
    with pytest.raises(RunInterrupted):
        estimate(str(TOY), args, out=out, quiet=True, callbacks=[_InterruptSecond(10)])
    assert (out / "candidates" / "loser" / "candidate.json").is_file()
    assert not (out / "candidates" / "winner" / "candidate.json").exists() and not (out / "result.json").exists()
    watch = _Watch()
    resumed = estimate(resume=out, quiet=True, callbacks=[watch])
    # the finished candidate trained nothing; the interrupted one its remaining 10 steps; the last one all of its own
    assert watch.batches == {16: 10, 12: 10}
    assert resumed.auto == whole.auto | {"candidates": resumed.auto["candidates"]}
    for a, b in zip(resumed.auto["candidates"], whole.auto["candidates"]):
        assert (a["label"], a["steps"], a["select_step"]) == (b["label"], b["steps"], b["select_step"])
        assert a["select_value"] == pytest.approx(b["select_value"], rel=1e-6)
    assert resumed.lower_bound == pytest.approx(whole.lower_bound, rel=1e-6) and resumed.ci95 == pytest.approx(
        whole.ci95
    )
    assert resumed.bound.step == whole.bound.step
    # resumed again once finished: nothing is trained, the chosen state comes from its checkpoint
    watch = _Watch()
    again = estimate(resume=out, quiet=True, callbacks=[watch])
    assert watch.batches == {} and again.lower_bound == resumed.lower_bound and again.auto == resumed.auto


def test_a_new_run_sets_an_earlier_auto_runs_candidates_aside(tmp_path: Path) -> None:
    """A finished candidate's record left in the folder must not be taken for the new run's."""
    record = tmp_path / "candidates" / "cones" / "candidate.json"
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    (tmp_path / "config.yaml").write_text("critic: {name: auto}\n")
    moved = set_aside_previous_result(tmp_path)
    assert moved is not None and (moved / "candidates" / "cones" / "candidate.json").is_file()
    assert not (tmp_path / "candidates").exists()
