"""Image sources on tiny fake data sets in the published file formats (no network)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from wdist.sources import (
    CIFAR10,
    STL10,
    Digits,
    FiniteSource,
    ImageFolder,
    SourceError,
    TensorFile,
    check_compatible,
)


def _images(n: int, c: int, h: int, w: int, seed: int) -> np.ndarray:
    """uint8 images (N, C, H, W) holding both 0 and 255, so the range map's ends are exercised."""
    a = np.random.default_rng(seed).integers(0, 256, size=(n, c, h, w), dtype=np.uint8)
    a[0, 0, 0, 0], a[-1, -1, -1, -1] = 0, 255
    return a


# ---------------------------------------------------------------------------------------------
# fixtures in the published formats
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """cifar-10-batches-py/ with data_batch_1..5 (4 images each), test_batch (6), batches.meta.

    Each batch is a pickled dict as published: 'data' uint8 (N, 3072) rows holding the R, G and B
    planes (32 x 32 each, row-major), 'labels', 'batch_label', 'filenames'.
    """
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    arrays = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        n = 6 if name == "test_batch" else 4
        imgs = _images(n, 3, 32, 32, seed=k)
        arrays[name] = imgs
        entry = {
            "batch_label": f"fake {name}",
            "labels": [int(i % 10) for i in range(n)],
            "data": imgs.reshape(n, 3072),
            "filenames": [f"img_{i}.png" for i in range(n)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    meta = {"num_cases_per_batch": 4, "label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return root, arrays


@pytest.fixture(scope="module")
def stl_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """stl10_binary/test_X.bin (5 images) and test_y.bin, each image stored channel by channel, column-major."""
    root = tmp_path_factory.mktemp("stl")
    folder = root / "stl10_binary"
    folder.mkdir()
    imgs = _images(5, 3, 96, 96, seed=7)
    np.ascontiguousarray(imgs.transpose(0, 1, 3, 2)).tofile(folder / "test_X.bin")
    np.arange(1, 6, dtype=np.uint8).tofile(folder / "test_y.bin")
    return root, imgs


def _patch_torchvision_integrity(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision checks the md5 of the real files, which a fake set cannot match; skip that only."""
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.stl10 as tv_stl

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_stl.STL10, "_check_integrity", lambda self: True)


def _expected(imgs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(imgs).float() / 255.0 * 2.0 - 1.0


# ---------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------


def test_cifar10_test_and_train(cifar_root) -> None:
    root, arrays = cifar_root
    test = CIFAR10(str(root))
    assert len(test) == 6 and test.shape == (3, 32, 32) and test.domain == (-1.0, 1.0)
    assert test.data.dtype == torch.float32
    assert test.data.min().item() == -1.0 and test.data.max().item() == 1.0
    assert torch.allclose(test.data, _expected(arrays["test_batch"]), atol=1e-6)
    train = CIFAR10(str(root), train=True, limit=10)
    want = np.concatenate([arrays[f"data_batch_{i}"] for i in (1, 2, 3)])[:10]
    assert len(train) == 10 and torch.allclose(train.data, _expected(want), atol=1e-6)
    assert "CIFAR-10 test" in test.describe() and "3x32x32" in test.describe()


def test_cifar10_fixture_matches_torchvision_reader(cifar_root, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fixture is in the published format: torchvision reads the same pixels.
    from torchvision.datasets import CIFAR10 as TV

    _patch_torchvision_integrity(monkeypatch)
    root, _ = cifar_root
    tv = TV(str(root), train=False, download=False)
    assert tv.classes == [f"class{i}" for i in range(10)]
    want = _expected(tv.data.transpose(0, 3, 1, 2))
    assert torch.allclose(CIFAR10(str(root)).data, want, atol=1e-6)


def test_cifar10_range_crop_resize(cifar_root) -> None:
    root, _ = cifar_root
    src = CIFAR10(str(root), range=(0.0, 1.0), crop=24, resize=64)
    assert src.shape == (3, 64, 64) and src.data.shape == (6, 3, 64, 64)
    assert src.domain == (0.0, 1.0)
    assert src.data.min() >= 0.0 and src.data.max() <= 1.0
    assert "centre crop 24, resized to 64" in src.describe()
    small = CIFAR10(str(root), resize=16)
    assert small.shape == (3, 16, 16)
    with pytest.raises(SourceError, match="crop=40 is larger"):
        CIFAR10(str(root), crop=40)


def test_cifar10_missing_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        CIFAR10(str(tmp_path / "nowhere"))
    msg = str(err.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in msg
    assert "test_batch" in msg and "download=True" in msg and "cifar-10-python.tar.gz" in msg


def test_cifar10_failed_download_names_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(SourceError) as err:
        CIFAR10(str(tmp_path), download=True)
    msg = str(err.value)
    assert "download failed" in msg and "name resolution" in msg
    assert str(tmp_path / "cifar-10-batches-py") in msg


# ---------------------------------------------------------------------------------------------
# STL-10
# ---------------------------------------------------------------------------------------------


def test_stl10(stl_root, monkeypatch: pytest.MonkeyPatch) -> None:
    root, imgs = stl_root
    src = STL10(str(root))
    assert len(src) == 5 and src.shape == (3, 96, 96)
    assert torch.allclose(src.data, _expected(imgs), atol=1e-6)
    assert src.data.min().item() == -1.0 and src.data.max().item() == 1.0
    # torchvision's reader agrees on the orientation (the binaries are column-major).
    from torchvision.datasets import STL10 as TV

    _patch_torchvision_integrity(monkeypatch)
    tv = TV(str(root), split="test")
    assert torch.allclose(src.data, _expected(tv.data), atol=1e-6)
    resized = STL10(str(root), split="test", resize=48, limit=2)
    assert resized.data.shape == (2, 3, 48, 48)


def test_stl10_missing_split_names_the_file(stl_root) -> None:
    root, _ = stl_root
    with pytest.raises(SourceError) as err:
        STL10(str(root), split="unlabeled")
    msg = str(err.value)
    assert "unlabeled_X.bin" in msg and str(root / "stl10_binary") in msg and "download=True" in msg


# ---------------------------------------------------------------------------------------------
# image folders, tensor files, digits
# ---------------------------------------------------------------------------------------------


def test_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    imgs = _images(4, 3, 10, 12, seed=3)
    for i, a in enumerate(imgs):
        sub = tmp_path / f"class{i % 2}"
        sub.mkdir(exist_ok=True)
        Image.fromarray(a.transpose(1, 2, 0)).save(sub / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    src = ImageFolder(str(tmp_path))
    assert len(src) == 4 and src.shape == (3, 10, 12)
    order = [0, 2, 1, 3]  # sorted paths: class0/0, class0/2, class1/1, class1/3
    assert torch.allclose(src.data, _expected(imgs[order]), atol=1e-6)
    assert src.data.min().item() == -1.0 and src.data.max().item() == 1.0
    assert ImageFolder(str(tmp_path), crop=8, resize=4).shape == (3, 4, 4)
    assert ImageFolder(str(tmp_path), grayscale=True).shape == (1, 10, 12)
    # Mixed sizes need resize.
    Image.fromarray(np.zeros((6, 6, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(SourceError, match="different sizes"):
        ImageFolder(str(tmp_path))
    mixed = ImageFolder(str(tmp_path), resize=5)
    assert mixed.data.shape == (5, 3, 5, 5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no image files"):
        ImageFolder(str(tmp_path / "empty"))
    with pytest.raises(SourceError, match="is not a folder"):
        ImageFolder(str(tmp_path / "missing"))


def test_tensor_files(tmp_path: Path) -> None:
    imgs = _images(6, 3, 8, 8, seed=4)
    # .npy, channels last, uint8 -> 0..255 mapped onto [-1, 1]
    np.save(tmp_path / "a.npy", imgs.transpose(0, 2, 3, 1))
    a = TensorFile(str(tmp_path / "a.npy"))
    assert a.shape == (3, 8, 8) and torch.allclose(a.data, _expected(imgs), atol=1e-6)
    assert a.data.min().item() == -1.0 and a.data.max().item() == 1.0
    # .npz with two arrays: key required
    np.savez(tmp_path / "b.npz", x=imgs, y=np.zeros(6))
    with pytest.raises(SourceError, match="several arrays"):
        TensorFile(str(tmp_path / "b.npz"))
    with pytest.raises(SourceError, match="key='z'"):
        TensorFile(str(tmp_path / "b.npz"), key="z")
    b = TensorFile(str(tmp_path / "b.npz"), key="x", resize=4, limit=3)
    assert b.data.shape == (3, 3, 4, 4)
    # .pt float in [0, 1], with its value range stated, mapped onto [0, 2]
    t = torch.from_numpy(imgs).float() / 255.0
    torch.save({"images": t}, tmp_path / "c.pt")
    c = TensorFile(str(tmp_path / "c.pt"), value_range=(0.0, 1.0), range=(0.0, 2.0))
    assert c.domain == (0.0, 2.0)
    assert c.data.min().item() == 0.0 and c.data.max().item() == 2.0
    # float outside the assumed range is an error that says what to set
    torch.save(t, tmp_path / "d.pt")
    with pytest.raises(SourceError, match="value_range"):
        TensorFile(str(tmp_path / "d.pt"), range=(-1.0, 0.5))
    # (N, H, W) gets one channel
    np.save(tmp_path / "g.npy", imgs[:, 0])
    assert TensorFile(str(tmp_path / "g.npy")).shape == (1, 8, 8)


def test_tensor_file_nan_names_file_and_count(tmp_path: Path) -> None:
    x = np.zeros((4, 1, 5, 5), dtype=np.float32)
    x[0, 0, 0, :3] = np.nan
    x[2, 0, 1, 1] = np.inf
    path = tmp_path / "bad.npy"
    np.save(path, x)
    with pytest.raises(SourceError) as err:
        TensorFile(str(path))
    assert str(path) in str(err.value) and "4 non-finite" in str(err.value)
    with pytest.raises(SourceError, match="no file at"):
        TensorFile(str(tmp_path / "absent.npy"))
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(SourceError, match="unsupported suffix"):
        TensorFile(str(tmp_path / "x.csv"))


def test_digits() -> None:
    d = Digits()
    assert len(d) == 1797 and d.shape == (1, 8, 8) and d.data.dtype == torch.float32
    assert d.data.min().item() == -1.0 and d.data.max().item() == 1.0
    u = Digits(range=(0.0, 1.0), limit=100)
    assert len(u) == 100 and u.data.min().item() == 0.0 and u.data.max().item() == 1.0
    assert Digits(resize=16).shape == (1, 16, 16)
    assert "digits (1797 images, 1x8x8 in [-1, 1])" == d.describe()


def test_check_compatible_names_both(cifar_root) -> None:
    root, _ = cifar_root
    cifar, digits = CIFAR10(str(root)), Digits()
    with pytest.raises(SourceError) as err:
        check_compatible(cifar, digits)
    assert cifar.describe() in str(err.value) and digits.describe() in str(err.value)
    with pytest.raises(SourceError, match=r"\(0.0, 1.0\)"):
        check_compatible(Digits(range=(0.0, 1.0)), Digits())
    check_compatible(CIFAR10(str(root), resize=8), CIFAR10(str(root), train=True, resize=8))


def test_split_is_disjoint_and_deterministic(tmp_path: Path) -> None:
    x = np.arange(50, dtype=np.float32).reshape(50, 1) / 49.0  # distinct items in [0, 1]
    np.save(tmp_path / "v.npy", x)
    src = TensorFile(str(tmp_path / "v.npy"), value_range=(0.0, 1.0))
    train, held = src.split(10, torch.Generator().manual_seed(0))
    assert isinstance(train, FiniteSource)
    assert len(train) == 40 and held.shape == (10, 1)
    assert train.domain == src.domain and train.shape == src.shape
    assert not set(train.data.ravel().tolist()) & set(held.ravel().tolist())
    assert sorted(train.data.ravel().tolist() + held.ravel().tolist()) == sorted(src.data.ravel().tolist())
    _, held2 = src.split(10, torch.Generator().manual_seed(0))
    assert torch.equal(held, held2)
    assert set(train.sample(100, torch.Generator().manual_seed(1)).ravel().tolist()) <= set(train.data.ravel().tolist())
    with pytest.raises(SourceError, match="n_heldout=50.*50 items"):
        src.split(50, torch.Generator())
    with pytest.raises(SourceError, match="n_heldout=0"):
        src.split(0, torch.Generator())
