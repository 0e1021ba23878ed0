"""The results of a sweep: one row per grid point, with its coordinates, metrics and status."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class SweepTable:
    """Metrics of a sweep with their grid coordinates (NumPy arrays, one row per point).

    Rows are sorted by flat grid index (row-major over the grid's axes, in the order the
    grid was given).

    **Fields:**

    - `axes`: axis name -> the grid's values on that axis.
    - `index`: flat grid index of each row, shape `(rows,)`.
    - `coords`: axis name -> the coordinate of each row, shape `(rows,)`.
    - `metrics`: metric name -> values, shape `(rows, *metric_shape)`. Metrics the run
      function returned as a `linflow.RESULTS` (or any `equinox.Enumeration`) hold the
      outcome's name as a string.
    - `status`: `"ok"`, the name of a non-successful outcome (e.g. `"max_steps_reached"`),
      or `"nonfinite:<metric>"`, shape `(rows,)`. Failed points are kept, never dropped.
    - `meta`: grid description, seed, library version.
    """

    axes: dict[str, np.ndarray]
    index: np.ndarray
    coords: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    status: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return int(self.index.size)

    def __getitem__(self, name: str) -> np.ndarray:
        """A coordinate, metric or `"status"` column."""
        if name == "status":
            return self.status
        if name in self.coords:
            return self.coords[name]
        if name in self.metrics:
            return self.metrics[name]
        raise KeyError(
            f"no column {name!r}; axes: {list(self.coords)}, metrics: {list(self.metrics)}."
        )

    @property
    def shape(self) -> tuple[int, ...]:
        """The full grid's shape (axes in grid order)."""
        return tuple(v.size for v in self.axes.values())

    @property
    def complete(self) -> bool:
        """Whether every grid point has a row."""
        return len(self) == int(np.prod(self.shape))

    @property
    def missing(self) -> np.ndarray:
        """Flat grid indices of the points without a row (empty once the sweep is complete)."""
        return np.setdiff1d(np.arange(int(np.prod(self.shape))), self.index)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of rows whose status is `"ok"`."""
        return self.status == "ok"

    def select(self, **where) -> "SweepTable":
        """The rows whose coordinates equal the given values, e.g. `table.select(n=40)`."""
        mask = np.ones(len(self), bool)
        for name, value in where.items():
            if name not in self.coords:
                raise KeyError(f"{name!r} is not an axis; axes: {list(self.coords)}.")
            mask &= self.coords[name] == value
        return self._rows(mask)

    def _rows(self, mask) -> "SweepTable":
        return SweepTable(
            axes=self.axes,
            index=self.index[mask],
            coords={k: v[mask] for k, v in self.coords.items()},
            metrics={k: v[mask] for k, v in self.metrics.items()},
            status=self.status[mask],
            meta=self.meta,
        )

    def to_grid(self, name: str, *, fill=np.nan) -> np.ndarray:
        """A column laid out on the grid: shape `(*grid_shape, *metric_shape)`.

        Points without a row (an unfinished sweep) hold `fill`.
        """
        col = self[name]
        if col.dtype.kind in "biu" and isinstance(fill, float) and np.isnan(fill):
            col = col.astype(float)
        out = np.full((int(np.prod(self.shape)),) + col.shape[1:], fill, dtype=col.dtype)
        out[self.index] = col
        return out.reshape(self.shape + col.shape[1:])

    def to_dict(self) -> dict[str, np.ndarray]:
        """All columns in one flat dict (coordinates, metrics, `status`, `index`)."""
        return {"index": self.index, **self.coords, **self.metrics, "status": self.status}

    def __repr__(self):
        n_ok = int(np.sum(self.ok))
        return (
            f"SweepTable({len(self)}/{int(np.prod(self.shape))} points, {n_ok} ok; "
            f"axes {list(self.axes)}; metrics {list(self.metrics)})"
        )
