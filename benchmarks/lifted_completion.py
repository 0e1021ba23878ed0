"""Woodworth et al. 2020, Fig. 5, extended to width k = 10^4 with the lifted flow.

Matrix completion: rank-1 Y* = u v^T (u, v ~ N(0, I_10)), N = 60 observed entries, model
U V^T with U, V in R^{10 x k}, entries N(0, alpha^2). For each (k, alpha^2 k) the lifted flow
((2d)^2 = 400 states whatever k) runs to its steady state M. Reported, as in the paper: the
excess nuclear norm ||M||_* - ||Y*||_* (rich regime: ~0) and the RMS change of the unobserved
entries from U(0)V(0)^T (kernel regime: ~0), averaged over seeds. The transition sits at
alpha^2 k ~ 1; as k grows at fixed alpha^2 k, G(0) -> alpha^2 k I (fluctuations
~ alpha^2 sqrt(k)), so the curves converge to a deterministic limit and the seed spread shrinks.
"""

import time

import jax.random as jr
import numpy as np
from _common import parse, write

import linflow as lf
from linflow.lifted import LiftedTwoLayer


def main():
    args = parse(__doc__)
    d, N = 10, 60
    if args.quick:
        widths, ratios, seeds = [10, 10**4], np.logspace(-1.5, 1.5, 4), 1
    else:
        widths, ratios, seeds = [10, 100, 1000, 10**4], np.logspace(-1.5, 2, 8), 2
    ku, kv, ko = jr.split(jr.PRNGKey(0), 3)
    Ystar = jr.normal(ku, (d, 1)) @ jr.normal(kv, (1, d))
    flat = np.asarray(jr.choice(ko, d * d, (N,), replace=False))
    rows, cols = flat // d, flat % d
    problem = lf.MatrixCompletion(rows, cols, Ystar[rows, cols], (d, d))
    unobserved = np.ones((d, d), bool)
    unobserved[rows, cols] = False
    nuc_star = float(np.linalg.norm(np.asarray(Ystar), "nuc"))
    stop = lf.Converged(rtol=1e-8)
    results = []
    t_start = time.perf_counter()
    for k in widths:
        for c in ratios:
            alpha = float(np.sqrt(c / k))
            excess, moved, ok, steps = [], [], [], []
            for s in range(seeds):
                key = jr.fold_in(jr.fold_in(jr.PRNGKey(1 + s), k), int(1e6 * c))
                model = LiftedTwoLayer.gaussian(key, d, d, k, alpha, alpha)
                sol = lf.flow(
                    model,
                    problem,
                    stop=stop,
                    saveat=lf.SaveAt(num=2),
                    throw=False,
                    max_steps=200_000,
                )
                M, M0 = np.asarray(sol.final.predictor()), np.asarray(model.predictor())
                excess.append(float(np.linalg.norm(M, "nuc")) - nuc_star)
                moved.append(float(np.sqrt(np.mean((M - M0)[unobserved] ** 2))))
                ok.append(bool(sol.converged))
                steps.append(int(sol.stats["num_steps"]))
            results.append(
                dict(
                    k=k,
                    alpha2k=float(c),
                    alpha=alpha,
                    excess_nuclear=excess,
                    unobserved_rms_change=moved,
                    converged=ok,
                )
            )
            print(
                f"k={k:>6d} alpha^2 k={c:8.3g}: excess nuc {np.mean(excess):+.3e} "
                f"(sd {np.std(excess):.1e}), unobserved RMS change {np.mean(moved):.3e}, "
                f"converged {sum(ok)}/{seeds}, steps {max(steps)}"
            )
    elapsed = time.perf_counter() - t_start
    print(f"{len(widths) * len(ratios) * seeds} lifted flows in {elapsed:.1f} s")

    # Where the transition sits: the alpha^2 k at which the RMS change of the unobserved entries
    # falls to half its rich-regime (smallest alpha^2 k) value, per k, and how sharp it is
    # (decades of alpha^2 k between 90% and 10% of that value; log-linear interpolation).
    transitions = {}
    logc = np.log10(ratios)
    for k in widths:
        mv = np.array([np.mean(r["unobserved_rms_change"]) for r in results if r["k"] == k])
        frac = mv / mv[0]

        def crossing(level, frac=frac):
            below = np.nonzero(frac <= level)[0]
            if below.size == 0:
                return float("nan")
            i = int(below[0])
            if i == 0:
                return float(logc[0])
            x0, x1, y0, y1 = logc[i - 1], logc[i], frac[i - 1], frac[i]
            return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0))

        transitions[k] = dict(half=10 ** crossing(0.5), width_decades=crossing(0.1) - crossing(0.9))
        print(
            f"k={k:>6d}: unobserved entries' RMS change halves at alpha^2 k = "
            f"{transitions[k]['half']:.2f}; 90%->10% over {transitions[k]['width_decades']:.2f} "
            "decades"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for k in widths:
        sel = [r for r in results if r["k"] == k]
        x = [r["alpha2k"] for r in sel]
        axes[0].errorbar(
            x,
            [np.mean(r["excess_nuclear"]) for r in sel],
            yerr=[np.std(r["excess_nuclear"]) for r in sel],
            marker="o",
            capsize=2,
            label=f"k={k}",
        )
        axes[1].errorbar(
            x,
            [np.mean(r["unobserved_rms_change"]) for r in sel],
            yerr=[np.std(r["unobserved_rms_change"]) for r in sel],
            marker="o",
            capsize=2,
            label=f"k={k}",
        )
    axes[0].set_ylabel(r"$\|M\|_* - \|Y^*\|_*$")
    axes[1].set_ylabel("RMS change of unobserved entries")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel(r"$\alpha^2 k$")
        ax.axvline(1.0, color="grey", lw=0.6, ls=":")
        ax.legend(fontsize=8)
    axes[0].set_title("Woodworth et al. Fig. 5 (lifted flow)")
    write(
        args,
        "lifted_completion",
        dict(
            d=d,
            N=N,
            widths=widths,
            alpha2k=list(map(float, ratios)),
            seeds=seeds,
            problem="linflow.MatrixCompletion",
            results=results,
            elapsed_s=elapsed,
            transitions={str(k): v for k, v in transitions.items()},
        ),
        fig,
    )


if __name__ == "__main__":
    main()
