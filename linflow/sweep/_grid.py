"""The grid of a sweep: named axes, which of them change compiled shapes, and flat indices."""

import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence

import numpy as np


class UnknownAxisError(KeyError, ValueError):
    """A point was asked for an axis the grid does not have (a `KeyError` and a `ValueError`)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class Point(Mapping):
    """One grid point as seen by the user's `run` function: axis name -> value.

    Static axes hold Python scalars (`int`, `float`, `str`, `bool`); dynamic axes hold
    0-d JAX arrays (traced inside the compiled chunk).
    """

    def __init__(self, values: dict, axis_names: Sequence[str]):
        self._values = values
        self._axis_names = tuple(axis_names)

    def __getitem__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise UnknownAxisError(
                f"`run` asked for point[{name!r}], but the sweep's grid has no such axis; "
                f"its axes are {list(self._axis_names)}."
            ) from None

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return f"Point({self._values!r})"


def _axis_values(name: str, values) -> np.ndarray:
    if isinstance(values, (str, bytes)) or np.ndim(values) == 0 and not isinstance(values, range):
        raise TypeError(
            f"grid axis {name!r} must be a 1-D sequence or array of values, got "
            f"{type(values).__name__} {values!r}. Wrap a single value in a list: [{values!r}]."
        )
    try:
        arr = np.asarray(values)
    except Exception as e:
        raise TypeError(f"grid axis {name!r}: cannot convert its values to an array.") from e
    if arr.ndim != 1:
        raise ValueError(f"grid axis {name!r} must be 1-D, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"grid axis {name!r} is empty: every axis needs at least one value.")
    if arr.dtype == object:
        raise TypeError(
            f"grid axis {name!r} mixes types ({values!r}); use numbers, strings or bools."
        )
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        raise ValueError(f"grid axis {name!r} contains NaN or inf.")
    if len(np.unique(arr)) != arr.size:
        raise ValueError(f"grid axis {name!r} has repeated values {arr.tolist()}.")
    return arr


def _is_static_by_type(values) -> bool:
    # Python containers are shape-changing ("static") axes; NumPy/JAX arrays are batched.
    return isinstance(values, (list, tuple, range))


class Grid:
    """A Cartesian grid of named axes, in the order the user gave them.

    The *flat index* of a point is its C-order (row-major) position in the full grid; it
    names the point on disk and seeds its PRNG key, so it does not depend on how the points
    are chunked, ordered or placed on devices.

    **Arguments:**

    - `axes`: mapping axis name -> 1-D values.
    - `static_axes`: names of the axes whose value changes the compiled program (array
      shapes, Python control flow). If `None`, axes given as Python `list`/`tuple`/`range`
      are static and axes given as NumPy/JAX arrays are dynamic (batched).
    """

    def __init__(self, axes: Mapping, static_axes: Sequence[str] | None = None):
        if not isinstance(axes, Mapping) or len(axes) == 0:
            raise ValueError("`grid` must be a non-empty dict mapping axis names to values.")
        for name in axes:
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"grid axis names must be identifiers, got {name!r}.")
        self.names: tuple[str, ...] = tuple(axes)
        self.values: dict[str, np.ndarray] = {n: _axis_values(n, v) for n, v in axes.items()}
        if static_axes is None:
            static = {n for n, v in axes.items() if _is_static_by_type(v)}
        else:
            if isinstance(static_axes, str):
                static_axes = (static_axes,)
            unknown = [n for n in static_axes if n not in self.values]
            if unknown:
                raise ValueError(
                    f"`static_axes` names {unknown}, which are not grid axes {list(self.names)}."
                )
            static = set(static_axes)
        for n in self.names:
            if n not in static and self.values[n].dtype.kind not in "biuf":
                raise TypeError(
                    f"grid axis {n!r} holds {self.values[n].dtype} values, which cannot be "
                    "batched; declare it in `static_axes` (or give it as a Python list)."
                )
        self.static: tuple[str, ...] = tuple(n for n in self.names if n in static)
        self.dynamic: tuple[str, ...] = tuple(n for n in self.names if n not in static)
        self.shape: tuple[int, ...] = tuple(self.values[n].size for n in self.names)
        self.size = int(np.prod(self.shape))

    def static_combinations(self) -> Iterator[tuple[int, ...]]:
        """Index tuples over the static axes, in grid order."""
        return itertools.product(*(range(self.values[n].size) for n in self.static))

    def static_point(self, combo: tuple[int, ...]) -> dict:
        """The static axes' values (Python scalars) at a static index tuple."""
        return {n: self.values[n][i].item() for n, i in zip(self.static, combo)}

    def flat_indices(self, combo: tuple[int, ...]) -> np.ndarray:
        """Flat indices of every point of one static combination, in grid order."""
        idx = []
        fixed = dict(zip(self.static, combo))
        for n in self.names:
            if n in fixed:
                idx.append(np.array([fixed[n]]))
            else:
                idx.append(np.arange(self.values[n].size))
        mesh = np.meshgrid(*idx, indexing="ij")
        return np.ravel_multi_index([m.ravel() for m in mesh], self.shape).astype(np.int64)

    def coordinates(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Axis values of the points with the given flat indices."""
        multi = np.unravel_index(np.asarray(flat, dtype=np.int64), self.shape)
        return {n: self.values[n][i] for n, i in zip(self.names, multi)}

    def description(self, seed: int) -> dict:
        """A JSON-able description of the grid and the root seed (what the results depend on)."""
        return {
            "axes": {
                n: {"values": self.values[n].tolist(), "dtype": str(self.values[n].dtype)}
                for n in self.names
            },
            "static_axes": list(self.static),
            "seed": int(seed),
        }

    def hash(self, seed: int) -> str:
        text = json.dumps(self.description(seed), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __repr__(self):
        parts = [
            f"{n}[{self.values[n].size}{', static' if n in self.static else ''}]"
            for n in self.names
        ]
        return f"Grid({', '.join(parts)}; {self.size} points)"
