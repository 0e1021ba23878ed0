"""The automatic solver choice against fixed diffrax solvers, across scales and model families.

alpha x {diagonal d=100, depth-3 diagonal, two-layer regression D=400/h=500, matrix completion
d=6/k=500} x {auto, Tsit5, Dopri8, Kvaerno5}: steps, wall time (after compilation), final
relative residual. Implicit solvers are skipped above 600 states (their dense Jacobian has
states^2 entries). Target: auto within 2x of the best fixed solver in every cell, never failing.
"""

import time

import diffrax
import jax
import jax.random as jr
import numpy as np
from _common import parse, write

import linflow as lf


IMPLICIT_MAX = 600


def cases(quick):
    key = jr.PRNGKey(0)
    n, d = (10, 25) if quick else (40, 100)
    sparse, _ = lf.sparse_regression(key, n, d, 5)

    def diagonal(alpha, depth):
        return lf.DiagonalNet.unbiased(d, alpha, depth), sparse

    D, nn, h = (40, 10, 50) if quick else (400, 100, 500)
    X = jr.normal(jr.fold_in(key, 1), (nn, D)) / np.sqrt(D)
    Y = jr.normal(jr.fold_in(key, 2), (nn, 1))

    def two_layer(alpha):
        k1, k2 = jr.split(jr.fold_in(key, 3))
        U = alpha * jr.normal(k1, (D, h)) / np.sqrt(h)
        V = alpha * jr.normal(k2, (1, h)) / np.sqrt(h)
        return lf.TwoLayer(U, V), lf.Regression(X, Y)

    dc, k = (6, 50) if quick else (6, 500)
    comp, _ = lf.matrix_completion(jr.fold_in(key, 4), (dc, dc), 1, 20)

    def completion(alpha):
        k1, k2 = jr.split(jr.fold_in(key, 5))
        return lf.TwoLayer(alpha * jr.normal(k1, (dc, k)), alpha * jr.normal(k2, (dc, k))), comp

    return {
        "diagonal D=2": lambda a: diagonal(a, 2),
        "diagonal D=3": lambda a: diagonal(a, 3),
        f"two-layer D={D} h={h}": two_layer,
        f"completion d={dc} k={k}": completion,
    }


def main():
    args = parse(__doc__)
    alphas = [1e-2, 1.0] if args.quick else [1e-3, 1e-2, 0.1, 1.0, 10.0]
    max_steps = 20_000 if args.quick else 200_000
    solvers = {
        "auto": None,
        "Tsit5": lf.SolverChoice(diffrax.Tsit5(), 1e-12, 1e-14),
        "Dopri8": lf.SolverChoice(diffrax.Dopri8(), 1e-12, 1e-14),
        "Kvaerno5": lf.SolverChoice(diffrax.Kvaerno5(), 1e-9, 1e-11),
    }
    rows = []
    for family, make in cases(args.quick).items():
        for alpha in alphas:
            model, prob = make(alpha)
            size = sum(x.size for x in jax.tree.leaves(model))
            for name, choice in solvers.items():
                row = dict(family=family, alpha=alpha, solver=name, states=size)
                if name == "Kvaerno5" and size > IMPLICIT_MAX:
                    row.update(status="skipped (dense Jacobian too large)")
                    rows.append(row)
                    continue
                kw = dict(solver=choice, throw=False, max_steps=max_steps, saveat=lf.SaveAt(num=2))
                try:
                    jax.block_until_ready(lf.flow(model, prob, **kw).final)
                    t = time.perf_counter()
                    sol = lf.flow(model, prob, **kw)
                    jax.block_until_ready(sol.final)
                    row.update(
                        time_s=time.perf_counter() - t,
                        steps=int(sol.stats["num_steps"]),
                        status=sol.status,
                        residual=float(sol.residual),
                        chosen=sol.solver,
                        form=sol.form,
                    )
                except Exception as e:  # a benchmark records failures instead of stopping
                    row.update(status=f"error: {type(e).__name__}")
                rows.append(row)
                print(
                    f"{family:24s} alpha={alpha:<6g} {name:9s} {row.get('status'):20s} "
                    f"steps={row.get('steps', '-')!s:>7} "
                    f"time={row.get('time_s', float('nan')):.3f}s"
                )
    summary = []
    for family in cases(args.quick):
        for alpha in alphas:
            cell = [r for r in rows if r["family"] == family and r["alpha"] == alpha]
            ok = [r for r in cell if r.get("status") == "converged" and r["solver"] != "auto"]
            auto = [r for r in cell if r["solver"] == "auto"][0]
            best = min((r["time_s"] for r in ok), default=float("nan"))
            ratio = auto["time_s"] / best if auto.get("status") == "converged" else float("inf")
            summary.append(dict(family=family, alpha=alpha, auto_over_best=ratio))
            print(f"{family:24s} alpha={alpha:<6g} auto / best fixed = {ratio:.2f}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = list(cases(args.quick))
    grid = np.array([[s["auto_over_best"] for s in summary if s["family"] == f] for f in fams])
    fig, ax = plt.subplots(figsize=(7, 3))
    im = ax.imshow(np.log2(np.clip(grid, 1e-3, 1e3)), cmap="coolwarm", vmin=-3, vmax=3)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:.2g}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_yticks(range(len(fams)), fams, fontsize=8)
    ax.set_xlabel("alpha")
    ax.set_title("auto time / best fixed solver time (inf = auto failed)")
    fig.colorbar(im, label="log2 ratio")
    write(args, "solver_matrix", {"rows": rows, "summary": summary}, fig)


if __name__ == "__main__":
    main()
