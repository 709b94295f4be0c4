"""The bring-your-own path as a new user meets it: paths read from the YAML's folder, errors that
print the absolute path tried and the right advice, and a default critic that follows the data's
shape. Everything here stops at the configuration (nothing trains)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import generators
from generators.checkpoints import GeneratorLoadError
from wdist.cli import main
from wdist.config import (
    IMAGE_DEFAULT_CRITIC,
    VECTOR_DEFAULT_CRITIC,
    ConfigError,
    config_yaml,
    default_critic,
    load_config,
    resolve_config,
)

ROOT = Path(__file__).resolve().parent.parent
DIGITS_VS_GENERATOR = {
    "p": {"class_path": "Digits"},
    "q": {"class_path": "Generator", "init_args": {"name": "digits/wgan-gp-8"}},
}


def test_default_critic_follows_the_data_shape() -> None:
    """No critic named: images get the offline job's image critic, vectors an MLP; options given
    alone apply to that default; the resolved config records the critic that runs."""
    assert default_critic((3, 32, 32)) == IMAGE_DEFAULT_CRITIC and default_critic((128,)) == VECTOR_DEFAULT_CRITIC
    offline = yaml.safe_load((ROOT / "configs" / "digits" / "default.yaml").read_text())["critic"]
    assert (offline["name"], offline.get("options", {})) == IMAGE_DEFAULT_CRITIC  # the offline job's own
    cfg = resolve_config(DIGITS_VS_GENERATOR)
    assert (cfg.critic.name, cfg.critic.options) == IMAGE_DEFAULT_CRITIC
    assert yaml.safe_load(config_yaml(cfg))["critic"] == {"name": "cones", "options": {}}
    cfg = load_config({**DIGITS_VS_GENERATOR, "critic": {"options": {"centres": 64}}})
    assert (cfg.critic.name, cfg.critic.options) == ("cones", {"centres": 64})
    toy = load_config({"toy": {"class_path": "Translation", "init_args": {"dim": 2, "shift": [1.0, 0.0]}}})
    assert toy.critic.name == VECTOR_DEFAULT_CRITIC[0]


def _images(path: Path, n: int = 600, dtype: type = np.uint8) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (n, 3, 8, 8)) if dtype == np.uint8 else rng.uniform(0, 1, (n, 3, 8, 8))
    np.save(path, data.astype(dtype))


def test_relative_paths_are_read_from_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "exp").mkdir()
    _images(tmp_path / "exp" / "imgs.npy")
    (tmp_path / "exp" / "my.yaml").write_text(
        yaml.safe_dump(
            {"p": {"class_path": "TensorFile", "init_args": {"path": "imgs.npy"}}, "q": {"class_path": "Digits"}}
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = resolve_config("../exp/my.yaml", ["--q.init_args.resize", "8"])
    assert cfg.p.build().path == tmp_path / "exp" / "imgs.npy"
    saved = yaml.safe_load(config_yaml(cfg))
    assert saved["p"]["init_args"]["path"] == str(tmp_path / "exp" / "imgs.npy")  # resumes anywhere
    # on the command line a relative path is the working directory's, and the error prints it absolute
    with pytest.raises(ConfigError) as err:
        load_config("../exp/my.yaml", ["--p.init_args.path", "imgs.npy"])
    assert f"resolved to '{elsewhere / 'imgs.npy'}'" in str(err.value)


def test_uint8_data_with_a_float_value_range_says_to_leave_it_out(tmp_path: Path, capsys) -> None:
    _images(tmp_path / "imgs.npy")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "p": {"class_path": "TensorFile", "init_args": {"path": "imgs.npy", "value_range": [0, 1]}},
                "q": {"class_path": "Digits"},
            }
        )
    )
    assert main(["estimate", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "values span [0, 255]" in err and "uint8" in err and "leave value_range out" in err


def test_a_finite_side_too_small_for_n_eval_is_told_about_n_eval_p(tmp_path: Path, capsys) -> None:
    """600 images against a generator at the default eval.n_eval = 4096: the advice is eval.n_eval_p,
    which sizes P's test part alone (eval.n_eval would shrink the generated side too)."""
    np.save(tmp_path / "imgs.npy", np.random.default_rng(0).integers(0, 256, (600, 1, 8, 8)).astype(np.uint8))
    cfg = tmp_path / "c.yaml"
    p = {"class_path": "TensorFile", "init_args": {"path": "imgs.npy"}}
    cfg.write_text(yaml.safe_dump({**DIGITS_VS_GENERATOR, "p": p, "critic": {"name": "bjorck-mlp"}}))
    code = main(["estimate", "--config", str(cfg), "--train.steps", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    # the select split takes min(256, 4096, 600 // 10) = 60 of the 600 images
    assert "eval.n_eval = 4096" in err and "set eval.n_eval_p below 540 (e.g. 150)" in err
    assert "it sets P's held-out size alone, and Q keeps eval.n_eval" in err


def test_a_missing_checkpoint_of_ones_own_generator_gives_no_published_weights_hint(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(
        "from torch import nn\n\ndef make():\n    return nn.Sequential(nn.Linear(4, 12))\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(GeneratorLoadError) as err:
            generators.load(
                "python:mine:make",
                checkpoint=tmp_path / "nope.pth",
                latent_dim=4,
                latent="normal",
                output_shape=(12,),
                output_range=(-1, 1),
            )
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mine", None)
    msg = str(err.value)
    assert f"resolved to '{tmp_path / 'nope.pth'}'" in msg
    assert "published" not in msg and "generator_info" not in msg and "torch.save(generator.state_dict()" in msg
    with pytest.raises(GeneratorLoadError) as err:
        generators.load("mimicry/sngan-32", checkpoint=tmp_path / "netG.pth")
    assert "published weights: http" in str(err.value)
