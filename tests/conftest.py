"""Shared fixtures: fixed seeds, few threads, and a device parameter (CUDA only where present)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest
import torch

# One thread per process: the suite starts subprocesses (DDP ranks, killed runs) on 2 cores, and
# oversubscribed OpenMP threads make small models tens of times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")
# Hypothesis caches what it reads of the source files in a folder (by default .hypothesis in the
# working directory, i.e. the clone): a temporary one instead, removed at exit.
if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = tempfile.mkdtemp(prefix="wdist-hypothesis-")
    atexit.register(shutil.rmtree, os.environ["HYPOTHESIS_STORAGE_DIRECTORY"], ignore_errors=True)

_CUDA = torch.cuda.is_available()
if _CUDA:
    # The tests check mathematical properties (orthogonality to 1e-4, certificates against
    # Jacobians): IEEE float32 on the GPU too, not cuDNN's default TF32 convolutions.
    if hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv"):
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> torch.device:
    """Run a test on the CPU and, when a GPU is present, again on CUDA."""
    if request.param == "cuda" and not _CUDA:
        pytest.skip("no CUDA device")
    return torch.device(request.param)
