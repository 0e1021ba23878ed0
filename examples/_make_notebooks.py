"""Regenerate the example notebooks: `python examples/_make_notebooks.py`.

The notebooks are written without outputs (CI executes them under `LINFLOW_SMALL=1`).
Every notebook starts with the same setup cell: install linflow on Colab, enable float64,
read the small-size switch.
"""

import pathlib

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


HERE = pathlib.Path(__file__).parent

SETUP = """\
import os
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    %pip install --quiet linflow

import jax

jax.config.update("jax_enable_x64", True)  # the limits at small scale need float64
SMALL = os.environ.get("LINFLOW_SMALL", "0") == "1"  # CI runs every notebook small
print(jax.devices(), "small" if SMALL else "full size")"""


def md(text):
    return new_markdown_cell(text.strip("\n"))


def code(text):
    return new_code_cell(text.strip("\n"))


QUICKSTART = [
    md(r"""
# linflow quickstart: where does gradient flow end up?

A depth-2 diagonal network $\beta = w_+^2 - w_-^2$ started at $w_\pm = \alpha\mathbf 1$ and
trained by gradient flow on an underdetermined regression converges to the minimiser of the
hypentropy potential $Q_\alpha$ subject to $X\beta = y$ (Woodworth et al. 2020, Thm 1): the
minimum-$\ell_1$ interpolant as $\alpha\to0$, the minimum-$\ell_2$ one as $\alpha\to\infty$.
This notebook integrates the *exact* flow with `linflow.flow`, compares its limit with
`linflow.limits.hypentropy_minimiser`, and with plain gradient descent (`linflow.gd`).

Runs on CPU, GPU or TPU without edits.
"""),
    code(SETUP),
    code("""
import time

import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt

import linflow as lf

n, d = (20, 50) if SMALL else (40, 100)
problem, beta_star = lf.sparse_regression(jr.PRNGKey(0), n=n, d=d, sparsity=5)
problem.X.shape, problem.Y.shape
"""),
    md("""
## One flow, integrated to $t = \\infty$

`flow` stops when the relative residual falls below `Converged().rtol` and reports why it
stopped. The solver is chosen automatically (here the exact $N$-dimensional reduced form).
"""),
    code("""
alpha = 1e-3
sol = lf.flow(lf.DiagonalNet.unbiased(d, alpha), problem)
beta_flow = sol.final.predictor()
beta_Q = lf.limits.hypentropy_minimiser(problem.X, problem.Y, alpha)
print(sol.status, "at t =", float(sol.t_final), "after", int(sol.stats["num_steps"]), "steps")
print("relative distance to the Q_alpha minimiser:",
      float(jnp.linalg.norm(beta_flow - beta_Q) / jnp.linalg.norm(beta_Q)))
"""),
    code("""
ts = jnp.where(sol.ts > 0, sol.ts, jnp.nan)  # log axis: drop t = 0
fig, ax = plt.subplots(figsize=(7, 3.5))
for i in range(8):
    line = ax.semilogx(ts, sol.predictors[:, i], lw=1)[0]
    ax.axhline(float(beta_Q[i]), ls="--", lw=0.7, color=line.get_color())
ax.set_xlabel("t")
ax.set_ylabel(r"$\\beta_i(t)$; dashed: $Q_\\alpha$ minimiser")
ax.set_title(f"alpha = {alpha:g}: plateaus at every scale, then the limit");
"""),
    md("""
## Across $\\alpha$: from the rich ($\\ell_1$) to the kernel ($\\ell_2$) regime

For each $\\alpha$ we run the flow and compare with the analytic limit, and with the two
extreme limits `min_l1` (LP) and `min_l2` (pseudo-inverse).
"""),
    code("""
alphas = jnp.logspace(-4, 1, 6 if SMALL else 16)
beta_l1 = lf.limits.min_l1(problem.X, problem.Y)
beta_l2 = lf.limits.min_l2(problem.X, problem.Y)
rows = []
for a in alphas:
    t0 = time.perf_counter()
    s = lf.flow(lf.DiagonalNet.unbiased(d, float(a)), problem, saveat=lf.SaveAt(num=1))
    wall = time.perf_counter() - t0
    b = s.final.predictor()
    bq = lf.limits.hypentropy_minimiser(problem.X, problem.Y, float(a))
    rows.append(dict(
        alpha=float(a),
        err_Q=float(jnp.linalg.norm(b - bq) / jnp.linalg.norm(bq)),
        l1_ratio=float(jnp.abs(b).sum() / jnp.abs(beta_l1).sum()),
        l2_ratio=float(jnp.sum(b**2) / jnp.sum(beta_l2**2)),
        steps=int(s.stats["num_steps"]),
        wall=wall,
    ))
for r in rows:
    print("alpha={alpha:8.1e}  |b-bQ|/|bQ|={err_Q:.1e}  |b|_1/|b_l1|_1={l1_ratio:.4f}  "
          "|b|_2^2/|b_l2|_2^2={l2_ratio:.4f}  steps={steps:5d}  {wall:.2f}s".format(**r))
assert max(r["err_Q"] for r in rows) < 1e-6  # the flow lands on the Q_alpha minimiser
"""),
    code("""
fig, ax = plt.subplots(figsize=(6, 3.5))
l1_label = r"$\\|\\beta\\|_1 / \\|\\beta_{\\ell_1}\\|_1$"
l2_label = r"$\\|\\beta\\|_2^2 / \\|\\beta_{\\ell_2}\\|_2^2$"
ax.semilogx(alphas, [r["l1_ratio"] for r in rows], "o-", label=l1_label)
ax.semilogx(alphas, [r["l2_ratio"] for r in rows], "s-", label=l2_label)
ax.axhline(1, color="k", lw=0.5)
ax.set_xlabel(r"$\\alpha$")
ax.legend()
ax.set_title("small alpha: l1 limit; large alpha: l2 limit");
"""),
    md("""
## Gradient descent on the same problem

`linflow.gd` records the same `FlowSolution` with times `ts = k * eta`. GD with step $\\eta$ is
the flow up to an $O(\\eta)$ bias, so its limit sits at a distance from the flow's limit that
shrinks with $\\eta$ (and costs $1/\\eta$ more steps).
"""),
    code("""
alpha = 0.1
flow_limit = lf.flow(lf.DiagonalNet.unbiased(d, alpha), problem).final.predictor()
steps = 5_000 if SMALL else 50_000
for eta in [1e-2, 3e-3, 1e-3]:
    k = int(round(steps * 1e-3 / eta))  # the same time horizon k * eta for every step size
    g = lf.gd(lf.DiagonalNet.unbiased(d, alpha), problem, eta, steps=k, throw=False)
    gap = jnp.linalg.norm(g.final.predictor() - flow_limit) / jnp.linalg.norm(flow_limit)
    print(f"eta={eta:g}: {k} steps, relative distance to the flow's limit {float(gap):.1e}")
"""),
]

