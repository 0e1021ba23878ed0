"""The automatic solver choice against fixed diffrax solvers, across scales and model families.

alpha x {diagonal d=100, depth-3 diagonal, the depth-2 diagonal net's full parameter flow (200
states), two-layer regression D=400/h=500, matrix completion d=6/k=500} x {auto, Tsit5, Dopri8,
Dopri8 with relative tolerance, Kvaerno5}: steps, wall time (best of 3 after compilation),
final relative residual, and the distance to the analytic limit
(Q^D_alpha minimiser for the diagonal nets; Min et al. eq. (14) for the two-layer net).
Implicit solvers are skipped above 600 states (their dense Jacobian has states^2 entries).
Target: auto within 2x of the best fixed solver in every cell, never failing.
"""

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _common import parse, timed, write

import linflow as lf


IMPLICIT_MAX = 600


def cases(quick):
    key = jr.PRNGKey(0)
    n, d = (10, 25) if quick else (40, 100)
    sparse, _ = lf.sparse_regression(key, n, d, 5)

    def diagonal(alpha, depth):
        model = lf.DiagonalNet.unbiased(d, alpha, depth)
        limit = lambda final: lf.limits.hypentropy_minimiser(sparse.X, sparse.Y, alpha, depth=depth)
        return model, sparse, limit

    D, nn, h = (40, 10, 50) if quick else (400, 100, 500)
    X = jr.normal(jr.fold_in(key, 1), (nn, D)) / np.sqrt(D)
    Y = jr.normal(jr.fold_in(key, 2), (nn, 1))

    def two_layer(alpha):
        k1, k2 = jr.split(jr.fold_in(key, 3))
        U = alpha * jr.normal(k1, (D, h)) / np.sqrt(h)
        V = alpha * jr.normal(k2, (1, h)) / np.sqrt(h)
        model = lf.TwoLayer(U, V)
        # Min et al. 2021, eq. (14): the limit given the final second layer.
        limit = lambda final: lf.limits.min_limit(X, Y, model.U, final.V)
        return model, lf.Regression(X, Y), limit

    dc, k = (6, 50) if quick else (6, 500)
    comp, _ = lf.matrix_completion(jr.fold_in(key, 4), (dc, dc), 1, 20)

    def completion(alpha):
        k1, k2 = jr.split(jr.fold_in(key, 5))
        model = lf.TwoLayer(alpha * jr.normal(k1, (dc, k)), alpha * jr.normal(k2, (dc, k)))
        return model, comp, None

    def diagonal_full(alpha):
        return diagonal(alpha, 2) + ("full",)

    return {
        "diagonal D=2": lambda a: diagonal(a, 2),
        "diagonal D=3": lambda a: diagonal(a, 3),
        "diagonal D=2, full form": diagonal_full,
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
        "Dopri8 rel": lf.SolverChoice(diffrax.Dopri8(), 1e-10, 1e-30),
        "Kvaerno5": lf.SolverChoice(diffrax.Kvaerno5(), 1e-9, 1e-11),
    }
    implicit_max = IMPLICIT_MAX
    if args.quick:  # one explicit and one implicit solver against the default, small systems
        solvers = {k: solvers[k] for k in ("auto", "Tsit5", "Kvaerno5")}
        implicit_max = 100
    rows = []
    for family, make in cases(args.quick).items():
        for alpha in alphas:
            model, prob, limit, *form = make(alpha)
            size = sum(x.size for x in jax.tree.leaves(model))
            for name, choice in solvers.items():
                row = dict(family=family, alpha=alpha, solver=name, states=size)
                if name == "Kvaerno5" and size > implicit_max:
                    row.update(status="skipped (dense Jacobian too large)")
                    rows.append(row)
                    continue
                kw = dict(solver=choice, throw=False, max_steps=max_steps, saveat=lf.SaveAt(num=2))
                kw.update(form=form[0] if form else "auto")
                try:
                    run = lambda: lf.flow(model, prob, **kw)
                    _, first = timed(run)  # includes compilation
                    sol, seconds = timed(run, repeat=3 if first < 5 else 1)
                    row.update(
                        time_s=seconds,
                        steps=int(sol.stats["num_steps"]),
                        fallback_steps=int(sol.stats.get("fallback_steps", 0)),
                        status=sol.status,
                        residual=float(sol.residual),
                        chosen=sol.solver,
                        form=sol.form,
                    )
                    if limit is not None and sol.status == "converged":
                        want = limit(sol.final)
                        err = jnp.linalg.norm(sol.final_predictor - want) / jnp.linalg.norm(want)
                        row.update(limit_error=float(err))
                except Exception as e:  # a benchmark records failures instead of stopping
                    row.update(status=f"error: {type(e).__name__}")
                rows.append(row)
                print(
                    f"{family:24s} alpha={alpha:<6g} {name:10s} {row.get('status'):20s} "
                    f"steps={row.get('steps', '-')!s:>7} "
                    f"time={row.get('time_s', float('nan')):.3f}s "
                    f"limit_err={row.get('limit_error', float('nan')):.1e}",
                    flush=True,
                )
    summary = []
    for family in cases(args.quick):
        for alpha in alphas:
            cell = [r for r in rows if r["family"] == family and r["alpha"] == alpha]
            ok = [r for r in cell if r.get("status") == "converged" and r["solver"] != "auto"]
            auto = [r for r in cell if r["solver"] == "auto"][0]
            best = min(ok, key=lambda r: r["time_s"], default=None)
            best_time = best["time_s"] if best else float("nan")
            auto_ok = auto.get("status") == "converged"
            ratio = auto["time_s"] / best_time if auto_ok else float("inf")
            name = best["solver"] if best else "-"
            summary.append(dict(family=family, alpha=alpha, auto_over_best=ratio, best=name))
            print(f"{family:24s} alpha={alpha:<6g} auto / best fixed ({name}) = {ratio:.2f}")
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
