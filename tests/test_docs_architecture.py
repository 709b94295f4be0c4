"""The architecture page of the docs (docs/architecture.md) matches the code.

* Its import layers: every module of ``critics``, ``generators`` and ``wdist`` belongs to exactly one
  box (``critics``, ``generators``, ``wdist.sources``, ``wdist.problems`` and ``wdist.bench`` are one box each, every
  other ``wdist`` module its own), and every import between boxes goes to a strictly lower layer, as
  read by the import graph of tests/test_imports.py.
* Its flow picture: every file it names exists, and the commands it says are built on the
  estimation pipeline import ``wdist.pipeline``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from test_imports import edges, modules

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
#: Packages drawn as one box.
BOXES = ("critics", "generators", "wdist.sources", "wdist.problems", "wdist.bench")


def box(module: str) -> str:
    """The box of the picture that holds ``module``."""
    return next((b for b in BOXES if module == b or module.startswith(b + ".")), module)


def layers_drawn() -> dict[str, int]:
    """Box -> layer, as the page draws them."""
    block = re.search(r"<!-- import layers -->\n```text\n(.*?)```", PAGE, flags=re.S)
    assert block, "docs/architecture.md lost its import-layers picture"
    drawn: dict[str, int] = {}
    for line in block.group(1).splitlines():
        layer, *names = line.split()
        for name in names:
            assert name not in drawn, f"{name} is drawn twice"
            drawn[name] = int(layer)
    return drawn


@functools.lru_cache(maxsize=None)
def box_graph() -> dict[str, frozenset[str]]:
    graph: dict[str, set[str]] = {}
    for m in modules():
        graph.setdefault(box(m), set()).update(box(e.target) for e in edges(m) if box(e.target) != box(m))
    return {b: frozenset(targets) for b, targets in graph.items()}


def layers_of_code() -> dict[str, int]:
    """Box -> the longest import chain below it (the picture that matches the code)."""

    @functools.lru_cache(maxsize=None)
    def depth(b: str) -> int:
        return 1 + max((depth(t) for t in box_graph()[b]), default=-1)

    return {b: depth(b) for b in box_graph()}


def picture() -> str:
    by_layer: dict[int, list[str]] = {}
    for b, layer in layers_of_code().items():
        by_layer.setdefault(layer, []).append(b)
    return "\n".join(f"{layer}  {'  '.join(sorted(by_layer[layer]))}" for layer in sorted(by_layer, reverse=True))


def test_every_module_is_drawn_once() -> None:
    drawn = layers_drawn()
    missing = sorted(set(box_graph()) - set(drawn))
    extra = sorted(set(drawn) - set(box_graph()))
    assert not missing and not extra, (
        f"docs/architecture.md's import layers: missing {missing}, no such module {extra}; a picture that "
        f"matches the code:\n{picture()}"
    )


def test_every_import_goes_down_a_layer() -> None:
    drawn = layers_drawn()
    upward = [
        f"{source} (layer {drawn[source]}) imports {target} (layer {drawn[target]})"
        for source, targets in box_graph().items()
        for target in sorted(targets)
        if source in drawn and target in drawn and drawn[target] >= drawn[source]
    ]
    assert not upward, "; ".join(upward) + f"\na picture that matches the code:\n{picture()}"


def test_the_flow_picture_names_files_that_exist() -> None:
    flow = PAGE.split("```")[1]
    named = re.findall(r"\b((?:wdist|critics|generators)/[\w/]*\.py)", flow)
    assert len(named) > 20
    missing = [path for path in named if not (ROOT / path).is_file()]
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_the_commands_built_on_the_pipeline_import_it() -> None:
    for module in ("wdist.compare", "wdist.tracking", "wdist.monitor", "wdist.bench.tightness"):
        targets = {e.target for e in edges(module)}
        assert "wdist.pipeline" in targets, f"{module} is drawn as built on estimate(); no import of wdist.pipeline"
