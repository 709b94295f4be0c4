"""Image data sets as finite sources, mapped into one domain.

Every image source holds all its items as one float32 tensor of shape ``(N, C, H, W)`` with values
in ``range`` (``(-1.0, 1.0)`` by default). The input values (0..255 for 8-bit images, 0..16 for
scikit-learn's digits, or a stated range for float tensor files) are mapped affinely onto
``range``, so the input's extremes land exactly on its ends. Then, if asked: **centre crop to
``crop`` x ``crop``, then bilinear (antialiased) resize to ``resize`` x ``resize``**.

W1 between two image sources is the Euclidean distance on the flattened ``C*H*W`` tensors in that
range at that resolution; state both with any number you report.

Data files are read directly in their published formats with numpy (the CIFAR-10 python pickles,
the STL-10 binaries), in one batched conversion; torchvision is used only to download them.
"""

from __future__ import annotations

import builtins
import math
import pickle
import zipfile
from pathlib import Path
from typing import Callable, Literal, Optional, Union

import numpy as np
import torch
from jsonargparse.typing import PositiveInt
from torch import Tensor

from generators.filetypes import (
    describe_file,
    is_legacy_torch_file,
    is_npy,
    is_torch_archive,
    read_npy_header,
    refused_globals,
)
from wdist.sources.base import FiniteSource, SourceError
from wdist.sources.registry import register_source
from wdist.sources.transforms import check_range, check_size, to_domain

__all__ = ["ImageSource", "CIFAR10", "STL10", "ImageFolder", "TensorFile", "Digits", "IMAGE_EXTENSIONS"]

#: File name endings :class:`ImageFolder` reads (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageSource(FiniteSource):
    """Common part of the image sources: the range map, crop, resize and ``limit``.

    Subclasses call :meth:`_set_data` once with the raw ``(N, C, H, W)`` array and its input range.
    """

    name: str = "images"

    def _configure(
        self, range: tuple[float, float], resize: Optional[int], crop: Optional[int], limit: Optional[int]
    ) -> None:
        self.domain = check_range("range", range)
        self.resize = check_size("resize", resize)
        self.crop = check_size("crop", crop)
        self.limit = check_size("limit", limit)

    def _set_data(self, raw: Union[np.ndarray, Tensor], in_range: tuple[float, float]) -> None:
        if self.limit is not None:
            raw = raw[: self.limit]
        _check_count(self.name, tuple(raw.shape))
        self.raw_shape = tuple(int(s) for s in raw.shape[1:])
        self.input_range = in_range
        self._data = to_domain(raw, in_range, self.domain, crop=self.crop, size=self.resize)
        self.shape = tuple(int(s) for s in self._data.shape[1:])

    @property
    def data(self) -> Tensor:
        return self._data

    def describe(self) -> str:
        shape = "x".join(str(s) for s in self.shape)
        steps = []
        if self.crop is not None:
            steps.append(f"centre crop {self.crop}")
        if self.resize is not None:
            steps.append(f"resized to {self.resize}")
        how = f", {', '.join(steps)}" if steps else ""
        lo, hi = self.domain
        return f"{self.name} ({len(self)} images, {shape} in [{lo:g}, {hi:g}]{how})"


def _check_count(what: str, shape: tuple[int, ...], limit: Optional[int] = None) -> None:
    """Raise :class:`SourceError` naming ``what`` when ``shape`` ``(N, ...)`` holds no item."""
    if shape[0] < 1:
        cut = f" after limit={limit}" if limit is not None else ""
        raise SourceError(
            f"{what} holds no items{cut} (array shape {shape}); expected an array of shape (N, ...) with N >= 1 "
            "items (an estimate needs at least 3, thousands are usual)."
        )


def _missing(
    dataset: str, folder: Path, files: list[str], archive: str, url: str, root: Path, why: str = ""
) -> SourceError:
    absent = [f for f in files if not (folder / f).is_file()]
    return SourceError(
        f"{dataset} not found: expected {', '.join(absent or files)} in the folder {folder.resolve()}{why}. "
        f"Get it with download=True on a machine with internet access, or download {archive} from {url} "
        f"and extract it into {root.resolve()} (it unpacks to {folder.name}/)."
    )


