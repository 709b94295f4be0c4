"""Samples and critic values as float64 NumPy arrays, checked before any statistic or OT solve."""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["finite_float64"]


def finite_float64(name: str, values: Union[Tensor, np.ndarray, list], error: type[ValueError]) -> np.ndarray:
    """``values`` as a float64 NumPy array (a tensor detached and copied to the CPU), all finite.

    Parameters
    ----------
    name : str
        What the values are, for the message (``"x"``, ``"fp"``).
    values : Tensor, ndarray or list
        Any shape; the units are the caller's (samples, critic values).
    error : type
        The ``ValueError`` subclass raised when a value is NaN or Inf; its message names ``name``
        and counts the non-finite values.

    Returns
    -------
    ndarray
        Same shape, float64; :math:`x_i \\in \\mathbb R` for every entry.
    """
    if isinstance(values, Tensor):
        arr = values.detach().to("cpu", torch.float64).numpy()
    else:
        arr = np.asarray(values, dtype=np.float64)
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise error(f"{name} contains {bad} non-finite values (NaN or Inf)")
    return arr
