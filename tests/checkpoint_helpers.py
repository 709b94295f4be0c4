"""Checkpoint files as other machines write them, for tests on this CPU-only one."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import torch
import torch.serialization

__all__ = ["save_cuda_tagged"]


def save_cuda_tagged(obj: Any, path: Path) -> Path:
    """Write ``obj`` with ``torch.save`` (the zip format) as a GPU machine would: every storage
    carries the location tag ``'cuda:0'``.

    Synthesised without a GPU by having ``torch.serialization.location_tag`` answer ``'cuda:0'``
    while saving; that tag, in the pickled storage records of ``data.pkl``, is the only thing in the
    file that records the device its tensors were saved from, so ``torch.load`` without
    ``map_location`` fails on a machine without CUDA exactly as with a file written on a GPU.
    """
    with mock.patch.object(torch.serialization, "location_tag", lambda storage: "cuda:0"):
        torch.save(obj, path)
    return path
