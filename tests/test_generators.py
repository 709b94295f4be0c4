"""generators: registry, published architectures in their file formats, FrozenGenerator behaviour,
users' own generators (TorchScript, python:), and the bundled digits generator."""

from __future__ import annotations

import ast
import copy
import json
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from user_code import SigmoidGenerator

import generators
from generators import FrozenGenerator, GeneratorLoadError, MissingWeightsError, generator_info

PUBLISHED = [
    "mimicry/sngan-32",
    "mimicry/wgan-gp-32",
    "mimicry/sngan-48",
    "mimicry/wgan-gp-48",
    "lconvnet/wgan-gp-32",
    "lconvnet/wgan-gp-64",
]
# (latent_dim, latent, output_shape) from specs/generators.md
SPEC = {
    "mimicry/sngan-32": (128, "normal", (3, 32, 32)),
    "mimicry/wgan-gp-32": (128, "normal", (3, 32, 32)),
    "mimicry/sngan-48": (128, "normal", (3, 48, 48)),
    "mimicry/wgan-gp-48": (128, "normal", (3, 48, 48)),
    "lconvnet/wgan-gp-32": (62, "uniform", (3, 32, 32)),
    "lconvnet/wgan-gp-64": (62, "uniform", (3, 64, 64)),
}
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
WB = ("weight", "bias")


def spec_keys(name: str) -> set[str]:
    """State-dict keys as the spec states them, written out independently of the code."""
    if name.startswith("mimicry/"):
        keys = {f"l1.{p}" for p in WB} | {f"b5.{p}" for p in BN} | {f"c5.{p}" for p in WB}
        for blk in ("block2", "block3", "block4"):
            keys |= {f"{blk}.{bn}.{p}" for bn in ("b1", "b2") for p in BN}
            keys |= {f"{blk}.{c}.{p}" for c in ("c1", "c2", "c_sc") for p in WB}
        return keys
    return (
        {f"fc.{i}.{p}" for i in (0, 3) for p in WB}
        | {f"fc.{i}.{p}" for i in (1, 4) for p in BN}
        | {f"deconv.{i}.{p}" for i in (0, 3) for p in WB}
        | {f"deconv.1.{p}" for p in BN}
    )


def randomise_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give batch norms non-trivial running statistics and affine weights (as a trained file has)."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(1 + 0.1 * torch.randn(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))
            m.num_batches_tracked.fill_(12345)
    return module


def save_published(name: str, module: nn.Module, path: Path) -> Path:
    """Save ``module`` in the file format its publisher used."""
    if generator_info(name).file_format == "mimicry":
        opt = torch.optim.Adam(module.parameters(), lr=2e-4, betas=(0.0, 0.9))
        torch.save(
            {"model_state_dict": module.state_dict(), "optimizer_state_dict": opt.state_dict(), "global_step": 100000},
            path,
        )
    else:
        torch.save(module.state_dict(), path)
    return path


# -- package -----------------------------------------------------------------------------------


def test_all_resolves() -> None:
    for name in generators.__all__:
        assert getattr(generators, name) is not None


def test_never_imports_wdist_or_critics() -> None:
    root = Path(generators.__file__).parent
    for py in root.rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            for m in mods:
                assert m.split(".")[0] not in ("wdist", "critics"), f"{py} imports {m}"


def test_available_lists_registered_names() -> None:
    names = generators.available()
    assert set(PUBLISHED) | {"digits/wgan-gp-8"} == set(names)
    assert names == sorted(names)
    assert generators.available("mimicry/*") == sorted(n for n in PUBLISHED if n.startswith("mimicry/"))


def test_unknown_name_lists_available() -> None:
    with pytest.raises(GeneratorLoadError) as e:
        generators.load("mimicry/sngan-33")
    msg = str(e.value)
    assert "mimicry/sngan-33" in msg and "lconvnet/wgan-gp-64" in msg and "torchscript:" in msg
    assert "Did you mean 'mimicry/sngan-32'" in msg


# -- published architectures ---------------------------------------------------------------------