def _ensure_files(
    dataset: str, folder: Path, files: list[str], download: Optional[Callable[[], object]], archive: str, url: str,
    root: Path,
) -> None:
    """Raise :class:`SourceError` (naming the missing files, the archive and where to put it) unless
    every one of ``files`` is in ``folder``, after calling ``download`` (torchvision's download into
    ``root``) when it is given and some are missing."""
    if all((folder / f).is_file() for f in files):
        return
    if download is not None:
        try:
            download()
        except Exception as err:  # offline, checksum mismatch, disk full...
            raise _missing(dataset, folder, files, archive, url, root, why=f" (download failed: {err})") from err
    if not all((folder / f).is_file() for f in files):
        raise _missing(dataset, folder, files, archive, url, root)


@register_source
class CIFAR10(ImageSource):
    """CIFAR-10 images (3 x 32 x 32), read from the published python pickles.

    Parameters
    ----------
    root : str
        Folder that contains (or will contain) ``cifar-10-batches-py/``.
    train : bool
        The 50 000 training images (``data_batch_1..5``) when true, else the 10 000 test images
        (``test_batch``).
    download : bool
        Fetch and extract the archive with torchvision when the files are missing.
    limit : int, optional
        Keep only the first ``limit`` images (in file order).
    range : (float, float)
        Target value range; pixel values 0..255 map onto it.
    resize : int, optional
        Resize to ``resize`` x ``resize`` (bilinear, antialiased), after the crop.
    crop : int, optional
        Centre crop to ``crop`` x ``crop``, before the resize.
    """

    name = "CIFAR-10"
    base_folder = "cifar-10-batches-py"
    url = "https://www.cs.toronto.edu/~kriz/cifar.html"
    archive = "cifar-10-python.tar.gz"

    def __init__(
        self,
        root: str,
        train: bool = False,
        download: bool = False,
        limit: Optional[PositiveInt] = None,
        range: tuple[float, float] = (-1.0, 1.0),
        resize: Optional[PositiveInt] = None,
        crop: Optional[PositiveInt] = None,
    ) -> None:
        self._configure(range, resize, crop, limit)
        self.root = Path(root).expanduser()
        self.train = bool(train)
        folder = self.root / self.base_folder
        files = [f"data_batch_{i}" for i in builtins.range(1, 6)] if self.train else ["test_batch"]

        def fetch() -> None:
            from torchvision.datasets import CIFAR10 as _TV

            _TV(str(self.root), train=self.train, download=True)

        _ensure_files("CIFAR-10", folder, files, fetch if download else None, self.archive, self.url, self.root)
        self.name = f"CIFAR-10 {'train' if self.train else 'test'}"
        arrays = []
        for f in files:
            path = folder / f
            try:
                with open(path, "rb") as fh:
                    entry = pickle.load(fh, encoding="latin1")
                data = entry["data"] if "data" in entry else entry[b"data"]
            except Exception as err:
                raise SourceError(f"cannot read the CIFAR-10 batch {path}: {err}") from err
            data = np.asarray(data, dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise SourceError(f"{path}: expected 'data' of shape (N, 3072) uint8, got {data.shape}")
            arrays.append(data)
            if self.limit is not None and sum(a.shape[0] for a in arrays) >= self.limit:
                break
        raw = np.concatenate(arrays).reshape(-1, 3, 32, 32)  # rows are channel-major: R, G, B planes
        self._set_data(raw, (0.0, 255.0))


@register_source
class STL10(ImageSource):
    """STL-10 images (3 x 96 x 96), read from the published binaries ``stl10_binary/*_X.bin``.

    Parameters
    ----------
    root : str
        Folder that contains (or will contain) ``stl10_binary/``.
    split : {"train", "test", "unlabeled"}
        5 000 train, 8 000 test or 100 000 unlabeled images (the unlabeled file is memory-mapped,
        so with ``limit`` only the first images are read).
    download : bool
        Fetch and extract the archive (2.6 GB) with torchvision when the file is missing.
    limit : int, optional
        Keep only the first ``limit`` images (in file order).
    range, resize, crop
        As for :class:`CIFAR10` (crop, then resize).
    """

    name = "STL-10"
    base_folder = "stl10_binary"
    url = "https://cs.stanford.edu/~acoates/stl10/"
    archive = "stl10_binary.tar.gz"
    _files = {"train": "train_X.bin", "test": "test_X.bin", "unlabeled": "unlabeled_X.bin"}

    def __init__(
        self,
        root: str,
        split: Literal["train", "test", "unlabeled"] = "test",
        download: bool = False,
        limit: Optional[PositiveInt] = None,
        range: tuple[float, float] = (-1.0, 1.0),
        resize: Optional[PositiveInt] = None,
        crop: Optional[PositiveInt] = None,
    ) -> None:
        self._configure(range, resize, crop, limit)
        if split not in self._files:
            raise SourceError(f"STL10 split must be one of {sorted(self._files)}, got split={split!r}")
        self.root = Path(root).expanduser()
        self.split = split
        folder = self.root / self.base_folder
        files = [self._files[split]]

        def fetch() -> None:
            from torchvision.datasets import STL10 as _TV

            _TV(str(self.root), split=split, download=True)

        _ensure_files("STL-10", folder, files, fetch if download else None, self.archive, self.url, self.root)
        path = folder / files[0]
        self.name = f"STL-10 {split}"
        item = 3 * 96 * 96
        size = path.stat().st_size
        if size == 0 or size % item:
            raise SourceError(f"{path}: size {size} bytes is not a positive multiple of 3*96*96 = {item}")
        raw = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, 3, 96, 96)
        # The binaries store each channel column-major: transpose to (C, H, W).
        raw = raw.transpose(0, 1, 3, 2)
        self._set_data(raw, (0.0, 255.0))


