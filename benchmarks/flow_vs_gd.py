"""Exact flow vs optax gradient descent on Woodworth et al.'s sparse regression.

Same problem, same run: the exact flow (to its steady state) and plain GD, both compared with
the analytic limit (the Q_alpha minimiser).

1. GD at the step sizes used in practice (1e-2, 1e-3): it stops at its O(eta) bias floor,
   far above the flow's accuracy. Prints the time GD takes to reach that floor.
2. Equal accuracy: for each target accuracy eps, GD at the step size that can reach it
   (eta = eps / (4 c), with c = floor / eta measured in part 1; the floor is linear in eta),
   run until it is within eps of the limit, against the flow at its own (better) accuracy.
   Prints the wall-time ratio GD / flow. A target whose predicted step count exceeds the cap
   is recorded as not run.
"""

import math

import diffrax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _common import parse, timed, write

import linflow as lf


def _first_within(steps, errs, eps):
    """The first saved step whose error is <= eps, or None."""
    hit = np.flatnonzero(errs <= eps)
    return int(steps[hit[0]]) if hit.size else None


def _relative_errors(preds, target):
    """Relative distances to `target` of one predictor or a stack of them (leading axis)."""
    return np.asarray(jnp.linalg.norm(preds - target, axis=-1) / jnp.linalg.norm(target))


def flow_to(prob, model, target, eps):
    """The cheapest flow (loosest stop and solver tolerances, tried loosest first) whose answer
    is within eps of `target`: (wall time, error, stop rtol)."""
    for k in range(1, 6):
        stop_rtol = max(eps * 10.0**-k, 1e-10)
        tol = max(stop_rtol * 1e-2, 1e-10)
        # The default rule's two phases (`linflow.Auto`), tolerances scaled together.
        solver = lf.Fallback(
            lf.SolverChoice(diffrax.Dopri8(), rtol=tol, atol=1e-30),
            lf.SolverChoice(diffrax.Kvaerno5(), rtol=10 * tol, atol=0.1 * tol),
        )

        def run(solver=solver, stop_rtol=stop_rtol):
            stop = lf.Converged(rtol=stop_rtol)
            return lf.flow(model, prob, stop=stop, solver=solver).final.predictor()

        beta, _ = timed(run)  # compile
        err = float(_relative_errors(beta, target))
        if err <= eps:
            _, t = timed(run, repeat=3)
            return t, err, stop_rtol
    return None


def equal_accuracy(prob, model, target, t_end, floor_per_eta, epsilons, cap, num_saves):
    """For each eps: the flow tuned to eps (`flow_to`) and GD at the largest step size
    eta = eps / (f c), f = 2 then 4, that gets within eps of `target` (see module doc).
    `t_end`: the default flow's stopping time."""
    # The flow's own path tells how long (in flow time t = k eta) GD must run.
    ts = np.geomspace(1e-3 * t_end, t_end, 400)
    flow_errs = _relative_errors(lf.flow(model, prob, saveat=lf.SaveAt(ts=ts)).predictors, target)
    rows = []
    for eps in epsilons:
        tuned = flow_to(prob, model, target, eps)
        t_flow, err_flow, stop_rtol = tuned if tuned else (float("nan"),) * 3
        row = dict(eps=eps, flow_time_s=t_flow, flow_error=err_flow, flow_stop_rtol=stop_rtol)
        row["gd_steps_cap"] = cap
        for f in (2, 4):
            eta = eps / (f * floor_per_eta)
            # GD reaches eps once the flow's own error is below eps - eps / f.
            hit = np.flatnonzero(flow_errs <= eps * (1 - 1 / f) / 2)
            steps = math.ceil(2 * (ts[hit[0]] if hit.size else t_end) / eta)
            row.update(eta=eta, gd_steps_run=steps)
            if steps > cap:
                row["status"] = f"not run: needs ~{steps:.1e} steps > cap"
                break
            save = lf._gd.default_save_steps(steps, num_saves)

            def run_gd(save, eta=eta, steps=steps):
                return lf.gd(model, prob, eta, steps=steps, save_steps=save).predictors

            timed(run_gd, np.minimum(save, 10))  # compile: same shapes, 10 steps
            preds, t_gd = timed(run_gd, save)
            errs = _relative_errors(preds, target)
            k = _first_within(save, errs, eps)
            if k is None:
                row.update(status="not reached", gd_best_error=float(errs.min()))
                continue
            t_k = t_gd * k / steps
            row.update(
                status="reached",
                gd_steps_to_eps=k,
                gd_time_to_eps_s=t_k,
                gd_time_per_step_s=t_gd / steps,
                time_ratio_gd_over_flow=t_k / t_flow,
            )
            break
        rows.append(row)
        flow_msg = f"flow {t_flow * 1e3:.1f} ms (err {err_flow:.1e})"
        if row["status"] == "reached":
            print(
                f"  eps={eps:.0e}: {flow_msg} | GD eta={row['eta']:.1e} within eps after "
                f"{row['gd_steps_to_eps']} steps, {row['gd_time_to_eps_s']:.3f} s "
                f"| GD/flow = {row['time_ratio_gd_over_flow']:.0f}x"
            )
        else:
            print(f"  eps={eps:.0e}: {flow_msg} | GD eta={row['eta']:.1e}: {row['status']}")
    return rows