@pytest.mark.parametrize("name", PUBLISHED)
def test_key_names_match_spec(name: str) -> None:
    with torch.device("meta"):
        module = generator_info(name).builder()
    assert set(module.state_dict()) == spec_keys(name)


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_round_trip(name: str, tmp_path: Path) -> None:
    latent_dim, latent, shape = SPEC[name]
    info = generator_info(name)
    assert (info.latent_dim, info.latent, info.output_shape, info.output_range) == (
        latent_dim,
        latent,
        shape,
        (-1.0, 1.0),
    )
    ref = randomise_bn(info.builder()).eval()
    path = save_published(name, ref, tmp_path / "netG.pth")
    if info.file_format == "mimicry":
        assert set(torch.load(path, weights_only=True)) == {"model_state_dict", "optimizer_state_dict", "global_step"}

    g = generators.load(name, checkpoint=path)
    assert isinstance(g, FrozenGenerator) and isinstance(g.module, nn.Module)
    assert (g.name, g.latent_dim, g.latent, g.output_shape, g.output_range) == (
        name,
        latent_dim,
        latent,
        shape,
        (-1.0, 1.0),
    )
    assert g.batchnorm == "eval"
    assert not any(m.training for m in g.module.modules())
    assert not any(p.requires_grad for p in g.parameters())
    for k, v in ref.state_dict().items():
        assert torch.equal(g.module.state_dict()[k], v), k

    z = g.sample_latent(2, generator=torch.Generator().manual_seed(3))
    assert z.shape == (2, latent_dim) and z.dtype == torch.float32
    if latent == "uniform":
        assert 0 <= z.min() and z.max() < 1
    with torch.no_grad():
        expected = ref(z)
    x = g(z)
    assert torch.equal(x, expected)
    assert x.shape == (2, *shape) and not x.requires_grad
    assert -1 <= x.min() and x.max() <= 1


