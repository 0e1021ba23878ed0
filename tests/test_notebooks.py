"""Execute every example notebook (examples/*.ipynb) at its small size (`LINFLOW_SMALL=1`).

The notebooks assert their own checks (e.g. the flow's limit equals the Q_alpha minimiser);
a failing cell fails the test. Skipped when nbclient or ipykernel is not installed.
"""

import os
import pathlib

import pytest


nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
ROOT = EXAMPLES.parent


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch, tmp_path):
    monkeypatch.setenv("LINFLOW_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # The kernel imports linflow from this checkout, not from whatever is installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(path, as_version=4)
    # The cell timeout only guards against a hung kernel: a cell takes up to ~1 min on a slow
    # 2-core machine, so it is far above that.
    client = nbclient.NotebookClient(
        nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()


def test_notebooks_are_stripped():
    """Notebooks are committed without outputs (regenerate with examples/_make_notebooks.py)."""
    assert NOTEBOOKS, "no notebooks found in examples/"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name
