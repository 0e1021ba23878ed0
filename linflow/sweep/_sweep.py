"""`Sweep`: evaluate a function of (grid point, key) over a grid, in compiled, sharded,
resumable chunks."""

import hashlib
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.random as jr
import numpy as np

from ._backend import AbstractBackend, Local
from ._compile import get_program, trace_point
from ._grid import Grid
from ._storage import read_chunks, read_manifest, write_chunk, write_manifest
from ._table import SweepTable


class IncompleteSweepWarning(UserWarning):
    """`Sweep.load()` found points without results (e.g. a process of a split sweep has not
    finished); the warning names them."""


_MODES = ("auto", "vmap", "map", "loop")
_ON_MISMATCH = ("raise", "overwrite")
_MISSING = ("warn", "raise", "ignore")
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

    **Chunks.** The points of each static combination, sorted by `group_by`, are cut into
    chunks of `chunk_size` points: the chunks (`sweep.chunks()`) are a function of the grid,
    `chunk_size` and `group_by` alone, never of the devices or the mode, so processes with
    different hardware split one grid without gaps or overlaps. A chunk is the unit of work
    and of storage: it is computed whole by one process and written as one file.

    **Execution.** A chunk is evaluated by compiled calls of a fixed batch (the chunk size
    rounded up to a multiple of the device count, fewer for `vmap` if the compiled program
    would not fit in memory), split over `devices` (a `Mesh`; `jax.shard_map` runs each
    device's share as its own program); within a device the points run either vectorised
    (`mode="vmap"`: one batched solve, which runs as long as its slowest member) or one
    after the other (`mode="map"`: `lax.map` inside the compiled call; `mode="loop"`: a
    Python loop over a compiled single-point call, one device).
    `mode="auto"` uses `"vmap"` on accelerators, `"loop"` on one CPU device and `"map"` on
    several. `group_by` sorts the points before chunking (e.g. by `"alpha"`) so a vmapped
    chunk holds points that take a similar number of solver steps.

    **Reproducibility.** Point $i$ (its row-major flat index in the full grid) gets the key
    `jax.random.fold_in(jax.random.PRNGKey(seed), i)`, so results do not depend on chunk
    size, order, mode or device count.

    **Storage and identity.** With a `path`, every finished chunk is written atomically as
    an `.npz` (no pickle) with its points' flat indices and coordinates. The sweep's
    identity (`sweep.identity`: a hash of the grid and seed, the library version and the
    run function's fingerprint, a hash of the jaxpr `run` traces to on the first grid
    point with the values of the constants it closes over) is stored in `path/sweep.json`
    and in every chunk. `run()` skips points already on disk, so an interrupted sweep
    resumes where it stopped; results of a different sweep under the same `path` (another
    grid or seed, another version, a run function that computes something else, whatever
    its name) are never mixed in: `run()` and `load()` raise a `SweepMismatchError`, or,
    with `on_mismatch="overwrite"`, `run()` deletes them and computes again.

    **Failures.** A point is never dropped: its `status` is `"ok"`, the name of the outcome
    when `run` returned a non-successful `linflow.RESULTS` (e.g. `"max_steps_reached"`),
    or `"nonfinite:<metric>"`.

    **Several processes.** Process `i` of `n` computes the chunks `k` with
    `k % n == i` on its own devices and writes them to the shared `path`; `process`
    defaults to JAX's (`jax.distributed.initialize()`), and may be given for independent
    batch jobs (a SLURM array). `backend="ray"` instead makes each chunk a Ray task
    (`linflow.sweep.Ray`). `sweep.load()` on any machine returns the whole table once every
    chunk is written, and warns naming the missing points before that.

    **Arguments:**

    - `grid`: axis name -> 1-D values (non-empty).
    - `run`: `run(point, key) -> dict[str, array]`; `point` maps axis names to values,
      `key` is the point's PRNG key. Return a `linflow.RESULTS` (e.g. `sol.result`) as one of
      the metrics to record why a flow stopped. Must be traceable by JAX.
    - `path`: directory for results; `None` keeps them in memory (no resume).
    - `static_axes`: names of shape-changing axes (see *Axes*).
    - `mode`: `"auto"`, `"vmap"`, `"map"` or `"loop"`.
    - `chunk_size`: points per chunk; `None` chooses about 1/32 of the grid, at most 1024
      points and at most one static combination.
    - `group_by`: an axis name, a sequence of names, or a function of the coordinates dict
      returning one sort key per point; points are sorted by it before chunking.
    - `seed`: root PRNG seed.
    - `devices`: devices to shard over (default `jax.local_devices()`).
    - `process`: `(process_index, process_count)` for sweeps split over processes (default
      from JAX).
    - `backend`: `"local"` (this process, default), `"ray"` (one Ray task per chunk), or a
      backend object (`linflow.sweep.Local()`, `linflow.sweep.Ray(...)`).
    - `on_mismatch`: `"raise"` (default) or `"overwrite"`: what `run()` does with results
      of a different sweep under `path` (see *Storage and identity*).
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
        backend: "str | AbstractBackend" = "local",
        on_mismatch: str = "raise",
        quiet: bool = False,
    ):
        if not callable(run):
            raise TypeError(f"`run` must be callable as run(point, key), got {type(run)}.")
        self.grid = Grid(grid, static_axes)
        if mode not in _MODES:
            raise ValueError(f"`mode` must be one of {_MODES}, got {mode!r}.")
        if chunk_size is not None and (
            isinstance(chunk_size, bool)
            or not isinstance(chunk_size, (int, np.integer))
            or chunk_size < 1
        ):
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
        if (
            len(process) != 2
            or not all(isinstance(p, (int, np.integer)) for p in process)
            or not (0 <= process[0] < process[1])
        ):
            raise ValueError(
                f"`process` must be (index, count) with 0 <= index < count, got {process!r}."
            )
        if isinstance(backend, str):
            backend = _backend_named(backend)
        if not isinstance(backend, AbstractBackend):
            raise TypeError(
                f"`backend` must be 'local', 'ray' or a linflow.sweep backend, got {backend!r}."
            )
        if on_mismatch not in _ON_MISMATCH:
            raise ValueError(f"`on_mismatch` must be one of {_ON_MISMATCH}, got {on_mismatch!r}.")
        self.process = (int(process[0]), int(process[1]))
        self.run_fn = run
        self.path = None if path is None else Path(path)
        self.static_axes = self.grid.static
        self.mode = mode
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.group_by = group_by
        self.seed = int(seed)
        self.backend = backend
        self.on_mismatch = on_mismatch
        self.quiet = quiet
        self.grid_hash = self.grid.hash(self.seed)
        backend.check(self)
        self._memory: list[dict] = []
        self._identity: dict | None = None
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

    @property
    def resolved_chunk_size(self) -> int:
        """Points per chunk: `chunk_size`, or about 1/32 of the grid (at most 1024 points and
        at most one static combination). A function of the grid alone."""
        if self.chunk_size is not None:
            return self.chunk_size
        per_static = self.grid.size // math.prod(self.grid.values[n].size for n in self.static_axes)
        return max(1, min(math.ceil(self.grid.size / 32), 1024, per_static))

    def _dyn_dtypes(self) -> tuple:
        return tuple(
            jax.dtypes.canonicalize_dtype(self.grid.values[n].dtype) for n in self.grid.dynamic
        )

    def _trace(self, static_point: dict):
        return trace_point(
            self.run_fn,
            static_point,
            self.grid.dynamic,
            self._dyn_dtypes(),
            self.grid.names,
            jr.PRNGKey(self.seed),
        )

    @property
    def identity(self) -> dict:
        """What the results depend on: the grid hash (grid, static axes, seed), the library
        version and the run function's fingerprint (traced on the first grid point)."""
        if self._identity is None:
            first = next(iter(self.grid.static_combinations()))
            trace, traced = self._trace(self.grid.static_point(first))
            if self.stats is not None and traced:
                self.stats["programs_traced"] = self.stats.get("programs_traced", 0) + 1
            self._identity = {
                "grid_hash": self.grid_hash,
                "version": _version(),
                "run_fingerprint": trace.fingerprint,
            }
        return dict(self._identity)

    def _manifest(self) -> dict:
        return {
            **self.identity,
            "grid": self.grid.description(self.seed),
            "run": _run_name(self.run_fn),
            "chunk_size": self.resolved_chunk_size,
            "chunks_hash": self._chunks_hash(),
            "format": 2,
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

    def chunks(self) -> list[np.ndarray]:
        """The sweep's chunks, in order: the flat indices of each chunk's points.

        A function of the grid, `chunk_size` and `group_by` alone: every process, whatever
        its devices or mode, cuts the grid the same way. Chunk `k` belongs to process
        `k % process_count`.
        """
        size = self.resolved_chunk_size
        out = []
        for combo in self.grid.static_combinations():
            flat = self._order(self.grid.flat_indices(combo))
            out.extend(flat[i : i + size] for i in range(0, flat.size, size))
        return out

    def _chunks_hash(self) -> str:
        h = hashlib.sha256()
        for c in self.chunks():
            h.update(np.asarray(c, np.int64).tobytes())
            h.update(b"|")
        return h.hexdigest()[:16]

    # -- results ---------------------------------------------------------------------------

    def _stored(self) -> list[dict]:
        if self.path is None:
            return list(self._memory)
        return read_chunks(self.path, self.identity)

    def load(self, *, missing: str = "warn") -> SweepTable:
        """The finished points as a `SweepTable` (all of them once every chunk is written).

        Checks that the results under `path` belong to this sweep (`SweepMismatchError`
        if not). When points are missing, `missing="warn"` (default) warns with an
        `IncompleteSweepWarning` naming them and the processes whose chunks hold them,
        `"raise"` raises a `ValueError` with the same message, `"ignore"` returns the
        partial table silently; `table.missing` lists them in every case.
        """
        if missing not in _MISSING:
            raise ValueError(f"`missing` must be one of {_MISSING}, got {missing!r}.")
        stored = self._stored()
        table = self._table(stored)
        if missing != "ignore" and table.missing.size:
            # Name the processes of the split that wrote the results (their chunks record
            # it), or else this one's.
            counts = {c["meta"].get("process", [0, 0])[1] for c in stored}
            count = counts.pop() if len(counts) == 1 else self.process[1]
            message = self._describe_missing(table.missing, count)
            if missing == "raise":
                raise ValueError(message)
            warnings.warn(message, IncompleteSweepWarning, stacklevel=2)
        return table

    def _describe_missing(self, flat: np.ndarray, count: int) -> str:
        where = str(self.path) if self.path is not None else "memory"
        missing = set(flat.tolist())
        owners: dict[int, list[int]] = {}
        for k, chunk in enumerate(self.chunks()):
            if missing.intersection(chunk.tolist()):
                owners.setdefault(k % count, []).append(k)
        coords = self.grid.coordinates(flat[:5])
        first = [
            "{" + ", ".join(f"{n}={coords[n][i].item()!r}" for n in self.grid.names) + "}"
            for i in range(min(5, flat.size))
        ]
        per_process = "; ".join(
            f"process {p}: chunks {ks[:8]}{' ...' if len(ks) > 8 else ''}"
            for p, ks in sorted(owners.items())
        )
        return (
            f"{flat.size} of {self.grid.size} points have no results in {where!r} "
            f"(e.g. {', '.join(first)}{' ...' if flat.size > 5 else ''}); split over "
            f"{count} process(es), they belong to {per_process}. Run those, or "
            "load(missing='ignore') for the partial table."
        )

    def _table(self, chunks) -> SweepTable:
        grid = self.grid
        meta = {"grid": grid.description(self.seed), "grid_hash": self.grid_hash}
        meta["version"] = _version()
        if self._identity is not None:
            meta["run_fingerprint"] = self._identity["run_fingerprint"]
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
        """Evaluate every point of this process's chunks not yet finished; return the table.

        Raises before any work if the grid or `run` is invalid (unknown axis, empty axis,
        non-dict output) or if `path` holds results of a different sweep. Shows a tqdm
        progress bar unless `quiet`. With several processes, the table holds what is on
        disk when this one finishes (`load()` later for the whole grid).
        """
        t_start = time.perf_counter()
        self.stats = {
            "points_total": self.grid.size,
            "points_loaded": 0,
            "points_computed": 0,
            "chunks_computed": 0,
            "programs_compiled": 0,
            "mode": self.resolved_mode,
            "devices": len(self._run_devices()),
            "process": list(self.process),
            "backend": type(self.backend).__name__,
        }
        self._identity = None  # trace again if the run function's cache was cleared
        if self.path is not None:
            write_manifest(self.path, self._manifest(), overwrite=self.on_mismatch == "overwrite")
            first = read_manifest(self.path) or {}
            if self.process[1] > 1 and first.get("chunks_hash") != self._chunks_hash():
                # Processes that cut the grid differently would leave gaps and overlaps.
                raise ValueError(
                    f"process {self.process[0]} of {self.process[1]} cuts the grid into other "
                    f"chunks than the sweep under {str(self.path)!r} was started with (its "
                    f"chunk_size is {first.get('chunk_size')}, this one's "
                    f"{self.resolved_chunk_size}; `group_by` must match too). Processes "
                    "splitting one sweep must use the same `chunk_size` and `group_by`."
                )
        else:
            self.identity  # noqa: B018 - traces `run`: bad output fails before any work
        stored = self._stored()
        done = (
            np.unique(np.concatenate([c["index"] for c in stored]))
            if stored
            else np.zeros(0, np.int64)
        )
        self.stats["points_loaded"] = int(done.size)
        mine = [
            chunk for k, chunk in enumerate(self.chunks()) if k % self.process[1] == self.process[0]
        ]
        todo = [c[~np.isin(c, done)] for c in mine]
        todo = [t for t in todo if t.size]
        self.stats["chunks_total"] = len(mine)
        self.stats["chunks_loaded"] = len(mine) - len(todo)
        self.backend.run_chunks(self, todo)
        self.stats["seconds"] = time.perf_counter() - t_start
        return self.load(missing="warn" if self.process[1] == 1 else "ignore")

    def _run_devices(self) -> tuple:
        return self.devices[:1] if self.resolved_mode == "loop" else self.devices

    def _batch(self, devices) -> int:
        if self.resolved_mode == "loop":
            return 1
        n_dev = len(devices)
        return math.ceil(self.resolved_chunk_size / n_dev) * n_dev

    def compute_chunk(self, index: np.ndarray) -> dict:
        """Evaluate the points `index` (flat indices of one static combination) and store
        them as one chunk; returns its record (what `load` reads back)."""
        t0 = time.perf_counter()
        mode = self.resolved_mode
        devices = self._run_devices()
        root = jr.PRNGKey(self.seed)
        combo = self.grid.coordinates(index[:1])
        static_point = {n: combo[n][0].item() for n in self.static_axes}
        program, batch = self._program(static_point, mode, devices, root)
        parts = [
            self._evaluate(program, index[i : i + batch], root) for i in range(0, index.size, batch)
        ]
        record = {
            "index": index,
            "coords": self.grid.coordinates(index),
            "metrics": {k: np.concatenate([m[k] for m, _ in parts]) for k in parts[0][0]},
            "status": np.concatenate([st for _, st in parts]),
        }
        record["meta"] = {
            **self.identity,
            "seed": self.seed,
            "seconds": time.perf_counter() - t0,
            "mode": mode,
            "devices": len(devices),
            "batch": batch,
            "process": list(self.process),
        }
        self._store(record)
        self.stats["points_computed"] = self.stats.get("points_computed", 0) + int(index.size)
        self.stats["chunks_computed"] = self.stats.get("chunks_computed", 0) + 1
        return record

    def _program(self, static_point, mode, devices, root):
        n_dev = len(devices)
        size = self._batch(devices)
        args = (
            self.run_fn,
            static_point,
            self.grid.dynamic,
            self._dyn_dtypes(),
            self.grid.names,
            mode,
        )
        program, compiled = get_program(*args, size, devices, root)
        self.stats["programs_compiled"] = self.stats.get("programs_compiled", 0) + int(compiled)
        if mode == "vmap" and program.memory_bytes:
            budget = _memory_budget(devices[0])
            per_device = program.memory_bytes / n_dev
            if per_device > budget and size > n_dev:
                per_dev = max(1, int(size / n_dev * budget / per_device))
                size = per_dev * n_dev
                program, compiled = get_program(*args, size, devices, root)
                self.stats["programs_compiled"] += int(compiled)
        return program, size

    def _evaluate(self, program, todo: np.ndarray, root) -> tuple[dict, np.ndarray]:
        grid = self.grid
        n = todo.size
        padded = todo
        if program.batch > 1 and n < program.batch:
            # Pad with copies of the last point: same shapes, no recompilation; a copy takes as
            # many steps as its original, so a vmapped batch gets no slower.
            padded = np.concatenate([todo, np.repeat(todo[-1:], program.batch - n)])
        coords = grid.coordinates(padded)
        dynamic = tuple(
            np.asarray(coords[name], dtype=dt) for name, dt in zip(grid.dynamic, self._dyn_dtypes())
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
        return metrics, status.astype(str)

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


def _backend_named(name: str) -> AbstractBackend:
    if name == "local":
        return Local()
    if name == "ray":
        from ._ray import Ray

        return Ray()
    raise ValueError(f"`backend` must be 'local' or 'ray' (or a backend object), got {name!r}.")
