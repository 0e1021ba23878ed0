"""The exact reduced form: diagonal networks with up to a million features flow in N dimensions.

For each d, the reduced flow (automatic for `DiagonalNet`), the full 2d-dimensional flow
(at d = 100 only, where it finishes in reasonable time) and the analytic
`hypentropy_minimiser`: wall time (after compilation) and accuracy against the minimiser.
N = 50 samples, 5-sparse plant.
"""

import time

import jax
import jax.numpy as jnp
import jax.random as jr
from _common import parse, write

import linflow as lf


def _time(fn):
    jax.block_until_ready(fn())  # compile
    t = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t


def main():
    args = parse(__doc__)
    n = 50
    ds = [100, 1_000] if args.quick else [100, 1_000, 10_000, 100_000, 1_000_000]
    alphas = [1e-2, 1.0] if args.quick else [1e-4, 1e-2, 1.0, 100.0]
    # The full 2d-dimensional form is only run where it finishes in reasonable time: at d = 1000
    # (2000 states, explicit Dopri8 by the size rule) small alpha takes minutes per flow.
    full_max_d = 100
    rows = []
    # With d >> N the default's explicit phase (Dopri8) finishes at every alpha in a few hundred
    # steps; an implicit solver from the start needed ~1e3 steps of N^2 d each (110 s at d = 1e5,
    # alpha = 1e-4). Every (d, alpha) is run; `skipped` stays for runs that set a smaller cap.
    small_alpha_max_d = 1_000_000
    skipped = []
    for d in ds:
        prob, _ = lf.sparse_regression(jr.PRNGKey(0), n, d, 5)
        for alpha in alphas:
            if alpha < 1 and d > small_alpha_max_d:
                skipped.append(dict(d=d, alpha=alpha))
                print(f"d={d:>8d} alpha={alpha:<6g} skipped (small alpha above d = 1e5)")
                continue
            model = lf.DiagonalNet.unbiased(d, alpha)
            target, t_lim = _time(lambda: lf.limits.hypentropy_minimiser(prob.X, prob.Y, alpha))
            scale = jnp.linalg.norm(target)
            row = dict(d=d, alpha=alpha, minimiser_s=t_lim)
            # The full form at alpha = 100 is stiff and ran to max_steps (1e5 steps, 162 s, error
            # 5e-4 at d = 100): it is not repeated on every run.
            full = d <= full_max_d and alpha <= 1
            for form in ["reduced", "full"] if full else ["reduced"]:
                sol, t = _time(lambda: lf.flow(model, prob, form=form, throw=False))
                row[f"{form}_s"] = t
                row[f"{form}_steps"] = int(sol.stats["num_steps"])
                row[f"{form}_status"] = sol.status
                row[f"{form}_solver"] = sol.solver
                row[f"{form}_fallback_steps"] = int(sol.stats.get("fallback_steps", 0))
                row[f"{form}_error"] = float(jnp.linalg.norm(sol.final_predictor - target) / scale)
            rows.append(row)
            print(
                f"d={d:>8d} alpha={alpha:<6g} minimiser {t_lim:7.3f}s | reduced "
                f"{row['reduced_s']:7.3f}s err {row['reduced_error']:.1e} "
                f"({row['reduced_status']}, {row['reduced_steps']} steps)"
                + (
                    f" | full {row['full_s']:7.3f}s err {row['full_error']:.1e} "
                    f"({row['full_status']})"
                    if "full_s" in row
                    else ""
                )
            )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for alpha in alphas:
        sub = [r for r in rows if r["alpha"] == alpha]
        line = ax.loglog(
            [r["d"] for r in sub],
            [r["reduced_s"] for r in sub],
            "o-",
            label=f"reduced flow, alpha={alpha:g}",
        )[0]
        ax.loglog(
            [r["d"] for r in sub], [r["minimiser_s"] for r in sub], "x:", color=line.get_color()
        )
        full = [r for r in sub if "full_s" in r]
        ax.loglog(
            [r["d"] for r in full],
            [r["full_s"] for r in full],
            "s--",
            color=line.get_color(),
            alpha=0.5,
        )
    ax.set_xlabel("d (features)")
    ax.set_ylabel("wall time (s); x: minimiser, squares: full flow")
    ax.legend(fontsize=7)
    write(args, "reduced_scaling", {"n": n, "rows": rows, "skipped": skipped}, fig)


if __name__ == "__main__":
    main()