WOODWORTH = [
    md(r"""
# Kernel and rich regimes (Woodworth et al., COLT 2020)

The scale $\alpha$ of the initialisation decides what gradient flow converges to. This
notebook checks the paper's statements with linflow:

1. Thm 2: explicit thresholds `alpha_l1_threshold` / `alpha_l2_threshold` below/above which the
   limit is within $(1+\varepsilon)$ of the $\ell_1$ / $\ell_2$ solution.
2. The kernel regime: at large $\alpha$ the flow stays close to the linearised (tangent-kernel)
   flow, `linflow.kernel`.
3. A phase diagram of the population error over $(n, \alpha)$ with `linflow.Sweep` (Fig. 1).
4. Matrix completion with a width-$k$ factorisation $UV^\top$: the regime is set by
   $\alpha^2 k$ (Sec. 6, Fig. 5).
"""),
    code(SETUP),
    code("""
import jax.numpy as jnp
import jax.random as jr

import linflow as lf


n, d = (20, 50) if SMALL else (40, 100)
problem, beta_star = lf.sparse_regression(jr.PRNGKey(1), n=n, d=d, sparsity=4)
beta_l1 = lf.limits.min_l1(problem.X, problem.Y)
beta_l2 = lf.limits.min_l2(problem.X, problem.Y)
"""),
    md("""
## 1. The Thm 2 thresholds

The theorem gives sufficient scales; the flow typically reaches the $(1+\\varepsilon)$ band at
much larger (rich) or smaller (kernel) $\\alpha$ than the bound guarantees.
"""),
    code("""
eps = 0.5
a1 = lf.limits.alpha_l1_threshold(float(jnp.abs(beta_l1).sum()), d, eps)
a2 = lf.limits.alpha_l2_threshold(float(jnp.linalg.norm(beta_l2)), eps)
print(f"Thm 2: alpha <= {a1:.2e} guarantees |b|_1 <= (1+eps)|b_l1|_1")
print(f"Thm 2: alpha >= {a2:.2e} guarantees |b|_2^2 <= (1+eps)|b_l2|_2^2")
for a, kind in [(a1, "rich"), (a2, "kernel")]:
    if a <= 1e-300:
        print(f"{kind}: threshold underflows; nothing to check in float64")
        continue
    # At alpha ~ 1e-22 the Newton solve cannot certify rtol=1e-8 in float64; its answer is
    # still accurate to far better than eps, which is all this check needs.
    b = lf.limits.hypentropy_minimiser(problem.X, problem.Y, a, rtol=1e-6, throw=False)
    if kind == "rich":
        ratio = float(jnp.abs(b).sum() / jnp.abs(beta_l1).sum())
    else:
        ratio = float(jnp.sum(b**2) / jnp.sum(beta_l2**2))
    print(f"{kind}: at alpha={a:.2e} the limit's ratio is {ratio:.4f} <= {1 + eps}")
    assert ratio <= 1 + eps
"""),
    md("""
## 2. The kernel regime: the linearised flow

`linflow.kernel.Linearised(model0)` is the first-order Taylor model around the initialisation;
it flows through the same `linflow.flow`, and `tangent_kernel_limit` gives its limit in closed
form (the minimum-RKHS-norm interpolant; here min-$\\ell_2$). At large $\\alpha$ the two
limits coincide (and the tangent kernel barely moves); at small $\\alpha$ they differ.
"""),
    code("""
for alpha in [0.05, 10.0] if SMALL else [0.05, 0.3, 1.0, 3.0, 10.0]:
    m0 = lf.DiagonalNet.unbiased(d, alpha)
    full = lf.flow(m0, problem, throw=False).final
    lin = lf.kernel.tangent_kernel_limit(m0, problem)  # closed form of the linearised flow's limit
    b_lin = lin.predictor()
    gap = float(jnp.linalg.norm(full.predictor() - b_lin) / jnp.linalg.norm(b_lin))
    change = float(lf.kernel.kernel_change(m0, full, problem))
    print(f"alpha={alpha:5g}: |b_flow - b_kernel|/|b_kernel| = {gap:.2e}, "
          f"relative kernel change {change:.2e}")
"""),
    md("""
## 3. Phase diagram with `linflow.Sweep` (Fig. 1)

Population error $\\|\\beta - \\beta^\\star\\|^2$ of the flow's limit over the number of samples
$n$ (static: it sets array shapes) and $\\alpha$ (dynamic: batched), averaged over seeds.
"""),
    code("""
D_SWEEP = 50 if SMALL else 100


def point_fn(point, key):
    data_key = jr.fold_in(jr.PRNGKey(0), point["seed"])  # same data for every alpha
    prob, b_star = lf.sparse_regression(data_key, point["n"], D_SWEEP, 4, noise=0.0)
    sol = lf.flow(lf.DiagonalNet.unbiased(D_SWEEP, point["alpha"]), prob,
                  saveat=lf.SaveAt(num=1), throw=False)
    beta = sol.final.predictor()
    return {"population_error": jnp.sum((beta - b_star) ** 2) / jnp.sum(b_star**2),
            "result": sol.result}


grid = {
    "alpha": jnp.logspace(-3, 1, 3 if SMALL else 12),
    "seed": jnp.arange(1 if SMALL else 8),
    "n": [10, 25] if SMALL else [10, 20, 30, 40, 50, 60],
}
table = lf.Sweep(grid, point_fn, quiet=SMALL).run()
print(len(table), "points;", (table["status"] == "ok").mean() * 100, "% converged")
lf.plot.phase_diagram(table, x="n", y="alpha", value="population_error", log_value=True);
"""),
    md("""
## 4. Matrix completion: the scale is $\\alpha^2 k$

A rank-1 $d\\times d$ matrix observed on $N$ entries; $U(0), V(0)$ have i.i.d.
$\\mathcal N(0,\\alpha^2)$ entries and width $k$. For small $\\alpha^2 k$ the flow finds a
low-nuclear-norm completion (rich); for large $\\alpha^2 k$ it stays near the initialisation
(kernel) and fills the unobserved entries with noise.
"""),
    code("""
import diffrax

d_mc, n_obs = (6, 24) if SMALL else (10, 60)
prob_mc, Y_star = lf.matrix_completion(jr.PRNGKey(0), (d_mc, d_mc), 1, n_obs)
solver = lf.SolverChoice(diffrax.Dopri8(), rtol=1e-10, atol=1e-12)
nuc_star = float(jnp.linalg.norm(Y_star, "nuc"))
settings = [(0.01, 4), (1.0, 4)] if SMALL else [(0.03, 10), (0.1, 10), (0.3, 10), (1.0, 10)]
for alpha, k in settings:
    m0 = lf.scaled_gaussian(jr.PRNGKey(1), (d_mc, d_mc), k, alpha)
    sol = lf.flow(m0, prob_mc, solver=solver, stop=lf.Converged(1e-8), throw=False,
                  max_steps=200_000)
    M = sol.final.predictor()
    err = float(jnp.linalg.norm(M - Y_star) / jnp.linalg.norm(Y_star))
    print(f"alpha={alpha:5g} k={k:4d} alpha^2 k={alpha**2 * k:8.3g}: {sol.status}, "
          f"excess nuclear norm {float(jnp.linalg.norm(M, 'nuc')) - nuc_star:+.3f}, "
          f"relative error {err:.2e}")
"""),
]

