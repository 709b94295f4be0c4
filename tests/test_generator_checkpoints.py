"""generators.checkpoints: safe reading, unwrapping, strict keys, and a clear error for each bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from checkpoint_helpers import save_cuda_tagged
from torch import nn

import generators
from generators import GeneratorLoadError, generator_info
from generators.checkpoints import extract_state_dict, matching_architectures, read_checkpoint


class NotATensor:
    """A pickled Python object: ``torch.load(weights_only=True)`` must refuse it."""

    def __init__(self) -> None:
        self.payload = 1


def _save_raw(name: str, path: Path) -> Path:
    torch.save(generator_info(name).builder().state_dict(), path)
    return path


def _lconv32(tmp_path: Path) -> Path:
    return _save_raw("lconvnet/wgan-gp-32", tmp_path / "WGAN_GP_G.pkl")


def test_wrong_architecture_same_family(tmp_path: Path) -> None:
    path = _save_raw("mimicry/sngan-32", tmp_path / "netG.pth")
    with pytest.raises(GeneratorLoadError) as e:
        generators.load("mimicry/sngan-48", checkpoint=path)
    msg = str(e.value)
    assert str(path) in msg and "'mimicry/sngan-48'" in msg
    assert "shape mismatches" in msg and "l1.weight (file 4096x128, expected 18432x128)" in msg
    assert "mimicry/sngan-32" in msg and "mimicry/wgan-gp-32" in msg  # what the file does match


def test_wrong_architecture_other_family(tmp_path: Path) -> None:
    path = _lconv32(tmp_path)
    with pytest.raises(GeneratorLoadError) as e:
        generators.load("mimicry/wgan-gp-32", checkpoint=path)
    msg = str(e.value)
    assert "missing keys (57)" in msg and "l1.weight" in msg
    assert "unexpected keys (" in msg and "fc.0.weight" in msg
    assert "match registered generator(s) lconvnet/wgan-gp-32" in msg


def test_unexpected_and_missing_key(tmp_path: Path) -> None:
    sd = generator_info("lconvnet/wgan-gp-32").builder().state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["deconv.3.bias"]
    torch.save(sd, tmp_path / "g.pt")
    with pytest.raises(GeneratorLoadError) as e:
        generators.load("lconvnet/wgan-gp-32", checkpoint=tmp_path / "g.pt")
    msg = str(e.value)
    assert "missing keys (1): deconv.3.bias" in msg and "unexpected keys (1): extra.weight" in msg
    assert "match no registered architecture" in msg


# A message about a file that is not a checkpoint must never call it pickled objects, nor advise
# loading it with weights_only=False (which would run whatever the file holds).
UNSAFE_ADVICE = ("pickled", "weights_only=False", "allow_pickle", "trust")


def _no_unsafe_advice(msg: str) -> None:
    for word in UNSAFE_ADVICE:
        assert word not in msg, f"{word!r} in {msg!r}"


def test_truncated_file(tmp_path: Path) -> None:
    full = _lconv32(tmp_path).read_bytes()
    for size, says in ((0, "an empty file (0 bytes)"), (100, "cut short"), (len(full) // 2, "cut short"),
                       (len(full) - 10, "cut short")):  # fmt: skip
        path = tmp_path / f"trunc{size}.pkl"
        path.write_bytes(full[:size])
        with pytest.raises(GeneratorLoadError, match="cannot be read as a PyTorch checkpoint") as e:
            generators.load("lconvnet/wgan-gp-32", checkpoint=path)
        assert str(path) in str(e.value) and says in str(e.value)
        _no_unsafe_advice(str(e.value))


@pytest.mark.parametrize(
    "content,says",
    [
        (bytes(range(256)) * 8, "binary data in no format wdist knows (first bytes 00 01 02 03"),
        (b"generator weights\nsecond line\n", "a text file (first line 'generator weights')"),
        (b"<!DOCTYPE html><html><body>Not Found</body></html>", "an HTML page"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "a PNG image"),
    ],
)
def test_a_file_that_is_no_checkpoint_is_described_not_called_pickled(
    tmp_path: Path, content: bytes, says: str
) -> None:
    """Random bytes, text or an image handed over as a checkpoint: the message says what the file
    looks like; torch's own guess ("unsupported pickle opcode", load with weights_only=False) is
    not passed on."""
    path = tmp_path / "G.pth"
    path.write_bytes(content)
    with pytest.raises(GeneratorLoadError) as e:
        read_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg and "cannot be read as a PyTorch checkpoint" in msg and says in msg
    _no_unsafe_advice(msg)


def test_a_zip_that_is_no_torch_archive_is_named_as_such(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "G.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("notes.txt", "hello")
    with pytest.raises(GeneratorLoadError) as e:
        read_checkpoint(path)
    assert "a ZIP archive holding notes.txt" in str(e.value) and str(path) in str(e.value)
    _no_unsafe_advice(str(e.value))


def test_pickled_object_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model_state_dict": {"l1.weight": torch.zeros(1)}, "extra": NotATensor()}, path)
    with pytest.raises(GeneratorLoadError, match="weights_only=True") as e:
        generators.load("mimicry/sngan-32", checkpoint=path)
    msg = str(e.value)
    assert "Refused" in msg and f"{__name__}.NotATensor" in msg and "holds pickled Python objects" in msg
    assert "weights_only=False" not in msg  # never advised: it would run the file's code
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")  # a whole pickled module
    with pytest.raises(GeneratorLoadError, match="Refused") as e:
        generators.load("lconvnet/wgan-gp-32", checkpoint=tmp_path / "module.pt")
    assert "torch.nn.modules.linear.Linear" in str(e.value) and "state_dict()" in str(e.value)


def test_sha256(tmp_path: Path) -> None:
    path = _lconv32(tmp_path)
    good = generators.sha256_file(path)
    g = generators.load("lconvnet/wgan-gp-32", checkpoint=path, sha256=good.upper())
    assert g.latent_dim == 62
    bad = "0" * 64
    with pytest.raises(GeneratorLoadError) as e:
        generators.load("lconvnet/wgan-gp-32", checkpoint=path, sha256=bad)
    assert good in str(e.value) and bad in str(e.value) and str(path) in str(e.value)
    with pytest.raises(GeneratorLoadError, match="not a sha256 hex digest"):
        generators.load("lconvnet/wgan-gp-32", checkpoint=path, sha256="abc")
    with pytest.raises(GeneratorLoadError, match="no checkpoint"):
        generators.load("lconvnet/wgan-gp-32", sha256=good)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "netG.pth"
    with pytest.raises(GeneratorLoadError, match="does not exist") as e:
        generators.load("mimicry/sngan-32", checkpoint=path)
    assert str(path) in str(e.value)
    with pytest.raises(GeneratorLoadError, match="not a regular file"):
        generators.load("mimicry/sngan-32", checkpoint=tmp_path)


def test_torchscript_file_given_as_checkpoint(tmp_path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(nn.Linear(2, 2)).save(str(tmp_path / "ts.pt"))
    with pytest.raises(GeneratorLoadError, match="TorchScript archive"):
        generators.load("lconvnet/wgan-gp-32", checkpoint=tmp_path / "ts.pt")


def test_wrapped_and_prefixed_state_dicts(tmp_path: Path) -> None:
    sd = generator_info("lconvnet/wgan-gp-32").builder().state_dict()
    for i, obj in enumerate(
        [
            sd,
            {"model_state_dict": sd, "optimizer_state_dict": {}, "global_step": 5},
            {"state_dict": sd, "epoch": 3},
            {f"module.{k}": v for k, v in sd.items()},
        ]
    ):
        torch.save(obj, tmp_path / f"{i}.pt")
        g = generators.load("lconvnet/wgan-gp-32", checkpoint=tmp_path / f"{i}.pt")
        assert torch.equal(g.module.fc[0].weight, sd["fc.0.weight"])
    with pytest.raises(GeneratorLoadError, match="not a generator state dict") as e:
        extract_state_dict({"global_step": 5, "optimizer": {}}, "x.pt")
    assert "'global_step'" in str(e.value)
    with pytest.raises(GeneratorLoadError, match="not a generator state dict"):
        extract_state_dict([torch.zeros(1)], "x.pt")


def test_torch_load_uses_map_location_and_weights_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _lconv32(tmp_path)
    calls: list[dict] = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    generators.load("lconvnet/wgan-gp-32", checkpoint=path)
    generators.load("lconvnet/wgan-gp-32", checkpoint=path, device="cpu")
    read_checkpoint(path)
    assert len(calls) == 3
    for kw in calls:
        assert kw["weights_only"] is True
        assert torch.device(kw["map_location"]) == torch.device("cpu")


def test_cuda_saved_file_loads_on_cpu(tmp_path: Path) -> None:
    """A synthesised CUDA-tagged file (:func:`save_cuda_tagged`), raw and Mimicry-wrapped: without
    CUDA only map_location makes it loadable, and the loader maps it to the CPU."""
    sd = generator_info("lconvnet/wgan-gp-32").builder().state_dict()
    raw = save_cuda_tagged(sd, tmp_path / "WGAN_GP_G.pkl")
    wrapped = save_cuda_tagged({"model_state_dict": sd, "global_step": 100}, tmp_path / "netG.pth")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="deserialize object on a CUDA device"):
            torch.load(raw, map_location=None, weights_only=True)
    for path in (raw, wrapped):
        g = generators.load("lconvnet/wgan-gp-32", checkpoint=path)
        assert g.device.type == "cpu" and all(t.device.type == "cpu" for t in g.state_dict().values())
        assert all(torch.equal(g.module.state_dict()[k], v) for k, v in sd.items())


def test_matching_architectures() -> None:
    sd = generator_info("mimicry/sngan-48").builder().state_dict()
    exact, same_keys = matching_architectures(sd)
    assert exact == ["mimicry/sngan-48", "mimicry/wgan-gp-48"]
    assert same_keys == ["mimicry/sngan-32", "mimicry/wgan-gp-32"]
