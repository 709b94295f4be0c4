"""How many CPU cores this process may really use, and how OpenMP's idle threads should wait.

Neither needs torch: the command line calls :func:`prefer_passive_waiting` before torch (and with
it the OpenMP runtime) is loaded, and :mod:`wdist.threads` builds its policy on
:func:`available_cores`.

* **Cores**: ``os.cpu_count()`` counts the machine's CPUs, not the ones this process may run on.
  Two limits are narrower: the CPU affinity mask (``taskset``, ``numactl``, a batch scheduler's
  cpuset) and a cgroup CPU quota (Docker ``--cpus``, Kubernetes CPU limits, systemd
  ``CPUQuota``), which lets the group run ``quota / period`` CPUs' worth of time per period and
  then freezes *all* its threads until the next period. The quota is rounded *down*: with 1.5
  CPUs of quota, two busy threads exhaust it two thirds into each period and both then stall,
  so a parallel region waits for the period to end.
* **Waiting**: torch's CPU kernels run in OpenMP parallel regions (GNU libgomp in the PyPI
  wheels). By default a libgomp thread that reaches the end of a region spins on the CPU for a
  while (``GOMP_SPINCOUNT``, 300,000 iterations) before sleeping. On an idle machine this saves
  a wake-up per region. On a busy one the spinning thread holds a core that the thread it waits
  for, or another program, needs: every region then lasts until the scheduler takes the core
  away. Measured on this project's 2-core machine under load from other jobs (provisional, load
  average 5 to 12): a training step of the default digits critic took 42-62 ms with one thread,
  460-1,840 ms with two spinning threads and 50-98 ms with two passively waiting threads
  (``OMP_WAIT_POLICY=PASSIVE``). libgomp reads the variable once, when it is loaded (the first
  ``import torch``), so it must be in the environment before that.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import MutableMapping, Optional

__all__ = [
    "Cores",
    "available_cores",
    "affinity_count",
    "cgroup_cpu_limit",
    "parse_cpu_max",
    "parse_cfs_quota",
    "prefer_passive_waiting",
    "OPENMP_DEFAULTS_ENV",
]

#: Set to ``1`` to leave OpenMP's wait policy as the runtime's default (the command line then
#: does not set ``OMP_WAIT_POLICY``); ``wdist bench contention`` uses it to measure the old default.
OPENMP_DEFAULTS_ENV = "WDIST_OPENMP_DEFAULTS"


@dataclass(frozen=True)
class Cores:
    """CPU cores this process may use: ``count = max(1, min(affinity, floor(quota)))``.

    ``affinity`` is the number of CPUs in the affinity mask; ``quota`` the cgroup CPU limit in
    CPUs (``None``: no quota found).
    """

    count: int
    affinity: int
    quota: Optional[float]

    def describe(self) -> str:
        """E.g. ``2 cores (affinity 2 CPUs, no cgroup quota)``."""
        quota = "no cgroup quota" if self.quota is None else f"cgroup quota {self.quota:g} CPUs"
        return f"{self.count} core{'s' if self.count != 1 else ''} (affinity {self.affinity} CPUs, {quota})"


def affinity_count() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where the OS has no masks)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def parse_cpu_max(text: str) -> Optional[float]:
    """CPUs allowed by a cgroup v2 ``cpu.max`` file (``"QUOTA PERIOD"`` in microseconds, or
    ``"max PERIOD"`` for no limit); ``None`` for no limit or an unreadable line."""
    fields = text.split()
    if not fields or fields[0] == "max":
        return None
    try:
        quota = int(fields[0])
        period = int(fields[1]) if len(fields) > 1 else 100_000
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs_quota(quota_text: str, period_text: str) -> Optional[float]:
    """CPUs allowed by cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (quota -1: no
    limit); ``None`` for no limit or unreadable values."""
    try:
        quota, period = int(quota_text.strip()), int(period_text.strip())
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text()
    except OSError:
        return None


def _ancestors(root: Path, relative: str) -> list[Path]:
    """``root/relative`` and each of its parents up to ``root`` (a parent's quota also binds)."""
    parts = [p for p in relative.strip("/").split("/") if p and p != ".."]
    return [root.joinpath(*parts[:k]) for k in range(len(parts), -1, -1)]


def cgroup_cpu_limit(
    cgroup_root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")
) -> Optional[float]:
    """The tightest CPU quota, in CPUs, over this process's cgroup and its ancestors (cgroup v2
    ``cpu.max``, or v1 ``cpu.cfs_quota_us`` under the ``cpu`` controller's folder); ``None``
    where there is none or nothing can be read (not Linux, no cgroup file system)."""
    listing = _read(proc_cgroup)
    if listing is None:
        return None
    limits: list[float] = []
    for line in listing.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":  # cgroup v2: one unified hierarchy
            for d in _ancestors(cgroup_root, path):
                text = _read(d / "cpu.max")
                limit = None if text is None else parse_cpu_max(text)
                if limit is not None:
                    limits.append(limit)
        elif "cpu" in controllers.split(","):  # cgroup v1: the cpu controller's own hierarchy
            for folder in dict.fromkeys((controllers, "cpu", "cpu,cpuacct")):
                for d in _ancestors(cgroup_root / folder, path):
                    quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
                    limit = None if quota is None or period is None else parse_cfs_quota(quota, period)
                    if limit is not None:
                        limits.append(limit)
    return min(limits) if limits else None


def available_cores(affinity: Optional[int] = None, quota: Optional[float] = None, *, read_quota: bool = True) -> Cores:
    """The cores this process may use (see :class:`Cores`). ``affinity`` and ``quota`` default
    to this process's own (:func:`affinity_count`, :func:`cgroup_cpu_limit`); pass them to
    evaluate the rule on other values (``read_quota=False`` with ``quota=None``: no quota)."""
    aff = affinity_count() if affinity is None else int(affinity)
    q = cgroup_cpu_limit() if quota is None and read_quota else quota
    count = aff if q is None else min(aff, math.floor(q + 1e-9))
    return Cores(max(1, count), aff, q)


def prefer_passive_waiting(environ: Optional[MutableMapping[str, str]] = None) -> Optional[str]:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` (default ``os.environ``) unless the user set a
    wait policy or ``WDIST_OPENMP_DEFAULTS=1``; returns the policy now in force (``None``: the
    runtime's default). Only effective before the OpenMP runtime is loaded (the first
    ``import torch``); see the module docstring for why passive waiting is the better default."""
    env = os.environ if environ is None else environ
    if env.get(OPENMP_DEFAULTS_ENV) == "1":
        return env.get("OMP_WAIT_POLICY")
    return env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
