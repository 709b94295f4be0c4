"""The worked examples in notebooks/ are executed here, on reduced settings, so they cannot rot.

Each notebook reads ``WDIST_NOTEBOOK_FAST`` in its first code cell and picks a few training steps
and small samples when it is ``"1"``. The kernel is started from this interpreter's environment
(checked by an injected first cell), with the repository root as its working directory and one
intra-op thread (on a shared 2-core machine two threads per process are several times slower).
Outputs are never written back: the committed notebooks stay output-free (checked below), and
everything a notebook writes goes to a temporary folder, never into the repository (checked too).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 1800  # a hang guard, generous: a loaded machine is slow, not hung

# Text that must appear in a notebook's outputs (stream, markdown or plain text), per notebook.
EXPECTED = {
    "01_toy_exact_ot.ipynb": [
        "translation-2d",
        "certified = True",
        "certified W1 lower bound",
        "exact W1",
        "NOT a bound",  # the gradient-penalty critic's raw number, labelled as such
        "certified Lip(f) <=",
        "anchors (each item moved 0.5 of the way",  # the known-W1 image pair
        "bound / exact W1 =",
    ],
    "02_generator_vs_dataset.ipynb": [
        "certified W1 lower bound",
        "empirical OT floor",
        "| bcop (bcop-dcgan) |",
        "| no (L = ",  # the GP row of the comparison table: not 1-Lipschitz
        "image problems",  # the CIFAR-10 / STL-10 cell ran (or said what to download)
    ],
    "03_bring_your_own.ipynb": [
        "TensorFile my_digits.npy",
        "python:mymod:make",
        "same generator, same numbers: True",
        "certified Lip(D) <= 1.0000",
        "certified W1 lower bound",
    ],
    "04_w1_through_training.ipynb": [
        "GAN step",
        "certified: True",
        "rows with w1/lower_bound in the trainer's metrics.csv",
    ],
}

_KERNEL_CHECK = (
    "import sys as _sys\n"
    f"assert _sys.prefix == {sys.prefix!r}, "
    f"'notebook kernel runs ' + _sys.executable + ', not the test interpreter {sys.executable}'\n"
    "del _sys"
)


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif out.get("output_type") in ("display_data", "execute_result"):
                data = out.get("data", {})
                parts.append(data.get("text/markdown", ""))
                parts.append(data.get("text/plain", ""))
            elif out.get("output_type") == "error":
                parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "\n".join(parts)


def _repo_files() -> set[str]:
    skip = {".git", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".venv", ".venv-ci", "wdist.egg-info"}
    found = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in skip and not d.startswith(".venv")]
        for f in filenames:
            found.add(os.path.relpath(os.path.join(dirpath, f), ROOT))
    return found


def test_the_three_notebooks_exist() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert set(EXPECTED) <= names, f"missing notebooks: {sorted(set(EXPECTED) - names)}"
    assert (ROOT / "notebooks" / "README.md").is_file()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_no_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    assert 'os.environ.get("WDIST_NOTEBOOK_FAST") == "1"' in code[0].source, "the first code cell must read FAST"
    for cell in code:
        assert not cell.get("outputs"), f"committed outputs in cell {cell.get('id')}: clear them before committing"
        assert cell.get("execution_count") is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The kernel inherits this process's environment; its tempfile.mkdtemp() lands in tmp_path.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("WDIST_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(_KERNEL_CHECK))
    before = _repo_files()
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(ROOT)}},
    )
    t0 = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:  # the message holds the cell and traceback
        pytest.fail(f"{path.name}: a cell raised:\n{err}")
    elapsed = time.perf_counter() - t0
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    text = _outputs_text(nb)
    missing = [s for s in EXPECTED.get(path.name, []) if s not in text]
    assert not missing, f"{path.name}: expected output not found: {missing}\n--- outputs ---\n{text[-4000:]}"
    new_files = sorted(_repo_files() - before)
    assert not new_files, f"{path.name} wrote into the repository: {new_files[:20]}"
    print(f"{path.name}: {elapsed:.1f} s")