SCALING = [
    md(r"""
# Scaling a sweep: many initialisations, all devices

`linflow.Sweep` runs one gradient flow per grid point in compiled chunks sharded over every
local device (`jax.shard_map`), vectorised on accelerators (`vmap`) and one after the other on
CPU (`lax.map` / a loop, which measured faster there: a batched solve runs until its slowest
member). Results are written chunk by chunk and a restarted sweep resumes.

This notebook flows 1,024 random initialisations (64 with `LINFLOW_SMALL=1`) of a diagonal
network and measures throughput. The same cell runs on CPU, one GPU, or a TPU with 8 cores.
"""),
    code(SETUP),
    code("""
import tempfile
import time

import jax.numpy as jnp
import jax.random as jr
import numpy as np

import linflow as lf

n, d = (20, 50) if SMALL else (40, 100)
num_inits = 64 if SMALL else 1024
problem, beta_star = lf.sparse_regression(jr.PRNGKey(0), n=n, d=d, sparsity=5)
print(len(jax.devices()), "device(s):", jax.devices()[0].platform)
"""),
    md("""
Each point draws $w_\\pm(0) = \\alpha\\,|g|$ with $g$ Gaussian from its own key, so the flow's
limit is the weighted hypentropy minimiser with weights $w_0$ (Woodworth et al. 2020, Thm 1
with a general initialisation shape).
"""),
    code("""
def point_fn(point, key):
    w0 = jnp.abs(jr.normal(key, (d,))) + 0.1
    model = lf.DiagonalNet.unbiased(d, point["alpha"], w0=w0)
    sol = lf.flow(model, problem, saveat=lf.SaveAt(num=1), throw=False)
    beta = sol.final.predictor()
    return {"l1_norm": jnp.abs(beta).sum(),
            "population_error": jnp.sum((beta - beta_star) ** 2),
            "num_steps": sol.stats["num_steps"],
            "result": sol.result}


num_alphas = 8 if SMALL else 32
grid = {"alpha": jnp.logspace(-3, 0, num_alphas), "init": jnp.arange(num_inits // num_alphas)}
path = tempfile.mkdtemp()
sweep = lf.Sweep(grid, point_fn, path=path, group_by="alpha", quiet=SMALL)
t0 = time.perf_counter()
table = sweep.run()
wall = time.perf_counter() - t0
ok = np.mean(table["status"] == "ok") * 100
print(f"{len(table)} flows in {wall:.1f} s ({len(table) / wall:.1f} flows/s, "
      f"compilation included), mode {sweep.resolved_mode!r}; {ok:.0f}% converged")
"""),
    md("Running again resumes from disk: nothing is recomputed."),
    code("""
t0 = time.perf_counter()
again = lf.Sweep(grid, point_fn, path=path, group_by="alpha", quiet=True).run()
print(f"second run: {time.perf_counter() - t0:.2f} s")
assert np.array_equal(again["l1_norm"], table["l1_norm"])
"""),
    code("""
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
lf.plot.phase_diagram(table, x="init", y="alpha", value="num_steps", ax=axes[0])
alphas = np.unique(table["alpha"])
err = [np.median(table["population_error"][table["alpha"] == a]) for a in alphas]
axes[1].loglog(alphas, err, "o-")
axes[1].set_xlabel(r"$\\alpha$")
axes[1].set_ylabel("median population error")
fig.tight_layout()
"""),
]


