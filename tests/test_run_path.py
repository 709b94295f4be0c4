"""One run path: a command parses its configuration once and builds each configured source once.

Counted where it happens (:data:`wdist.config.COUNTS`: the estimate's parser builder and
:meth:`wdist.config.SourceSpec.build`), on real runs of the commands (tiny settings, in-process).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from wdist.cli import main
from wdist.config import COUNTS, SourceSpec, config_record, parse_config, settle
from wdist.tracking import default_snapshots

#: The digits default (Digits vs the bundled generator) made tiny.
TINY = [
    "--critic.name", "bjorck-mlp", "--critic.options", "{width: 16}", "--train.steps", "4",
    "--train.eval_every", "4", "--train.batch_size", "32", "--eval.n_eval", "40", "--eval.n_eval_q", "40",
    "--eval.n_select_p", "20", "--eval.n_select_q", "20", "--eval.ot_samples", "0",
    "--eval.empirical_lipschitz_samples", "0", "--eval.train_subset", "false", "--quiet",
]  # fmt: skip


def _counted(argv: list[str]) -> dict[str, int]:
    COUNTS.clear()
    assert main(argv) == 0
    return dict(COUNTS)


def test_parsing_builds_no_source_and_settling_builds_each_once() -> None:
    cfg = parse_config(None)
    assert isinstance(cfg.p, SourceSpec) and isinstance(cfg.q, SourceSpec)
    COUNTS.clear()
    settle(cfg)
    derived = replace(cfg, seed=7, train=replace(cfg.train, steps=3))
    settle(derived)
    derived.sides()
    assert dict(COUNTS) == {"build:Digits": 1, "build:Generator": 1}  # derived configs share the built sources
    assert derived.sides().p is cfg.sides().p
    other = replace(cfg, q=cfg.q.with_args(random_weights=True))
    other.sides()
    assert COUNTS["build:Generator"] == 2 and COUNTS["build:Digits"] == 1  # a new Q is built, P is not


def test_estimate_parses_once_and_builds_each_source_once(tmp_path: Path) -> None:
    counts = _counted(["estimate", *TINY, "--out", str(tmp_path / "run")])
    assert counts == {"parse": 1, "build:Digits": 1, "build:Generator": 1}
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["q"]["class_path"].endswith("Generator") and saved["train"]["steps"] == 4
    # the saved file is the configuration the run trained with: parsed again, it gives the same record
    assert config_record(parse_config(tmp_path / "run" / "config.yaml")) == saved


def test_a_toy_estimate_builds_its_problem_once(tmp_path: Path) -> None:
    toy = Path(__file__).resolve().parent.parent / "configs" / "toy" / "translation-2d.yaml"
    counts = _counted(["estimate", "--config", str(toy), *TINY[:-1], "--quiet"])
    assert counts == {"parse": 1, "build:Translation": 1}


def test_compare_parses_once_and_builds_each_source_once(tmp_path: Path) -> None:
    comparison = {
        "p": {"class_path": "Digits"},
        "q": {"class_path": "Generator", "init_args": {"name": "digits/wgan-gp-8"}},
        "critics": [{"label": "a", "name": "bjorck-mlp", "options": {"width": 16}}, {"label": "b", "name": "cones"}],
        "seeds": [0, 1],
    }
    path = tmp_path / "cmp.yaml"
    path.write_text(yaml.safe_dump(comparison))
    counts = _counted(["compare", "--config", str(path), *TINY[4:], "--out", str(tmp_path / "cmp")])
    assert counts == {"parse": 1, "build:Digits": 1, "build:Generator": 1}  # 4 runs
    assert sorted(p.parent.name + "/" + p.name for p in (tmp_path / "cmp").glob("*/seed*")) == [
        "a/seed0", "a/seed1", "b/seed0", "b/seed1",
    ]  # fmt: skip


@pytest.mark.parametrize("warm", ["true", "false"])
def test_track_parses_once_and_builds_one_generator_per_checkpoint(tmp_path: Path, warm: str) -> None:
    series = [str(default_snapshots() / f"digits_wgan_gp_8_step{s:05d}.pt") for s in (100, 1000, 10000)]
    argv = ["track", "--track.checkpoints", *series, "--track.warm_start", warm, *TINY, "--out", str(tmp_path / "t")]
    counts = _counted(argv)
    assert counts == {"parse": 1, "build:Digits": 1, "build:Generator": 3}
    # each checkpoint's run recorded its own checkpoint (derived from the one parsed configuration)
    for step, path in zip((100, 1000, 10000), series):
        saved = yaml.safe_load((tmp_path / "t" / "runs" / f"step_{step}" / "config.yaml").read_text())
        assert saved["q"]["init_args"]["checkpoint"] == path


def test_estimate_leaves_the_callers_warning_filters_and_lightning_loggers_as_found() -> None:
    """Inside a run Lightning's chatter is silenced; a Python caller gets its warning filters and
    Lightning's logger levels back (a script that calls ``wdist.estimate`` keeps its own logging)."""
    import logging
    import warnings

    import wdist

    lightning = logging.getLogger("lightning.pytorch")
    before_level, before_filters = lightning.level, list(warnings.filters)
    lightning.setLevel(logging.INFO)
    try:
        wdist.estimate(None, TINY[:-1], quiet=True)
        assert lightning.level == logging.INFO
        assert warnings.filters == before_filters
    finally:
        lightning.setLevel(before_level)


def test_a_settled_configuration_holds_builtin_values_that_the_system_keeps_as_given() -> None:
    """jsonargparse's restricted numbers (PositiveInt, ...) become int and float once, when the
    configuration is settled; the training system keeps the sections it is given (no round trip
    through dicts) and stores them in checkpoint-safe hyperparameters."""
    from dataclasses import fields

    from wdist.assembly import build_run
    from wdist.config import SETTINGS_SECTIONS, resolve_config

    cfg = resolve_config(None, ["--train.steps", "20", "--eval.confidence", "0.9", "--train.batch_size", "32"])
    for key in SETTINGS_SECTIONS:
        section = getattr(cfg, key)
        for f in fields(section):
            value = getattr(section, f.name)
            builtin = value is None or type(value) in (bool, int, float, str, list, tuple, dict)
            assert builtin, (key, f.name, type(value))
    run = build_run(cfg, cfg.sides())
    assert run.system.eval_cfg is cfg.eval
    assert run.system.train_cfg.steps == 20 and type(run.system.hparams["train"]["steps"]) is int
