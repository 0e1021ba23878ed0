"""Sweep throughput: flows per second by execution mode, and the uneven-convergence overhead.

Woodworth et al. sparse regression (d=100, N=40, r*=5; quick: d=50, N=20), depth-2 diagonal
net with a random positive shape w0 and scale alpha in [1e-3, 10]: every point is a
different initialisation of the same problem, run to its steady state.

Modes (all through `linflow.Sweep`, compilation excluded: each program is warmed up first):

- `loop`: a Python loop over a compiled single-point flow (one device);
- `map`: `lax.map` over a chunk inside one compiled call;
- `vmap`: one batched solve per chunk, points in grid order (alphas mixed in each chunk);
- `vmap+group`: the same, points sorted by alpha before chunking (`group_by="alpha"`);
- `8dev-map`, `8dev-vmap+group`: the same sharded over 8 host devices (a subprocess with
  `XLA_FLAGS=--xla_force_host_platform_device_count=8`);
- `ray-2workers`: `backend="ray"` on a local Ray cluster of 2 CPUs (two worker processes,
  `loop` mode in each; skipped when Ray is not installed). Its overhead per chunk is the
  worker time not spent computing: (wall time x workers - sum of the chunks' compute times)
  / chunks, i.e. task dispatch, argument transfer, the chunk file write and the idle tail.

Uneven-convergence overhead of a vmapped chunk: it runs as many steps as its slowest member,
so the work is sum over chunks of (chunk length x max steps) against the sum of the points'
own steps; overhead = that ratio (1 = no waste).

    python benchmarks/sweep_throughput.py [--quick [--ray]]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402

import linflow  # noqa: E402


HERE = Path(__file__).resolve().parent
SETTINGS = {
    True: {"d": 50, "n": 20, "sizes": [32, 64], "alphas": 16, "chunk": 16},
    False: {"d": 100, "n": 40, "sizes": [256, 1024], "alphas": 32, "chunk": 64},
}
MAX_STEPS = 20_000


def make_point(d: int, n: int):
    problem, beta_star = linflow.sparse_regression(jr.PRNGKey(0), n, d, 5, noise=0.1)

    def point(p, key):
        # A random positive shape per initialisation: w0 = exp(0.3 g), g ~ N(0, I).
        w0 = jnp.exp(0.3 * jr.normal(key, (d,), jnp.float64))
        sol = linflow.flow(
            linflow.DiagonalNet.unbiased(d, p["alpha"], w0=w0),
            problem,
            saveat=linflow.SaveAt(num=1),
            stop=linflow.Converged(rtol=1e-8),
            max_steps=MAX_STEPS,
            throw=False,
        )
        beta = sol.final.predictor()
        return {
            "population_error": jnp.sum((beta - beta_star) ** 2),
            "num_steps": sol.stats["num_steps"],
            "result": sol.result,
        }

    return point


def grid_for(size: int, n_alphas: int) -> dict:
    # seed outer, alpha inner: consecutive points (one chunk) hold many different alphas.
    return {"seed": np.arange(size // n_alphas), "alpha": np.logspace(-3, 1, n_alphas)}


def overhead(table, order: np.ndarray, chunk: int) -> float:
    """sum_chunks len * max(steps) / sum(steps), chunks taken along `order` (flat indices)."""
    steps = table.to_grid("num_steps").reshape(-1)[order].astype(float)
    work = sum(
        len(steps[i : i + chunk]) * steps[i : i + chunk].max() for i in range(0, len(steps), chunk)
    )
    return float(work / steps.sum())


def measure(modes, quick: bool, devices=None) -> dict:
    s = SETTINGS[quick]
    point = make_point(s["d"], s["n"])
    out = {}
    for label, mode, group in modes:
        kwargs = dict(mode=mode, chunk_size=s["chunk"], quiet=True, devices=devices)
        kwargs["group_by"] = "alpha" if group else None
        # Warm-up: one chunk's worth of points compiles the program all later runs reuse.
        t0 = time.perf_counter()
        warm = {"seed": np.arange(1), "alpha": np.array([1.0])}  # same axes, dtypes, chunk
        linflow.Sweep(warm, point, **kwargs).run()
        compile_s = time.perf_counter() - t0
        for size in s["sizes"]:
            grid = grid_for(size, s["alphas"])
            sweep = linflow.Sweep(grid, point, **kwargs)
            t0 = time.perf_counter()
            table = sweep.run()
            seconds = time.perf_counter() - t0
            assert sweep.stats["programs_compiled"] == 0, "timed run recompiled"
            flat = np.arange(len(table))
            order = flat
            if group:
                order = flat[np.lexsort([table.coords["alpha"]])]
            entry = {
                "seconds": seconds,
                "flows_per_second": size / seconds,
                "compile_and_first_chunk_seconds": compile_s,
                "steps_total": int(table["num_steps"].sum()),
                "failed": int((~table.ok).sum()),
            }
            if mode in ("vmap",):
                # Under shard_map each device runs its own vmapped batch of chunk / devices.
                per_dev_chunk = s["chunk"] // (len(devices) if devices else 1)
                entry["overhead"] = overhead(table, order, per_dev_chunk)
                entry["overhead_whole_chunk"] = overhead(table, order, s["chunk"])
            out[f"{label}@{size}"] = entry
            print(
                f"{label:>16s} {size:5d} flows: {seconds:7.2f} s, "
                f"{size / seconds:7.1f} flows/s"
                + (f", vmap overhead {entry['overhead']:.2f}x" if "overhead" in entry else ""),
                flush=True,
            )
    return out


def ray_rows(quick: bool) -> dict:
    """The same sweep as Ray tasks on a local cluster of 2 CPUs (1 CPU per task)."""
    try:
        import ray
    except ImportError:
        print("ray is not installed: no Ray rows (pip install 'linflow[ray]')")
        return {}
    import tempfile

    s = SETTINGS[quick]
    # The workers import linflow from this tree and run in float64 like the driver.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - t0
    point = make_point(s["d"], s["n"])
    out = {}
    workers = 2
    try:
        with tempfile.TemporaryDirectory() as tmp:
            kwargs = dict(mode="loop", chunk_size=s["chunk"], quiet=True, backend="ray")
            # Warm-up: 4 chunks, so that both workers compile (a worker keeps its programs).
            t0 = time.perf_counter()
            warm = {"seed": np.arange(4 * s["chunk"]), "alpha": np.array([1.0])}
            linflow.Sweep(warm, point, path=Path(tmp) / "warm", **kwargs).run()
            compile_s = time.perf_counter() - t0
            for size in s["sizes"][-1:] if quick else s["sizes"]:
                grid = grid_for(size, s["alphas"])
                sweep = linflow.Sweep(grid, point, path=Path(tmp) / f"run{size}", **kwargs)
                t0 = time.perf_counter()
                table = sweep.run()
                seconds = time.perf_counter() - t0
                chunks = sweep.stats["chunks_computed"]
                idle = workers * seconds - sweep.stats["task_seconds"]
                entry = {
                    "seconds": seconds,
                    "flows_per_second": size / seconds,
                    "cluster_start_seconds": start_s,
                    "compile_and_first_chunks_seconds": compile_s,
                    "chunks": chunks,
                    "workers_used": sweep.stats["workers"],
                    "programs_compiled_in_timed_run": sweep.stats["programs_compiled"],
                    "task_compute_seconds": sweep.stats["task_seconds"],
                    "overhead_per_chunk_seconds": idle / chunks,
                    "steps_total": int(table["num_steps"].sum()),
                    "failed": int((~table.ok).sum()),
                }
                out[f"ray-2workers@{size}"] = entry
                print(
                    f"{'ray-2workers':>16s} {size:5d} flows: {seconds:7.2f} s, "
                    f"{size / seconds:7.1f} flows/s, {chunks} chunks, overhead "
                    f"{entry['overhead_per_chunk_seconds']:.3f} s/chunk "
                    f"(cluster start {start_s:.1f} s, warm-up {compile_s:.1f} s)",
                    flush=True,
                )
    finally:
        ray.shutdown()
    return out


def eight_devices(quick: bool) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, __file__, "--child-8dev"] + (["--quick"] if quick else [])
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        print(res.stderr[-3000:], file=sys.stderr)
        return {}
    print(res.stdout.split("__JSON__")[0], end="")
    return json.loads(res.stdout.split("__JSON__")[-1])


def plot(results: dict, sizes, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(k.split("@")[0] for k in results))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    width = 0.8 / len(sizes)
    for j, size in enumerate(sizes):
        vals = [results.get(f"{lab}@{size}", {}).get("flows_per_second", 0) for lab in labels]
        a1.bar(np.arange(len(labels)) + j * width, vals, width, label=f"{size} flows")
    a1.set_xticks(np.arange(len(labels)) + width * (len(sizes) - 1) / 2, labels, rotation=30)
    a1.set_ylabel("flows / second")
    a1.legend(frameon=False)
    ov = [(k, v["overhead"]) for k, v in results.items() if "overhead" in v]
    a2.bar([k for k, _ in ov], [v for _, v in ov], color="C3")
    a2.axhline(1.0, color="k", lw=0.8)
    a2.set_ylabel("vmap work / useful work")
    a2.tick_params(axis="x", rotation=30)
    fig.suptitle("Sweep throughput (Woodworth sparse regression, alpha in [1e-3, 10])")
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--ray",
        action="store_true",
        help="with --quick: add the Ray rows (always in the full run; they start a cluster and "
        "compile in each worker, which the smoke test skips)",
    )
    parser.add_argument("--child-8dev", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_8dev:
        devs = jax.devices()
        assert len(devs) == 8, devs
        modes = [("8dev-vmap+group", "vmap", True)]
        if not args.quick:
            modes.insert(0, ("8dev-map", "map", True))
        res = measure(modes, args.quick, devs)
        print("__JSON__" + json.dumps(res))
        return
    s = SETTINGS[args.quick]
    print(f"d={s['d']} N={s['n']} sizes={s['sizes']} chunk={s['chunk']} devices={jax.devices()}")
    results = measure(
        [
            ("loop", "loop", False),
            ("map", "map", False),
            ("vmap", "vmap", False),
            ("vmap+group", "vmap", True),
        ],
        args.quick,
    )
    results.update(eight_devices(args.quick))
    if args.ray or not args.quick:
        results.update(ray_rows(args.quick))
    for size in s["sizes"]:
        loop = results[f"loop@{size}"]["seconds"]
        ratios = {
            k.split("@")[0]: v["seconds"] / loop
            for k, v in results.items()
            if k.endswith(f"@{size}")
        }
        print(
            f"{size} flows, wall time relative to loop: "
            + ", ".join(f"{k} {r:.2f}" for k, r in ratios.items())
        )
    out = HERE / "results" / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "settings": s,
        "max_steps": MAX_STEPS,
        "platform": jax.devices()[0].platform,
        "cpu_count": os.cpu_count(),
        "version": linflow.__version__,
        "load_average": os.getloadavg(),
    }
    from _common import provenance

    payload = {**provenance("sweep_throughput", args.quick), "meta": meta, **results}
    (out / "sweep_throughput.json").write_text(json.dumps(payload, indent=1))
    plot(results, s["sizes"], out / "sweep_throughput.png")
    print(f"wrote {out / 'sweep_throughput.json'} and .png")


if __name__ == "__main__":
    main()
