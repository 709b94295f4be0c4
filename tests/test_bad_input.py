"""What bad input and records get: the cases where wdist used to be silent or unclear.

Every bad input exits with status 2 and one paragraph naming the value at fault (the file, the
generator, the key) and what was expected. A file that is not a checkpoint or an array at all is
described as what it looks like, never called "pickled", and no message advises loading anything
with ``weights_only=False`` or ``allow_pickle``. Records say what ran (the precision Lightning
used, the loss and whether the config chose it), the summary never states a negative lower bound on
a distance, an empirical OT below its floor says so, and earlier results are kept.
(Resumes and signals: ``test_resume.py``; NaN from a generator: ``test_faults.py``; W&B:
``test_wandb.py``.)
"""

from __future__ import annotations

import csv
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from wdist.cli import main
from wdist.references import References
from wdist.report import CLIPPED_NOTE

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "configs" / "toy" / "translation-2d.yaml"
TINY = [
    "--train.steps", "10", "--train.eval_every", "10", "--train.batch_size", "32", "--eval.n_eval", "64",
    "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0", "--quiet",
]  # fmt: skip
SMALL_CRITIC = {"name": "bjorck-mlp", "options": {"width": 8, "depth": 1}}
UNSAFE_ADVICE = ("pickled", "allow_pickle", "weights_only=False")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_paragraph(err: str) -> str:
    """The error paragraph (exactly one, no traceback)."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("wdist estimate: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _write_yaml(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _images(path: Path, n: int) -> Path:
    np.save(path, np.random.default_rng(0).uniform(-1, 1, size=(n, 1, 4, 4)).astype(np.float32))
    return path


def _tensor_files(tmp_path: Path, p: Path, q: Path) -> Path:
    cfg = {
        "p": {"class_path": "TensorFile", "init_args": {"path": str(p)}},
        "q": {"class_path": "TensorFile", "init_args": {"path": str(q)}},
        "critic": SMALL_CRITIC,
    }
    return _write_yaml(tmp_path / "files.yaml", cfg)


# -- files that are not what they claim to be ------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_random_bytes_as_a_data_file_are_described_not_called_pickled(
    capsys: pytest.CaptureFixture, tmp_path: Path, suffix: str
) -> None:
    noise = tmp_path / f"noise{suffix}"
    noise.write_bytes(bytes([0xA7, 0x13]) + np.random.default_rng(1).bytes(4094))
    cfg = _tensor_files(tmp_path, noise, _images(tmp_path / "good.npy", 64))
    code, _, err = run(capsys, "estimate", "--config", cfg, *TINY)
    msg = _one_paragraph(err)
    assert code == 2
    assert str(noise) in msg and "binary data in no format wdist knows (first bytes a7 13" in msg
    for word in UNSAFE_ADVICE:
        assert word not in msg


def test_random_bytes_as_a_generator_checkpoint_are_described(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    ckpt = tmp_path / "netG.pth"
    ckpt.write_bytes(np.random.default_rng(2).bytes(4096))
    cfg = {
        "p": {"class_path": "Digits"},
        "q": {"class_path": "Generator", "init_args": {"name": "digits/wgan-gp-8", "checkpoint": str(ckpt)}},
        "critic": SMALL_CRITIC,
    }
    code, _, err = run(capsys, "estimate", "--config", _write_yaml(tmp_path / "g.yaml", cfg), *TINY)
    msg = _one_paragraph(err)
    assert code == 2
    assert str(ckpt) in msg and "cannot be read as a PyTorch checkpoint: it is binary data" in msg
    for word in UNSAFE_ADVICE + ("trust",):
        assert word not in msg


def test_an_array_of_python_objects_is_refused_without_unsafe_advice(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"image": 1}] * 8, dtype=object), allow_pickle=True)
    cfg = _tensor_files(tmp_path, objects, _images(tmp_path / "good.npy", 64))
    code, _, err = run(capsys, "estimate", "--config", cfg, *TINY)
    msg = _one_paragraph(err)
    assert code == 2
    assert str(objects) in msg and "holds an array of Python objects (dtype object, shape (8,))" in msg
    assert "allow_pickle" not in msg


def test_a_truncated_npy_says_how_much_is_missing(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    full = _images(tmp_path / "full.npy", 64).read_bytes()
    cut = tmp_path / "cut.npy"
    cut.write_bytes(full[:-100])
    cfg = _tensor_files(tmp_path, cut, tmp_path / "full.npy")
    code, _, err = run(capsys, "estimate", "--config", cfg, *TINY)
    msg = _one_paragraph(err)
    assert code == 2
    assert str(cut) in msg and "is cut short" in msg and "4096 bytes of data) but only 3996 bytes follow" in msg


@pytest.mark.parametrize("n,says", [(0, "holds no items"), (1, "holds 1 item;"), (2, "holds 2 items;")])
def test_too_few_samples_name_the_file_and_the_minimum(
    capsys: pytest.CaptureFixture, tmp_path: Path, n: int, says: str
) -> None:
    small = _images(tmp_path / f"only{n}.npy", n)
    cfg = _tensor_files(tmp_path, small, _images(tmp_path / "good.npy", 64))
    code, _, err = run(capsys, "estimate", "--config", cfg, *TINY)
    msg = _one_paragraph(err)
    assert code == 2
    assert f"only{n}.npy" in msg and says in msg and "at least 3" in msg
    assert "below 1" not in msg and "e.g. 1" not in msg  # the advice this used to give


# -- config files and folders -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,says",
    [
        ("", "is empty"),
        ("# nothing but a comment\n", "is empty"),
        ("- toy\n- critic\n", "holds a YAML list (['toy', 'critic']), not a mapping"),
        ("train: {steps: [\n", "is not valid YAML at line 2"),
    ],
)
def test_a_config_file_that_is_no_mapping(capsys: pytest.CaptureFixture, tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    code, _, err = run(capsys, "estimate", "--config", path, *TINY)
    msg = _one_paragraph(err)
    assert code == 2
    assert str(path) in msg and says in msg and "Expected a YAML mapping" in msg
    assert "Unexpected config" not in msg


def test_out_naming_an_existing_file(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    for out in (existing, existing / "run"):
        code, _, err = run(capsys, "estimate", "--config", TOY, "--out", out, *TINY)
        msg = _one_paragraph(err)
        assert code == 2
        assert str(out) in msg and "an existing file (4 bytes), not a folder" in msg
        assert "FileExistsError" not in msg and "not writable" not in msg
    assert existing.read_text() == "mine"


# -- a user's own generator failing -------------------------------------------------------------------------

GENERATOR_MODULES = {
    "factory_raises": (
        "def make():\n    raise RuntimeError('no weights in /data/G.pth')\n",
        "raised RuntimeError: no weights",
    ),
    "syntax_error": ("def make(:\n    pass\n", "has a syntax error: invalid syntax"),
    "import_fails": ("raise OSError('cannot open the weights folder')\n", "its top-level code raised OSError"),
    "forward_raises": (
        textwrap.dedent(
            """
            import torch
            from torch import nn

            class Broken(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.lin = nn.Linear(4, 64)

                def forward(self, z):
                    raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

            def make():
                return Broken()
            """
        ),
        "failed on a batch of latents of shape",
    ),
}


@pytest.mark.parametrize("case", sorted(GENERATOR_MODULES))
def test_a_failing_python_generator_is_named(
    capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    body, says = GENERATOR_MODULES[case]
    module = f"wdist_test_gen_{case}"
    (tmp_path / f"{module}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    name = f"python:{module}:make"
    cfg = {
        "p": {"class_path": "Digits"},
        "q": {
            "class_path": "Generator",
            "init_args": {
                "name": name,
                "latent_dim": 4,
                "latent": "normal",
                "output_shape": [1, 8, 8],
                "output_range": [-1, 1],
            },
        },  # fmt: skip
        "critic": SMALL_CRITIC,
    }
    code, _, err = run(capsys, "estimate", "--config", _write_yaml(tmp_path / "g.yaml", cfg), *TINY)
    msg = _one_paragraph(err)
    assert code == 2
    assert name in msg and says in msg
    sys.modules.pop(module, None)


# -- records say what ran -----------------------------------------------------------------------------------


def test_a_gradient_penalty_critic_trains_with_its_penalty_unless_told_otherwise(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    gp = ["--critic.name", "gp-mlp", "--critic.options", "{width: 8, depth: 1}"]
    code, out, _ = run(capsys, "estimate", "--config", TOY, "--out", tmp_path / "default", *gp, *TINY)
    assert code == 0
    res = json.loads((tmp_path / "default" / "result.json").read_text())
    assert res["run"]["loss"] == "wgan-gp" and res["notes"] == []
    assert "gp-mlp (wgan-gp loss" in out
    with open(tmp_path / "default" / "metrics.csv", newline="") as fh:
        assert "train/gp" in (csv.DictReader(fh).fieldnames or [])  # the penalty was computed

    code, out, _ = run(capsys, "estimate", "--config", TOY, "--out", tmp_path / "kr", *gp, "--train.loss", "kr", *TINY)
    assert code == 0
    res = json.loads((tmp_path / "kr" / "result.json").read_text())
    assert res["run"]["loss"] == "kr"
    assert any("train.loss='kr', set explicitly" in n and "'wgan-gp'" in n for n in res["notes"])
    assert "train.loss='kr', set explicitly" in out


def test_the_record_says_the_precision_lightning_used(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """16-mixed on a CPU: Lightning trains in bf16-mixed; the record says so, and that 16-mixed was asked."""
    args = ["--trainer.precision", "16-mixed", "--trainer.accelerator", "cpu"]
    code, out, _ = run(capsys, "estimate", "--config", TOY, "--out", tmp_path, *args, *TINY)
    assert code == 0
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["run"]["precision"] == "bf16-mixed"
    assert res["run"]["config"]["trainer"]["precision"] == "16-mixed"  # what was asked, kept as asked
    assert any("'16-mixed' was asked" in n and "'bf16-mixed'" in n for n in res["notes"])
    assert "'16-mixed' was asked" in out and "bf16-mixed" in out


def test_same_distribution_reads_no_evidence_that_w1_is_positive(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """P = Q: the held-out interval of the bound reaches below 0, and the summary says there is no
    evidence that W1 > 0 instead of stating a negative lower bound on a distance."""
    gauss = {"class_path": "Gaussian", "init_args": {"dim": 2}}
    cfg = _write_yaml(tmp_path / "same.yaml", {"p": gauss, "q": gauss, "critic": SMALL_CRITIC})
    code, out, _ = run(capsys, "estimate", "--config", cfg, "--out", tmp_path / "run", *TINY)
    assert code == 0
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    lo = res["bound"]["lower_bound_lo"]
    assert lo < 0  # the raw interval end is kept in the record
    row = next(line for line in out.splitlines() if line.startswith("W1 at least"))
    assert "0: no evidence that W1 > 0" in row and f"{lo:.4f}" in row
    assert "with 97.5% confidence" not in row
    assert any(n.startswith(CLIPPED_NOTE) and f"{lo:.4g}" in n for n in res["notes"])  # with the computed end
    headline = next(line for line in out.splitlines() if line.startswith("certified W1 lower bound"))
    assert "CI [0*, " in headline and CLIPPED_NOTE in out


def test_an_empirical_ot_below_its_floor_says_so(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    below = References(18.56, 2000, 19.00, 2000)
    assert below.below_floor and len(below.notes()) == 1
    note = below.notes()[0]
    assert "18.56 is below its own floor 19" in note and "dominated by sampling bias" in note
    assert References(20.1, 2000, 19.0, 2000).notes() == [] and References(20.1, 2000).notes() == []
    # a real report: P = Q, so the OT and its floor estimate the same thing; the note appears
    # exactly when the reference came out below its floor
    gauss = {"class_path": "Gaussian", "init_args": {"dim": 8}}
    cfg = _write_yaml(tmp_path / "same.yaml", {"p": gauss, "q": gauss})
    seen = set()
    for seed in range(4):
        out_json = tmp_path / f"seed{seed}"
        code, out, _ = run(
            capsys, "exact", "--config", cfg, "--eval.ot_samples", "60", "--seed", seed, "--out", out_json
        )
        assert code == 0
        report = json.loads((out_json / "exact.json").read_text())
        below = report["empirical_ot_w1"] < report["empirical_ot_floor"]
        assert ("is below its own floor" in out) == below
        assert bool(report["notes"]) == below
        seen.add(below)
    assert seen == {True, False}  # these seeds give both cases


def test_earlier_results_are_kept_and_stale_temporary_files_removed(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    results = []
    for steps in ("10", "12", "14"):
        if out.exists():  # what writes killed mid-way leave behind
            (out / ".result.json.k1ll3d.tmp").write_text('{"half": ')
            (out / ".metrics.csv.k1ll3d.tmp").write_text("step,")
        code, _, _ = run(capsys, "estimate", "--config", TOY, "--out", out, *TINY, "--train.steps", steps)
        assert code == 0
        results.append(json.loads((out / "result.json").read_text()))
    generations = sorted((out / "previous").iterdir())
    assert len(generations) == 2
    kept = [json.loads((g / "result.json").read_text()) for g in generations]
    assert sorted(r["run"]["steps"] for r in kept) == [10, 12] and results[-1]["run"]["steps"] == 14
    for g in generations:
        assert {"result.json", "metrics.csv", "config.yaml", "bound_curve.png"} <= {f.name for f in g.iterdir()}
    assert not list(out.rglob("*.tmp"))  # removed when the next run started, never moved
