"""A generator's outputs against its declared output_range: counted on every draw, never clamped unsaid.

Two mis-declared generators (a tanh network declared [0, 1]; a network without a final
tanh, reaching beyond +-2, declared [-1, 1]) go through ``wdist estimate`` as a user's ``python:``
generator and must exit with status 2 naming the observed and the declared range, before anything
is written. A generator whose values leave the range rarely (under the limit) finishes, and the
summary and result.json say how many values were clamped and how far.
"""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from user_code import user_module

from wdist.cli import main
from wdist.errors import GeneratorRangeError
from wdist.sources.ranges import OUT_OF_RANGE_LIMIT, RangeSummary, RangeTally

TINY = [
    "--train.steps", "4", "--train.eval_every", "4", "--train.batch_size", "32", "--eval.n_eval", "64",
    "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0", "--trainer.enable_progress_bar", "false",
    "--train.threads", "1",
]  # fmt: skip

GENERATORS = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Net(nn.Module):
        # z (N, 8) -> 1 x 8 x 8, values about N(0, 1.2^2) before the head
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 64)
            self.scale = 1.0  # a test may change it after the held-out set is decoded

        def raw(self, z):
            return self.fc(z).view(-1, 1, 8, 8) * self.scale


    class Tanh(Net):  # in [-1, 1]
        def forward(self, z):
            return torch.tanh(self.raw(z))


    class NoTanh(Net):  # no squashing: well beyond [-1, 1]
        def forward(self, z):
            return self.raw(z)


    class RarelyOut(Net):  # in [-1, 1] but for one value per batch, just outside
        def forward(self, z):
            x = torch.tanh(self.raw(z))
            x[0, 0, 0, 0] = 1.005
            return x
    """
)


@pytest.fixture()
def user_gan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's ``my_gans.py`` importable from the working folder, and a state dict for it."""
    with user_module(tmp_path, "my_gans", GENERATORS, monkeypatch) as my_gans:
        torch.manual_seed(0)
        net = my_gans.Net()
        with torch.no_grad():
            net.fc.weight.mul_(4.0)  # outputs of about unit size: a tanh spans most of [-1, 1]
        torch.save(net.state_dict(), tmp_path / "netG.pth")
        yield tmp_path


def _config(folder: Path, cls: str, output_range: list[float]) -> Path:
    cfg = {
        "p": {"class_path": "Digits"},
        "q": {
            "class_path": "Generator",
            "init_args": {
                "name": f"python:my_gans:{cls}", "checkpoint": "netG.pth", "latent_dim": 8, "latent": "normal",
                "output_shape": [1, 8, 8], "output_range": output_range,
            },
        },
        "critic": {"name": "bjorck-mlp", "options": {"width": 8, "depth": 1}},
        "seed": 0,
    }  # fmt: skip
    path = folder / f"{cls}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _observed(err: str) -> tuple[float, float]:
    match = re.search(r"span \[(\S+), (\S+)\]", err)
    assert match, err
    return float(match.group(1)), float(match.group(2))


@pytest.mark.parametrize(
    "cls,declared,observed",
    [("Tanh", [0, 1], lambda lo, hi: lo < -0.9 and hi > 0.9), ("NoTanh", [-1, 1], lambda lo, hi: lo < -2 and hi > 2)],
    ids=["tanh-declared-0-1", "no-tanh-declared-minus1-1"],
)
def test_a_misdeclared_generator_stops_the_run_with_exit_2(
    user_gan: Path, capsys: pytest.CaptureFixture, cls: str, declared: list[float], observed
) -> None:
    out_dir = user_gan / "run"
    code = main(["estimate", "--config", str(_config(user_gan, cls, declared)), "--out", str(out_dir), *TINY])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and out.strip().startswith("wdist:")  # the threads line only
    assert f"declares output_range [{declared[0]}, {declared[1]}]" in err
    assert observed(*_observed(err)), err
    assert "its select samples" in err and "No result was written" in err
    assert not (out_dir / "result.json").exists() and not (out_dir / "checkpoints").exists()