def test_sample_is_seeded_and_deterministic() -> None:
    g = generators.load("lconvnet/wgan-gp-32", random_weights=True)
    a, b, c = g.sample(5, seed=7), g.sample(5, seed=7), g.sample(5, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(
        g.sample_latent(4, torch.Generator().manual_seed(7)), g.sample_latent(4, torch.Generator().manual_seed(7))
    )
    assert g.sample(3, seed=1, device="cpu").device.type == "cpu"


def test_normal_latent_statistics() -> None:
    g = generators.load("mimicry/sngan-32", random_weights=True)
    z = g.sample_latent(4000, torch.Generator().manual_seed(0))
    assert abs(z.mean().item()) < 0.02 and abs(z.std().item() - 1) < 0.02
    assert z.min() < 0


def test_train_keeps_generator_frozen() -> None:
    g = generators.load("lconvnet/wgan-gp-32", random_weights=True)
    parent = nn.ModuleDict({"critic": nn.Linear(2, 2), "gen": g})
    parent.train()
    assert parent["critic"].training
    assert not g.training and not any(m.training for m in g.module.modules())
    g.module.train()  # even a direct call is undone at the next forward
    x = g.sample(2, seed=0)
    assert not any(m.training for m in g.module.modules())
    assert torch.equal(x, g.sample(2, seed=0))


def test_batchnorm_batch_mode_reproduces_train_mode_sampler_without_updating_stats(tmp_path: Path) -> None:
    name = "lconvnet/wgan-gp-32"
    ref = randomise_bn(generator_info(name).builder())
    path = save_published(name, ref, tmp_path / "WGAN_GP_G.pkl")
    g_eval = generators.load(name, checkpoint=path)
    g_batch = generators.load(name, checkpoint=path, batchnorm="batch")
    assert g_batch.batchnorm == "batch"
    before = {k: v.clone() for k, v in g_batch.module.state_dict().items()}
    z = g_batch.sample_latent(64, torch.Generator().manual_seed(0))
    x_batch = g_batch(z)
    g_batch.train(False)
    g_batch(z)
    for k, v in g_batch.module.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed in batch mode"
    # the published sampler: the network left in train mode (here on a copy, whose stats do move)
    published = copy.deepcopy(ref).train()
    with torch.no_grad():
        expected = published(z)
    assert torch.allclose(x_batch, expected, atol=1e-6)
    assert not torch.allclose(x_batch, g_eval(z), atol=1e-3)
    assert not any(p.requires_grad for p in g_batch.parameters())


def test_batch_mode_needs_batchnorm() -> None:
    with pytest.raises(GeneratorLoadError, match="batchnorm"):
        generators.load("digits/wgan-gp-8", batchnorm="batch")


def test_registration_checks_and_normalises_the_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """The metadata of ``register_generator`` are GeneratorInfo's fields: stored as the loaders compare
    them (whole numbers, float ranges, tuples); a bad value, an unknown field or a second registration of
    a name is refused when the family module is imported."""
    from generators import _registry

    monkeypatch.setattr(_registry, "_GENERATORS", dict(_registry._GENERATORS))
    build = _registry.register_generator(
        "test/tiny", latent_dim=4.0, latent="normal", output_shape=[3, 2, 2], output_range=(0, 1), latent_shape=[4]
    )
    build(lambda: nn.Linear(4, 12))
    info = generator_info("test/tiny")
    stored = (info.latent_dim, info.output_shape, info.output_range, info.latent_shape)
    assert stored == (4, (3, 2, 2), (0.0, 1.0), (4,))
    assert isinstance(info.latent_dim, int) and isinstance(info.output_range[0], float)
    with pytest.raises(RuntimeError, match="registered twice"):
        build(lambda: nn.Linear(4, 12))
    bad = [
        ({"latent": "truncated-normal"}, "latent must be one of normal, uniform, uniform-symmetric"),
        ({"latent_shape": (2, 3)}, r"latent_shape \(2, 3\) does not hold latent_dim 4"),
        ({"file_format": "zip"}, "unknown file_format 'zip'"),
        ({"weights": "x.pt"}, "unexpected keyword argument 'weights'"),
    ]
    for change, says in bad:
        metadata = {"latent_dim": 4, "latent": "normal", "output_shape": (3, 2, 2), **change}
        with pytest.raises((RuntimeError, TypeError), match=says):
            _registry.register_generator("test/bad", **metadata)(lambda: nn.Linear(4, 12))


def test_registered_generator_without_weights_is_refused_unless_asked(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError) as info:
        generators.load("lconvnet/wgan-gp-32")
    msg = str(info.value)
    assert "'lconvnet/wgan-gp-32'" in msg and "checkpoint=PATH" in msg and "random_weights=True" in msg
    assert "github.com/ColinQiyangLi/LConvNet" in msg  # where the published weights are
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = generators.load("lconvnet/wgan-gp-32", random_weights=True)
    assert g.random_weights and "random_weights=True" in repr(g)
    path = save_published("lconvnet/wgan-gp-32", generator_info("lconvnet/wgan-gp-32").builder(), tmp_path / "G.pkl")
    assert not generators.load("lconvnet/wgan-gp-32", checkpoint=path).random_weights
    assert not generators.load("digits/wgan-gp-8").random_weights  # bundled weights need no checkpoint
    assert generators.load("digits/wgan-gp-8", random_weights=True).random_weights
    with pytest.raises(GeneratorLoadError, match="random_weights=True and checkpoint="):
        generators.load("lconvnet/wgan-gp-32", checkpoint=path, random_weights=True)


def test_registered_options_are_fixed() -> None:
    g = generators.load(
        "mimicry/sngan-32",
        latent_dim=128,
        latent="normal",
        output_shape=(3, 32, 32),
        output_range=(-1, 1),
        random_weights=True,
    )
    assert g.latent_dim == 128
    with pytest.raises(GeneratorLoadError, match="latent_dim 128"):
        generators.load("mimicry/sngan-32", latent_dim=100, random_weights=True)
    with pytest.raises(GeneratorLoadError, match="latent"):
        generators.load("lconvnet/wgan-gp-32", latent="normal", random_weights=True)


def test_wrong_latent_shape_is_clear() -> None:
    g = generators.load("lconvnet/wgan-gp-32", random_weights=True)
    with pytest.raises(ValueError, match=r"\(N, 62\)"):
        g(torch.zeros(2, 128))


# -- users' own generators -------------------------------------------------------------------------


CUSTOM_OPTS = dict(latent_dim=4, latent="uniform", output_shape=(3, 2, 2), output_range=(0.0, 1.0))


def test_torchscript_generator(tmp_path: Path) -> None:
    ref = randomise_bn(SigmoidGenerator((3, 2, 2))).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated in recent torch
        scripted = torch.jit.script(ref)
    path = tmp_path / "gen.ts"
    scripted.save(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated in recent torch
        g = generators.load(f"torchscript:{path}", sha256=generators.sha256_file(path), **CUSTOM_OPTS)
    assert (g.latent_dim, g.latent, g.output_shape, g.output_range) == (4, "uniform", (3, 2, 2), (0.0, 1.0))
    z = g.sample_latent(5, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(g(z), ref(z))
    assert not any(p.requires_grad for p in g.parameters())
    with pytest.raises(GeneratorLoadError, match="output_shape, output_range"):
        generators.load(f"torchscript:{path}", latent_dim=4, latent="uniform")
    with pytest.raises(GeneratorLoadError, match="TorchScript"):
        generators.load(f"torchscript:{tmp_path / 'nope.ts'}", **CUSTOM_OPTS)


def test_python_callable_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_tiny_gen.py").write_text(
        textwrap.dedent(
            """
        import torch
        from torch import nn

        class TinyGen(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 12)
                self.bn = nn.BatchNorm1d(12)

            def forward(self, z):
                return torch.sigmoid(self.bn(self.fc(z))).view(-1, 3, 2, 2)

        def make():
            return TinyGen()

        NOT_CALLABLE = 3
        """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ref = randomise_bn(SigmoidGenerator((3, 2, 2))).eval()
    ckpt = tmp_path / "tiny.pt"
    torch.save(ref.state_dict(), ckpt)
    g = generators.load("python:my_tiny_gen:make", checkpoint=ckpt, **CUSTOM_OPTS)
    z = g.sample_latent(5, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(g(z), ref(z))
    g2 = generators.load("python:my_tiny_gen:TinyGen", checkpoint=ckpt, batchnorm="batch", **CUSTOM_OPTS)
    assert not torch.allclose(g2(z), g(z))

    with pytest.raises(GeneratorLoadError, match="latent_dim"):
        generators.load("python:my_tiny_gen:make")
    with pytest.raises(GeneratorLoadError, match="import"):
        generators.load("python:no_such_module_xyz:make", **CUSTOM_OPTS)
    with pytest.raises(GeneratorLoadError, match="no attribute"):
        generators.load("python:my_tiny_gen:missing", **CUSTOM_OPTS)
    with pytest.raises(GeneratorLoadError, match="not callable"):
        generators.load("python:my_tiny_gen:NOT_CALLABLE", **CUSTOM_OPTS)
    with pytest.raises(GeneratorLoadError, match="module.path:callable"):
        generators.load("python:my_tiny_gen", **CUSTOM_OPTS)
    with pytest.raises(ValueError, match="output_shape"):
        generators.load("python:my_tiny_gen:make", **{**CUSTOM_OPTS, "output_shape": (3, 4, 4)}).sample(2)


# -- the bundled digits generator -------------------------------------------------------------------


def _digits() -> torch.Tensor:
    from sklearn.datasets import load_digits

    return torch.from_numpy(load_digits().data).float().div(8).sub(1).view(-1, 1, 8, 8)


def test_bundled_digits_files() -> None:
    from generators.architectures.digits import BUNDLED_RECIPE, BUNDLED_WEIGHTS

    assert BUNDLED_WEIGHTS.stat().st_size <= 1_000_000
    assert BUNDLED_WEIGHTS.with_suffix(".png").is_file()
    recipe = json.loads(BUNDLED_RECIPE.read_text())
    assert recipe["sha256"] == generators.sha256_file(BUNDLED_WEIGHTS)
    assert generator_info("digits/wgan-gp-8").sha256 == recipe["sha256"]
    for key in ("seed", "generator_steps", "n_critic", "optimiser", "gp_lambda", "training_seconds", "torch_version"):
        assert key in recipe


def test_bundled_digits_loads_without_warning_and_matches_data() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = generators.load("digits/wgan-gp-8")
    assert (g.latent_dim, g.latent, g.output_shape, g.output_range) == (32, "normal", (1, 8, 8), (-1.0, 1.0))
    x = g.sample(2000, seed=0)
    assert x.shape == (2000, 1, 8, 8) and -1 <= x.min() and x.max() <= 1
    data = _digits()
    assert (x.mean(0) - data.mean(0)).abs().max() < 0.15
    assert (x.std(0) - data.std(0)).abs().max() < 0.2
    assert abs(x.std() - data.std()) < 0.05
    # the check is discriminative: an untrained generator of the same architecture fails it
    untrained = generators.load("digits/wgan-gp-8", random_weights=True)
    untrained.module.load_state_dict(generator_info("digits/wgan-gp-8").builder().state_dict())
    y = untrained.sample(2000, seed=0)
    assert (y.mean(0) - data.mean(0)).abs().max() > 0.15


def test_digits_training_is_seeded() -> None:
    """Two short runs of the training recipe give identical weights (so the shipped file is reproducible)."""
    from generators.train_digits import train

    a, hist = train(steps=3, n_critic=2, log_every=3, seed=0)
    b, _ = train(steps=3, n_critic=2, log_every=3, seed=0)
    assert len(hist) == 1 and set(hist[0]) >= {"critic_gap", "pixel_mean_max_abs_diff"}
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