@register_source
class ImageFolder(ImageSource):
    """All images under a folder (recursively: a flat folder or torchvision's ``class/xxx.png`` layout), as RGB.

    Files are read in sorted path order. Images of different sizes need ``resize`` (each is then
    cropped and resized on its own, then stacked); otherwise all must share one size.

    Parameters
    ----------
    root : str
        The folder.
    limit : int, optional
        Keep only the first ``limit`` images (sorted path order).
    grayscale : bool
        Read as one channel (``L``) instead of RGB.
    range, resize, crop
        As for :class:`CIFAR10` (crop, then resize); pixel values 0..255 map onto ``range``.
    """

    def __init__(
        self,
        root: str,
        limit: Optional[PositiveInt] = None,
        grayscale: bool = False,
        range: tuple[float, float] = (-1.0, 1.0),
        resize: Optional[PositiveInt] = None,
        crop: Optional[PositiveInt] = None,
    ) -> None:
        from PIL import Image

        self._configure(range, resize, crop, limit)
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise SourceError(
                f"ImageFolder: {str(self.root)!r} is not a folder (resolved to {str(self.root.resolve())!r}; a "
                "relative path in a YAML config is read from the config file's folder, one given on the command line "
                "from the working directory)."
            )
        paths = sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not paths:
            raise SourceError(f"ImageFolder: no image files ({', '.join(IMAGE_EXTENSIONS)}) under {self.root}")
        if self.limit is not None:
            paths = paths[: self.limit]
        self.name = f"ImageFolder {self.root}"
        mode = "L" if grayscale else "RGB"
        arrays = []
        for p in paths:  # decoding files is per item by nature
            try:
                with Image.open(p) as im:
                    a = np.asarray(im.convert(mode), dtype=np.uint8)
            except Exception as err:
                raise SourceError(f"ImageFolder: cannot read image {p}: {err}") from err
            arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        sizes = sorted({a.shape[1:] for a in arrays})
        if len(sizes) == 1:
            self._set_data(np.stack(arrays), (0.0, 255.0))
            return
        if self.resize is None:
            raise SourceError(
                f"ImageFolder: images under {self.root} have different sizes {sizes[:5]}"
                f"{' ...' if len(sizes) > 5 else ''}; set resize (and crop) to bring them to one size"
            )
        mapped = [to_domain(a[None], (0.0, 255.0), self.domain, crop=self.crop, size=self.resize) for a in arrays]
        self.raw_shape = None
        self.input_range = (0.0, 255.0)
        self._data = torch.cat(mapped)
        self.shape = tuple(int(s) for s in self._data.shape[1:])


