"""Speed and accuracy of `linflow.limits.hypentropy_minimiser` against (N, d), alpha and depth.

For each size (a planted sparse target with `--support` x N nonzeros): the min-l2 solve (one
SVD-based least squares, the natural unit of cost), the basis-pursuit LP (`min_l1`, HiGHS) and
the hypentropy minimiser at several alpha (compile time and the best of 3 timed calls after
compilation, 2 at N >= 1000), with its Newton step count, relative residual and error
estimate. Prints the minimiser / min-l2 time ratio measured in the same run. Then the same
alphas as one batch, `jax.jit(jax.vmap(...))` over alpha (solved one member after another:
`jax.custom_batching.sequential_vmap`), against the loop of single calls timed above
(--quick: the first size at depth 2 only).
Writes JSON + PNG to benchmarks/results/ (--quick: benchmarks/results/quick/).
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np


jax.config.update("jax_enable_x64", True)

import linflow as lf  # noqa: E402


ROOT = Path(__file__).resolve().parent / "results"


def _best_of(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
    return out, best


def _problem(n, d, seed=0, support=0.1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) / np.sqrt(n)
    beta = np.zeros(d)
    k = max(1, int(n * support))
    beta[rng.choice(d, k, replace=False)] = rng.standard_normal(k)
    return jnp.asarray(X), jnp.asarray(X @ beta)


def _vmapped(X, y, depth, alphas, loop_rows, singles):
    """One batch over `alphas` under `jax.jit(jax.vmap(...))` against the loop of single calls
    (`loop_rows` and their answers `singles`, from `main`), and the largest relative difference
    of the answers."""
    solve = jax.jit(
        jax.vmap(lambda a: lf.limits.hypentropy_minimiser(X, y, a, depth=depth, throw=False))
    )
    batch = jnp.asarray(alphas)
    t0 = time.perf_counter()
    betas = jax.block_until_ready(solve(batch))
    t_compile = time.perf_counter() - t0
    betas, t = _best_of(lambda: solve(batch), 2 if X.shape[0] >= 1000 else 3)
    diff = max(float(jnp.linalg.norm(b - s) / jnp.linalg.norm(s)) for b, s in zip(betas, singles))
    return dict(
        n=X.shape[0],
        d=X.shape[1],
        depth=depth,
        alphas=list(alphas),
        vmap_s=t,
        vmap_compile_and_first_call_s=t_compile,
        loop_s=sum(r["seconds"] for r in loop_rows),
        max_rel_diff=diff,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--sizes", nargs="+", default=None, help="N x d pairs, e.g. 1000x10000")
    parser.add_argument("--out", default=None, help="output folder (default benchmarks/results)")
    parser.add_argument(
        "--support",
        type=float,
        default=0.1,
        help="planted nonzeros as a fraction of N (default 0.1; at N = 1000, d = 1e4, 0.2 is "
        "past exact l1 recovery and the limit's support has about N coordinates)",
    )
    args = parser.parse_args()
    if args.quick:
        sizes = [(10, 100), (100, 1_000)]
        alphas, depths, lp_max = [1e-6, 1e-2, 1.0], [2, 3], 1_000
    else:
        sizes = [(10, 100), (100, 1_000), (300, 3_000), (1_000, 10_000)]
        alphas, depths, lp_max = [1e-8, 1e-2, 1.0, 1e4], [2, 3, 4, 5], 3_000
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    out = Path(args.out) if args.out else ROOT / "quick" if args.quick else ROOT
    out.mkdir(parents=True, exist_ok=True)

    rows, vmap_rows = [], []
    for n, d in sizes:
        X, y = _problem(n, d, support=args.support)
        _, t_l2 = _best_of(lambda: lf.limits.min_l2(X, y), 1)  # includes compile once
        _, t_l2 = _best_of(lambda: lf.limits.min_l2(X, y), 3)
        t_l1 = None
        if d <= lp_max:
            _, t_l1 = _best_of(lambda: lf.limits.min_l1(X, y), 1)
        print(
            f"N={n:5d} d={d:6d}  min_l2 {t_l2:8.4f}s"
            + (f"  min_l1 (LP) {t_l1:8.3f}s" if t_l1 else "")
        )
        for depth in depths:
            solve = lambda a: lf.limits.hypentropy_minimiser(
                X, y, a, depth=depth, throw=False, return_info=True
            )
            t0 = time.perf_counter()
            jax.block_until_ready(solve(alphas[0]))
            t_compile = time.perf_counter() - t0
            singles = []
            for alpha in alphas:
                (beta, info), t = _best_of(lambda: solve(alpha), 2 if n >= 1000 else 3)
                singles.append(beta)
                row = dict(
                    n=n,
                    d=d,
                    support=args.support,
                    depth=depth,
                    alpha=alpha,
                    seconds=t,
                    compile_and_first_call_s=t_compile,
                    min_l2_s=t_l2,
                    min_l1_s=t_l1,
                    ratio_to_min_l2=t / t_l2,
                    newton_steps=int(info["newton_steps"]),
                    residual=float(info["residual"]),
                    error_estimate=float(info["error_estimate"]),
                    support_solution=bool(info["support_solution"]),
                    ok=bool(info["ok"]),
                )
                rows.append(row)
                print(
                    f"  D={depth} alpha={alpha:<7g} {t:8.4f}s ({t / t_l2:6.1f}x min_l2)"
                    f"  steps={row['newton_steps']:4d}  resid={row['residual']:.1e}"
                    f"  est={row['error_estimate']:.1e}  support={row['support_solution']}"
                    f"  ok={row['ok']}"
                )
            if not args.quick or ((n, d), depth) == (sizes[0], depths[0]):
                vmap_rows.append(_vmapped(X, y, depth, alphas, rows[-len(alphas) :], singles))

    for r in vmap_rows:
        print(
            f"vmap over {len(alphas)} alphas: N={r['n']} d={r['d']} D={r['depth']}  "
            f"{r['vmap_s']:.4f}s vs loop {r['loop_s']:.4f}s ({r['vmap_s'] / r['loop_s']:.2f}x), "
            f"max |beta_vmap - beta_loop| / |beta| = {r['max_rel_diff']:.1e}"
        )

    payload = dict(
        benchmark="limits_speed",
        quick=args.quick,
        machine=dict(
            platform=platform.platform(),
            cpu_count=os.cpu_count(),
            jax_backend=jax.default_backend(),
            device_kind=jax.devices()[0].device_kind,
            jax_version=jax.__version__,
            date=time.strftime("%Y-%m-%d"),
        ),
        rows=rows,
        vmap_rows=vmap_rows,
    )
    from _common import provenance

    payload = {**provenance("limits_speed", args.quick), **payload}
    (out / "limits_speed.json").write_text(json.dumps(payload, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(depths), figsize=(4.5 * len(depths), 3.6), sharey=True)
    for ax, depth in zip(np.atleast_1d(axes), depths):
        for alpha in alphas:
            sub = [r for r in rows if r["depth"] == depth and r["alpha"] == alpha]
            ax.loglog(
                [r["n"] * r["n"] * r["d"] for r in sub],
                [r["seconds"] for r in sub],
                "o-",
                label=f"alpha={alpha:g}",
            )
        l2 = [r for r in rows if r["depth"] == depth and r["alpha"] == alphas[0]]
        ax.loglog(
            [r["n"] * r["n"] * r["d"] for r in l2],
            [r["min_l2_s"] for r in l2],
            "k--",
            label="min_l2 (lstsq)",
        )
        ax.set_title(f"hypentropy_minimiser, depth {depth}")
        ax.set_xlabel("N^2 d")
    np.atleast_1d(axes)[0].set_ylabel("wall time after compilation (s)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.savefig(out / "limits_speed.png", dpi=120, bbox_inches="tight")
    print(f"wrote {out / 'limits_speed'}.json and .png")


if __name__ == "__main__":
    main()
