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
    "min-fig1-4": "linflow.figures.min_fig1_4:reproduce",
    "min-fig2-3": "linflow.figures.min_fig2_3:reproduce",
    "tarmoun-fig1": "linflow.figures.tarmoun:reproduce",
    "tarmoun-fig2": "linflow.figures.tarmoun:reproduce",
    "woodworth-fig1": "linflow.figures.woodworth_fig1:reproduce",
    "woodworth-fig1-3c": "linflow.figures.woodworth_sparse:reproduce",
    "woodworth-fig2-3ab": "linflow.figures.woodworth_potentials:reproduce",
    "woodworth-fig5": "linflow.figures.woodworth_completion:reproduce",
    "yun-classification": "linflow.figures.yun:reproduce",
    "yun-regression": "linflow.figures.yun:reproduce",
}

# One line each for `linflow list`. Figures drawn by the same run share a function.
DESCRIPTIONS: dict[str, str] = {
    "min-fig1-4": "Min et al. 2021, Figs. 1 and 4: distance to the min-norm solution vs width "
    "(h^-1/2 law)",
    "min-fig2-3": "Min et al. 2021, Figs. 2-3: excess loss under imbalance, flow vs GD vs the "
    "Thm 1 bound",
    "tarmoun-fig1": "Tarmoun et al. 2021, Fig. 1: factorisation error, flow vs GD vs the "
    "one-layer model (drawn with Fig. 2)",
    "tarmoun-fig2": "Tarmoun et al. 2021, Fig. 2: width k, flow vs GD vs the Prop. 5 closed "
    "form (drawn with Fig. 1)",
    "woodworth-fig1": "Woodworth et al. 2020, Fig. 1: sparse-regression phase diagram "
    "(N x alpha, a resumable Sweep)",
    "woodworth-fig1-3c": "Woodworth et al. 2020, Figs. 1(a-c) and 3(c): population error and "
    "norm gaps vs alpha, depths 2-4",
    "woodworth-fig2-3ab": "Woodworth et al. 2020, Figs. 2 and 3(a-b): the potentials q, r, q_D "
    "and the l2 -> l1 ratio",
    "woodworth-fig5": "Woodworth et al. 2020, Fig. 5: matrix completion, the alpha^2 k ~ 1 "
    "transition",
    "yun-classification": "Yun et al. 2021: exponential-loss directions vs the max-margin "
    "directions (drawn with the toy regression)",
    "yun-regression": "Yun et al. 2021, Figs. 1-2: toy-regression trajectories and the Thm 6 "
    "limits (drawn with classification)",
}


def register_figure(name: str, target: str | Callable | None = None, *, description: str = ""):
    """Register a figure under `name`: `target` is a callable or `"module:function"`, and
    `description` the line `linflow list` shows.

    Used as a decorator when `target` is omitted.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"figure name must be a non-empty string, got {name!r}.")
    DESCRIPTIONS[name] = description

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


def describe(name: str) -> str:
    """The one-line description of a registered figure (an entry point's target otherwise)."""
    if name in DESCRIPTIONS and DESCRIPTIONS[name]:
        return DESCRIPTIONS[name]
    ep = _entry_points().get(name)
    return f"(from {ep.value})" if ep is not None else ""


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
