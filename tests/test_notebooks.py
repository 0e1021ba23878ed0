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
    monkeypatch.delenv("LINFLOW_SOURCE", raising=False)  # nothing is installed
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


def _setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    assert "LINFLOW_SOURCE" in cell.source, f"{path.name}: the first code cell is not the setup"
    return cell.source


def test_every_notebook_starts_with_the_generated_setup_cell():
    """One setup cell, the generator's, in every notebook; none installs the bare name."""
    import importlib.util

    generator = EXAMPLES / "_make_notebooks.py"
    spec = importlib.util.spec_from_file_location("_make_notebooks", generator)
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    for path in NOTEBOOKS:
        source = _setup_cell(path)
        lines = [line for line in source.splitlines() if line.strip()]  # ruff adds blank lines
        assert lines == [line for line in make.SETUP.splitlines() if line.strip()], path.name
        assert "pip install linflow" not in source and "%pip" not in source, path.name


@pytest.mark.parametrize(
    "colab, env, expect",
    [
        (True, None, RuntimeError),  # Colab, no source configured: stop and say what to set
        (True, "linflow", ValueError),  # the bare name is refused everywhere
        (False, "linflow==0.2.0", ValueError),
        (True, "git+https://host.example/owner/linflow@v0.2.0", "installs"),
        (False, "/tmp/dist/linflow-0.2.0-py3-none-any.whl", "installs"),  # CI's fresh wheel
        (False, None, None),  # a local run installs nothing
    ],
)
def test_setup_cell_installs_only_an_explicit_source(monkeypatch, colab, env, expect):
    import subprocess
    import sys
    import types

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: calls.append(args))
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    if env is None:
        monkeypatch.delenv("LINFLOW_SOURCE", raising=False)
    else:
        monkeypatch.setenv("LINFLOW_SOURCE", env)
    source = _setup_cell(NOTEBOOKS[0])
    if isinstance(expect, type):
        with pytest.raises(expect, match="LINFLOW_SOURCE"):
            exec(source, {})
        assert calls == []
    elif expect == "installs":
        exec(source, {})
        assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", env]]
    else:
        exec(source, {})
        assert calls == []
