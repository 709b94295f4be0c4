"""wdist: certified lower bounds on W1(P, Q) from provably 1-Lipschitz critics.

    import wdist
    result = wdist.estimate("configs/toy/three-cones.yaml", ["--train.steps", "500"])
    print(result.lower_bound, result.ci95, result.certified)

The names below are imported on first use (PEP 562), so that ``import wdist`` and the command
line's usage errors do not pay for Lightning, POT and matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

from wdist._version import __version__

_LAZY = {
    "estimate": "wdist.pipeline",
    "track": "wdist.tracking",
    "W1Monitor": "wdist.monitor",
    "EstimateConfig": "wdist.config",
    "load_config": "wdist.config",
    "parse_config": "wdist.config",
    "InitState": "wdist.warmstart",
    "Result": "wdist.results",
    "exact_w1": "wdist.ot",
    "sliced_w1": "wdist.ot",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wdist' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
