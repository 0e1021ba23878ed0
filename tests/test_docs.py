"""The documentation site builds with `mkdocs build --strict`: every page in the nav exists,
every internal link resolves and every `::: linflow.name` API block resolves to a documented
object. Skipped when mkdocs / mkdocstrings are not installed."""

import os
import pathlib
import subprocess
import sys

import pytest


pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")
pytest.importorskip("material")

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The API pages were rendered from the docstrings, not left as `:::` text.
    api = (tmp_path / "site" / "api" / "flow" / "index.html").read_text()
    assert 'id="linflow.flow"' in api and ":::" not in api
    limits = (tmp_path / "site" / "api" / "limits" / "index.html").read_text()
    assert 'id="linflow.limits.hypentropy.hypentropy"' in limits
