"""The exact flow of a wide two-layer net against plain optax GD, on Min et al.'s Fig. 2 setting.

D = 400, n = 100, m = 1, h = 500 (`--quick`: 80, 20, 1, 100); X with unit singular values,
Y = X Theta + 0.01 noise, U(0), V(0) Gaussian scaled by 0.1, the paper's loss
||Y - X U V^T||^2 / n. Same run:

1. optax GD at the paper's step 5e-4, until the relative loss L / L(0) is <= 1e-12 (the data
   are interpolable, n < D, so the best loss is 0), checked every 1,000 steps;
2. `linflow.flow` with its defaults (thin factors in the row space of X, `sol.form == "rowspace"`),
   to its default stop (relative excess 1e-10, i.e. L / L(0) <= 1e-20);
3. the same flow with `form="full"` (the parameters themselves);
4. the default flow saving only t = 0 and the end (`SaveAt(num=2)`): by default it keeps 64
   thin states (10,201 numbers each; `sol.models` rebuilds U(t), V(t), 200,500
   numbers, when read), so the two should take about the same time.

Warm wall times (each program compiled by a first call that is not timed; a flow: best of 3),
the ratio GD / flow, and how far the default flow's final U, V are from the full parameter flow's.
"""

import os
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
import optax
from _common import parse, write

import linflow as lf


def _setting(quick):
    D, n, m, h = (80, 20, 1, 100) if quick else (400, 100, 1, 500)
    kx, kt, ke, ku, kv = jr.split(jr.PRNGKey(0), 5)
    Wx, _, Vt = jnp.linalg.svd(jr.normal(kx, (n, D)), full_matrices=False)
    X = Wx @ Vt  # unit singular values (Min et al., App. A.1)
    Y = X @ (jr.normal(kt, (D, m)) / np.sqrt(D)) + 0.01 * jr.normal(ke, (n, m))
    model = lf.TwoLayer(0.1 * jr.normal(ku, (D, h)), 0.1 * jr.normal(kv, (m, h)))
    return X, Y, model


def _gd(X, Y, model, lr, target, chunk=1_000, cap=2_000_000):
    n = X.shape[0]
    opt = optax.sgd(lr)

    def loss(params):
        U, V = params
        # U V^T first: (D x m) costs D h m, against n D h for (X U) first.
        return jnp.sum((Y - X @ (U @ V.T)) ** 2) / n

    @jax.jit
    def steps(params, state):
        def body(_, carry):
            params, state = carry
            updates, state = opt.update(jax.grad(loss)(params), state)
            return optax.apply_updates(params, updates), state

        params, state = jax.lax.fori_loop(0, chunk, body, (params, state))
        return params, state, loss(params)

    params = (model.U, model.V)
    loss0 = float(loss(params))
    jax.block_until_ready(steps(params, opt.init(params)))  # compile
    start = time.perf_counter()
    state, k, rel = opt.init(params), 0, 1.0
    while rel > target and k < cap:
        params, state, value = steps(params, state)
        k += chunk
        rel = float(value) / loss0
    return dict(steps=k, seconds=time.perf_counter() - start, rel_loss=rel), params


def _flow(model, problem, form, saveat=None):
    lf.flow(model, problem, form=form, saveat=saveat)  # compile
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        sol = lf.flow(model, problem, form=form, saveat=saveat)
        jax.block_until_ready(sol.final)
        best = min(best, time.perf_counter() - start)
    return sol, best


def main():
    args = parse(__doc__)
    jax.config.update("jax_enable_x64", True)
    X, Y, model = _setting(args.quick)
    problem = lf.Regression(X, Y)
    gd, (U_gd, V_gd) = _gd(X, Y, model, 5e-4, 1e-12)
    default, t_default = _flow(model, problem, "auto")
    full, t_full = _flow(model, problem, "full")
    ends, t_ends = _flow(model, problem, "auto", lf.SaveAt(num=2))

    def rel_loss(sol):
        pred = sol.final.predictor()
        return float(jnp.sum((Y - X @ pred) ** 2) / jnp.sum((Y - X @ model.predictor()) ** 2))

    du = float(jnp.max(jnp.abs(default.final.U - full.final.U)))
    dv = float(jnp.max(jnp.abs(default.final.V - full.final.V)))
    results = dict(
        setting=dict(zip(("D", "n", "m", "h"), (X.shape[1], X.shape[0], Y.shape[1], model.width))),
        gd=dict(gd, learning_rate=5e-4, rel_loss_target=1e-12),
        loadavg_1min_after=os.getloadavg()[0],
        flow_default=dict(
            form=default.form,
            solver=default.solver,
            steps=int(default.stats["num_steps"]),
            seconds=t_default,
            rel_loss=rel_loss(default),
        ),
        flow_full=dict(
            form=full.form,
            solver=full.solver,
            steps=int(full.stats["num_steps"]),
            seconds=t_full,
            rel_loss=rel_loss(full),
        ),
        flow_default_two_saves=dict(
            steps=int(ends.stats["num_steps"]), seconds=t_ends, rel_loss=rel_loss(ends)
        ),
        speedup_gd_over_default=gd["seconds"] / t_default,
        speedup_gd_over_default_two_saves=gd["seconds"] / t_ends,
        speedup_gd_over_full=gd["seconds"] / t_full,
        max_abs_U_default_vs_full=du,
        max_abs_V_default_vs_full=dv,
    )
    print(
        f"GD: {gd['steps']:,} steps, {gd['seconds']:.2f} s to L/L0 = {gd['rel_loss']:.1e}; "
        f"flow ({default.form}): {t_default:.3f} s, "
        f"L/L0 = {results['flow_default']['rel_loss']:.1e} "
        f"({results['speedup_gd_over_default']:.0f}x); flow (full): {t_full:.3f} s "
        f"({results['speedup_gd_over_full']:.0f}x); 2 saves: {t_ends:.3f} s "
        f"({results['speedup_gd_over_default_two_saves']:.0f}x); "
        f"|U - U_full| {du:.1e}, |V - V_full| {dv:.1e}"
    )
    fig, ax = plt.subplots(figsize=(5, 3))
    names = ["optax GD", f"flow ({default.form})", f"flow ({default.form}, 2 saves)", "flow (full)"]
    ax.barh(names, [gd["seconds"], t_default, t_ends, t_full])
    ax.set_xscale("log")
    ax.set_xlabel("warm wall time (s), same run")
    ax.set_title("Min et al. Fig. 2 setting, to L/L(0) <= 1e-12")
    write(args, "two_layer_vs_gd", results, fig)


if __name__ == "__main__":
    main()
