"""Whole-process runs of the command line for the benchmarks that time start-up and contention.

Each run is a fresh interpreter (``python -m wdist.cli ...``), timed from the parent with
``time.perf_counter`` (wall, interpreter start-up included) and ``RUSAGE_CHILDREN`` (CPU seconds).
The runs' environment drops the variables that would decide their threads for them
(``OMP_NUM_THREADS`` and friends), so that each setting is what the command line does by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

from wdist.cores import available_cores

__all__ = [
    "Timed",
    "run_env",
    "run_timed",
    "timed_estimate",
    "wdist_argv",
    "median_or_none",
    "machine_text",
    "load_text",
    "source_checkout",
    "exported_commit",
    "tree_option",
    "estimate_command_line",
    "timed_command",
]

#: Variables removed from the runs' environment: each would fix a run's thread count or
#: OpenMP wait policy from outside.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "WDIST_OPENMP_DEFAULTS",
)


@dataclass(frozen=True)
class Timed:
    """One finished command: wall and CPU seconds, exit status and the tail of its stderr."""

    wall_s: float
    cpu_s: float
    returncode: int
    stderr_tail: str


def run_env(tree: Optional[str] = None, extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The environment of a run: this one without :data:`THREAD_ENV`, with ``PYTHONPATH`` led by
    ``tree`` (a source tree to measure instead of the installed one) and ``extra`` added."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV}
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(tree).resolve()), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra or {})
    return env


def wdist_argv(*args: str) -> list[str]:
    """``python -m wdist.cli ARGS`` with this interpreter."""
    return [sys.executable, "-m", "wdist.cli", *args]


def run_timed(argv: Sequence[str], env: Mapping[str, str], timeout_s: float, tree: Optional[str] = None) -> Timed:
    """Run ``argv`` to completion (stdout discarded) and time it; a run past ``timeout_s`` is
    killed and reported with return code -9. With a source ``tree`` the run starts in it: ``python
    -m``/``-c`` put the working folder first on the import path, ahead of ``PYTHONPATH``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            list(argv), env=dict(env), cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            timeout=timeout_s,
        )  # fmt: skip
        code, err = proc.returncode, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, err = -9, f"killed after {timeout_s:g} s; stderr: {exc.stderr or ''}"
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(wall, cpu, int(code), str(err)[-2000:])


def timed_estimate(
    out: Path, estimate_args: Sequence[str], tree: Optional[str], timeout_s: float,
    extra_env: Optional[Mapping[str, str]] = None,
) -> tuple[Timed, Optional[dict[str, Any]]]:  # fmt: skip
    """One ``wdist estimate --quiet --out OUT ESTIMATE_ARGS`` process of the source ``tree`` (``None``:
    this one), timed by :func:`run_timed` in the environment :func:`run_env` gives with ``extra_env``;
    and the run record of the result.json it wrote (nested under ``run``; the whole file, flat, in an
    earlier tree's), or ``None`` when it failed or wrote none."""
    argv = wdist_argv("estimate", "--quiet", "--out", str(out), *estimate_args)
    timed = run_timed(argv, run_env(tree, extra_env), timeout_s, tree)
    result = Path(out) / "result.json"
    if timed.returncode != 0 or not result.is_file():
        return timed, None
    data = json.loads(result.read_text())
    return timed, data.get("run", data)


def median_or_none(values: Sequence[Optional[float]]) -> Optional[float]:
    """The median of the values that are not ``None``; ``None`` when there are none."""
    kept = [float(v) for v in values if v is not None]
    return statistics.median(kept) if kept else None


def machine_text() -> str:
    """The processor, the cores this process may use and the Python version."""
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {available_cores().describe()}, Python {platform.python_version()}"


def load_text() -> str:
    """The 1-, 5- and 15-minute load averages (runnable processes; above ~0.5 the machine was not idle)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def source_checkout() -> Path:
    """The git checkout the running ``wdist`` package was imported from (its top folder).

    Raises ``ValueError`` naming the folder when that is not inside a git repository (e.g. a
    wheel installed into site-packages)."""
    here = Path(__file__).resolve().parents[1]
    try:
        top = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=60
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ValueError(f"cannot run git to export a commit of {here}: {err}") from None
    if top.returncode != 0:
        raise ValueError(
            f"the wdist package at {here} is not in a git checkout, so no commit can be exported from it; "
            "export the tree yourself (git archive COMMIT | tar -x -C DIR) and pass it as a tree folder"
        )
    return Path(top.stdout.strip())


@contextlib.contextmanager
def exported_commit(commit: str) -> Iterator[str]:
    """A temporary folder holding ``git archive COMMIT`` of :func:`source_checkout`, removed on exit.

    The folder lives under the system's temporary folder (``TMPDIR``), so a benchmark that compares
    with an earlier commit needs nothing prepared outside the clone. ``ValueError`` names the commit
    when the checkout does not have it (a shallow clone, a typo)."""
    repo = source_checkout()
    proc = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", str(commit)], capture_output=True)
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else "git failed"
        raise ValueError(
            f"commit {commit!r} cannot be exported from the checkout {repo} ({reason}); "
            "expected a commit of that repository (in a shallow clone, fetch its history first: git fetch --unshallow)"
        )
    with tempfile.TemporaryDirectory(prefix=f"wdist-tree-{commit}-") as folder:
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as archive:
            archive.extractall(folder, filter="data")
        if not (Path(folder) / "wdist" / "cli.py").is_file():
            raise ValueError(f"commit {commit!r} of {repo} has no wdist/cli.py: expected a commit of wdist")
        yield folder


@contextlib.contextmanager
def tree_option(folder: Optional[str], commit: Optional[str], names: str) -> Iterator[Optional[str]]:
    """The source tree a benchmark option names: ``folder`` as given, or ``commit`` exported for the
    duration of the block (:func:`exported_commit`), or ``None``; both given is a ``ValueError``
    naming the two options (``names``, e.g. ``"--before-tree / --before-commit"``)."""
    if folder is not None and commit is not None:
        raise ValueError(f"{names}: give a folder or a commit, not both (got {folder!r} and {commit!r})")
    if commit is None:
        yield folder
        return
    with exported_commit(commit) as exported:
        yield exported


def estimate_command_line(
    prog: str, doc: Optional[str], argv: Sequence[str]
) -> tuple[argparse.ArgumentParser, list[str], list[str]]:
    """The parser of a benchmark that times whole ``wdist estimate`` processes, the benchmark's own
    arguments, and the ones after ``--`` (passed to every timed ``wdist estimate``, as its epilog says).

    The parser holds the options such benchmarks share: ``--repeats`` (runs per cell, default 3),
    ``--timeout`` (seconds before a run is killed, default 1800), ``--tree`` and ``--tree-commit``
    (the source tree whose command line is timed: see :func:`tree_option`)."""
    own, estimate_args = list(argv), []
    if "--" in own:
        cut = own.index("--")
        own, estimate_args = own[:cut], own[cut + 1 :]
    epilog = "Arguments after -- go to every timed `wdist estimate` run (e.g. -- --config FILE --train.steps 100)."
    ap = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds before a run is killed")
    ap.add_argument("--tree", default=None, help="run the command line of this source tree instead")
    ap.add_argument("--tree-commit", default=None, help="as --tree, for this commit of the checkout (exported)")
    return ap, own, estimate_args


def timed_command(own: Sequence[str], estimate_args: Sequence[str]) -> list[str]:
    """The benchmark's arguments as given: its own, then ``--`` and the estimate arguments if any."""
    return [*own, *(["--", *estimate_args] if estimate_args else [])]
