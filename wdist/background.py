"""Work started on a thread of its own while the caller goes on, its value collected later."""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

__all__ = ["in_background"]

T = TypeVar("T")


def in_background(work: Callable[..., T], *args: Any, name: str) -> Callable[[], T]:
    """Start ``work(*args)`` on a daemon thread called ``name``; the returned function waits for it
    and returns its value, or raises the error it raised.

    Worth it for work that runs in compiled code without Python's global lock (POT's network
    simplex, SciPy's distances): on a spare core it costs the calling thread nothing. The thread is
    a daemon, so a process that stops early (an error, SIGTERM) does not wait for it.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work(*args)
        except BaseException as err:  # handed to the waiting caller
            outcome["error"] = err

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()

    def wait() -> T:
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return wait