def main():
    args = parse(__doc__)
    n, d, r = (20, 50, 3) if args.quick else (40, 100, 5)
    alphas = [0.1] if args.quick else [0.01, 0.1, 1.0]
    etas = [1e-2] if args.quick else [1e-2, 1e-3]
    cap = 20_000 if args.quick else 2_000_000
    epsilons = [1e-3, 1e-4] if args.quick else [1e-4, 1e-5, 1e-6, 1e-7, 1e-8]
    eq_cap = 200_000 if args.quick else 100_000_000
    base, _ = lf.sparse_regression(jr.PRNGKey(0), n, d, r)
    # Mean-squared loss (1/2n)||X b - y||^2, the convention under which the papers' step
    # sizes are quoted: same minimiser, time rescaled by n.
    prob = lf.Regression(base.X / np.sqrt(n), base.Y / np.sqrt(n))
    rows, eq_rows = [], []
    for alpha in alphas:
        model = lf.DiagonalNet.unbiased(d, alpha)
        target = lf.limits.hypentropy_minimiser(prob.X, prob.Y, alpha)

        def run_flow(m=model):
            sol = lf.flow(m, prob)
            return sol.final.predictor(), sol.t_final

        timed(run_flow)  # compile
        (beta, t_end), t_flow = timed(run_flow, repeat=3)
        err_flow = float(_relative_errors(beta, target))
        for eta in etas:
            save = lf._gd.default_save_steps(cap, 96)

            def run_gd(m=model, eta=eta):
                return lf.gd(m, prob, eta, steps=cap, save_steps=save).predictors

            timed(run_gd)  # compile
            preds, t_gd = timed(run_gd)
            errs = _relative_errors(preds, target)
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
        # Floor per unit step size: from the smallest step size whose run reached its floor
        # before the cap (an unfinished run overstates the floor, and so GD's cost).
        mine = [r for r in rows if r["alpha"] == alpha]
        settled = [r for r in mine if r["gd_steps_to_goal"] < cap] or mine
        small = min(settled, key=lambda r: r["eta"])
        c = small["gd_best_error"] / small["eta"]
        print(f"alpha={alpha:g}: equal accuracy (GD floor ~ {c:.2g} eta)")
        for row in equal_accuracy(
            prob, model, target, float(t_end), c, epsilons, eq_cap, 64 if args.quick else 400
        ):
            eq_rows.append(dict(alpha=alpha, floor_per_eta=c, flow_default_time_s=t_flow, **row))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for row in rows:
        k, e = np.array(row["gd_curve"]).T
        ax.loglog(np.maximum(k, 1), e, label=f"GD alpha={row['alpha']:g} eta={row['eta']:g}")
        ax.axhline(row["flow_error"], ls="--", lw=0.8, color=ax.lines[-1].get_color())
    ax.set_xlabel("GD steps")
    ax.set_ylabel("relative distance to the Q_alpha minimiser")
    ax.set_title("GD vs exact flow (dashed)")
    ax.legend(fontsize=7)
    for alpha in alphas:
        done = [e for e in eq_rows if e["alpha"] == alpha and e["status"] == "reached"]
        if not done:
            continue
        eps = [e["eps"] for e in done]
        line = ax2.loglog(
            eps, [e["gd_time_to_eps_s"] for e in done], "o-", label=f"GD, alpha={alpha:g}"
        )
        flow = [e for e in eq_rows if e["alpha"] == alpha]
        ax2.loglog(
            [e["eps"] for e in flow],
            [e["flow_time_s"] for e in flow],
            "s--",
            color=line[0].get_color(),
            label=f"flow, alpha={alpha:g}",
        )
    ax2.invert_xaxis()
    ax2.set_xlabel("accuracy eps (relative distance to the limit)")
    ax2.set_ylabel("wall time to reach eps (s)")
    ax2.set_title("equal accuracy: GD at eta ~ eps vs the flow tuned to eps")
    ax2.legend(fontsize=7)
    write(
        args,
        "flow_vs_gd",
        {"n": n, "d": d, "sparsity": r, "rows": rows, "equal_accuracy": eq_rows},
        fig,
    )


if __name__ == "__main__":
    main()
