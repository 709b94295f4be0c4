"""Helpers for tests that run a user's own Python file, as a user would: from their working folder."""

from __future__ import annotations

import contextlib
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest
import torch
from torch import nn


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


class SigmoidGenerator(nn.Module):
    """A user's small generator with a batch norm: z of ``latent_dim`` coordinates -> Linear ->
    BatchNorm1d -> :math:`\\sigma(\\text{gain} \\cdot y)`, viewed as images of ``shape`` in [0, 1]."""

    def __init__(self, shape: tuple[int, int, int], gain: float = 1.0, latent_dim: int = 4) -> None:
        super().__init__()
        self.c, self.h, self.w = shape
        self.gain = float(gain)
        self.fc = nn.Linear(latent_dim, self.c * self.h * self.w)
        self.bn = nn.BatchNorm1d(self.c * self.h * self.w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.gain * self.bn(self.fc(z))).view(-1, self.c, self.h, self.w)
