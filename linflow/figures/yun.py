"""Yun, Krishnan, Mobahi (ICLR 2021), Figures 1-2: trajectories of beta for 2-layer fully
connected, diagonal and full-length convolutional networks on the toy data, with the
predicted limits (Thm 6 for regression; Cor. 1-3 directions for classification), and the
exact flow against gradient descent (`linflow.gd`, plain optax SGD) at the paper's step sizes.

    linflow reproduce yun-regression --quick   # or yun-classification; the same run draws both
    python benchmarks/yun_figures.py --quick   # the same code, results in benchmarks/results/

Full mode: all four directions, GD at 5e-4 x 2e6. Writes `yun_regression.png`,
`yun_classification.png`.
"""

import time
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import linflow
from linflow.limits import tensor_margin_direction, two_layer_single_point_limit

from ._common import finish, logger, panel_status


X_REG, Y_REG = jnp.array([[1.0, 2.0]]), jnp.array([1.0])
X_CLS, Y_CLS = jnp.array([[1.0, 2.0], [0.0, -3.0]]), jnp.array([1.0, -1.0])
KINDS = ("fully_connected", "diagonal", "convolution")
ALPHAS = (0.01, 0.5, 1.0)
SOLVER = linflow.SolverChoice(diffrax.Dopri8(), rtol=1e-12, atol=1e-14)


def directions(kind, z):
    """Initial directions (v1, v2) with beta(Theta(0)) = alpha^2 z (Sec. 6) that satisfy
    Thm 6's [U1^T v1]_j^2 > [U2^T v2]_j^2."""
    z = np.asarray(z)
    if kind == "diagonal":
        a = np.sqrt(2 * np.abs(z))
        return jnp.asarray(a), jnp.asarray(z / a)
    if kind == "convolution":  # d = 2: DFT [w0 + w1, w0 - w1]; beta_hat = w1_hat * w2_hat
        zh = np.array([z[0] + z[1], z[0] - z[1]])
        a = np.sqrt(2 * np.abs(zh))
        b = zh / a
        return jnp.asarray([a[0] + a[1], a[0] - a[1]]) / 2, jnp.asarray(
            [b[0] + b[1], b[0] - b[1]]
        ) / 2
    xh = np.asarray(X_REG[0]) / np.linalg.norm(X_REG[0])
    a = 1.5 * np.max(np.sqrt(np.abs(z) / np.abs(xh)))
    return jnp.asarray(a * np.eye(2)), jnp.asarray(z / a)


def _single_point_limit(model, x, y):
    """Thm 6's limit predictor of a depth-2 `TensorNet` trained on the point (x, y) (the
    closed form is evaluated in NumPy: not under `jit`)."""
    vectors = two_layer_single_point_limit(model.data_tensor(x), *model.vectors(), y)
    return model.with_vectors(vectors).predictor()


def _flow(model, problem, saveat, t1):
    return linflow.flow(
        model, problem, saveat=saveat, solver=SOLVER, t1=t1, max_steps=200_000, throw=False
    )


def _gd(model, problem, lr, steps):
    # (linflow.gd compiles its loop once; the timed second call reuses it.)
    sol = linflow.gd(model, problem, lr, steps=steps, save_steps=[0, steps])
    return sol.final.predictor()


def timed(fn, *args):
    out = fn(*args)
    jax.block_until_ready(jax.tree.leaves(eqx.filter(out, eqx.is_array)))
    t0 = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(jax.tree.leaves(eqx.filter(out, eqx.is_array)))
    return out, time.perf_counter() - t0


