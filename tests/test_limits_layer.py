"""`linflow.limits` is a layer of pure functions of arrays: no module of it imports a model
(models may import limits; a limit never needs a model object)."""

import ast
import pathlib

import linflow


LIMITS = pathlib.Path(linflow.__file__).parent / "limits"


def _imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # also the imports inside functions
        if isinstance(node, ast.ImportFrom):
            yield "." * node.level + (node.module or "")
            for alias in node.names:  # `from .. import models`
                yield f"{'.' * node.level}{node.module or ''}.{alias.name}"
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_no_limit_module_imports_a_model():
    files = sorted(LIMITS.glob("*.py"))
    assert len(files) > 5
    offenders = {
        f.name: m
        for f in files
        for m in _imported_modules(f)
        if "models" in m.split(".") or m.startswith("linflow.models")
    }
    assert not offenders, offenders