def write(name, cells):
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["accelerator"] = "GPU"
    nb.metadata["colab"] = {"provenance": []}
    nbformat.validate(nb)
    nbformat.write(nb, HERE / name)


DIFFERENTIATE = [
    md(r"""
# Differentiating the implicit bias: tune the initialisation scale by gradient descent

The limit $\beta^\infty(\alpha)$ of gradient flow on a diagonal network depends on the scale
$\alpha$ of the initialisation (Woodworth et al. 2020): minimum-$\ell_1$ interpolation as
$\alpha\to0$, minimum-$\ell_2$ as $\alpha\to\infty$. On noisy data neither end is best, so
$\alpha$ is a hyper-parameter. `linflow.flow` is differentiable, so the validation loss of the
*limit* can be minimised over $\alpha$ by gradient descent (optax) instead of a grid search.

1. The gradient $\partial L_{\mathrm{val}}(\beta^\infty(\alpha))/\partial\alpha$ by the implicit
   adjoint (`linflow.ImplicitAdjoint()`), by backpropagation through the solver (the default),
   and by finite differences.
2. A grid over $\alpha$ with `linflow.Sweep`.
3. Adam on $\log\alpha$, drawn on the grid's curve.
"""),
    code(SETUP),
    code("""
import time

import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
import optax

import linflow as lf

# A noisy 10-sparse plant; validation and test sets are fresh draws from the same plant.
n, d, r, noise = 40, 100, 10, 1.0
train, beta_star = lf.sparse_regression(jr.PRNGKey(0), n, d, r, noise=noise)
val, _ = lf.sparse_regression(jr.PRNGKey(1), 200, d, r, noise=noise)
test, _ = lf.sparse_regression(jr.PRNGKey(2), 1000, d, r, noise=noise)


def mse(beta, data):
    return jnp.mean((data.X @ beta - data.Y) ** 2)


def val_loss(log_alpha, adjoint=None):
    model = lf.DiagonalNet.unbiased(d, jnp.exp(log_alpha))
    sol = lf.flow(model, train, adjoint=adjoint, saveat=lf.SaveAt(num=1))
    return mse(sol.final.predictor(), val)
"""),
    md("""
## 1. The gradient, three ways

`ImplicitAdjoint` differentiates the steady state by the implicit function theorem (a Newton
root solve at the limit; no tape of the solver steps). The default adjoint backpropagates
through the solver steps. Both must agree with central finite differences of the forward flow.
"""),
    code("""
log_alpha0 = jnp.log(1.0)
value_and_grad = jax.jit(jax.value_and_grad(lambda la: val_loss(la, lf.ImplicitAdjoint())))
grad_backprop = jax.jit(jax.grad(val_loss))
forward = jax.jit(val_loss)

v0, g_implicit = value_and_grad(log_alpha0)
g_backprop = grad_backprop(log_alpha0)
h = 1e-4
g_fd = (forward(log_alpha0 + h) - forward(log_alpha0 - h)) / (2 * h)
print(f"validation loss at alpha = 1: {float(v0):.6f}")
print(f"dL/dlog(alpha): implicit {float(g_implicit):.10f}, backprop {float(g_backprop):.10f}, "
      f"finite differences {float(g_fd):.10f}")
# The limit is accurate to the flow's stop tolerance (relative excess loss 1e-10), so the loss
# carries errors ~1e-10 and central differences ~1e-10 / h = 1e-6 absolute; truncation is
# O(h^2) = 1e-8. The two adjoints differentiate the same limit: they agree more closely.
np.testing.assert_allclose(g_implicit, g_fd, atol=1e-5)
np.testing.assert_allclose(g_backprop, g_fd, atol=1e-5)
np.testing.assert_allclose(g_implicit, g_backprop, rtol=1e-5)
"""),
    md("""
## 2. A grid search with `linflow.Sweep`

One flow per value of $\\alpha$ (dynamic axis: compiled once). We record the validation
loss (what we select on) and the test loss (what we would report).
"""),
    code("""
def point_fn(point, key):
    model = lf.DiagonalNet.unbiased(d, point["alpha"])
    sol = lf.flow(model, train, saveat=lf.SaveAt(num=1), throw=False)
    beta = sol.final.predictor()
    return {"val_loss": mse(beta, val), "test_loss": mse(beta, test), "result": sol.result}


grid_alphas = jnp.logspace(-3, 1, 9 if SMALL else 33)
spacing = float(jnp.log(grid_alphas[1] / grid_alphas[0]))  # in log(alpha)
t0 = time.perf_counter()
table = lf.Sweep({"alpha": grid_alphas}, point_fn, quiet=SMALL).run()
assert (table["status"] == "ok").all()
best = int(np.argmin(table["val_loss"]))
alpha_grid, val_grid = float(table["alpha"][best]), float(table["val_loss"][best])
print(f"{len(table)} flows in {time.perf_counter() - t0:.1f} s; best alpha {alpha_grid:.3g}, "
      f"validation loss {val_grid:.5f}, test loss {float(table['test_loss'][best]):.5f}")
"""),
    md("""
## 3. Gradient descent on $\\log\\alpha$

Adam with a cosine-decayed step on $\\log\\alpha$, from $\\alpha = 1$ (close to the kernel
regime). Each step runs one flow to its steady state and one Newton solve for the gradient.
"""),
    code("""
steps = 20 if SMALL else 25
# Less momentum than Adam's default (b1 = 0.5): the curve is shallow near its minimum and a
# heavy ball overshoots it; the cosine decay lets the last steps settle.
opt = optax.adam(optax.cosine_decay_schedule(0.3, steps), b1=0.5)
log_alpha = log_alpha0
state = opt.init(log_alpha)
iterates = []
t0 = time.perf_counter()
for _ in range(steps):
    v, g = value_and_grad(log_alpha)
    iterates.append((float(jnp.exp(log_alpha)), float(v)))
    updates, state = opt.update(g, state, log_alpha)
    log_alpha = optax.apply_updates(log_alpha, updates)
v, g = value_and_grad(log_alpha)
iterates.append((float(jnp.exp(log_alpha)), float(v)))
alpha_gd, val_gd = iterates[-1]
beta_gd = lf.flow(lf.DiagonalNet.unbiased(d, alpha_gd), train).final.predictor()
print(f"{steps} steps in {time.perf_counter() - t0:.1f} s: alpha {alpha_gd:.4g}, validation loss "
      f"{val_gd:.5f} (gradient {float(g):.1e}), test loss {float(mse(beta_gd, test)):.5f}")
print(f"grid ({len(grid_alphas)} flows): alpha {alpha_grid:.4g}, validation loss {val_grid:.5f}")
# The grid's best is a grid point, so the continuous minimum is at most its value; gradient
# descent should find it, within one grid spacing of the grid's choice.
assert val_gd <= val_grid + 1e-6
assert abs(np.log(alpha_gd / alpha_grid)) <= spacing
"""),
    code("""
fig, ax = plt.subplots(figsize=(7, 4))
ax.semilogx(table["alpha"], table["val_loss"], "o-", ms=3, label="grid: validation loss")
ax.semilogx(table["alpha"], table["test_loss"], ":", color="gray", label="grid: test loss")
a_it, v_it = np.array(iterates).T
ax.scatter(a_it, v_it, c=np.arange(len(a_it)), cmap="autumn", zorder=3, s=18,
           label="Adam iterates (light = late)")
ax.plot(alpha_gd, val_gd, "k*", ms=12, label=f"GD: alpha = {alpha_gd:.3g}")
ax.set_xlabel(r"$\\alpha$")
ax.set_ylabel("mean squared error of the limit")
ax.set_title(r"rich ($\\ell_1$) $\\leftarrow$ $\\alpha$ $\\rightarrow$ kernel ($\\ell_2$)")
ax.legend(fontsize=8);
"""),
    md("""
One gradient costs about one flow (plus an $N\\times N$ Newton solve), so a dozen gradient
steps cost what a dozen grid points cost, and the answer is not limited by the grid's
spacing. The same code differentiates with respect to the data (`train.Y`) or a
per-coordinate initialisation shape `DiagonalNet.unbiased(d, alpha, w0=...)`; with $d$ such
hyper-parameters, though, the validation set is easily overfitted. See
`benchmarks/differentiate.py` for the cost of the two adjoints as $d$ grows.
"""),
]


def tidy():
    """Format the generated notebooks with ruff, when it is installed."""
    import subprocess
    import sys

    paths = [str(p) for p in sorted(HERE.glob("*.ipynb"))]
    for args in (["check", "--fix", "--quiet"], ["format", "--quiet"]):
        try:
            subprocess.run([sys.executable, "-m", "ruff", *args, *paths], check=False)
        except OSError:
            return


if __name__ == "__main__":
    write("01_quickstart.ipynb", QUICKSTART)
    write("03_woodworth.ipynb", WOODWORTH)
    write("06_scaling.ipynb", SCALING)
    write("07_differentiate.ipynb", DIFFERENTIATE)
    tidy()
