"""Held-out values in IEEE float32: no autocast and no TF32, whatever the training precision."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

__all__ = ["ieee_float32", "full_precision"]


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """float32 matrix products and convolutions in IEEE float32 inside (no TF32), restored after.

    On Ampere and later GPUs cuDNN convolutions default to TF32 (10-bit mantissa): a relative
    error near 1e-3 per layer, as large as the certificate's own tolerance. The held-out values
    must be the certified function evaluated to float32 accuracy, so evaluation switches TF32
    off (training keeps the user's setting). Uses torch's ``fp32_precision`` settings where they
    exist (torch >= 2.9), else the legacy ``allow_tf32`` flags; no effect on the CPU.
    """
    if hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv"):
        knobs = [torch.backends.cuda.matmul, torch.backends.cudnn.conv]
        saved = [k.fp32_precision for k in knobs]
        try:
            for k in knobs:
                k.fp32_precision = "ieee"
            yield
        finally:
            for k, v in zip(knobs, saved):
                k.fp32_precision = v
    else:  # pragma: no cover - torch < 2.9
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        try:
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Autocast off and TF32 off: held-out values come from the float32 weights that are certified,
    computed in IEEE float32."""
    try:
        no_autocast: contextlib.AbstractContextManager = torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):  # a device type autocast does not know
        no_autocast = contextlib.nullcontext()
    with no_autocast, ieee_float32():
        yield