def run(*, quick: bool = False, out: str | Path = ".", quiet: bool = False) -> dict:
    """Run both figures and the flow-vs-GD timings; write the PNGs under `out`."""
    import matplotlib.pyplot as plt

    print = logger(quiet)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    panels = {}
    n_dirs = 2 if quick else 4
    zs = np.asarray(jr.normal(jr.PRNGKey(0), (4, 2)))[:n_dirs]
    record = {"regression": [], "classification": [], "gd": []}
    reg, cls = linflow.Regression(X_REG, Y_REG), linflow.Classification(X_CLS, Y_CLS)
    reg_save = linflow.SaveAt(ts=jnp.logspace(-3, 4, 80))

    # ---------------------------------------------------------------- regression (Figs 1-2)
    fig, axes = plt.subplots(len(ALPHAS), 3, figsize=(12, 11), squeeze=False)
    for col, kind in enumerate(KINDS):
        for row, alpha in enumerate(ALPHAS):
            ax = axes[row, col]
            for j, z in enumerate(zs):
                model = linflow.TensorNet.from_directions(kind, directions(kind, z), alpha)
                sol = _flow(model, reg, reg_save, jnp.inf)
                limit = _single_point_limit(model, X_REG[0], 1.0)
                beta = np.asarray(sol.final.predictor())
                err = float(np.max(np.abs(beta - np.asarray(limit))))
                record["regression"].append(
                    dict(
                        kind=kind,
                        alpha=alpha,
                        z=z.tolist(),
                        flow=beta.tolist(),
                        thm6=np.asarray(limit).tolist(),
                        max_abs_diff=err,
                        steps=int(sol.stats["num_steps"]),
                        result=str(sol.result),
                    )
                )
                path = np.asarray(sol.predictors)
                ax.plot(path[:, 0], path[:, 1], color=f"C{j}", lw=1)
                ax.plot(*path[0], "o", color="purple", ms=4)
                ax.plot(*np.asarray(limit), "o", mfc="none", mec="gold", ms=9, mew=2)
            s = np.linspace(-1, 1.5, 2)
            ax.plot(s, (1 - s) / 2, color="gold", lw=1)
            ax.set_xlim(-1.2, 1.2)
            ax.set_ylim(-1.2, 1.2)
            ax.set_title(f"{kind}, alpha={alpha}")
            panels[f"regression {kind}, alpha={alpha}"] = panel_status(ax)
    fig.suptitle("Yun et al. 2021, Fig. 1-2: exact flow (lines) and Thm 6 limits (circles)")
    fig.tight_layout()
    fig.savefig(out_dir / "yun_regression.png", dpi=90)
    plt.close(fig)
    worst = max(r["max_abs_diff"] for r in record["regression"])
    print(f"regression: {len(record['regression'])} flows, max |flow - Thm 6| = {worst:.2e}")

    # ---------------------------------------------------------------- classification
    t1 = 1e8 if quick else 1e100
    cls_save = linflow.SaveAt(ts=jnp.logspace(-2, np.log10(t1), 60))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), squeeze=False)
    for col, kind in enumerate(KINDS):
        ax = axes[0, col]
        target = np.asarray(tensor_margin_direction(kind, X_CLS, Y_CLS))
        for row, alpha in enumerate(ALPHAS if not quick else (0.5,)):
            for j, z in enumerate(zs):
                model = linflow.TensorNet.from_directions(kind, directions(kind, z), alpha)
                sol = _flow(model, cls, cls_save, t1)
                B = np.asarray(sol.predictors)
                u = B / np.linalg.norm(B, axis=1, keepdims=True)
                cos = float(u[-1] @ target)
                record["classification"].append(
                    dict(
                        kind=kind,
                        alpha=alpha,
                        z=z.tolist(),
                        t1=t1,
                        cos=cos,
                        loss=float(sol.losses[-1]),
                        steps=int(sol.stats["num_steps"]),
                    )
                )
                ax.plot(np.asarray(sol.ts), 1 - u @ target, color=f"C{j}", ls=["-", "--", ":"][row])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel("1 - cos(beta, max-margin direction)")
        ax.set_title(kind)
        panels[f"classification {kind}"] = panel_status(ax)
    fig.suptitle("Exponential loss: direction of beta(t) vs Cor. 1-3 (line style = alpha)")
    fig.tight_layout()
    fig.savefig(out_dir / "yun_classification.png", dpi=90)
    plt.close(fig)
    for kind in KINDS:
        c = [r["cos"] for r in record["classification"] if r["kind"] == kind]
        print(f"classification {kind}: cos at t={t1:.0e} in [{min(c):.6f}, {max(c):.6f}]")

    # ---------------------------------------------------------------- flow vs GD
    settings = [("regression", reg, 1e-3, 5000)]
    if not quick:
        settings.append(("classification", cls, 5e-4, 2_000_000))
    for name, problem, lr, steps in settings:
        for kind in KINDS:
            model = linflow.TensorNet.from_directions(kind, directions(kind, zs[0]), 0.5)
            T = lr * steps
            sol, t_flow = timed(_flow, model, problem, linflow.SaveAt(ts=jnp.array([T])), T)
            beta_gd, t_gd = timed(_gd, model, problem, lr, steps)
            diff = float(jnp.max(jnp.abs(beta_gd - sol.final.predictor())))
            entry = dict(
                problem=name,
                kind=kind,
                lr=lr,
                steps=steps,
                T=T,
                flow_s=t_flow,
                gd_s=t_gd,
                ratio_gd_over_flow=t_gd / t_flow,
                max_abs_gd_minus_flow=diff,
                flow_steps=int(sol.stats["num_steps"]),
            )
            if name == "regression":
                limit = _single_point_limit(model, X_REG[0], 1.0)
                sol_inf, t_inf = timed(_flow, model, problem, reg_save, jnp.inf)
                entry["gd_minus_limit"] = float(jnp.max(jnp.abs(beta_gd - limit)))
                entry["flow_to_steady_state_s"] = t_inf
                entry["flow_minus_limit"] = float(
                    jnp.max(jnp.abs(sol_inf.final.predictor() - limit))
                )
            record["gd"].append(entry)
            extra = (
                f", |GD - Thm6| = {entry['gd_minus_limit']:.2e}, steady flow "
                f"{entry['flow_to_steady_state_s'] * 1e3:.1f} ms with |flow - Thm6| = "
                f"{entry['flow_minus_limit']:.1e}"
                if name == "regression"
                else ""
            )
            print(
                f"{name} {kind}: GD lr={lr:g} x {steps} steps {t_gd * 1e3:.1f} ms vs flow to "
                f"t={T:g} {t_flow * 1e3:.1f} ms (GD/flow = {t_gd / t_flow:.1f}), "
                f"|GD - flow(T)| = {diff:.2e}{extra}"
            )
    record["pngs"] = ["yun_regression.png", "yun_classification.png"]
    record["panels"] = panels
    return record


def reproduce(*, quick: bool = False, out: str | Path = "results/yun", quiet: bool = False):
    """`linflow reproduce yun-regression` / `yun-classification`: both figures under `out`."""
    return finish("yun_figures", run(quick=quick, out=out, quiet=quiet), Path(out), quick)
