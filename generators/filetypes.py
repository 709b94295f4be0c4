"""What a file looks like, read from its first bytes and, for ZIP archives, its index: never by
unpickling it.

Readers of checkpoints and arrays use this to say what a file *is* when it is not what they
expected ("a text file", "a ZIP archive holding a.txt", "a PNG image", "cut short"), instead of
passing on a library's guess: numpy reports any non-``.npy`` file as "pickled data" and torch's
safe loader reports random bytes as an unsupported pickle opcode, and both then suggest loading
the file unsafely.
"""

from __future__ import annotations

import os
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "describe_file",
    "is_npy",
    "is_torch_archive",
    "is_legacy_torch_file",
    "pickle_globals",
    "refused_globals",
    "read_npy_header",
    "torch_archive_globals",
    "NPY_MAGIC",
]

NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# torch.save's legacy (non-ZIP) format begins with a protocol-2 pickle of this magic number
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_HEAD = 512
_LISTED = 6

# first bytes of common formats a user might hand over by mistake
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"\x1f\x8b", "gzip-compressed data (a .gz or .tar.gz archive?)"),
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"%PDF", "a PDF document"),
    (b"\x7fELF", "an executable (ELF)"),
)


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(_HEAD)


def is_npy(path: os.PathLike | str) -> bool:
    """Whether the file begins with the ``.npy`` magic string (``\\x93NUMPY``)."""
    return _head(Path(path)).startswith(NPY_MAGIC)


def is_legacy_torch_file(path: os.PathLike | str) -> bool:
    """Whether the file is in torch.save's legacy (pre-1.6, non-ZIP) format."""
    return _head(Path(path)).startswith(_LEGACY_TORCH_MAGIC)


def _zip_names(path: Path) -> Optional[list[str]]:
    """The entry names of a readable ZIP archive, else ``None``."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None


def is_torch_archive(path: os.PathLike | str) -> bool:
    """Whether the file is a readable ZIP archive in torch.save's format (``<name>/data.pkl``)."""
    names = _zip_names(Path(path))
    return names is not None and any(n == "data.pkl" or n.endswith("/data.pkl") for n in names)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f", ... ({len(names)} entries)" if len(names) > _LISTED else "")


def _npy_header(path: Path) -> Optional[str]:
    header = read_npy_header(path)
    return None if header is None else f"dtype {header[1]}, shape {header[0]}"


def read_npy_header(path: os.PathLike | str) -> Optional[tuple[tuple[int, ...], Any, int]]:
    """``(shape, dtype, offset of the data)`` from a ``.npy`` file's header, or ``None`` when the
    file has no readable ``.npy`` header."""
    import numpy as np  # only needed to read a .npy header

    try:
        with open(path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh)
            return tuple(int(s) for s in shape), dtype, fh.tell()
    except Exception:
        return None


def _text_kind(head: bytes) -> Optional[str]:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if len(head) < _HEAD or err.start < len(head) - 3:  # not a character cut by the 512-byte read
            return None
        text = head[: err.start].decode("utf-8")
    if any(ord(c) < 32 and c not in "\t\r\n\f" for c in text):
        return None
    lower = text.lstrip().lower()
    if lower.startswith(("<!doctype html", "<html")):
        return "an HTML page (a download that returned a web page instead of the file?)"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if lower.startswith("version https://git-lfs"):
        return "a Git LFS pointer file (the real file was never fetched: run `git lfs pull`)"
    shown = first if len(first) <= 60 else first[:57] + "..."
    return f"a text file (first line {shown!r})"


def describe_file(path: os.PathLike | str) -> str:
    """A short phrase saying what the file at ``path`` looks like, e.g. ``"a text file (first line
    'hello')"``, ``"a ZIP archive holding notes.txt"``, ``"binary data in no format wdist knows
    (first bytes 3f a2 91 ...)"``. Reads the first 512 bytes and, for ZIP archives, the index;
    never unpickles anything."""
    p = Path(path)
    size = p.stat().st_size
    if size == 0:
        return "an empty file (0 bytes)"
    head = _head(p)
    if head.startswith(NPY_MAGIC):
        header = _npy_header(p)
        if header is None:
            return f"a NumPy .npy file cut short or damaged inside its header ({size} bytes)"
        return f"a NumPy .npy array file ({header})"
    if head.startswith(_ZIP_MAGIC):
        names = _zip_names(p)
        if names is None:
            return (
                f"a ZIP archive cut short or damaged ({size} bytes: it begins like one, but its index at the end "
                "cannot be read; an interrupted download or copy?)"
            )
        if not names:
            return "an empty ZIP archive"
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "a torch.save archive"
        if all(n.endswith(".npy") for n in names):
            return f"a NumPy .npz archive of {len(names)} arrays ({_listing([n[:-4] for n in names])})"
        return f"a ZIP archive holding {_listing(names)}"
    if head.startswith(_LEGACY_TORCH_MAGIC):
        return "a torch.save file in the legacy (pre-1.6) format"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return f"a Python pickle (protocol {head[1]})"
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    if len(head) > 262 and head[257:262] == b"ustar":
        return "a tar archive"
    text = _text_kind(head)
    if text is not None:
        return text
    return f"binary data in no format wdist knows (first bytes {head[:8].hex(' ')} ...)"


_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}


def pickle_globals(data: bytes) -> list[str]:
    """The Python objects (``module.name``) a pickle stream refers to, in order of first use, read
    with :mod:`pickletools` (nothing is unpickled or imported). Empty when the stream cannot be
    parsed."""
    found: list[str] = []
    memo: dict[int, object] = {}
    pushed: list[object] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name in _STRING_OPS:
                pushed.append(arg)
            elif name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif name == "STACK_GLOBAL":
                mod, attr = (pushed[-2], pushed[-1]) if len(pushed) >= 2 else (None, None)
                found.append(f"{mod}.{attr}" if isinstance(mod, str) and isinstance(attr, str) else "<unknown>")
            elif name == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = pushed[-1] if pushed else None
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                pushed.append(memo.get(int(arg)))
            else:
                pushed.append(None)
    except Exception:
        return []
    return list(dict.fromkeys(found))


def torch_archive_globals(path: os.PathLike | str) -> list[str]:
    """The Python objects the pickle inside a torch.save archive refers to (see
    :func:`pickle_globals`); empty when the file is not a readable archive."""
    try:
        with zipfile.ZipFile(Path(path)) as zf:
            name = next(n for n in zf.namelist() if n == "data.pkl" or n.endswith("/data.pkl"))
            return pickle_globals(zf.read(name))
    except (StopIteration, zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError):
        return []


def refused_globals(path: os.PathLike | str, err: BaseException, limit: int = 12) -> list[str]:
    """The Python objects a ``torch.load(weights_only=True)`` refusal names (``GLOBAL module.name``
    in ``err``), with the other non-torch objects the file's pickle refers to (at most ``limit``);
    empty when ``err`` is not such a refusal (a damaged file, for instance)."""
    named = re.findall(r"GLOBAL ([\w.]+)", str(err))
    if not named:
        return []
    others = [
        g
        for g in (torch_archive_globals(path) if is_torch_archive(path) else [])
        if not g.startswith(("torch.", "collections.", "builtins.", "__builtin__.", "_codecs."))
    ]
    found = list(dict.fromkeys(named + others))
    return found[:limit] + ([f"... {len(found) - limit} more"] if len(found) > limit else [])
