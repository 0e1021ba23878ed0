"""The `linflow` command line.

```
linflow list                                  # registered figures
linflow reproduce woodworth-fig1 --quick      # run (or resume) a paper figure's sweep
linflow sweep config.toml                     # a sweep described by a TOML file
linflow sweep config.toml --process-index 3 --process-count 16   # one of 16 batch jobs
```

A sweep config names a run function by import path and gives the grid:

```toml
run = "mypackage.points:population_error"   # run(point, key) -> dict of metrics
path = "results/sparse"                      # where chunks are stored (resumable)
static_axes = ["n"]                          # shape-changing axes (all others are batched)
group_by = "alpha"                           # optional: sort points before chunking
mode = "auto"                                # optional: auto | vmap | map | loop
chunk_size = 64                              # optional
seed = 0                                     # optional
backend = "local"                            # optional: local | ray

[grid]
n = [20, 40, 80]
alpha = { logspace = [-3, 1, 32] }           # numpy.logspace(-3, 1, 32)
seed = { arange = 64 }                       # also: linspace = [a, b, num], values = [...]

[plot]                                       # optional: a phase diagram next to the results
x = "n"
y = "alpha"
value = "population_error"
```
"""

import argparse
import importlib
import json
import os
import sys
from pathlib import Path


def _set_host_devices(n: int | None) -> None:
    # Must happen before JAX initialises its backends.
    if n:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def _load_callable(spec: str):
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"`run` must be 'module:function', got {spec!r}.")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{spec!r} is not callable.")
    return obj


def _axis_from_toml(name: str, spec):
    import numpy as np

    if isinstance(spec, list):
        return spec
    if isinstance(spec, dict) and len(spec) == 1:
        ((kind, args),) = spec.items()
        if kind == "logspace":
            return np.logspace(*args)
        if kind == "linspace":
            return np.linspace(*args)
        if kind == "arange":
            return np.arange(*(args if isinstance(args, list) else [args]))
        if kind == "values":
            return np.asarray(args)
    raise ValueError(
        f"grid axis {name!r}: expected a list or one of {{logspace = [a, b, n]}}, "
        f"{{linspace = [a, b, n]}}, {{arange = n}}, {{values = [...]}}; got {spec!r}."
    )


_CONFIG_KEYS = {
    "run",
    "path",
    "grid",
    "static_axes",
    "group_by",
    "mode",
    "chunk_size",
    "seed",
    "backend",
    "plot",
}


def sweep_from_config(
    config: dict,
    *,
    base: Path = Path("."),
    quiet: bool = False,
    process: tuple[int, int] | None = None,
    backend: str | None = None,
):
    """Build a `linflow.Sweep` from a parsed TOML config (see the module docstring).

    Axes given as lists are batched unless named in `static_axes` (TOML cannot tell a
    Python list from an array, so here the declaration is explicit).
    """
    import numpy as np

    from .sweep import Sweep

    unknown = set(config) - _CONFIG_KEYS
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; allowed: {sorted(_CONFIG_KEYS)}.")
    for key in ("run", "grid"):
        if key not in config:
            raise ValueError(f"the config needs a `{key}` entry.")
    grid = {n: np.asarray(_axis_from_toml(n, v)) for n, v in config["grid"].items()}
    static = tuple(config.get("static_axes", ()))
    grid = {n: (v.tolist() if n in static else v) for n, v in grid.items()}
    path = config.get("path")
    return Sweep(
        grid,
        _load_callable(config["run"]),
        path=None if path is None else base / path,
        static_axes=static,
        mode=config.get("mode", "auto"),
        chunk_size=config.get("chunk_size"),
        group_by=config.get("group_by"),
        seed=config.get("seed", 0),
        process=process,
        backend=backend or config.get("backend", "local"),
        quiet=quiet,
    )


def _cmd_list(args) -> int:
    from .figures import available, describe

    names = available()
    width = max(map(len, names), default=0)
    for name in names:
        print(f"{name:<{width}}  {describe(name)}".rstrip())
    return 0


