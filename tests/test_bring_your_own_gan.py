"""A user's GAN through the command line, as users have them: a DCGAN-style generator defined in
their own Python file, taking z of shape (nz, 1, 1), its state dict saved from CUDA; and a
registered generator without weights, refused unless random weights are asked for."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from checkpoint_helpers import save_cuda_tagged
from user_code import user_module

import generators
from wdist.cli import main

TINY = [
    "--train.steps", "6", "--train.eval_every", "6", "--train.batch_size", "32", "--eval.n_eval", "64",
    "--eval.ot_samples", "0", "--eval.empirical_lipschitz_samples", "0", "--trainer.enable_progress_bar", "false",
    "--train.threads", "1",
]  # fmt: skip
SMALL_CRITIC = {"name": "bjorck-mlp", "options": {"width": 8, "depth": 1}}
NZ = 16

DCGAN_FILE = textwrap.dedent(
    f"""
    import torch
    from torch import nn

    class Generator(nn.Module):
        # DCGAN: z (N, nz, 1, 1) -> 4x4 -> 8x8 image in [0, 1]
        def __init__(self, nz={NZ}, ngf=8):
            super().__init__()
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False),
                nn.BatchNorm2d(ngf * 2),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 2, 1, 4, 2, 1, bias=False),
                nn.Sigmoid(),
            )

        def forward(self, z):
            return self.main(z)
    """
)


@pytest.fixture()
def dcgan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The user's file ``my_dcgan.py`` (importable from the working folder, as with ``python -m``)
    and its trained-looking network (random weights, batch-norm running statistics moved away from
    their defaults)."""
    with user_module(tmp_path, "my_dcgan", DCGAN_FILE, monkeypatch) as my_dcgan:
        torch.manual_seed(0)
        net = my_dcgan.Generator()
        bn = net.main[1]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        yield net.eval()


def _run(capsys: pytest.CaptureFixture, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _config(tmp_path: Path, q_args: dict) -> Path:
    cfg = {
        "p": {"class_path": "Digits"},
        "q": {"class_path": "Generator", "init_args": q_args},
        "critic": SMALL_CRITIC,
        "seed": 0,
    }
    path = tmp_path / "byo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_cuda_saved_dcgan_state_dict_samples_through_python_with_latent_shape(
    dcgan: torch.nn.Module, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The synthesised CUDA-tagged file (see :func:`save_cuda_tagged`) cannot be read here without
    ``map_location``; wdist maps it to the CPU, and the user's DCGAN samples from latents of shape
    (nz, 1, 1) with no wrapper, end to end through ``wdist estimate``."""
    ckpt = save_cuda_tagged(dcgan.state_dict(), tmp_path / "netG_cuda.pth")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="deserialize object on a CUDA device"):
            torch.load(ckpt, map_location=None, weights_only=True)

    q_args = {
        "name": "python:my_dcgan:Generator",
        "checkpoint": str(ckpt),
        "latent_shape": [NZ, 1, 1],
        "latent": "truncated-normal",
        "truncation": 2.0,
        "output_shape": [1, 8, 8],
        "output_range": [0, 1],
    }
    out_dir = tmp_path / "run"
    code, out, err = _run(capsys, "estimate", "--config", _config(tmp_path, q_args), "--out", out_dir, *TINY)
    assert code == 0, err
    res = json.loads((out_dir / "result.json").read_text())
    q = res["run"]["generators"]["q"]
    assert q["latent_shape"] == [NZ, 1, 1] and q["latent_dim"] == NZ
    assert (q["latent"], q["truncation"], q["random_weights"]) == ("truncated-normal", 2.0, False)
    assert "truncated to [-2, 2] latent of 16x1x1" in res["run"]["q"] and "RANDOM" not in out
    assert res["bound"]["certified"] and res["run"]["shape"] == [1, 8, 8]

    # the same weights as the user's network, on the CPU, fed (N, nz, 1, 1) latents
    g = generators.load("python:my_dcgan:Generator", checkpoint=ckpt, latent_shape=(NZ, 1, 1), **{
        k: q_args[k] for k in ("latent", "truncation", "output_shape", "output_range")
    })  # fmt: skip
    assert all(t.device.type == "cpu" for t in g.state_dict().values())
    z = g.sample_latent(16, torch.Generator().manual_seed(0))
    assert z.shape == (16, NZ, 1, 1) and z.abs().max() <= 2.0
    with torch.no_grad():
        expected = dcgan(z)
    x = g(z)
    assert torch.equal(x, expected) and 0.0 <= x.min() and x.max() <= 1.0


def test_a_flat_latent_for_the_dcgan_is_refused_naming_the_latent_shape_that_fits(
    dcgan: torch.nn.Module, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    torch.save(dcgan.state_dict(), tmp_path / "netG.pth")
    q_args = {
        "name": "python:my_dcgan:Generator",
        "checkpoint": "netG.pth",
        "latent_dim": NZ,
        "latent": "normal",
        "output_shape": [1, 8, 8],
        "output_range": [0, 1],
    }
    code, _, err = _run(capsys, "estimate", "--config", _config(tmp_path, q_args), "--quiet", *TINY)
    assert code == 2 and "Traceback" not in err
    assert f"refused latents of shape (32, {NZ})" in err
    assert f"set latent_shape: [{NZ}, 1, 1]" in err


def test_a_registered_generator_without_checkpoint_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = _config(tmp_path, {"name": "lconvnet/wgan-gp-32"})
    code, out, err = _run(capsys, "estimate", "--config", cfg, "--out", tmp_path / "run", *TINY)
    assert code == 2 and "Traceback" not in err and out == ""
    assert "'lconvnet/wgan-gp-32'" in err and "RANDOM" in err
    assert "--q.init_args.checkpoint PATH" in err and "random_weights: true" in err
    assert not (tmp_path / "run" / "result.json").exists()


def test_random_weights_on_purpose_are_said_in_the_result_and_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg = _config(tmp_path, {"name": "digits/wgan-gp-8", "random_weights": True})
    code, out, err = _run(capsys, "estimate", "--config", cfg, "--out", tmp_path / "run", *TINY)
    assert code == 0, err
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert (
        res["run"]["generators"]["q"]["random_weights"] is True and res["run"]["generators"]["q"]["checkpoint"] is None
    )
    assert "RANDOMLY INITIALISED" in res["run"]["q"]
    assert any("RANDOMLY INITIALISED" in note for note in res["notes"])
    q_row = next(line for line in out.splitlines() if line.lstrip().startswith("Q "))
    assert "RANDOMLY INITIALISED" in q_row
    assert any(line.lstrip().startswith("note") and "RANDOMLY INITIALISED" in line for line in out.splitlines())
    # the bundled weights, when random ones are not asked for: nothing said
    code, out, _ = _run(capsys, "estimate", "--config", _config(tmp_path, {"name": "digits/wgan-gp-8"}), *TINY)
    assert code == 0 and "RANDOM" not in out
