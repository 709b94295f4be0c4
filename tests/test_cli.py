"""The command line: the happy path, and every bad input giving one clear paragraph and exit != 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from wdist.cli import main

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "configs" / "toy" / "translation-2d.yaml"
FAST = [
    "--train.steps",
    "10",
    "--train.eval_every",
    "10",
    "--eval.n_eval",
    "256",
    "--eval.ot_samples",
    "100",
    "--quiet",
]


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in error message:\n{err}"


def test_estimate_prints_table_and_writes_files(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "estimate", "--config", str(TOY), "--out", str(tmp_path), *FAST)
    assert code == 0
    assert "certified W1 lower bound" in out and "exact W1" in out and "CI" in out
    for name in ("result.json", "metrics.csv", "bound_curve.png", "config.yaml"):
        assert (tmp_path / name).exists(), name


def test_exact_command(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(
        capsys, "exact", "--config", str(ROOT / "configs" / "toy" / "three-cones.yaml"), "--eval.ot_samples", "300"
    )
    assert code == 0
    assert "exact W1" in out and "1.000000" in out and "empirical OT" in out


def test_unknown_critic_lists_available(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "estimate", "--config", str(TOY), "--critic.name", "bjork-mlp", *FAST)
    assert_clean_error(code, err, "bjork-mlp", "bjorck-mlp", "gp-mlp", "sn-mlp")


def test_unknown_critic_option(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "estimate", "--config", str(TOY), "--critic.options", "{widht: 3}", *FAST)
    assert_clean_error(code, err, "widht", "width")


def test_misspelt_key_on_command_line(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "estimate", "--config", str(TOY), "--train.stepz", "5", *FAST)
    assert_clean_error(code, err, "stepz", "train.steps")


def test_misspelt_key_in_yaml(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    cfg = yaml.safe_load(TOY.read_text())
    cfg["train"]["batchsize"] = 64
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, _, err = run(capsys, "estimate", "--config", str(path), *FAST)
    assert_clean_error(code, err, "batchsize", "batch_size")


def test_bad_value_names_allowed_values(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "estimate", "--config", str(TOY), "--train.loss", "hinge", *FAST)
    assert_clean_error(code, err, "hinge", "kr", "wgan-gp")


@pytest.mark.parametrize(
    "key,value", [("--eval.n_eval", "0"), ("--eval.n_eval", "1"), ("--train.batch_size", "-5"), ("--train.steps", "0")]
)
def test_non_positive_counts(capsys: pytest.CaptureFixture, key: str, value: str) -> None:
    code, _, err = run(capsys, "estimate", "--config", str(TOY), *FAST, key, value)
    assert_clean_error(code, err, key.lstrip("-"), value)


def test_p_and_q_of_different_shapes(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    cfg = {
        "p": {"class_path": "Gaussian", "init_args": {"dim": 2}},
        "q": {"class_path": "Gaussian", "init_args": {"dim": 3}},
    }
    path = tmp_path / "shapes.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, _, err = run(capsys, "estimate", "--config", str(path), *FAST)
    assert_clean_error(code, err, "(2,)", "(3,)", "P", "Q")


def test_nan_in_samples(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clean = rng.uniform(-1, 1, size=(500, 1, 4, 4)).astype(np.float32)
    dirty = clean.copy()
    dirty[7, 0, 1, 2] = np.nan
    np.save(tmp_path / "withnan.npy", dirty)
    np.save(tmp_path / "clean.npy", clean)
    cfg = {
        "p": {"class_path": "TensorFile", "init_args": {"path": str(tmp_path / "withnan.npy")}},
        "q": {"class_path": "TensorFile", "init_args": {"path": str(tmp_path / "clean.npy")}},
        "critic": {"name": "bjorck-mlp", "options": {"width": 16, "depth": 1}},
    }
    path = tmp_path / "nan.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, _, err = run(capsys, "estimate", "--config", str(path), *FAST, "--eval.n_eval", "100")
    assert_clean_error(code, err, "withnan.npy", "NaN")


def test_unwritable_output_folder(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = run(capsys, "estimate", "--config", str(TOY), *FAST, "--out", str(blocker / "run"))
    assert_clean_error(code, err, str(blocker / "run"), str(blocker), "is an existing file", "not a folder")
    assert code == 2


def test_missing_config_file(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "estimate", "--config", "configs/toy/nope.yaml")
    assert_clean_error(code, err, "nope.yaml", "does not exist")


def test_debug_shows_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wdist.cli", "estimate", "--config", str(TOY), "--critic.name", "nope", "--debug"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_console_script_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["wdist", "estimate", "--config", str(TOY), "--train.stepz", "1"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "stepz" in proc.stderr


def test_bench_toy_runs(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(
        capsys,
        "bench",
        "toy",
        "--configs",
        str(TOY),
        "--critics",
        "bjorck-mlp",
        "--steps",
        "12",
        "--warmup",
        "4",
        "--repeats",
        "1",
    )
    assert code == 0 and "| translation-2d | bjorck-mlp |" in out and "steps/s" in out


def test_bad_critic_option_value_names_the_options(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "estimate", "--config", str(TOY), "--critic.options", "{width: abc}", *FAST)
    assert_clean_error(code, err, "critic.options", "abc")
    assert code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present, so this would run")
def test_gpu_accelerator_without_a_gpu_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(capsys, "estimate", "--config", str(TOY), "--trainer.accelerator", "gpu", *FAST)
    assert_clean_error(code, err, "trainer.accelerator", "'gpu'")
    assert code == 2  # a usage error, as the README promises


def test_bench_toy_needs_more_steps_than_warmup(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "toy", "--steps", "3", "--warmup", "10"])
    assert exc.value.code == 2
    assert "--steps > --warmup" in capsys.readouterr().err


def test_exact_ot_too_large_for_memory_is_refused_before_training(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    code, _, err = run(
        capsys, "estimate", "--config", str(TOY), *FAST, "--eval.ot_samples", "100000000", "--out", str(tmp_path / "r")
    )
    assert_clean_error(code, err, "eval.ot_samples=100000000", "GiB")
    assert code == 2
    assert not (tmp_path / "r" / "metrics.csv").exists()  # nothing trained


def test_exact_command_states_units_and_writes_them(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    import json

    cfg = ROOT / "configs" / "toy" / "sphere-128d.yaml"
    code, out, _ = run(capsys, "exact", "--config", str(cfg), "--eval.ot_samples", "50", "--out", str(tmp_path))
    assert code == 0
    assert "shape (128,), range unbounded, L2 distance" in out
    assert "[0] * 128" in out and "0, 0, 0, 0, 0, 0, 0, 0, 0" not in out  # a constant vector, not 128 zeros
    saved = json.loads((tmp_path / "exact.json").read_text())
    assert saved["shape"] == [128] and saved["domain"] is None and saved["distance"] == "L2"
    assert saved["empirical_ot_floor_n"] == 50


def test_exit_codes_tell_bad_input_from_failures_and_signals() -> None:
    import signal as _signal

    from wdist.cli import exit_code
    from wdist.config import ConfigError
    from wdist.errors import NonFiniteLossError, NonFiniteSamplesError, RunInterrupted

    assert exit_code(ConfigError("train.lr")) == 2
    assert exit_code(FileNotFoundError("x.npy")) == 2
    assert exit_code(NonFiniteSamplesError("NaN in the Q samples")) == 2  # bad input, as the README says
    assert exit_code(NonFiniteLossError("the critic diverged on finite samples")) == 1
    assert exit_code(RuntimeError("a fault of wdist")) == 1
    assert exit_code(RunInterrupted(_signal.SIGTERM, 12)) == 143
    assert exit_code(RunInterrupted(_signal.SIGINT)) == exit_code(KeyboardInterrupt()) == 130
