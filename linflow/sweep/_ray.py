"""`Ray`: a sweep's chunks as Ray tasks, on a Ray cluster or a local one.

Ray is an optional dependency (`pip install "linflow[ray]"`), imported only when a sweep
with this backend runs.
"""

import hashlib
import os
from typing import TYPE_CHECKING

import numpy as np

from ._backend import AbstractBackend


if TYPE_CHECKING:
    from ._sweep import Sweep


# In a Ray worker process: the run functions and sweeps it has been sent, so that every
# chunk after a worker's first reuses its compiled programs (one compilation per worker per
# static combination, not per task).
_WORKER_RUNS: dict = {}
_WORKER_SWEEPS: dict = {}


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            "`backend='ray'` needs Ray: `pip install \"linflow[ray]\"` (or `pip install ray`)."
        ) from e
    return ray


def _compute_chunk(run_key, run_box, spec_key, spec_box, identity, x64, index):
    """One Ray task: compute the chunk `index` in this worker and write it (atomically)."""
    import jax

    if jax.config.jax_enable_x64 != x64:
        jax.config.update("jax_enable_x64", x64)
    import ray

    from ._storage import SweepMismatchError, mismatch
    from ._sweep import Sweep

    sweep = _WORKER_SWEEPS.get(spec_key)
    if sweep is None:
        run = _WORKER_RUNS.get(run_key)
        if run is None:
            run = _WORKER_RUNS[run_key] = ray.get(run_box[0])
        sweep = Sweep(run=run, **ray.get(spec_box[0]))
        differs = mismatch(identity, sweep.identity)
        if differs:
            raise SweepMismatchError(
                "a Ray worker computes a different sweep than the driver: "
                + "; ".join(differs)
                + ". Install the same linflow, JAX and run function on every node."
            )
        _WORKER_SWEEPS[spec_key] = sweep
    compiled = sweep.stats.get("programs_compiled", 0)
    record = sweep.compute_chunk(np.asarray(index))
    return {
        "points": int(record["index"].size),
        "seconds": record["meta"]["seconds"],
        "compiled": sweep.stats["programs_compiled"] - compiled,
        "worker": os.getpid(),
    }


def _digest(obj) -> str:
    from ray import cloudpickle

    return hashlib.sha256(cloudpickle.dumps(obj)).hexdigest()[:16]


class Ray(AbstractBackend):
    """Each unfinished chunk is a Ray task that computes it in a worker and writes its file.

    A worker compiles a program once per static combination and reuses it for every chunk
    it is given; a task whose worker dies (killed, out of memory, node lost) is retried up
    to `max_retries` times, and since a chunk's file appears atomically under a name fixed
    by its points, nothing is lost or written twice. The driver's tqdm bar counts finished
    chunks. Resuming is as with the local backend: chunks already on disk are skipped.

    The sweep's `path` must be on a file system every worker reaches. Uses the cluster Ray
    is connected to (`ray.init(...)` called before, or `RAY_ADDRESS`); otherwise starts a
    local one with `local_cpus` CPUs (default: all).

    **Arguments:**

    - `num_cpus`, `num_gpus`: resources of one task (so a node runs
      `its CPUs / num_cpus` chunks at a time).
    - `max_retries`: how often a chunk whose worker died is run again.
    - `address`: a cluster to connect to (`ray.init(address)`), if none is connected.
    - `local_cpus`: CPUs of the local cluster started when there is none.
    """

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 3
    address: str | None = None
    local_cpus: int | None = None

    def check(self, sweep: "Sweep") -> None:
        if sweep.path is None:
            raise ValueError(
                "`backend='ray'` needs a `path` (on a file system every Ray worker reaches): "
                "each chunk is written there by the worker that computed it."
            )

    def _connect(self):
        ray = _import_ray()
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False}
            if self.address is not None:
                kwargs["address"] = self.address
            elif "RAY_ADDRESS" not in os.environ:
                kwargs["num_cpus"] = self.local_cpus
            ray.init(**kwargs)
        return ray

    def run_chunks(self, sweep: "Sweep", chunks: list[np.ndarray]) -> None:
        from tqdm.auto import tqdm

        if not chunks:
            return
        ray = self._connect()
        import jax

        spec = {
            "grid": dict(sweep.grid.values),
            "path": str(sweep.path),
            "static_axes": sweep.static_axes,
            "mode": sweep.mode,
            "chunk_size": sweep.chunk_size,
            "group_by": sweep.group_by,
            "seed": sweep.seed,
            "process": (0, 1),
            "quiet": True,
        }
        run_box = [ray.put(sweep.run_fn)]
        spec_box = [ray.put(spec)]
        task = ray.remote(_compute_chunk).options(
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
            max_retries=self.max_retries,
            retry_exceptions=False,
        )
        args = (
            _digest(sweep.run_fn),
            run_box,
            _digest((spec, sweep.run_fn)),
            spec_box,
            sweep.identity,
            bool(jax.config.jax_enable_x64),
        )
        pending = {task.remote(*args, chunk): chunk for chunk in chunks}
        stats = sweep.stats
        workers = set()
        stats["task_seconds"] = 0.0
        try:
            with tqdm(
                total=stats.get("chunks_total", len(chunks)),
                initial=stats.get("chunks_loaded", 0),
                unit="chunk",
                desc="/".join(sweep.path.parts[-2:]),
                disable=sweep.quiet,
                dynamic_ncols=True,
            ) as bar:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    for ref in ready:
                        pending.pop(ref)
                        info = ray.get(ref)  # a task that failed for good raises here
                        stats["points_computed"] += info["points"]
                        stats["chunks_computed"] += 1
                        stats["programs_compiled"] += info["compiled"]
                        stats["task_seconds"] += info["seconds"]
                        workers.add(info["worker"])
                        bar.update(1)
        finally:
            for ref in pending:
                ray.cancel(ref)
            stats["workers"] = len(workers)
