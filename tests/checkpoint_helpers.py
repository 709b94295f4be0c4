"""Checkpoint files as other machines (a GPU one) and older versions of wdist wrote them, for tests on
this CPU-only one."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional
from unittest import mock

import torch
import torch.serialization

from wdist.evaluation import Evaluation
from wdist.stats import Interval

__all__ = ["save_cuda_tagged", "old_evaluation_state", "write_old_layout"]


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


def old_evaluation_state(ev: Evaluation) -> dict[str, Any]:
    """An evaluation as a checkpoint's ``wdist_evaluations`` held it before the curve was kept as bound
    records (the layout of ``Evaluation.state()`` up to commit 56245c7): its intervals as field dicts."""

    def plain(iv: Optional[Interval]) -> Optional[dict[str, Any]]:
        return None if iv is None else asdict(iv)

    return {
        "step": int(ev.step),
        "interval": asdict(ev.interval),
        "bound": asdict(ev.bound),
        "bound95": asdict(ev.bound95),
        "certificate": float(ev.certificate),
        "certificate_layers": [
            {**asdict(layer), "input_shape": list(layer.input_shape)} for layer in ev.certificate_layers
        ],
        "critic_value_range": ev.value_range,
        "train_interval": plain(ev.train_interval),
        "train_bound": plain(ev.train_bound),
        "train_bound95": plain(ev.train_bound95),
    }


def write_old_layout(path: Path) -> list[Evaluation]:
    """Rewrite the checkpoint at ``path`` in the layout of commit 56245c7 (``wdist_evaluations`` in place
    of ``wdist_curve``); returns the evaluations it holds."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    evaluations = [Evaluation.from_checkpoint_record(r) for r in checkpoint.pop("wdist_curve")]
    checkpoint["wdist_evaluations"] = [old_evaluation_state(ev) for ev in evaluations]
    torch.save(checkpoint, path)
    return evaluations
