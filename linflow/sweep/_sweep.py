"""`Sweep`: evaluate a function of (grid point, key) over a grid, in compiled, sharded,
resumable chunks."""

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.random as jr
import numpy as np

from ._compile import get_program
from ._grid import Grid
from ._storage import read_chunks, write_chunk, write_manifest
from ._table import SweepTable


_MODES = ("auto", "vmap", "map", "loop")
_SUCCESS = ("successful", "converged")


def _version() -> str:
    from .. import __version__

    return __version__


def _run_name(run) -> str:
    module = getattr(run, "__module__", None) or "?"
    name = getattr(run, "__qualname__", None) or type(run).__name__
    return f"{module}:{name}"


def _memory_budget(device) -> int:
    """Bytes one chunk may use on `device`: half its free memory (a quarter of RAM on CPU,
    shared by the host devices)."""
    try:
        stats = device.memory_stats()
        if stats and "bytes_limit" in stats:
            return int(0.5 * (stats["bytes_limit"] - stats.get("bytes_in_use", 0)))
    except Exception:
        pass
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        ram = 8 << 30
    return int(ram // 4 // max(1, len(jax.local_devices(backend=device.platform))))


def _concatenate(parts: list[np.ndarray]) -> np.ndarray:
    """Stack rows of chunks; metrics whose shape differs between static values (e.g. a
    predictor of length `d` with `d` a static axis) are padded with NaN to the largest."""
    if parts[0].dtype.kind == "U":
        return np.concatenate([p.astype(str) for p in parts])
    trailing = {p.shape[1:] for p in parts}
    if len(trailing) == 1:
        return np.concatenate(parts)
    if len({len(t) for t in trailing}) != 1:
        raise ValueError(f"a metric has different ranks for different points: {trailing}.")
    shape = tuple(max(s) for s in zip(*trailing))
    out = []
    for p in parts:
        q = np.full((p.shape[0],) + shape, np.nan)
        q[(slice(None),) + tuple(slice(0, s) for s in p.shape[1:])] = p
        out.append(q)
    return np.concatenate(out)


class Sweep:
    r"""A grid of points, a function `run(point, key) -> metrics`, and where to keep results.

    ```python
    sweep = linflow.Sweep(
        grid={"alpha": jnp.logspace(-3, 1, 32), "seed": jnp.arange(64), "n": [20, 40, 80]},
        run=point_fn,                  # (point, key) -> dict of scalar/array metrics
        path="results/sparse_regression",
    )
    table = sweep.run()                # resumes if interrupted
    ```

    **Axes.** Every grid axis is either *dynamic* (batched: its value is a traced 0-d array
    inside `run`, so all its values share one compiled program) or *static* (its value is a
    Python scalar inside `run`, so it may set array shapes or Python control flow; one
    program is compiled per static value). By default, axes given as NumPy/JAX arrays are
    dynamic and axes given as Python `list`/`tuple`/`range` are static; `static_axes`
    overrides this.

    **Execution.** The points of one static combination are split into chunks. A chunk is
    one compiled call, split over `devices` (a `Mesh`; `jax.shard_map` runs each device's
    share as its own program); within a device the points run either vectorised
    (`mode="vmap"`: one batched solve, which runs as long as its slowest member) or one
    after the other (`mode="map"`: `lax.map` inside the compiled call; `mode="loop"`: a
    Python loop over a compiled single-point call, one device).
    `mode="auto"` uses `"vmap"` on accelerators, `"loop"` on one CPU device and `"map"` on
    several. `group_by` sorts the points before chunking (e.g. by `"alpha"`) so a vmapped
    chunk holds points that take a similar number of solver steps.

    **Reproducibility.** Point $i$ (its row-major flat index in the full grid) gets the key
    `jax.random.fold_in(jax.random.PRNGKey(seed), i)`, so results do not depend on chunk
    size, order, mode or device count.

    **Storage.** With a `path`, every finished chunk is written atomically as an `.npz`
    (no pickle) with its points' flat indices and coordinates, the library version, a hash
    of the grid and the seed. `run()` skips points already on disk, so an interrupted sweep
    resumes where it stopped. Changing the grid or seed under the same `path` is an error.

    **Failures.** A point is never dropped: its `status` is `"ok"`, the name of the outcome
    when `run` returned a non-successful `linflow.RESULTS` (e.g. `"max_steps_reached"`),
    or `"nonfinite:<metric>"`.

    **Multi-host.** After `jax.distributed.initialize()`, each process runs the chunks `k`
    with `k % process_count == process_index` on its local devices and writes them to the
    shared `path`; load the whole table with `sweep.load()` once all processes finished.

    **Arguments:**

    - `grid`: axis name -> 1-D values (non-empty).
    - `run`: `run(point, key) -> dict[str, array]`; `point` maps axis names to values,
      `key` is the point's PRNG key. Return a `linflow.RESULTS` (e.g. `sol.result`) as one of
      the metrics to record why a flow stopped. Must be traceable by JAX.
    - `path`: directory for results; `None` keeps them in memory (no resume).
    - `static_axes`: names of shape-changing axes (see *Axes*).
    - `mode`: `"auto"`, `"vmap"`, `"map"` or `"loop"`.
    - `chunk_size`: points per chunk (rounded up to a multiple of the device count); `None`
      chooses it: for `"vmap"` as large as fits in half the free device memory (at most
      1024 per device), otherwise about 1/32 of the points (at most 256 per device).
    - `group_by`: an axis name, a sequence of names, or a function of the coordinates dict
      returning one sort key per point; points are sorted by it before chunking.
    - `seed`: root PRNG seed.
    - `devices`: devices to shard over (default `jax.local_devices()`).
    - `process`: `(process_index, process_count)` for multi-host sweeps (default from JAX).
    - `quiet`: no progress bar.
    """

    def __init__(
        self,
        grid: Mapping[str, Any],
        run: Callable,
        path: str | os.PathLike | None = None,
        *,
        static_axes: Sequence[str] | None = None,
        mode: str = "auto",
        chunk_size: int | None = None,
        group_by: str | Sequence[str] | Callable | None = None,
        seed: int = 0,
        devices: Sequence | None = None,
        process: tuple[int, int] | None = None,
        quiet: bool = False,
    ):
        if not callable(run):
            raise TypeError(f"`run` must be callable as run(point, key), got {type(run)}.")
        self.grid = Grid(grid, static_axes)
        if mode not in _MODES:
            raise ValueError(f"`mode` must be one of {_MODES}, got {mode!r}.")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"`chunk_size` must be a positive int or None, got {chunk_size!r}.")
        if isinstance(group_by, str):
            group_by = (group_by,)
        if group_by is not None and not callable(group_by):
            unknown = [g for g in group_by if g not in self.grid.values]
            if unknown:
                raise ValueError(
                    f"`group_by` names {unknown}, which are not grid axes {list(self.grid.names)}."
                )
        if not isinstance(seed, (int, np.integer)):
            raise TypeError(f"`seed` must be an int, got {type(seed).__name__}.")
        self.devices = tuple(jax.local_devices() if devices is None else devices)
        if not self.devices:
            raise ValueError("`devices` is empty.")
        if process is None:
            process = (jax.process_index(), jax.process_count())
        if not (0 <= process[0] < process[1]):
            raise ValueError("`process` must be (index, count) with 0 <= index < count.")
        self.process = tuple(process)
        self.run_fn = run
        self.path = None if path is None else Path(path)
        self.static_axes = self.grid.static
        self.mode = mode
        self.chunk_size = chunk_size
        self.group_by = group_by
        self.seed = int(seed)
        self.quiet = quiet
        self.grid_hash = self.grid.hash(self.seed)
        self._memory: list[dict] = []
        self.stats: dict = {}

    # -- configuration ---------------------------------------------------------------------

    @property
    def resolved_mode(self) -> str:
        """The execution mode `"auto"` resolves to on these devices."""
        if self.mode != "auto":
            return self.mode
        if self.devices[0].platform == "cpu":
            return "loop" if len(self.devices) == 1 else "map"
        return "vmap"

    def _manifest(self) -> dict:
        return {
            "grid": self.grid.description(self.seed),
            "grid_hash": self.grid_hash,
            "version": _version(),
            "run": _run_name(self.run_fn),
            "format": 1,
        }

    def _order(self, flat: np.ndarray) -> np.ndarray:
        if self.group_by is None:
            return flat
        coords = self.grid.coordinates(flat)
        if callable(self.group_by):
            keys = np.asarray(self.group_by(coords))
            if keys.shape != flat.shape:
                raise ValueError(
                    f"`group_by` must return one key per point, shape {flat.shape}, got "
                    f"{keys.shape}."
                )
            return flat[np.argsort(keys, kind="stable")]
        return flat[np.lexsort([coords[g] for g in reversed(self.group_by)])]

    # -- results ---------------------------------------------------------------------------

    def _chunks(self) -> list[dict]:
        if self.path is None:
            return list(self._memory)
        return read_chunks(self.path, self.grid_hash)

    def load(self) -> SweepTable:
        """The finished points (all of them after a complete `run()`), as a `SweepTable`."""
        return self._table(self._chunks())

    def _table(self, chunks) -> SweepTable:
        grid = self.grid
        meta = {"grid": grid.description(self.seed), "grid_hash": self.grid_hash}
        meta["version"] = _version()
        if not chunks:
            empty = np.zeros(0, np.int64)
            return SweepTable(
                axes=dict(grid.values),
                index=empty,
                coords={n: grid.values[n][:0] for n in grid.names},
                metrics={},
                status=np.zeros(0, str),
                meta=meta,
            )
        index = np.concatenate([c["index"] for c in chunks])
        index, first = np.unique(index, return_index=True)  # sorted; drops duplicates
        names = list(chunks[0]["metrics"])
        for c in chunks:
            if list(c["metrics"]) != names:
                raise ValueError(
                    "`run` returned different metric names for different points: "
                    f"{names} and {list(c['metrics'])}."
                )
        metrics = {n: _concatenate([c["metrics"][n] for c in chunks])[first] for n in names}
        status = np.concatenate([c["status"] for c in chunks])[first]
        return SweepTable(
            axes=dict(grid.values),
            index=index,
            coords=grid.coordinates(index),
            metrics=metrics,
            status=status,
            meta=meta,
        )

    # -- running ---------------------------------------------------------------------------

    def run(self) -> SweepTable:
        """Evaluate every point not yet finished and return the whole table.

        Raises before any work if the grid or `run` is invalid (unknown axis, empty axis,
        non-dict output). Shows a tqdm progress bar over points unless `quiet`.
        """
        from tqdm.auto import tqdm

        t_start = time.perf_counter()
        grid = self.grid
        mode = self.resolved_mode
        devices = self.devices[:1] if mode == "loop" else self.devices
        n_dev = len(devices)
        if self.path is not None:
            write_manifest(self.path, self._manifest())
        done_chunks = self._chunks()
        done = (
            np.unique(np.concatenate([c["index"] for c in done_chunks]))
            if done_chunks
            else np.zeros(0, np.int64)
        )
        root = jr.PRNGKey(self.seed)
        stats = {
            "points_total": grid.size,
            "points_loaded": int(done.size),
            "points_computed": 0,
            "chunks_computed": 0,
            "programs_compiled": 0,
            "mode": mode,
            "devices": n_dev,
        }
        self.stats = stats
        bar = tqdm(
            total=grid.size,
            initial=int(done.size),
            unit="pt",
            desc="/".join(self.path.parts[-2:]) if self.path is not None else "sweep",
            disable=self.quiet,
            dynamic_ncols=True,
        )
        dyn_dtypes = tuple(
            jax.dtypes.canonicalize_dtype(grid.values[n].dtype) for n in grid.dynamic
        )
        chunk_counter = 0
        try:
            for combo in grid.static_combinations():
                flat_all = self._order(grid.flat_indices(combo))
                nominal = self._nominal_size(flat_all.size, mode, n_dev)
                n_nominal = math.ceil(flat_all.size / nominal)
                first_chunk = chunk_counter
                chunk_counter += n_nominal
                mine = [
                    flat_all[k * nominal : (k + 1) * nominal]
                    for k in range(n_nominal)
                    if (first_chunk + k) % self.process[1] == self.process[0]
                ]
                todo_all = [c[~np.isin(c, done)] for c in mine]
                if not any(t.size for t in todo_all):
                    continue
                static_point = grid.static_point(combo)
                program, size = self._program(
                    static_point, dyn_dtypes, mode, devices, root, nominal
                )
                for todo_nominal in todo_all:
                    for start in range(0, todo_nominal.size, size):
                        todo = todo_nominal[start : start + size]
                        t0 = time.perf_counter()
                        record = self._evaluate(program, todo, dyn_dtypes, root)
                        record["meta"].update(
                            seconds=time.perf_counter() - t0,
                            mode=mode,
                            devices=n_dev,
                            chunk_size=size,
                        )
                        self._store(record)
                        stats["points_computed"] += int(todo.size)
                        stats["chunks_computed"] += 1
                        bar.update(int(todo.size))
        finally:
            bar.close()
        stats["seconds"] = time.perf_counter() - t_start
        return self.load()

    def _nominal_size(self, n: int, mode: str, n_dev: int) -> int:
        """Points per chunk before any memory limit (a multiple of the device count)."""
        if self.chunk_size is not None:
            return math.ceil(self.chunk_size / n_dev) * n_dev
        if mode == "vmap":
            return min(math.ceil(n / n_dev), 1024) * n_dev
        per_dev = min(max(1, math.ceil(self.grid.size / 32 / n_dev)), 256)
        return min(per_dev, math.ceil(n / n_dev)) * n_dev

    def _program(self, static_point, dyn_dtypes, mode, devices, root, size):
        n_dev = len(devices)
        args = (
            self.run_fn,
            static_point,
            self.grid.dynamic,
            dyn_dtypes,
            self.grid.names,
            mode,
        )
        program, compiled = get_program(*args, 1 if mode == "loop" else size, devices, root)
        self.stats["programs_compiled"] += int(compiled)
        if mode == "vmap" and self.chunk_size is None and program.memory_bytes:
            budget = _memory_budget(devices[0])
            per_device = program.memory_bytes / n_dev
            if per_device > budget and size > n_dev:
                per_dev = max(1, int(size / n_dev * budget / per_device))
                size = per_dev * n_dev
                program, compiled = get_program(*args, size, devices, root)
                self.stats["programs_compiled"] += int(compiled)
        return program, size

    def _evaluate(self, program, todo: np.ndarray, dyn_dtypes, root) -> dict:
        grid = self.grid
        n = todo.size
        padded = todo
        if program.batch > 1 and n < program.batch:
            # Pad with copies of the last point: same shapes, no recompilation; a copy takes as
            # many steps as its original, so a vmapped batch gets no slower.
            padded = np.concatenate([todo, np.repeat(todo[-1:], program.batch - n)])
        coords = grid.coordinates(padded)
        dynamic = tuple(
            np.asarray(coords[name], dtype=dt) for name, dt in zip(grid.dynamic, dyn_dtypes)
        )
        out = program.call(dynamic, padded.astype(np.uint32), root)
        metrics = {k: np.asarray(v)[:n] for k, v in out.items()}
        status = np.full(n, "ok", dtype=object)
        for name, enum in program.enums.items():
            names = {int(item._value): nm for nm, item in enum._name_to_item.items()}
            labels = np.array([names.get(int(v), f"unknown_{int(v)}") for v in metrics[name]])
            bad = ~np.isin(labels, _SUCCESS) & (status == "ok")
            status[bad] = labels[bad]
            metrics[name] = labels.astype(str)
        for name, v in metrics.items():
            if v.dtype.kind in "fc":
                finite = np.isfinite(v.reshape(n, -1)).all(axis=1)
                bad = ~finite & (status == "ok")
                status[bad] = f"nonfinite:{name}"
        return {
            "index": todo,
            "coords": {k: v[:n] for k, v in coords.items()},
            "metrics": metrics,
            "status": status.astype(str),
            "meta": {"version": _version(), "grid_hash": self.grid_hash, "seed": self.seed},
        }

    def _store(self, record: dict) -> None:
        if self.path is None:
            self._memory.append(record)
            return
        write_chunk(
            self.path,
            record["index"],
            record["coords"],
            record["metrics"],
            record["status"],
            record["meta"],
        )

    def __repr__(self):
        where = str(self.path) if self.path is not None else "memory"
        return f"Sweep({self.grid!r}, run={_run_name(self.run_fn)}, path={where!r})"
