"""The explicit phase's step budget of the default solver on exact reduced forms.

`linflow.Auto()` runs Dopri8 for at most `explicit_budget` steps on a diagonal net's reduced
(dual) flow and continues with Kvaerno5 if the stop has not held (`linflow.Fallback`). This
times that rule at budgets of 1,000, 3,000 and 10,000 steps, and Kvaerno5 from the start, on
flows that are stiff (few features per sample, small scales) and on flows that Dopri8 finishes
alone (many features per sample), in one run. Each flow is checked against
`limits.hypentropy_minimiser` (relative error <= 1e-8). Times are after compilation.
"""

import diffrax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _common import parse, timed, write

import linflow as lf


# (N, d, depth, alpha, seed of the planted sparse regression)
CASES = [
    (50, 100, 2, 1e-4, 0),
    (50, 100, 2, 1e-2, 0),
    (40, 100, 3, 1e-3, 0),
    (40, 100, 3, 1e-2, 0),
    (10, 25, 4, 1e-3, 1),
    (20, 200, 5, 1e-2, 1),
    (50, 10_000, 2, 1e-4, 0),
    (40, 100, 2, 0.1, 0),
    (10, 25, 3, 0.1, 1),
    (50, 1000, 2, 1e-4, 0),
    (50, 1000, 2, 1e-2, 0),
    (20, 200, 3, 1e-3, 1),
    (20, 200, 4, 1e-3, 1),
    (40, 1000, 3, 1e-4, 0),
    (40, 100, 2, 1e-3, 0),
    (100, 300, 2, 1e-3, 0),
    (10, 100, 4, 1e-2, 2),
    (200, 1000, 3, 1e-3, 0),
]
QUICK_CASES = [(10, 25, 3, 0.1, 1), (40, 100, 2, 1e-3, 0)]


def choices(quick):
    budgets = [1_000] if quick else [1_000, 3_000, 10_000]
    out = {f"budget {b:,}": lf.Auto(explicit_budget=b) for b in budgets}
    out["Kvaerno5 alone"] = lf.SolverChoice(diffrax.Kvaerno5(), rtol=1e-9, atol=1e-11)
    return out


def main():
    args = parse(__doc__)
    cases = QUICK_CASES if args.quick else CASES
    solvers = choices(args.quick)
    rows = []
    for n, d, depth, alpha, seed in cases:
        prob, _ = lf.sparse_regression(jr.PRNGKey(seed), n, d, 5 if n > 20 else 3)
        want = lf.limits.hypentropy_minimiser(prob.X, prob.Y, alpha, depth=depth, throw=False)
        model = lf.DiagonalNet.unbiased(d, alpha, depth=depth)
        row = dict(n=n, d=d, depth=depth, alpha=alpha)
        for name, solver in solvers.items():

            def run(solver=solver):
                return lf.flow(model, prob, solver=solver, throw=False)

            timed(run)  # compile
            sol, seconds = timed(run)
            err = float(jnp.linalg.norm(sol.final_predictor - want) / jnp.linalg.norm(want))
            row[name] = dict(
                seconds=seconds,
                steps=int(sol.stats["num_steps"]),
                implicit_steps=int(sol.stats.get("fallback_steps", sol.stats["num_steps"])),
                ok=bool(sol.converged) and err <= 1e-8,
                error=err,
            )
        rows.append(row)
        print(
            f"N={n:4d} d={d:6d} D={depth} alpha={alpha:<7g} "
            + " | ".join(
                f"{k}: {v['seconds']:.3f}s {v['steps']} steps{'' if v['ok'] else ' FAIL'}"
                for k, v in row.items()
                if isinstance(v, dict)
            ),
            flush=True,
        )
    totals = {name: sum(r[name]["seconds"] for r in rows) for name in solvers}
    print("total: " + ", ".join(f"{k} {v:.2f} s" for k, v in totals.items()))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.5))
    x = np.arange(len(rows))
    width = 0.8 / len(solvers)
    for i, name in enumerate(solvers):
        ax.bar(x + i * width, [r[name]["seconds"] for r in rows], width, label=name)
    ax.set_yscale("log")
    ax.set_xticks(
        x + 0.4 - width / 2,
        [f"{r['n']}x{r['d']}\nD={r['depth']} a={r['alpha']:g}" for r in rows],
        fontsize=6,
    )
    ax.set_ylabel("wall time (s)")
    ax.legend(fontsize=7)
    write(args, "fallback_budget", {"rows": rows, "total_seconds": totals}, fig)


if __name__ == "__main__":
    main()
