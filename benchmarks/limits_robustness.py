"""Robustness of `linflow.limits.hypentropy_minimiser` over problem types, shapes, depths and alpha.

Problems: planted sparse targets, dense (generic) targets, heavy-tailed (Student t, 2 degrees of
freedom) features, and nearly square systems, from N = 10 to 300 with d / N from 1.25 to 10;
each with the default shape w0 = 1 and a random shape in [0.5, 2]; depths 2-5; alpha from 1e-8
to 1e4. For N >= 256 both the automatic Newton solve and forced CG steps. For each solve it
records whether the answer met `rtol` = 1e-8 (`info["ok"]`), the error estimate, the
independent KKT residual (`hypentropy_kkt_residual`: a least-squares projection, blind to
errors on the support at tiny alpha and depth >= 3), Newton and CG step counts and the time.
Writes JSON + PNG (share of accepted answers, worst error estimate per depth and alpha).
"""

import time

import _common as C
import jax
import numpy as np

import linflow as lf


PROBLEMS = [
    (10, 100, "sparse"),
    (40, 100, "dense"),
    (50, 60, "dense"),
    (30, 300, "heavy-tailed"),
    (80, 200, "sparse"),
    (300, 700, "dense"),
    (256, 600, "sparse"),
    (20, 25, "dense"),
]
QUICK_PROBLEMS = [(10, 100, "sparse"), (40, 100, "dense")]


def _problem(seed, n, d, kind):
    rng = np.random.default_rng(seed)
    X = rng.standard_t(2, (n, d)) if kind == "heavy-tailed" else rng.standard_normal((n, d))
    X /= np.sqrt(n)
    if kind == "sparse":
        k = max(1, n // 5)
        b = np.zeros(d)
        b[rng.choice(d, k, replace=False)] = rng.standard_normal(k)
        y = X @ b
    else:
        y = rng.standard_normal(n)
    w0 = rng.uniform(0.5, 2.0, d)
    return X, y, w0


def main():
    args = C.parse(__doc__)
    problems = QUICK_PROBLEMS if args.quick else PROBLEMS
    depths = [2, 3] if args.quick else [2, 3, 4, 5]
    alphas = [1e-8, 1e-2, 10.0] if args.quick else [1e-8, 1e-5, 1e-3, 1e-2, 0.1, 1.0, 10.0, 1e4]

    rows = []
    for seed, (n, d, kind) in enumerate(problems):
        X, y, w_random = _problem(seed, n, d, kind)
        for shape, w0 in [("ones", None), ("random", w_random)]:
            for depth in depths:
                for alpha in alphas:
                    for solve in ["auto", "cg"] if n >= 256 else ["auto"]:
                        t = time.perf_counter()
                        beta, info = lf.limits.hypentropy_minimiser(
                            X,
                            y,
                            alpha,
                            depth=depth,
                            w0=w0,
                            newton_solve=solve,
                            throw=False,
                            return_info=True,
                        )
                        beta = jax.block_until_ready(beta)
                        seconds = time.perf_counter() - t
                        kkt = lf.limits.hypentropy_kkt_residual(X, y, beta, alpha, depth, w0)
                        row = dict(
                            n=n,
                            d=d,
                            kind=kind,
                            shape=shape,
                            depth=depth,
                            alpha=alpha,
                            newton_solve=solve,
                            ok=bool(info["ok"]),
                            error_estimate=float(info["error_estimate"]),
                            kkt_residual=float(kkt),
                            support_solution=bool(info["support_solution"]),
                            newton_steps=int(info["newton_steps"]),
                            cg_steps=int(info["cg_steps"]),
                            seconds_incl_compile=seconds,
                        )
                        rows.append(row)
                        if not row["ok"]:
                            print(f"  not ok: {row}")
        print(f"{kind:12s} N={n:4d} d={d:4d}: {sum(r['ok'] for r in rows)}/{len(rows)} ok so far")

    ok = sum(r["ok"] for r in rows)
    worst = max(r["error_estimate"] for r in rows if r["ok"])
    print(f"{ok} of {len(rows)} solves met rtol = 1e-8; worst accepted error estimate {worst:.1e}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for depth in depths:
        sub = [[r for r in rows if r["depth"] == depth and r["alpha"] == a] for a in alphas]
        axes[0].semilogx(
            alphas, [np.mean([r["ok"] for r in s]) for s in sub], "o-", label=f"depth {depth}"
        )
        axes[1].loglog(
            alphas, [max(r["error_estimate"] for r in s) for s in sub], "o-", label=f"depth {depth}"
        )
    axes[0].set_ylabel("share of solves with ok")
    axes[0].set_ylim(0, 1.05)
    axes[1].set_ylabel("worst error estimate")
    axes[1].axhline(1e-8, color="k", ls="--", lw=0.8, label="rtol")
    for ax in axes:
        ax.set_xlabel("alpha")
        ax.legend(fontsize=7)
    fig.suptitle(f"hypentropy_minimiser over {len(rows)} solves ({len(problems)} problems)")
    C.write(args, "limits_robustness", dict(rows=rows, ok=ok, total=len(rows)), fig)


if __name__ == "__main__":
    main()
