"""Steps and wall time per solver across the initialisation scale alpha (diagonal nets).

Runs the full (2d-dimensional) and the exact reduced (N-dimensional) forms with explicit and
implicit diffrax solvers and linflow's automatic choice, to a relative-residual stop of 1e-10.
"""

import time

import diffrax
import jax
import jax.random as jr
import numpy as np
from _common import parse, write

import linflow as lf


def main():
    args = parse(__doc__)
    n, d = (10, 25) if args.quick else (40, 100)
    alphas = [1e-2, 1.0] if args.quick else [1e-3, 1e-2, 0.1, 1.0, 10.0]
    depths = [2] if args.quick else [2, 3]
    max_steps = 20_000 if args.quick else 200_000
    solvers = {
        "auto": None,
        "Tsit5 1e-12": lf.SolverChoice(diffrax.Tsit5(), 1e-12, 1e-14),
        "Dopri8 1e-12": lf.SolverChoice(diffrax.Dopri8(), 1e-12, 1e-14),
        "Kvaerno5 1e-9": lf.SolverChoice(diffrax.Kvaerno5(), 1e-9, 1e-11),
    }
    if args.quick:
        solvers.pop("Tsit5 1e-12")
    prob, _ = lf.sparse_regression(jr.PRNGKey(0), n, d, 3)
    rows = []
    for depth in depths:
        for form in ["full", "reduced"]:
            for name, choice in solvers.items():
                for alpha in alphas:
                    model = lf.DiagonalNet.unbiased(d, alpha, depth)
                    kw = dict(solver=choice, form=form, throw=False, max_steps=max_steps)
                    jax.block_until_ready(lf.flow(model, prob, **kw).final)  # compile
                    t = time.perf_counter()
                    sol = lf.flow(model, prob, **kw)
                    jax.block_until_ready(sol.final)
                    wall = time.perf_counter() - t
                    ok = bool(sol.result == lf.RESULTS.converged)
                    rows.append(
                        dict(
                            depth=depth,
                            form=form,
                            solver=name,
                            chosen=sol.solver,
                            alpha=alpha,
                            steps=int(sol.stats["num_steps"]),
                            time_s=wall,
                            converged=ok,
                            residual=float(sol.residual),
                        )
                    )
                    print(
                        f"D={depth} {form:7s} {name:14s} alpha={alpha:<6g} "
                        f"steps={rows[-1]['steps']:>7d} {wall:7.3f}s "
                        f"{'ok' if ok else 'FAILED'} residual={rows[-1]['residual']:.1e}"
                    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(r["depth"], r["form"], r["solver"]) for r in rows})
    grid = np.full((len(keys), len(alphas)), np.nan)
    for r in rows:
        i, j = keys.index((r["depth"], r["form"], r["solver"])), alphas.index(r["alpha"])
        grid[i, j] = np.log10(r["time_s"]) if r["converged"] else np.nan
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(keys) + 1.5))
    im = ax.imshow(grid, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_yticks(range(len(keys)), [f"D={k[0]} {k[1]} {k[2]}" for k in keys], fontsize=7)
    ax.set_xlabel("alpha")
    fig.colorbar(im, label="log10 wall time (s); blank = failed")
    write(args, "solvers", {"n": n, "d": d, "rows": rows}, fig)


if __name__ == "__main__":
    main()
