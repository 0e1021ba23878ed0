"""Woodworth et al. 2020, Fig. 5: matrix completion with width k, the alpha^2 k ~ 1 transition.

Rank-1 Y* = u v^T (u, v ~ N(0, I_10)), N = 60 observed entries, model U V^T with
U, V in R^{10 x k}, U(0), V(0) ~ N(0, alpha^2). For the flow's limit M over a grid of
(alpha, k): the excess nuclear norm ||M||_* - ||Y*||_* (left) and the RMS change of the
unobserved entries, M - U(0)V(0)^T (right). The paper used GD with step 1e-5; we report the
flow's wall time next to optax GD at that step on a few grid points (GD run for a fixed
budget and extrapolated to the flow's stopping time).
"""

import time
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import linflow as lf

from ._common import finish, logger, panel_status


SOLVER = lf.SolverChoice(diffrax.Dopri8(), rtol=1e-10, atol=1e-12)
STOP = lf.Converged(1e-8)


def run(*, quick: bool = False, out: str | Path = ".", quiet: bool = False) -> dict:
    """Run the figure; write `woodworth_completion.png` under `out`; return the results."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    print = logger(quiet)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    d, n_obs = 10, 60
    alphas = np.logspace(-1.5, -0.5, 3) if quick else np.logspace(-2, -0.25, 8)
    widths = [10, 100] if quick else [10, 30, 100, 300, 1000]
    gd_steps = 20_000 if quick else 200_000
    prob, Y = lf.matrix_completion(jr.PRNGKey(0), (d, d), 1, n_obs)
    unobs = 1.0 - np.asarray(prob.mask())
    nuc_star = float(jnp.linalg.norm(Y, "nuc"))
    excess = np.full((len(alphas), len(widths)), np.nan)
    rms = np.full_like(excess, np.nan)
    t_flow = np.full_like(excess, np.nan)
    t_final = np.full_like(excess, np.nan)
    for j, k in enumerate(widths):
        for i, a in enumerate(alphas):
            m0 = lf.scaled_gaussian(jr.PRNGKey(100 + j), (d, d), k, a)
            if i == 0:  # compile once per width
                lf.flow(m0, prob, solver=SOLVER, stop=STOP, throw=False)
            t = time.perf_counter()
            sol = lf.flow(m0, prob, solver=SOLVER, stop=STOP, throw=False, max_steps=400_000)
            jax.block_until_ready(sol.final)
            t_flow[i, j] = time.perf_counter() - t
            if sol.result != lf.RESULTS.converged:
                print(f"alpha={a:.3g} k={k}: not converged ({sol.result})")
                continue
            M = np.asarray(sol.final.predictor())
            excess[i, j] = np.linalg.norm(M, "nuc") - nuc_star
            change = (M - np.asarray(m0.predictor())) * unobs
            rms[i, j] = np.sqrt(np.sum(change**2) / unobs.sum())
            t_final[i, j] = float(sol.t_final)
            print(
                f"alpha={a:.3g} k={k} alpha^2k={a * a * k:.3g}: excess nuc {excess[i, j]:.3g}, "
                f"rms unobserved change {rms[i, j]:.3g}, flow {t_flow[i, j]:.2f} s "
                f"({int(sol.stats['num_steps'])} steps, t={t_final[i, j]:.3g})"
            )
    # GD at the paper's step on a few grid points: measured per-step cost, extrapolated.
    eta = 1e-5
    gd_rows = []
    for i, j in [(len(alphas) - 1, 0), (len(alphas) // 2, len(widths) - 1)][: 1 if quick else 2]:
        if np.isnan(t_final[i, j]):
            continue
        m0 = lf.scaled_gaussian(jr.PRNGKey(100 + j), (d, d), widths[j], alphas[i])
        lf.gd(m0, prob, eta, steps=1000, throw=False)  # compile
        t = time.perf_counter()
        g = lf.gd(m0, prob, eta, steps=gd_steps, throw=False)
        jax.block_until_ready(g.final)
        t_gd = time.perf_counter() - t
        need = t_final[i, j] / eta
        extrap = t_gd * need / gd_steps
        gd_rows.append(
            dict(
                alpha=float(alphas[i]),
                k=widths[j],
                gd_steps_run=gd_steps,
                gd_wall_s=t_gd,
                gd_steps_needed=need,
                gd_wall_extrapolated_s=extrap,
                flow_wall_s=float(t_flow[i, j]),
                ratio_gd_over_flow=extrap / t_flow[i, j],
            )
        )
        print(
            f"GD eta=1e-5 alpha={alphas[i]:.3g} k={widths[j]}: {gd_steps} steps {t_gd:.2f} s; "
            f"needs ~{need:.3g} steps ~ {extrap:.3g} s vs flow {t_flow[i, j]:.2f} s "
            f"(ratio {extrap / t_flow[i, j]:.3g}, same run)"
        )
    # Where the transition sits: alpha^2 k at which the excess nuclear norm crosses half its
    # range, per width.
    a2k = alphas[:, None] ** 2 * np.asarray(widths)[None, :]
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
    positive = bool(np.all(excess[np.isfinite(excess)] > 0))
    for axis, val, title, norm in [
        # The excess spans 0.03..120 over the grid: a log colour scale shows the transition.
        (ax[0], excess, r"$\|M\|_* - \|Y^*\|_*$", LogNorm() if positive else None),
        (ax[1], rms, "RMS change of unobserved entries", None),
    ]:
        im = axis.pcolormesh(
            np.arange(len(widths) + 1),
            np.log10(alphas[0])
            + np.arange(len(alphas) + 1) * np.diff(np.log10(alphas))[0]
            - np.diff(np.log10(alphas))[0] / 2,
            val,
            shading="flat",
            norm=norm,
        )
        fig.colorbar(im, ax=axis)
        kk = np.arange(len(widths)) + 0.5
        axis.plot(kk, -0.5 * np.log10(np.asarray(widths)), "w--", label=r"$\alpha^2k = 1$")
        axis.set_xticks(kk, [str(k) for k in widths])
        axis.set_xlabel("width k")
        axis.set_ylabel(r"$\log_{10}\alpha$")
        axis.set_title(title)
        axis.legend(loc="lower right")
    results = {
        "d": d,
        "n_observed": n_obs,
        "alphas": alphas.tolist(),
        "widths": widths,
        "alpha2k": a2k.tolist(),
        "excess_nuclear_norm": excess.tolist(),
        "rms_unobserved_change": rms.tolist(),
        "flow_wall_s": t_flow.tolist(),
        "flow_t_final": t_final.tolist(),
        "gd_comparison": gd_rows,
    }
    fig.savefig(out / "woodworth_completion.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    results["pngs"] = ["woodworth_completion.png"]
    results["panels"] = {
        a.get_title() or f"panel {i + 1}": panel_status(a)
        for i, a in enumerate(fig.axes)
        if a.get_label() != "<colorbar>"
    }
    return results


def reproduce(
    *, quick: bool = False, out: str | Path = "results/woodworth_completion", quiet: bool = False
):
    """`linflow reproduce`: this figure under `out`."""
    return finish("woodworth_completion", run(quick=quick, out=out, quiet=quiet), Path(out), quick)
