"""Matplotlib figures used by the benchmarks, the docs and the notebooks.

matplotlib is imported inside the functions, so importing `linflow.plot` never selects a
backend; scripts that run headless call `matplotlib.use("Agg")` first (the CLI does).
"""

from collections.abc import Callable, Sequence

import numpy as np


def _log_axis(values: np.ndarray) -> bool:
    """Log scale for positive numeric coordinates spanning more than a decade and a half."""
    v = np.asarray(values)
    if v.dtype.kind not in "iuf" or v.size < 2 or np.any(v <= 0):
        return False
    return float(np.max(v) / np.min(v)) > 30.0


def _edges(centres: np.ndarray, log: bool) -> np.ndarray:
    c = np.log10(centres) if log else np.asarray(centres, float)
    if c.size == 1:
        e = np.array([c[0] - 0.5, c[0] + 0.5])
    else:
        mid = (c[1:] + c[:-1]) / 2
        e = np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
    return 10**e if log else e


def phase_diagram(
    table,
    x: str,
    y: str,
    value: str,
    *,
    reduce: str | Callable = "mean",
    where: dict | None = None,
    reduce_over: Sequence[str] = ("seed",),
    only_ok: bool = True,
    log_x: bool | None = None,
    log_y: bool | None = None,
    log_value: bool | None = None,
    contour: float | Sequence[float] | None = None,
    ax=None,
    cmap: str = "viridis",
    title: str | None = None,
):
    r"""A heat map of one metric of a `linflow.SweepTable` over two of its axes.

    Points at the same $(x, y)$ are combined with `reduce` over the axes named in
    `reduce_over` (by default the seeds) only: any other axis with more than one value must be
    fixed with `where`, or the call fails naming it (a plot never silently averages, say, two
    depths together). Failed points (status other than `"ok"`) are left out when `only_ok`, and
    cells without any successful point are drawn grey. A `contour` level the data never cross
    is said in the plot, not silently left out.

    **Arguments:**

    - `table`: a `linflow.SweepTable` (from `Sweep.run()` or `Sweep.load()`).
    - `x`, `y`: axis names for the horizontal and vertical axes.
    - `value`: the metric to colour by (a scalar metric).
    - `reduce`: `"mean"`, `"median"`, `"min"`, `"max"` or a function `array -> float`
      over the points of a cell.
    - `where`: fix other axes first, e.g. `{"depth": 2}`.
    - `reduce_over`: the axes `reduce` may combine (default `("seed",)`).
    - `log_x`, `log_y`, `log_value`: log scales; `None` chooses log for positive values
      spanning more than ~1.5 decades.
    - `contour`: level(s) of `value` to outline (e.g. a population-error threshold).
    - `ax`: a matplotlib axes to draw on (default: a new figure).

    **Returns:** the matplotlib axes.
    """
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    if where:
        table = table.select(**where)
    for name in (x, y):
        if name not in table.axes:
            raise ValueError(f"{name!r} is not an axis of the sweep; axes: {list(table.axes)}.")
    mixed = [
        name
        for name, values in table.axes.items()
        if name not in (x, y, *reduce_over) and np.unique(table.coords[name]).size > 1
    ]
    if mixed:
        raise ValueError(
            f"axes {mixed} have several values in the plotted points; fix them with "
            f"`where={{{mixed[0]!r}: ...}}` or name them in `reduce_over` to combine them."
        )
    col = np.asarray(table[value])
    if col.ndim != 1 or col.dtype.kind not in "biuf":
        raise ValueError(f"`value` {value!r} must be a numeric scalar metric, got {col.shape}.")
    reducers = {"mean": np.mean, "median": np.median, "min": np.min, "max": np.max}
    fn = reducers[reduce] if isinstance(reduce, str) else reduce
    xs, ys = np.asarray(table.axes[x]), np.asarray(table.axes[y])
    ok = table.ok if only_ok else np.ones(len(table), bool)
    grid = np.full((ys.size, xs.size), np.nan)
    for i, yv in enumerate(ys):
        for j, xv in enumerate(xs):
            m = ok & (table.coords[x] == xv) & (table.coords[y] == yv)
            if np.any(m):
                grid[i, j] = fn(col[m].astype(float))
    log_x = _log_axis(xs) if log_x is None else log_x
    log_y = _log_axis(ys) if log_y is None else log_y
    finite = grid[np.isfinite(grid)]
    if log_value is None:
        log_value = finite.size > 0 and np.all(finite > 0) and finite.max() / finite.min() > 30
    norm = mcolors.LogNorm() if log_value else None
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.0), layout="constrained")
    xe, ye = _edges(xs.astype(float), log_x), _edges(ys.astype(float), log_y)
    ax.set_facecolor("0.85")
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(grid), norm=norm, cmap=cmap)
    if contour is not None and xs.size > 1 and ys.size > 1:
        levels = np.atleast_1d(contour).astype(float)
        crossed = [lv for lv in levels if finite.size and finite.min() < lv < finite.max()]
        if crossed:
            ax.contour(xs, ys, grid, levels=crossed, colors="w", linewidths=1.5)
        missed = [lv for lv in levels if lv not in crossed]
        if missed:
            span = f"{finite.min():.3g} to {finite.max():.3g}" if finite.size else "no data"
            ax.text(
                0.02,
                0.02,
                f"no contour at {', '.join(f'{lv:g}' for lv in missed)}: {value} spans {span}",
                transform=ax.transAxes,
                fontsize="small",
                color="k",
                bbox=dict(facecolor="w", alpha=0.8, lw=0),
            )
    ax.figure.colorbar(
        mesh, ax=ax, label=f"{value} ({reduce if isinstance(reduce, str) else 'reduced'})"
    )
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if title:
        ax.set_title(title)
    return ax


def trajectories(
    solution,
    *,
    coords: Sequence[int] | None = None,
    reference=None,
    ax=None,
    max_lines: int = 20,
    title: str | None = None,
):
    r"""The predictor's entries against time, $t \mapsto \beta_i(t)$, on a log time axis.

    **Arguments:**

    - `solution`: a `linflow.FlowSolution` (saved times `ts` and `predictors`), or a batch
      of them (leading axis), drawn one colour per entry.
    - `coords`: which flattened predictor entries to draw (default: the `max_lines`
      largest in magnitude at the end).
    - `reference`: an optional limit (same shape as the predictor) drawn as dashed lines
      at the right edge, e.g. the hypentropy minimiser.
    - `ax`: a matplotlib axes (default: a new figure).

    **Returns:** the matplotlib axes.
    """
    import matplotlib.pyplot as plt

    ts = np.asarray(solution.ts)
    preds = np.asarray(solution.predictors)
    if ts.ndim == 2:  # a batch of solutions: draw the first
        ts, preds = ts[0], preds[0]
    preds = preds.reshape(ts.size, -1)
    finite = np.isfinite(preds).all(axis=1) & (ts > 0)
    ts, preds = ts[finite], preds[finite]
    if coords is None:
        coords = np.argsort(-np.abs(preds[-1]))[:max_lines] if preds.size else []
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.6), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, i in enumerate(coords):
        c = colors[k % len(colors)]
        ax.plot(ts, preds[:, i], color=c, lw=1.2, label=f"$\\beta_{{{i}}}$")
        if reference is not None:
            ax.axhline(np.ravel(np.asarray(reference))[i], color=c, ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("predictor entries")
    if len(coords) <= 8:
        ax.legend(fontsize="small", frameon=False)
    if title:
        ax.set_title(title)
    return ax
