"""Batched maps of raw image arrays into a source's domain: value range, centre crop, resize.

Order: (1) affine map of the input value range onto the target range, (2) centre crop,
(3) bilinear resize with antialiasing, (4) clamp to the target range. The clamp only removes
rounding (bilinear antialiased weights are non-negative and sum to one, so resizing never leaves
the convex hull of the pixel values). Everything is batched over chunks of images; no per-pixel or
per-image Python loops.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from wdist.sources.base import SourceError

__all__ = ["check_range", "map_range", "center_crop", "resize", "to_domain", "output_shape"]


def check_range(name: str, value: tuple[float, float] | list[float]) -> tuple[float, float]:
    """Validate a ``(low, high)`` pair: two finite floats with ``low < high``."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SourceError(f"{name} must be a pair (low, high), got {name}={value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise SourceError(f"{name} must be finite with low < high, got {name}={value!r}")
    return lo, hi


def check_size(name: str, value: Optional[int]) -> Optional[int]:
    """Validate an optional positive integer size."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SourceError(f"{name} must be a positive integer or None, got {name}={value!r}")
    return value


def map_range(x: Tensor, in_range: tuple[float, float], out_range: tuple[float, float]) -> Tensor:
    r"""Affine map of ``in_range`` onto ``out_range``, float32.

    .. math:: y = \frac{x - a}{b - a} (d - c) + c

    Computed in this order so that ``a`` maps exactly to ``c`` and ``b`` exactly to ``d``.
    """
    a, b = in_range
    c, d = out_range
    x = x.to(torch.float32)
    return (x - a) / (b - a) * (d - c) + c


def center_crop(x: Tensor, size: int) -> Tensor:
    """Centre crop of ``(N, C, H, W)`` to ``(N, C, size, size)`` (the top-left offset rounds down)."""
    h, w = x.shape[-2:]
    if size > h or size > w:
        raise SourceError(f"crop={size} is larger than the images ({h} x {w})")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def resize(x: Tensor, size: int) -> Tensor:
    """Bilinear resize (antialiased when shrinking) of ``(N, C, H, W)`` to ``(N, C, size, size)``."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def output_shape(shape: tuple[int, ...], crop: Optional[int], size: Optional[int]) -> tuple[int, ...]:
    """Shape of one item after crop then resize."""
    if crop is None and size is None:
        return tuple(shape)
    if len(shape) != 3:
        raise SourceError(f"crop and resize need images of shape (C, H, W), got items of shape {tuple(shape)}")
    c, h, w = shape
    if crop is not None:
        if crop > h or crop > w:
            raise SourceError(f"crop={crop} is larger than the images ({h} x {w})")
        h = w = crop
    if size is not None:
        h = w = size
    return (c, h, w)


def to_domain(
    raw: Union[np.ndarray, Tensor],
    in_range: tuple[float, float],
    out_range: tuple[float, float],
    crop: Optional[int] = None,
    size: Optional[int] = None,
    chunk: int = 1024,
) -> Tensor:
    """Map a raw ``(N, *shape)`` array (uint8 or float, e.g. a memory map) into the domain.

    Crop and resize apply to items of shape ``(C, H, W)`` only. Processed in chunks of ``chunk``
    items so a large uint8 array is never held as float64 or at full size in float32 twice.

    Returns
    -------
    Tensor, float32, shape ``(N, *output_shape(...))``, values in ``out_range``.
    """
    n = int(raw.shape[0])
    shape = output_shape(tuple(int(s) for s in raw.shape[1:]), crop, size)
    out = torch.empty((n, *shape), dtype=torch.float32)
    for start in range(0, n, chunk):
        part = raw[start : start + chunk]
        t = torch.from_numpy(np.ascontiguousarray(part)) if isinstance(part, np.ndarray) else part
        x = map_range(t, in_range, out_range)
        if crop is not None:
            x = center_crop(x, crop)
        if size is not None:
            x = resize(x, size)
        out[start : start + chunk] = x.clamp_(out_range[0], out_range[1])
    return out
