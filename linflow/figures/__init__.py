"""Registry of the paper figures that `linflow reproduce <name>` regenerates.

A figure is a function `reproduce(*, quick: bool, out: pathlib.Path, quiet: bool) -> dict`
that runs its sweep (resumably, under `out`), writes its PNG and JSON there, and returns a
summary (paths and headline numbers). Register one with

```python
from linflow.figures import register_figure

@register_figure("min-fig2")
def reproduce(*, quick, out, quiet): ...
```

or, to avoid importing heavy modules when the CLI starts, by import path:
`register_figure("min-fig2", "linflow.figures.min_fig2:reproduce")`. Other packages can add
figures through the `linflow.figures` entry-point group.
"""

import importlib
import importlib.metadata
from collections.abc import Callable


FIGURES: dict[str, str | Callable] = {
    "woodworth-fig1": "linflow.figures.woodworth_fig1:reproduce",
}


def register_figure(name: str, target: str | Callable | None = None):
    """Register a figure under `name`: `target` is a callable or `"module:function"`.

    Used as a decorator when `target` is omitted.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"figure name must be a non-empty string, got {name!r}.")

    def _register(fn):
        FIGURES[name] = fn
        return fn

    if target is None:
        return _register
    if not (callable(target) or (isinstance(target, str) and ":" in target)):
        raise TypeError(f"`target` must be a callable or 'module:function', got {target!r}.")
    FIGURES[name] = target
    return target


def _entry_points() -> dict:
    try:
        return {ep.name: ep for ep in importlib.metadata.entry_points(group="linflow.figures")}
    except Exception:  # pragma: no cover - broken metadata
        return {}


def available() -> list[str]:
    """Names of every registered figure."""
    return sorted(set(FIGURES) | set(_entry_points()))


def get_figure(name: str) -> Callable:
    """The `reproduce` function registered under `name`."""
    target = FIGURES.get(name)
    if target is None:
        ep = _entry_points().get(name)
        if ep is None:
            raise KeyError(f"unknown figure {name!r}; available: {', '.join(available())}.")
        return ep.load()
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    return target
