"""The configuration: one declaration per setting, and what a user sees for a key that moved."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import pytest

from wdist.cli import main
from wdist.config import EvalConfig, TrainConfig, TrainerConfig, load_config

TOY = Path(__file__).resolve().parent.parent / "configs" / "toy" / "translation-2d.yaml"


def test_trainer_section_holds_lightning_trainer_arguments_with_lightnings_defaults() -> None:
    """``trainer.*`` is passed to ``pytorch_lightning.Trainer`` as it is: every field must be one of
    its arguments, with Lightning's own default where the two differ only by wdist's choice."""
    import pytorch_lightning as pl

    params = inspect.signature(pl.Trainer.__init__).parameters
    for f in fields(TrainerConfig):
        assert f.name in params, f"trainer.{f.name} is not a pytorch_lightning.Trainer argument"
    assert TrainerConfig().accelerator == params["accelerator"].default
    assert TrainerConfig().strategy == params["strategy"].default


def test_training_settings_are_declared_once() -> None:
    """The training system takes the config objects: no setting of train/eval is re-declared in its
    signature."""
    from wdist.system import CriticSystem

    sig = set(inspect.signature(CriticSystem.__init__).parameters)
    assert not sig & ({f.name for f in fields(TrainConfig)} | {f.name for f in fields(EvalConfig)})
    assert {"train", "eval"} <= sig


def test_trainer_keys_from_the_command_line() -> None:
    cfg = load_config(
        TOY, ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.precision", "bf16-mixed"]
    )
    assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.precision) == ("cpu", 1, "bf16-mixed")


def test_a_trainer_key_under_train_points_to_its_section(capsys: pytest.CaptureFixture) -> None:
    code = main(["estimate", "--config", str(TOY), "--train.accelerator", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "trainer.accelerator" in err, err