def test_values_rarely_outside_are_clamped_and_reported(user_gan: Path, capsys: pytest.CaptureFixture) -> None:
    out_dir = user_gan / "run"
    code = main(["estimate", "--config", str(_config(user_gan, "RarelyOut", [-1, 1])), "--out", str(out_dir), *TINY])
    out, err = capsys.readouterr()
    assert code == 0, err
    res = json.loads((out_dir / "result.json").read_text())
    check = res["run"]["generators"]["q"]["range_check"]
    rec = check["all"]
    assert 0 < rec["outside"] and rec["fraction_outside"] <= OUT_OF_RANGE_LIMIT == check["limit"]
    assert rec["observed"][1] > 1.0 or rec["observed"][0] < -1.0
    assert rec["values"] == 64 * (check["evaluated"]["samples"] + check["training"]["samples"])
    # evaluated: the select split, the train subset and the test split, 64 each
    assert check["training"]["samples"] == 4 * 32 and check["evaluated"]["samples"] == 3 * 64
    assert 0 < rec["mean_distance_clamped"] < 0.01
    row = next(line for line in out.splitlines() if line.startswith("Q output range"))
    assert f"{rec['outside']} of {rec['values']} values" in row and "clamped into the domain" in row
    notes = [n for n in res["notes"] if "outside its declared output_range" in n]
    assert len(notes) == 1 and f"minus {rec['mean_distance_clamped']:.3g}" in notes[0]


def test_a_generator_in_its_range_reports_zero(user_gan: Path, capsys: pytest.CaptureFixture) -> None:
    out_dir = user_gan / "run"
    code = main(["estimate", "--config", str(_config(user_gan, "Tanh", [-1, 1])), "--out", str(out_dir), *TINY])
    out, err = capsys.readouterr()
    assert code == 0, err
    rec = json.loads((out_dir / "result.json").read_text())["run"]["generators"]["q"]["range_check"]["all"]
    assert (
        rec["outside"] == 0
        and rec["mean_distance_clamped"] == 0.0
        and -1 <= rec["observed"][0] < rec["observed"][1] <= 1
    )
    assert "0 of " in next(line for line in out.splitlines() if line.startswith("Q output range"))
    assert not any("outside its declared" in line for line in out.splitlines())


class _Drift(pl.Callback):
    """Scales the user's network up once training starts (after the held-out set was decoded)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.q_generator.generator.module.scale = 50.0


def test_training_batches_out_of_range_stop_the_run(user_gan: Path) -> None:
    from wdist.pipeline import estimate

    out_dir = user_gan / "run"
    with pytest.raises(GeneratorRangeError, match=r"training batches of its first 1 steps"):
        estimate(str(_config(user_gan, "NoTanh", [-60, 60])), TINY, out=out_dir, callbacks=[_Drift()], quiet=True)
    assert not (out_dir / "result.json").exists()


def test_range_tally_counts_merges_and_round_trips() -> None:
    tally = RangeTally((-1.0, 1.0))
    tally.update(torch.tensor([[-1.0, 0.5], [1.5, -3.0]]), torch.tensor([0.5, 2.0]))
    tally.update(torch.tensor([[0.0, 1.0]]), torch.tensor([0.0]))
    taken = tally.take()
    assert tally.summary().values == 0
    s = taken.summary()
    assert (s.values, s.outside, s.low, s.high, s.samples) == (6, 2, -3.0, 1.5, 3)
    assert s.fraction == pytest.approx(1 / 3) and s.moved == pytest.approx(2.5 / 3)
    back = RangeTally.from_summary(RangeSummary.from_record(s.record())).summary()
    assert back == s and (s + s).outside == 4
    with pytest.raises(GeneratorRangeError, match=r"declares output_range \[-1, 1\].*span \[-3, 1.5\]"):
        s.check("Q generator 'g'", "a test")


class _SignalAt(pl.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args, **kwargs) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_a_resumed_run_counts_the_training_batches_of_every_segment(tmp_path: Path) -> None:
    """The training batches' counts travel in the checkpoint: stopped after step 2 and resumed, the
    run reports the same counts as one that was never stopped."""
    from wdist.errors import RunInterrupted
    from wdist.pipeline import estimate

    # bcop-dcgan: a critic placed on items before its first step (the default cones) decodes those too
    args = [*TINY, "--train.checkpoint_every", "1", "--eval.n_eval_q", "64", "--eval.n_select_q", "64",
            "--critic.name", "bcop-dcgan", "--critic.options", "{width: 0.25}"]  # fmt: skip
    cfg = str(Path(__file__).resolve().parent.parent / "configs" / "digits" / "default.yaml")
    whole = estimate(cfg, args, out=tmp_path / "whole", quiet=True).run.generators["q"]["range_check"]
    with pytest.raises(RunInterrupted):
        estimate(cfg, args, out=tmp_path / "run", quiet=True, callbacks=[_SignalAt(2)])
    resumed = estimate(resume=tmp_path / "run", quiet=True).run.generators["q"]["range_check"]
    assert resumed == whole
    assert whole["training"]["samples"] == 4 * 32 and whole["evaluated"]["samples"] == 3 * 64
