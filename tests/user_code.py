"""Helpers for tests that run a user's own Python file, as a user would: from their working folder."""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest


@contextlib.contextmanager
def user_module(folder: Path, name: str, source: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The user's file ``folder/name.py`` holding ``source``, imported fresh with ``folder`` as the
    working folder and first on ``sys.path`` (as with ``python -m`` there); forgotten on exit, so the
    next test imports its own."""
    (folder / f"{name}.py").write_text(source)
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop(name, None)
    try:
        yield importlib.import_module(name)
    finally:
        sys.modules.pop(name, None)