def _cmd_reproduce(args) -> int:
    from .figures import available, get_figure

    try:
        fn = get_figure(args.figure)
    except KeyError:
        print(
            f"linflow: unknown figure {args.figure!r}; available: {', '.join(available())}",
            file=sys.stderr,
        )
        return 2
    out = (
        Path(args.out)
        if args.out
        else Path("results") / args.figure / ("quick" if args.quick else "full")
    )
    kwargs = {"quick": args.quick, "out": out, "quiet": args.quiet}
    if args.mode:
        kwargs["mode"] = args.mode
    if args.chunk_size:
        kwargs["chunk_size"] = args.chunk_size
    import matplotlib

    matplotlib.use("Agg")
    summary = fn(**kwargs)
    print(json.dumps(summary, indent=1, default=str))
    empty = {k: v for k, v in summary.get("panels", {}).items() if v != "drawn"}
    for panel, why in empty.items():
        print(f"linflow: panel {panel!r} is {why}", file=sys.stderr)
    return 0


def _sweep_process(args, parser) -> tuple[int, int] | None:
    """`(index, count)` from --process-index/--process-count, else from a SLURM array job
    (task ids may start anywhere: index = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN), else
    None (JAX's process index and count: 0 and 1 unless `jax.distributed` is initialised)."""
    env = os.environ
    index, count = args.process_index, args.process_count
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        if index is None:
            index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        if count is None:
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
    if index is None and count is None:
        return None
    if index is None or count is None:
        parser.error("--process-index and --process-count go together (or come from SLURM).")
    if not 0 <= index < count:
        parser.error(f"--process-index must be in [0, {count}), got {index}.")
    return index, count


def _cmd_sweep(args) -> int:
    import tomllib

    process = _sweep_process(args, args.parser)
    config_path = Path(args.config)
    with open(config_path, "rb") as f:
        config = tomllib.load(f)
    sys.path.insert(0, str(config_path.parent.resolve()))
    sweep = sweep_from_config(
        config,
        base=config_path.parent,
        quiet=args.quiet,
        process=process,
        backend=args.backend,
    )
    table = sweep.run()
    print(table)
    print(json.dumps(sweep.stats, default=str))
    plot_cfg = config.get("plot")
    if plot_cfg and sweep.path is not None:
        import matplotlib

        matplotlib.use("Agg")
        from . import plot

        ax = plot.phase_diagram(table, **plot_cfg)
        png = sweep.path / "phase_diagram.png"
        ax.figure.savefig(png, dpi=120)
        print(f"wrote {png}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="linflow", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host-devices",
        type=int,
        default=None,
        help="split the CPU into this many JAX devices (sets XLA_FLAGS before JAX starts)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list the registered figures")
    p.set_defaults(fn=_cmd_list)
    p = sub.add_parser("reproduce", help="run (or resume) a paper figure")
    p.add_argument("figure")
    p.add_argument("--quick", action="store_true", help="small grid, a minute or less")
    p.add_argument("--out", default=None, help="output directory (default results/<figure>/)")
    p.add_argument("--mode", choices=["auto", "vmap", "map", "loop"], default=None)
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=_cmd_reproduce)
    p = sub.add_parser("sweep", help="run (or resume) a sweep described by a TOML file")
    p.add_argument("config")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--process-index",
        type=int,
        default=None,
        help="compute the chunks k with k %% count == index (default: SLURM_ARRAY_TASK_ID)",
    )
    p.add_argument(
        "--process-count",
        type=int,
        default=None,
        help="number of processes splitting the sweep (default: SLURM_ARRAY_TASK_COUNT)",
    )
    p.add_argument(
        "--backend", choices=["local", "ray"], default=None, help="overrides the config's"
    )
    p.set_defaults(fn=_cmd_sweep, parser=p)
    args = parser.parse_args(argv)
    _set_host_devices(args.host_devices)
    import jax

    jax.config.update("jax_enable_x64", True)
    return args.fn(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
