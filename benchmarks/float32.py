"""float32 against float64 flows: accuracy of the limit and wall time, on the papers' settings.

GPUs and TPUs compute in float32 by default. A float32 flow stops at the precision floor of
its dtype (`linflow.Converged`: relative excess 256 eps = 3.05e-5) with solver tolerances of
64 eps (`linflow.Auto`); this records, per setting, how far its limit is from the float64
flow's, against the bound `4 * floor * ||y|| / (sigma_min(X) ||beta*||)` that the tests use,
and the time of both (compiled once, then timed; the ratio is measured in the same run).

Settings: Woodworth et al. 2020 (sparse regression, diagonal nets of depth 2 and 3, exact
reduced form and full parameter flow, alpha from the rich to the kernel regime) and Min et al.
2021 (two-layer regression, Gaussian initialisation, App. A.1).

    python benchmarks/float32.py [--quick]
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _common import parse, timed, write

import linflow as lf
from linflow._stop import precision_floor


def _f32(tree):
    def cast(x):
        if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(jnp.float32)
        return x

    return jax.tree.map(cast, tree)


def _cases(quick):
    key = jr.PRNGKey(0)
    n, d = (10, 25) if quick else (40, 100)
    sparse, _ = lf.sparse_regression(key, n, d, 3 if quick else 5)
    small, _ = lf.sparse_regression(jr.PRNGKey(1), 10, 25, 3)
    alphas = [0.1, 1.0] if quick else [0.01, 0.1, 1.0]
    cases = []
    for depth in (2, 3):
        for a in alphas:
            model = lf.DiagonalNet.unbiased(d, a, depth=depth)
            cases.append((f"woodworth D={depth} reduced alpha={a:g}", model, sparse, "reduced"))
    for a in [0.1, 1.0]:
        model = lf.DiagonalNet.unbiased(25, a)
        cases.append((f"woodworth D=2 full (10x25) alpha={a:g}", model, small, "full"))
    if not quick:
        kx, ky, km = jr.split(jr.PRNGKey(2), 3)
        X = jr.normal(kx, (5, 14)) / np.sqrt(14) * 3.0
        Y = jr.normal(ky, (5, 2))
        model = lf.gaussian_init(km, 14, 2, 20, 0.5, 0.3)
        cases.append(("min two-layer (5x14, m=2, h=20)", model, lf.Regression(X, Y), "auto"))
    return cases


def main():
    args = parse(__doc__)
    floor = precision_floor(jnp.float32)

    @eqx.filter_jit
    def run(model, problem, form):
        return lf.flow(model, problem, form=form, throw=False, saveat=lf.SaveAt(num=2))

    rows = []
    for name, model, prob, form in _cases(args.quick):
        row = {"setting": name}
        finals = {}
        for tag, m, p in (("float64", model, prob), ("float32", _f32(model), _f32(prob))):
            jax.block_until_ready(run(m, p, form))  # compile
            sol, seconds = timed(run, m, p, form)
            finals[tag] = np.asarray(sol.final.predictor(), np.float64)
            row[tag] = {
                "status": sol.status,
                "residual": float(sol.residual),
                "steps": int(sol.stats["num_steps"]),
                "seconds": seconds,
                "solver": sol.solver,
                "form": sol.form,
            }
        ref = finals["float64"]
        X = np.asarray(prob.X, np.float64)
        sigma_min = np.linalg.svd(X, compute_uv=False)[-1]
        y = np.linalg.norm(np.asarray(prob.Y, np.float64))
        row["relative_error_float32"] = float(
            np.linalg.norm(finals["float32"] - ref) / np.linalg.norm(ref)
        )
        row["error_bound"] = float(4 * floor * y / (sigma_min * np.linalg.norm(ref)))
        row["time_ratio_32_over_64"] = row["float32"]["seconds"] / row["float64"]["seconds"]
        rows.append(row)
        print(
            f"{name:45s} f64 {row['float64']['status']:>10s} {row['float64']['steps']:6d} steps "
            f"{row['float64']['seconds']:.3f}s | f32 {row['float32']['status']:>10s} "
            f"{row['float32']['steps']:6d} steps {row['float32']['seconds']:.3f}s | rel err "
            f"{row['relative_error_float32']:.2e} (bound {row['error_bound']:.2e})",
            flush=True,
        )

    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.8), sharey=True)
    pos = np.arange(len(rows))
    ax1.barh(pos, [r["relative_error_float32"] for r in rows], color="C0", label="float32 error")
    ax1.scatter([r["error_bound"] for r in rows], pos, color="k", marker="|", s=200, label="bound")
    ax1.axvline(floor, color="C3", ls="--", lw=0.8, label="stop floor 256 eps")
    ax1.set_xscale("log")
    ax1.set_xlabel("||beta_32 - beta_64|| / ||beta_64||")
    ax1.set_yticks(pos, [r["setting"] for r in rows], fontsize="small")
    ax1.legend(fontsize="small")
    ax2.barh(pos, [r["time_ratio_32_over_64"] for r in rows], color="C1")
    ax2.axvline(1.0, color="k", lw=0.8)
    ax2.set_xscale("log")
    ax2.set_xlabel("wall time float32 / float64 (same run)")
    fig.suptitle(f"float32 vs float64 flows ({jax.default_backend()})")
    write(
        args,
        "float32",
        {
            "float32_stop_floor": floor,
            "rows": rows,
        },
        fig,
    )


if __name__ == "__main__":
    main()
