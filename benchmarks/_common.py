"""Shared plumbing for benchmark scripts: --quick, result paths, JSON + PNG output, timing."""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax


jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parent / "results"


def parse(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke test)")
    parser.add_argument("--out", default=None, help="output folder (default benchmarks/results)")
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
        "jax_version": jax.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


def write(args, name: str, results: dict, fig=None) -> None:
    path = out_dir(args)
    payload = {"benchmark": name, "quick": bool(args.quick), "machine": machine(), **results}
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
