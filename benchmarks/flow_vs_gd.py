"""Exact flow vs optax gradient descent on Woodworth et al.'s sparse regression.

Same problem, same run: the exact flow (to its steady state) and plain GD at the step sizes
used in practice, both compared with the analytic limit (the Q_alpha minimiser). Prints the
wall-time ratio GD / flow at the accuracy GD reaches (or the cap).
"""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _common import parse, timed, write

import linflow as lf


def main():
    args = parse(__doc__)
    n, d, r = (20, 50, 3) if args.quick else (40, 100, 5)
    alphas = [0.1] if args.quick else [0.01, 0.1, 1.0]
    etas = [1e-2] if args.quick else [1e-2, 1e-3]
    cap = 20_000 if args.quick else 2_000_000
    base, _ = lf.sparse_regression(jr.PRNGKey(0), n, d, r)
    # Mean-squared loss (1/2n)||X b - y||^2, the convention under which the papers' step
    # sizes are quoted: same minimiser, time rescaled by n.
    prob = lf.Regression(base.X / np.sqrt(n), base.Y / np.sqrt(n))
    rows = []
    for alpha in alphas:
        model = lf.DiagonalNet.unbiased(d, alpha)
        target = lf.limits.hypentropy_minimiser(prob.X, prob.Y, alpha)
        scale = float(jnp.linalg.norm(target))

        def run_flow(m=model):
            return lf.flow(m, prob).final.predictor()

        timed(run_flow)  # compile
        beta, t_flow = timed(run_flow, repeat=3)
        err_flow = float(jnp.linalg.norm(beta - target)) / scale
        for eta in etas:
            save = lf._gd.default_save_steps(cap, 96)

            def run_gd(m=model, eta=eta):
                return lf.gd(m, prob, eta, steps=cap, save_steps=save).predictors

            timed(run_gd)  # compile
            preds, t_gd = timed(run_gd)
            errs = np.asarray(jnp.linalg.norm(preds - target[None], axis=1)) / scale
            best = float(errs.min())
            goal = max(err_flow, best)
            k_goal = int(save[np.argmax(errs <= goal * (1 + 1e-9))])
            t_goal = t_gd * k_goal / cap
            rows.append(
                dict(
                    alpha=alpha,
                    eta=eta,
                    flow_time_s=t_flow,
                    flow_error=err_flow,
                    gd_steps_cap=cap,
                    gd_time_total_s=t_gd,
                    gd_best_error=best,
                    gd_steps_to_goal=k_goal,
                    gd_time_to_goal_s=t_goal,
                    goal_error=goal,
                    time_ratio_gd_over_flow=t_goal / t_flow,
                    gd_curve=[(int(k), float(e)) for k, e in zip(save, errs)],
                )
            )
            verdict = (
                f"GD/flow time at equal accuracy = {t_goal / t_flow:.1f}x"
                if best <= err_flow
                else f"GD never reaches the flow's accuracy (floor {best:.1e} = "
                f"{best / err_flow:.0e}x the flow's error); time to its floor = "
                f"{t_goal / t_flow:.2g}x the flow's"
            )
            print(
                f"alpha={alpha:g} eta={eta:g}: flow {t_flow * 1e3:.1f} ms err {err_flow:.1e} | "
                f"GD best err {best:.1e} after {k_goal} steps, {t_goal:.2f} s | {verdict}"
            )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        k, e = np.array(row["gd_curve"]).T
        ax.loglog(np.maximum(k, 1), e, label=f"GD alpha={row['alpha']:g} eta={row['eta']:g}")
        ax.axhline(row["flow_error"], ls="--", lw=0.8, color=ax.lines[-1].get_color())
    ax.set_xlabel("GD steps")
    ax.set_ylabel("relative distance to the Q_alpha minimiser")
    ax.set_title("GD vs exact flow (dashed)")
    ax.legend(fontsize=7)
    write(args, "flow_vs_gd", {"n": n, "d": d, "sparsity": r, "rows": rows}, fig)


if __name__ == "__main__":
    main()
