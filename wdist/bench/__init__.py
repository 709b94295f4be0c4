"""``wdist bench``: the project's own benchmarks (timings are medians over repeats on a stated device).

wdist bench toy       training steps per second, per toy config and critic
wdist bench layers    forward+backward ms and peak memory of the Lipschitz conv layers
wdist bench critics   training steps per second and peak memory of the image critics
wdist bench estimate  wall time to a bound within 1% of its final value
wdist bench contention  the default job idle and beside competing processes, per thread setting
wdist bench startup   what the command line costs besides training (help, a typo, imports, references, plot)
wdist bench tightness certified bound / exact W1 per critic on known-W1 pairs (images; the MinFunnel vectors)
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

__all__ = ["main", "BENCHES"]

_BENCHES = {
    "toy": "wdist.bench.toy",
    "layers": "wdist.bench.layers",
    "critics": "wdist.bench.critics",
    "estimate": "wdist.bench.estimate",
    "contention": "wdist.bench.contention",
    "startup": "wdist.bench.startup",
    "tightness": "wdist.bench.tightness",
}
#: The benchmark names, in the order ``wdist bench --help`` lists them.
BENCHES = tuple(_BENCHES)


def main(argv: Sequence[str]) -> int:
    """Dispatch ``wdist bench NAME [options]`` to ``wdist.bench.NAME.cli``."""
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in _BENCHES:
        if argv and argv[0] not in ("-h", "--help"):
            print(
                f"wdist bench: error: unknown benchmark {argv[0]!r}; choose one of: {', '.join(_BENCHES)}.",
                file=sys.stderr,
            )
            return 2
        print(f"usage: wdist bench {{{','.join(BENCHES)}}} [options]   (wdist bench NAME --help for its options)\n")
        print(__doc__)
        return 0
    module = importlib.import_module(_BENCHES[argv[0]])
    return int(module.cli(argv[1:]) or 0)
