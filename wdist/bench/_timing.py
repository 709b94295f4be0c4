"""Timing helpers shared by the benchmarks: medians after warm-up, device description, peak memory."""

from __future__ import annotations

import platform

import torch

__all__ = ["describe_device", "reset_peak_memory", "peak_memory_mb", "synchronize", "fmt_or_na"]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    threads = torch.get_num_threads()
    return f"cpu: {cpu}, {threads} thread{'' if threads == 1 else 's'}, torch {torch.__version__}"


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float | None:
    """Peak allocated memory in MiB on CUDA; ``None`` on the CPU (not tracked by torch)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None


def fmt_or_na(x: "float | None", spec: str) -> str:
    """``format(x, spec)``, or ``n/a`` for a missing or NaN figure (tables never show a fake number)."""
    import math

    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)
