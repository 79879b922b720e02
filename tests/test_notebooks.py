"""Every notebook in notebooks/ runs headless, in fast mode, and follows the notebook rules.

The execution test starts a ``python3`` Jupyter kernel per notebook (nbclient) with
``FPHINT_FAST=1`` and the repository on ``PYTHONPATH``, runs every cell with a per-cell timeout
and fails on the first error.  Notebooks are globbed, so one added to the folder is tested
without touching this file.  The structure tests check the rules of docs/notebooks.md:
committed without outputs, thin (no ``def``), the package imported and its style used in the
first code cell, a fast mode, and the Pythia section order.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: seconds one cell may take in fast mode (the first one may compile Numba kernels)
CELL_TIMEOUT = int(os.environ.get("FPHINT_CELL_TIMEOUT", "300"))
#: Pythia cookbook order of the sections every notebook has (others may sit in between)
PYTHIA_ORDER = ("overview", "prerequisites", "imports", "summary")


def _ids(path: Path) -> str:
    return path.name


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _headings(nb) -> list[str]:
    out = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            out += [
                m.group(1).strip().lower() for m in re.finditer(r"^#+\s+(.*)$", cell.source, re.M)
            ]
    return out


def _package_root() -> Path:
    """Folder holding the ``fphint_kernels`` this test process imports (repo or install)."""
    import fphint_kernels

    return Path(fphint_kernels.__file__).resolve().parents[1]


def kernel_env(**extra) -> dict:
    """Environment of a notebook kernel: fast mode, headless Matplotlib, the package importable."""
    env = dict(os.environ)
    paths = [str(_package_root()), str(ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update(
        FPHINT_FAST="1",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    env.update(extra)
    return env


def test_notebooks_found():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"
    names = {p.name for p in NOTEBOOKS}
    assert {"02_explore.ipynb", "03_how_precopy_works.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_committed_without_outputs(path):
    nb = _read(path)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: strip them"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_thin_and_styled(path):
    nb = _read(path)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code"
    first = code[0]
    assert "import fphint_kernels as fk" in first, f"{path.name}: first code cell imports fk"
    assert "fk.plot.use_style()" in first, f"{path.name}: first code cell uses the package style"
    for i, src in enumerate(code):
        assert not re.search(r"^\s*(async\s+)?def\s|^\s*class\s", src, re.M), (
            f"{path.name} code cell {i} defines a function or class: move it to the package"
        )
    assert any("FPHINT_FAST" in src for src in code), f"{path.name} has no fast mode (FPHINT_FAST)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_pythia_order(path):
    heads = _headings(_read(path))
    pos = []
    for name in PYTHIA_ORDER:
        hits = [i for i, h in enumerate(heads) if h.startswith(name)]
        assert hits, f"{path.name} lacks a '{name.title()}' section (headings: {heads})"
        pos.append(hits[0])
    assert pos == sorted(pos), f"{path.name}: sections out of Pythia order {PYTHIA_ORDER}"


@pytest.mark.slow  # kernels of its own, which would run JIT-disabled in the coverage pass
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_executes(path):
    """Run the notebook headless as the tests' fast mode does; any cell error fails."""
    from nbclient import NotebookClient

    nb = _read(path)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        allow_errors=False,
    )
    client.execute(env=kernel_env())
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "error"
    ]
    assert not errors
    ran = [c for c in nb.cells if c.cell_type == "code" and c.execution_count is not None]
    assert len(ran) == sum(c.cell_type == "code" for c in nb.cells)
