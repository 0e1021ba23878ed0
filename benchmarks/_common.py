"""Shared plumbing for benchmark scripts: --quick, result paths, JSON + PNG output, timing."""

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import jax

import linflow as lf
from linflow.figures._common import gd_record  # noqa: F401  (re-exported for the scripts)


jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parent / "results"


def parse(description: str, extra=None) -> argparse.Namespace:
    """--quick, --out, and whatever `extra(parser)` adds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke test)")
    parser.add_argument("--out", default=None, help="output folder (default benchmarks/results)")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def out_dir(args) -> Path:
    path = Path(args.out) if args.out else (ROOT / "quick" if args.quick else ROOT)
    path.mkdir(parents=True, exist_ok=True)
    return path


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "jax_version": jax.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def commit() -> str:
    """The checkout's commit (short hash, `-dirty` with uncommitted changes), or "unknown"."""
    root = Path(__file__).resolve().parents[1]
    try:
        run = lambda *a: subprocess.run(a, cwd=root, capture_output=True, text=True, check=True)
        head = run("git", "rev-parse", "--short", "HEAD").stdout.strip()
        dirty = run("git", "status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def provenance(name: str, quick: bool) -> dict:
    """What every results file starts with (benchmarks/report.py checks it): the benchmark,
    the mode (quick or full), the machine (with the date), the library version, the commit."""
    return {
        "benchmark": name,
        "mode": "quick" if quick else "full",
        "quick": bool(quick),
        "machine": machine(),
        "linflow_version": lf.__version__,
        "commit": commit(),
    }


def write(args, name: str, results: dict, fig=None) -> None:
    path = out_dir(args)
    payload = {**provenance(name, args.quick), **results}
    (path / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float))
    if fig is not None:
        fig.savefig(path / f"{name}.png", dpi=120, bbox_inches="tight")
    print(f"wrote {path / name}.json" + (" and .png" if fig is not None else ""))


def timed(fn, *args, repeat: int = 1):
    """(result, best wall time in s) of `fn(*args)`, blocking on the result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return out, best


def parse_with_options(description, extra=None):
    """Like `parse`, with extra arguments added by `extra(parser)`; returns (args, out dir)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test), results/quick/")
    if extra is not None:
        extra(p)
    args = p.parse_args()
    out = ROOT / ("quick" if args.quick else "")
    os.makedirs(out, exist_ok=True)
    return args, out


def save_json(path, payload):
    def conv(x):
        if hasattr(x, "tolist"):
            return x.tolist()
        raise TypeError(type(x))

    with open(path, "w") as f:
        json.dump(payload, f, indent=1, default=conv)
