"""Saddle-to-saddle dynamics (Pesme & Flammarion 2023): the depth-2 diagonal net's flow in
rescaled time tau = t / log(1/alpha) at alpha = 1e-5, 1e-10, 1e-30 against the staircase of
`linflow.limits.saddle_to_saddle`, and the flow's steps and wall time vs log(1/alpha) down
to alpha = 1e-200 (each timing after a compiling call at the same shapes).
"""

import time

import matplotlib


matplotlib.use("Agg")
import jax
import matplotlib.pyplot as plt
import numpy as np
from _common import parse, write

import linflow as lf


def main():
    args = parse(__doc__)
    n, d = (5, 10) if args.quick else (10, 30)
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    prob = lf.Regression(X, y)
    proc = lf.limits.saddle_to_saddle(X, y)
    T = np.asarray(proc.times)
    taus = np.linspace(0.0, 1.5 * T[-1], 60 if args.quick else 200)
    limit = np.asarray(proc.predictor(taus))
    alphas_fig = [1e-5, 1e-10, 1e-30]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    curves, mid_err = {}, {}
    mids = np.concatenate([(T[:-1] + T[1:]) / 2, [T[-1] + 0.5 * T[-1]]])
    for alpha, ls in zip(alphas_fig, [":", "--", "-"]):
        sol = lf.flow(
            lf.DiagonalNet.unbiased(d, alpha),
            prob,
            saveat=lf.SaveAt.rescaled(np.sort(np.concatenate([taus, mids])), alpha),
        )
        allt = np.sort(np.concatenate([taus, mids]))
        Ball = np.asarray(jax.vmap(lambda m: m.predictor())(sol.models))
        B = Ball[np.searchsorted(allt, taus)]
        Bm = Ball[np.searchsorted(allt, mids)]
        curves[alpha] = B
        mid_err[alpha] = np.abs(Bm - np.asarray(proc.saddles)).max(axis=1).tolist()
        for j in np.flatnonzero(np.any(np.asarray(proc.saddles) != 0, axis=0)):
            ax.plot(taus, B[:, j], ls, color=f"C{j % 10}", lw=1)
    for j in np.flatnonzero(np.any(np.asarray(proc.saddles) != 0, axis=0)):
        ax.step(taus, limit[:, j], where="post", color="k", lw=0.8, alpha=0.6)
    for t in T:
        ax.axvline(t, color="0.8", lw=0.5)
    ax.set_xlabel(r"$\tau = t/\log(1/\alpha)$")
    ax.set_ylabel(r"$\beta_i$")
    ax.set_title(r"flow at $\alpha$ = 1e-5 (:), 1e-10 (--), 1e-30 (-); limit (black)")

    sweep = [1e-3, 1e-10, 1e-30, 1e-60, 1e-100, 1e-200]
    steps, times = [], []
    lf.flow(lf.DiagonalNet.unbiased(d, 0.5), prob)  # compile once (alpha is not static)
    for alpha in sweep:
        t0 = time.perf_counter()
        sol = lf.flow(lf.DiagonalNet.unbiased(d, alpha), prob)
        jax.block_until_ready(sol.final_predictor)
        times.append(time.perf_counter() - t0)
        steps.append(int(sol.stats["num_steps"]))
    logs = -np.log(np.array(sweep))
    ax2.loglog(logs, steps, "o-", label="steps")
    ax2.set_xlabel(r"$\log(1/\alpha)$")
    ax2.set_ylabel("solver steps")
    ax3 = ax2.twinx()
    ax3.loglog(logs, times, "s--", color="C1", label="wall time (s)")
    ax3.set_ylabel("wall time (s)")
    ax2.set_title("flow cost vs log(1/alpha) (depth 2)")
    write(
        args,
        "saddle_to_saddle",
        {
            "n": n,
            "d": d,
            "jump_times": T.tolist(),
            "mid_plateau_error": {str(a): v for a, v in mid_err.items()},
            "alphas": sweep,
            "steps": steps,
            "wall_time_s": times,
            "steps_ratio_to_alpha_1e-3": [s / steps[0] for s in steps],
            "note": "2-core CPU shared by ~8 processes: wall times are noisy, steps are not",
        },
        fig,
    )


if __name__ == "__main__":
    main()