@register_source
class TensorFile(ImageSource):
    """Items stored in a ``.npy``, ``.npz`` or ``.pt``/``.pth`` file.

    The array has shape ``(N, *item)``; image items may be ``(C, H, W)``, ``(H, W, C)`` (see
    ``channels_last``) or ``(H, W)`` (one channel added). Non-image items (e.g. ``(N, d)``
    vectors) are allowed when neither crop nor resize is set.

    Parameters
    ----------
    path : str
        The file.
    key : str, optional
        Array name inside an ``.npz`` or a dict saved with ``torch.save``; required when there are
        several.
    value_range : (float, float), optional
        The input range mapped onto ``range``. Defaults: ``(0, 255)`` for uint8; for float data,
        the data are taken to be in ``range`` already (and checked).
    channels_last : bool, optional
        Whether 4-D data are ``(N, H, W, C)``; when ``None``, guessed: channels first if
        ``shape[1]`` is 1, 3 or 4, else channels last if ``shape[-1]`` is.
    limit : int, optional
        Keep only the first ``limit`` items.
    range, resize, crop
        As for :class:`CIFAR10` (crop, then resize).

    Raises
    ------
    SourceError
        If the file is missing or unreadable, the key is missing or ambiguous, the data hold NaN
        or Inf (the message names the file and the count), or values lie outside ``value_range``.
    """

    def __init__(
        self,
        path: str,
        key: Optional[str] = None,
        value_range: Optional[tuple[float, float]] = None,
        channels_last: Optional[bool] = None,
        limit: Optional[PositiveInt] = None,
        range: tuple[float, float] = (-1.0, 1.0),
        resize: Optional[PositiveInt] = None,
        crop: Optional[PositiveInt] = None,
    ) -> None:
        self._configure(range, resize, crop, limit)
        self.path = Path(path).expanduser()
        self.name = f"TensorFile {self.path.name}"
        arr = self._load(key)
        if arr.ndim < 2:
            raise SourceError(f"{self.path}: need an array of shape (N, ...), got shape {arr.shape}")
        if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise SourceError(f"{self.path}: unsupported dtype {arr.dtype} (need uint8, integers or floats)")
        if self.limit is not None:
            arr = arr[: self.limit]
        _check_count(f"TensorFile {self.path}", tuple(arr.shape), self.limit)
        if np.issubdtype(arr.dtype, np.floating):
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            if bad:
                raise SourceError(f"{self.path}: {bad} non-finite values (NaN or Inf) in the data")
        # Layout.
        if arr.ndim == 3:
            arr = arr[:, None]
        elif arr.ndim == 4:
            last = channels_last
            if last is None:
                last = arr.shape[1] not in (1, 3, 4) and arr.shape[-1] in (1, 3, 4)
            if last:
                arr = arr.transpose(0, 3, 1, 2)
        elif self.crop is not None or self.resize is not None:
            raise SourceError(f"{self.path}: crop and resize need images, got items of shape {arr.shape[1:]}")
        # Input range.
        if value_range is not None:
            in_range = check_range("value_range", value_range)
        elif arr.dtype == np.uint8:
            in_range = (0.0, 255.0)
        else:
            in_range = self.domain
        lo, hi = float(arr.min()), float(arr.max())
        if lo < in_range[0] or hi > in_range[1]:
            default = value_range is None and arr.dtype != np.uint8
            if arr.dtype == np.uint8 and value_range is not None:  # e.g. [0, 1] copied from a float example
                advice = (
                    f" (the file holds uint8 data, {lo:g}..{hi:g}: leave value_range out, and uint8 values are "
                    "read as 0..255 and mapped into `range`)"
                )
            elif default:
                advice = " (float data are taken to be in `range` unless value_range is given)"
            else:
                advice = f" (give the range the values are in, e.g. value_range: [{lo:g}, {hi:g}])"
            raise SourceError(
                f"{self.path}: values span [{lo:g}, {hi:g}], outside the input range [{in_range[0]:g}, "
                f"{in_range[1]:g}]{advice}."
            )
        if np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.uint8:
            arr = arr.astype(np.float64)
        self._set_data(np.ascontiguousarray(arr), in_range)

    def _load(self, key: Optional[str]) -> np.ndarray:
        p = self.path
        if not p.is_file():
            raise SourceError(
                f"TensorFile: no file at {str(p)!r} (resolved to {str(p.resolve())!r}; a relative path in a YAML "
                "config is read from the config file's folder, one given on the command line from the working "
                "directory). Expected a .npy, .npz or .pt file of shape (N, ...)."
            )
        suffix = p.suffix.lower()
        if suffix == ".npy":
            return self._read_npy()
        if suffix == ".npz":
            return self._read_npz(key)
        if suffix in (".pt", ".pth"):
            return self._read_torch(key)
        raise SourceError(f"TensorFile: {p} has an unsupported suffix {suffix!r} (use .npy, .npz, .pt or .pth)")

    def _not_a(self, what: str, expected: str) -> SourceError:
        return SourceError(
            f"TensorFile: {self.path} cannot be read as {what}: it is {describe_file(self.path)}. {expected}"
        )

    def _read_npy(self) -> np.ndarray:
        """A numeric ``.npy`` array; anything else is described, never unpickled."""
        p = self.path
        expected = "Expected a complete file written by numpy.save holding a numeric array of shape (N, ...)."
        header = read_npy_header(p) if is_npy(p) else None
        if header is None:
            raise self._not_a("a .npy array", expected)
        shape, dtype, offset = header
        if dtype.hasobject:
            raise SourceError(
                f"TensorFile: {p} holds an array of Python objects (dtype {dtype}, shape {shape}), not numbers: numpy "
                "can only read it by unpickling those objects, which could run code from the file, so wdist does not. "
                "Expected a numeric array of shape (N, ...) (uint8 images or floats): save the numbers themselves "
                "with numpy.save(path, array) where the data are made."
            )
        need, have = math.prod(shape) * dtype.itemsize, p.stat().st_size - offset
        if have < need:
            raise SourceError(
                f"TensorFile: {p} is cut short: its header announces dtype {dtype}, shape {shape} ({need} bytes of "
                f"data) but only {have} bytes follow (an interrupted download or copy?). {expected}"
            )
        try:
            return np.load(p, allow_pickle=False)
        except Exception as err:
            raise SourceError(f"TensorFile: cannot read {p} ({describe_file(p)}): {err}") from err

    def _read_npz(self, key: Optional[str]) -> np.ndarray:
        p = self.path
        expected = "Expected a file written by numpy.savez holding numeric arrays."
        if not zipfile.is_zipfile(p):
            raise self._not_a("an .npz archive", expected)
        name: Optional[str] = None
        try:
            with np.load(p, allow_pickle=False) as z:
                name = self._pick(list(z.files), key)
                return np.asarray(z[name])
        except SourceError:
            raise
        except ValueError as err:
            if name is not None and "allow_pickle" in str(err):  # numpy's refusal of an object array
                raise SourceError(
                    f"TensorFile: array {name!r} in {p} holds Python objects (dtype object), not numbers: numpy can "
                    "only read it by unpickling them, which could run code from the file, so wdist does not. "
                    f"{expected}"
                ) from err
            raise self._not_a("an .npz archive", expected) from err
        except Exception as err:
            raise self._not_a("an .npz archive", expected) from err

    def _read_torch(self, key: Optional[str]) -> np.ndarray:
        p = self.path
        expected = "Expected a tensor, or a dict of tensors, written by torch.save."
        if not (is_torch_archive(p) or is_legacy_torch_file(p)):
            raise self._not_a("a torch.save file", expected)
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            refused = refused_globals(p, err)
            if not refused:
                raise self._not_a("a complete torch.save file", expected) from err
            raise SourceError(
                f"TensorFile: {p} holds pickled Python objects, not only tensors (it refers to {', '.join(refused)}): "
                "unpickling them could run code from the file, so wdist reads it with torch.load(weights_only=True) "
                f"only. {expected}"
            ) from err
        except Exception as err:
            raise self._not_a("a complete torch.save file", expected) from err
        if isinstance(obj, dict):
            obj = obj[self._pick([str(k) for k in obj], key)]
        if not isinstance(obj, Tensor):
            raise SourceError(f"{p}: expected a tensor (or a dict of tensors), got {type(obj).__name__}")
        return obj.detach().cpu().numpy()

    def _pick(self, keys: list[str], key: Optional[str]) -> str:
        if key is not None:
            if key not in keys:
                raise SourceError(f"{self.path}: no array named key={key!r}; it holds {keys}")
            return key
        if len(keys) != 1:
            raise SourceError(f"{self.path}: holds several arrays {keys}; set key to choose one")
        return keys[0]


@register_source
class Digits(ImageSource):
    """scikit-learn's bundled handwritten digits: 1797 images, 1 x 8 x 8, values 0..16 mapped onto ``range``.

    Parameters
    ----------
    limit : int, optional
        Keep only the first ``limit`` images.
    range, resize, crop
        As for :class:`CIFAR10` (crop, then resize).
    """

    name = "digits"

    def __init__(
        self,
        limit: Optional[PositiveInt] = None,
        range: tuple[float, float] = (-1.0, 1.0),
        resize: Optional[PositiveInt] = None,
        crop: Optional[PositiveInt] = None,
    ) -> None:
        from sklearn.datasets import load_digits

        self._configure(range, resize, crop, limit)
        images = load_digits().images  # (1797, 8, 8) float64 in 0..16
        self._set_data(images[:, None], (0.0, 16.0))
