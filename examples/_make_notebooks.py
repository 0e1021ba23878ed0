"""Regenerate the example notebooks: `python examples/_make_notebooks.py`.

The notebooks are written without outputs (CI executes them under `LINFLOW_SMALL=1`).
Every notebook starts with the same setup cell: install linflow from an explicit source (on
Colab: the repository of `[project.urls]` at this version's tag, or `LINFLOW_SOURCE`; elsewhere only
when `LINFLOW_SOURCE` is set, as CI does with a freshly built wheel), enable float64, read the
small-size switch. It never installs the bare name `linflow`.
"""

import pathlib

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


HERE = pathlib.Path(__file__).parent


def project() -> dict:
    """pyproject.toml's `[project]` table (name, version, urls)."""
    import tomllib

    return tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]


def install_source() -> str:
    """The default install source on Colab: the repository at this version's tag, as a pip
    requirement (`git+<Repository>@v<version>`); empty while `[project.urls] Repository` is the
    `.invalid` placeholder, so a notebook on Colab stops and says what to set."""
    meta = project()
    url = meta.get("urls", {}).get("Repository", "")
    host = url.split("://", 1)[-1].split("/", 1)[0]
    if not url or host.endswith(".invalid"):
        return ""
    return f"git+{url}@v{meta['version']}"


def _source_line() -> str:
    default = install_source()
    if not default:
        return (
            "# No public repository is configured ([project.urls] Repository, pyproject.toml).\n"
            'LINFLOW_SOURCE = os.environ.get("LINFLOW_SOURCE", "")'
        )
    return f'LINFLOW_SOURCE = os.environ.get("LINFLOW_SOURCE") or ({default!r} if IN_COLAB else "")'


SETUP = """\
import os
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules
# Where to install linflow from: a pip requirement naming the source exactly, such as
# "git+https://<host>/<owner>/linflow@v<version>" or the path of a wheel. Set the environment
# variable LINFLOW_SOURCE (or edit this line). Outside Colab nothing is installed unless it is set.
@SOURCE_LINE@
if LINFLOW_SOURCE and not any(s in LINFLOW_SOURCE for s in ("/", "\\\\", "://")):
    raise ValueError(
        "LINFLOW_SOURCE must name a source (a git URL at a tag, or a wheel's path), not the bare "
        "name: no release of this project is on the package index, and that name may be anyone's."
    )
if IN_COLAB and not LINFLOW_SOURCE:
    raise RuntimeError(
        "Set LINFLOW_SOURCE to where linflow should be installed from, e.g. "
        "os.environ['LINFLOW_SOURCE'] = 'git+https://<host>/<owner>/linflow@v<version>' "
        "(the repository at a release tag) or the path of an uploaded wheel, then run this cell."
    )
if LINFLOW_SOURCE:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", LINFLOW_SOURCE], check=True)

import jax

jax.config.update("jax_enable_x64", True)  # the limits at small scale need float64
SMALL = os.environ.get("LINFLOW_SMALL", "0") == "1"  # CI runs every notebook small
print(jax.devices(), "small" if SMALL else "full size")""".replace("@SOURCE_LINE@", _source_line())


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
    md(r"""
## 5. Vanishing initialisation: saddle to saddle

As $\alpha\to0$ the flow, in rescaled time $\tau = t/\log(1/\alpha)$, jumps between saddles
(Pesme & Flammarion 2023). `linflow.limits.saddle_to_saddle` computes the limit staircase (jump
times and saddles; the last saddle is the min-$\ell_1$ interpolator) and `SaveAt.rescaled`
samples the flow on that clock; the flows converge onto the staircase as $\alpha$ shrinks.
"""),
    code(r"""
import matplotlib.pyplot as plt
import numpy as np

rng = np.random.default_rng(7)
Xs, ys = rng.standard_normal((5, 10)), rng.standard_normal(5)
proc = lf.limits.saddle_to_saddle(Xs, ys)
print("jump times:", np.round(np.asarray(proc.times), 3))
print("last saddle - min-l1:", float(jnp.abs(proc.saddles[-1] - lf.limits.min_l1(Xs, ys)).max()))
taus = np.linspace(0, 1.5 * float(proc.times[-1]), 40 if SMALL else 200)
fig, ax = plt.subplots(figsize=(6, 3.5))
support = np.flatnonzero(np.any(np.asarray(proc.saddles) != 0, axis=0))
alphas = [(1e-5, ":"), (1e-30, "-")] if SMALL else [(1e-5, ":"), (1e-10, "--"), (1e-30, "-")]
for alpha, ls in alphas:
    sol = lf.flow(lf.DiagonalNet.unbiased(10, alpha), lf.Regression(Xs, ys),
                  saveat=lf.SaveAt.rescaled(taus, alpha))
    B = np.asarray(jax.vmap(lambda m: m.predictor())(sol.models))
    for j in support:
        ax.plot(taus, B[:, j], ls, color=f"C{j}")
limit = np.asarray(proc.predictor(taus))
for j in support:
    ax.step(taus, limit[:, j], where="post", color="k", lw=0.8)
ax.set_xlabel(r"$\tau = t/\log(1/\alpha)$")
ax.set_ylabel(r"$\beta_i$");
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
    md(r"""
## Width $10^6$: the lifted Gram dynamics

Scaling in the other direction: one network of width $h = 10^6$. For $\Theta = UV^\top$ and any
loss with gradient $g(\Theta)$, the flow $\dot U = -gV$, $\dot V = -g^\top U$ gives, for
$W = [U; V]$ and the Gram matrix $G = WW^\top$ ($(D + m)\times(D + m)$, whatever $h$),

$$\dot G = AG + GA,\qquad A = \begin{pmatrix}0 & -g\\ -g^\top & 0\end{pmatrix},\qquad
\Theta = G_{[:D,\,D:]},$$

a closed ODE in which the width enters only through $G(0)$. `linflow.LiftedTwoLayer.gaussian`
samples $G(0)$ of a network with $U, V\sim\mathcal N(0, h^{-2a})$ entries directly (a Wishart
draw, cost independent of $h$), and for regression with $n < D$ linflow integrates the
$(n + m)^2$ row-space propagator (`sol.form == "lifted-rowspace"`; see the lifted-dynamics
page). The setting is Min et al.'s (App. A.2, $D = 400$, $n = 100$, $m = 1$; with
`LINFLOW_SMALL=1` $D = 100$, $n = 25$ and $h\le 10^4$).

The theory to compare with (Min et al. 2021): the limit interpolates, its distance to the
min-norm solution $\hat\Theta$ shrinks like $h^{-1/2}$ for $a = 1/2$ (Thm 2), the imbalance
spectrum (eigenvalues of $JG$, $J = \mathrm{diag}(I_D, -I_m)$) is conserved, and the lifted
flow ends where the explicit flow of the same $(U, V)$ does.
"""),
    code(r"""
from linflow import limits

D_L, n_L, m_L = (100, 25, 1) if SMALL else (400, 100, 1)
widths = [500, 5_000, 10_000] if SMALL else [500, 10_000, 1_000_000]
seeds_L = 10 if SMALL else 20
kx, kt, ke = jr.split(jr.PRNGKey(0), 3)
X_L = jr.normal(kx, (n_L, D_L)) / np.sqrt(D_L)
Y_L = X_L @ (jr.normal(kt, (D_L, m_L)) / np.sqrt(D_L)) + 0.01 * jr.normal(ke, (n_L, m_L))
prob_L = lf.Regression(X_L, Y_L)
theta_hat = limits.min_norm_solution(X_L, Y_L)

dist = np.zeros((len(widths), seeds_L))
for i, h in enumerate(widths):
    walls = []
    for s in range(seeds_L):
        t0 = time.perf_counter()
        model = lf.LiftedTwoLayer.gaussian(jr.fold_in(jr.PRNGKey(7 + s), h), D_L, m_L, h,
                                           h**-0.5, h**-0.5)
        sol = lf.flow(model, prob_L, saveat=lf.SaveAt(num=4))
        theta = jax.block_until_ready(sol.final.predictor())
        walls.append(time.perf_counter() - t0)
        assert bool(sol.converged)
        # interpolation (n < D): the residual is at the steady-state stop's level
        assert float(jnp.linalg.norm(X_L @ theta - Y_L) / jnp.linalg.norm(Y_L)) < 1e-8
        # the imbalance spectrum is conserved to the solver's accuracy
        assert float(sol.conserved_drift()["imbalance_spectrum"]) < 1e-8
        dist[i, s] = float(jnp.linalg.norm(theta - theta_hat))
    print(f"h = {h:>9,d}: {(D_L + m_L) * h:>11,d} parameters, {sol.form} state "
          f"{(n_L + m_L) ** 2:,d}; {int(sol.stats['num_steps'])} steps, median "
          f"{np.median(walls) * 1e3:.0f} ms per sample + flow (first includes compilation); "
          f"mean |Theta(inf) - Theta_hat| = {dist[i].mean():.3e}")

slope = np.polyfit(np.log(widths), np.log(dist).mean(axis=1), 1)[0]
print(f"log-log slope of |Theta(inf) - Theta_hat| against h: {slope:.3f} "
      f"(Min et al., Thm 2: {limits.width_law_exponent(0.5)})")
# log-distances spread by ~0.3 between seeds: the slope's standard error is <= 0.05 here
assert abs(slope - limits.width_law_exponent(0.5)) < 0.15
"""),
    md("""
The lifted flow and the explicit `TwoLayer` flow (with $(D + m)h$ states) of the same
initialisation end at the same $\\Theta(\\infty)$, at the largest width the explicit flow
handles quickly here.
"""),
    code(r"""
h_x = 200 if SMALL else 2_000
ku, kv = jr.split(jr.PRNGKey(5))
two_layer = lf.TwoLayer(h_x**-0.5 * jr.normal(ku, (D_L, h_x)),
                        h_x**-0.5 * jr.normal(kv, (m_L, h_x)))
theta_x = lf.flow(two_layer, prob_L).final.predictor()
theta_l = lf.flow(lf.LiftedTwoLayer.from_model(two_layer), prob_L).final.predictor()
gap = float(jnp.linalg.norm(theta_x - theta_l) / jnp.linalg.norm(theta_x))
print(f"h = {h_x}: |Theta_explicit - Theta_lifted| / |Theta_explicit| = {gap:.1e}")
assert gap < 1e-7  # both flows stop at relative excess loss 1e-10

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(widths, dist, "o", color="C0", alpha=0.3, ms=3)
ax.loglog(widths, np.exp(np.log(dist).mean(axis=1)), "o-", label="lifted flow")
ref = np.exp(np.log(dist[0]).mean()) * (np.array(widths) / widths[0]) ** -0.5
ax.loglog(widths, ref, "k:", label=r"$h^{-1/2}$")
ax.set_xlabel("width h")
ax.set_ylabel(r"$\|\Theta(\infty) - \hat\Theta\|_F$")
ax.legend();
"""),
]


def write(name, cells):
    nb = new_notebook(cells=cells)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: regenerating leaves unchanged notebooks unchanged
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


MIN = [
    md(r"""
# Imbalance, convergence rate and the min-norm bias (Min et al., ICML 2021)

Two-layer linear regression $L(U, V) = \tfrac12\|Y - XUV^\top\|_F^2$ with
$X\in\mathbb R^{n\times D}$, $D > n$, width $h$. With the SVD $X = W\Sigma_x^{1/2}\Phi_1^\top$
(eq. (4)), $U_1 = \Phi_1^\top U$ and $U_2 = \Phi_2^\top U$ (the null-space part of $U$), the paper
shows:

1. eq. (7)-(9): $U_2$ never moves and the **imbalance** $\Lambda = U_1^\top U_1 - V^\top V$ is
   conserved along the gradient flow;
2. **Thm 1**: $L(t) - L^\star \le e^{-2\lambda_r(\Sigma_x)ct}(L(0) - L^\star)$ with the level
   of imbalance $c = [\lambda_r(\Lambda)]_+ + [\lambda_m(-\Lambda)]_+$ (and, in the slides, a
   refined rate $\tilde c \ge 2c$ that is positive even for a balanced start near the solution);
3. **eq. (14)**: the limit is $\hat\Theta + \Phi_2U_2(0)V(\infty)^\top$, with the min-norm
   solution $\hat\Theta = X^\top(XX^\top)^\dagger Y$ (eq. (11)); **Prop. 1**: from the invariant
   set $VU_2^\top = 0$, $U_1U_2^\top = 0$ the flow converges to $\hat\Theta$ exactly;
4. **Thm 2**: with $U, V\sim\mathcal N(0, h^{-2a})$, $\|\Theta(\infty) - \hat\Theta\| =
   O(h^{-(2a - 1/2)})$: slope $-1/2$ in $h$ for $a = 1/2$ (Figs. 1, 4).

linflow's loss is the paper's analysis loss (eq. (8)), so every constant is used as printed.
"""),
    code(SETUP),
    code(r"""
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np

import linflow as lf
from linflow import limits

# Min et al., App. A.2: X ~ N(0, 1/D), Y = X Theta + 0.01 noise, one output
D, n, m, h = (40, 10, 1, 50) if SMALL else (200, 50, 1, 250)
kx, kt, ke = jr.split(jr.PRNGKey(0), 3)
X = jr.normal(kx, (n, D)) / np.sqrt(D)
Y = X @ (jr.normal(kt, (D, m)) / np.sqrt(D)) + 0.01 * jr.normal(ke, (n, m))
problem = lf.Regression(X, Y)
svd = limits.data_svd(X)  # W, Sigma_x, Phi_1, Phi_2 of eq. (4)
L_star = float(limits.optimal_loss(X, Y, svd))
theta_hat = limits.min_norm_solution(X, Y, svd)
print(f"D={D} n={n} h={h}: rank {svd.rank}, L* = {L_star:.1e}, "
      f"lambda_r(Sigma_x) = {float(svd.sigma[-1]):.3f}")
"""),
    md(r"""
## 1. The imbalance is conserved, $U_2$ does not move

An imbalanced Gaussian start ($U\sim\mathcal N(0, 0.5^2)$, $V\sim\mathcal N(0, 0.02^2)$, App. A.1),
integrated to its steady state. $\Lambda(t)$ is evaluated on every saved model.
"""),
    code(r"""
model0 = lf.gaussian_init(jr.PRNGKey(1), D, m, h, 0.5, 0.02)
sol = lf.flow(model0, problem)
print(sol.status, "at t =", float(sol.t_final), "after", int(sol.stats["num_steps"]), "steps")

Lam0 = limits.min_imbalance(model0.U, model0.V, X, svd)
Lams = jax.vmap(lambda mdl: limits.min_imbalance(mdl.U, mdl.V, X, svd))(sol.models)
lam_drift = float(jnp.max(jnp.abs(Lams - Lam0)) / jnp.max(jnp.abs(Lam0)))
U2s = jnp.einsum("dk,tdh->tkh", svd.Phi2, sol.models.U)  # U_2(t) = Phi_2^T U(t)
u2_drift = float(jnp.max(jnp.abs(U2s - U2s[0])) / jnp.max(jnp.abs(U2s[0])))
# L = 1/2 ||E||^2 + L* with the error E of eq. (6)
E = jax.vmap(lambda mdl: limits.min_error(mdl.U, mdl.V, X, Y, svd))(sol.models)
split = float(jnp.max(jnp.abs(0.5 * jnp.sum(E**2, axis=(1, 2)) + L_star - sol.losses))
              / sol.losses[0])
print(f"max relative drift: Lambda {lam_drift:.1e}, U_2 {u2_drift:.1e}; "
      f"|L - (|E|^2/2 + L*)|/L(0) = {split:.1e}")
# Dopri8 at the default rtol 1e-10 over ~100 steps: the invariants hold to far better than 1e-8
assert lam_drift < 1e-8 and u2_drift < 1e-8 and split < 1e-8
"""),
    md(r"""
## 2. The rate: Thm 1 against the measured loss

Four starts with the same $U(0)V(0)^\top$ (Figs. 2-3): $(\sigma_U, \sigma_V) = (.1, .1), (.5, .02),
(.05, .2)$, a balanced start ($\Lambda = 0$, so $c = 0$ and Thm 1 gives no rate), and a balanced
start near $\hat\Theta$, where the slides' margin $\sigma_{\min} - \|E(0)\|$ is positive. We
integrate over a fixed window (`t1`, `stop=None`) and compare $L(t) - L^\star$ with Thm 1
(`min_rate_bound`) and the slides' margin bound (`margin_rate_bound`) at every saved time, and
the rate fitted on $\log(L - L^\star)$ with the bounds' rates.
"""),
    code(r"""
ku, kv, kb = jr.split(jr.PRNGKey(2), 3)
U0, V0 = jr.normal(ku, (D, h)), jr.normal(kv, (m, h))
cases = {
    "(.1,.1)": lf.TwoLayer(0.1 * U0, 0.1 * V0),
    "(.5,.02)": lf.TwoLayer(0.5 * U0, 0.02 * V0),
    "(.05,.2)": lf.TwoLayer(0.05 * U0, 0.2 * V0),
}
cases["balanced"] = lf.balanced_init(cases["(.1,.1)"].predictor(), X, h, key=kb)
near = theta_hat + 0.05 * jr.normal(jr.PRNGKey(9), theta_hat.shape) / np.sqrt(D)
cases["balanced, near"] = lf.balanced_init(near, X, h, key=kb)  # c = 0, but a margin
T = 40.0
ts = jnp.linspace(0.0, T, 201)
lam_r = float(svd.sigma[-1])
curves = {}
for name, mdl in cases.items():
    c = float(limits.imbalance_level(mdl.U, mdl.V, X, svd))
    c_tilde = float(limits.margin_rate(mdl.U, mdl.V, X, Y, svd))
    s = lf.flow(mdl, problem, saveat=lf.SaveAt(ts=ts), t1=T, stop=None)
    excess = np.asarray(s.losses) - L_star
    thm1 = np.asarray(limits.min_rate_bound(mdl.U, mdl.V, X, Y, ts, svd))
    margin = np.asarray(limits.margin_rate_bound(mdl.U, mdl.V, X, Y, ts, svd))
    # the bounds hold at every saved time, up to the solver's relative accuracy
    assert np.all(excess <= thm1 * (1 + 1e-8) + 1e-14), name
    assert np.all(excess <= margin * (1 + 1e-8) + 1e-14), name
    # Thm 1's proof bounds the instantaneous rate, d/dt log(L - L*) <= -2 lambda_r c, so every
    # secant slope, and hence the least-squares slope, of log(L - L*) is at least as steep.
    fit = (excess < 1e-3 * excess[0]) & (excess > 1e-16 * excess[0])
    rate = -np.polyfit(np.asarray(ts)[fit], np.log(excess[fit]), 1)[0]
    assert rate >= max(2 * lam_r * c, lam_r * c_tilde) * (1 - 1e-6), name
    if name == "balanced, near":  # Thm 1 is vacuous here; the margin bound is not
        assert c < 1e-12 and margin[-1] < 1e-3 * margin[0]
    curves[name] = (excess, thm1, margin)
    print(f"{name:>14}: c = {c:.3g}, Thm 1 rate 2 lambda_r c = {2 * lam_r * c:.3g}, "
          f"margin rate lambda_r c~ = {lam_r * c_tilde:.3g}, measured rate {rate:.3g}")
"""),
    code(r"""
fig, ax = plt.subplots(figsize=(7, 4))
for (name, (excess, thm1, margin)), col in zip(curves.items(), ["C0", "C1", "C2", "C3", "C4"]):
    ax.semilogy(ts, np.maximum(excess, 1e-30), col, label=name)
    ax.semilogy(ts, thm1, col + "--", lw=0.8)
    ax.semilogy(ts, margin, col + ":", lw=0.8)
ax.set_ylim(1e-25, 10)
ax.set_xlabel("t")
ax.set_ylabel(r"$L(t) - L^\star$")
ax.set_title("flow (solid), Thm 1 (dashed), margin bound (dotted)")
ax.legend(fontsize=8);
"""),
    md(r"""
## 3. Where the flow ends: eq. (14) and Prop. 1

The Gaussian start of section 1 ends at eq. (14), not at the min-norm solution: the null-space
part $\Phi_2U_2(0)V(\infty)^\top$ stays. A start in Prop. 1's invariant set
(`invariant_set_init`) ends at $\hat\Theta$ itself.
"""),
    code(r"""
def rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


theta_inf = sol.final.predictor()
eq14 = limits.min_limit(X, Y, model0.U, sol.final.V, svd)
print(f"Gaussian start: |Theta(inf) - eq.(14)|/|eq.(14)| = {rel(theta_inf, eq14):.1e}, "
      f"|Theta(inf) - Theta_hat|/|Theta_hat| = {rel(theta_inf, theta_hat):.2f}")
assert rel(theta_inf, eq14) < 1e-8  # the steady state is reached to relative excess 1e-10
assert rel(theta_inf, theta_hat) > 0.1  # ... and it is not the min-norm solution

inv0 = lf.invariant_set_init(jr.PRNGKey(3), X, m, h, scale=0.3)
sol_inv = lf.flow(inv0, problem)
dist0 = float(limits.invariant_set_distance(inv0.U, inv0.V, X))
dist1 = float(limits.invariant_set_distance(sol_inv.final.U, sol_inv.final.V, X))
print(f"invariant set: distance to the set {dist0:.1e} "
      f"at t = 0, {dist1:.1e} at the end; "
      f"|Theta(inf) - Theta_hat|/|Theta_hat| = {rel(sol_inv.final.predictor(), theta_hat):.1e}")
assert rel(sol_inv.final.predictor(), theta_hat) < 1e-8
"""),
    md(r"""
## 4. The width law (Thm 2, Figs. 1 and 4)

With $U, V\sim\mathcal N(0, 1/h)$ ($a = 1/2$) the distance $\|\Theta(\infty) - \hat\Theta\|_F$
shrinks like $h^{-1/2}$. The explicit flow has $(D + m)h$ states; `linflow.LiftedTwoLayer`
samples the Gram matrix $G(0) = WW^\top$ of the same Gaussian network directly (a Wishart
draw) and integrates a closed ODE whose size does not depend on $h$ (see the lifted-dynamics
page), so widths up to $10^6$ cost the same. First, the lifted and explicit flows agree on
one initialisation.
"""),
    code(r"""
tl = lf.width_scaled_init(jr.PRNGKey(4), D, m, h, a=0.5)
explicit = lf.flow(tl, problem).final.predictor()
lifted = lf.flow(lf.LiftedTwoLayer.from_model(tl), problem).final.predictor()
print(f"width {h}: |lifted - explicit|/|explicit| = {rel(lifted, explicit):.1e}")
assert rel(lifted, explicit) < 1e-7  # both steady states reached to relative excess 1e-10
"""),
    code(r"""
widths = [100, 1_000, 10_000, 100_000, 1_000_000]
seeds = 3 if SMALL else 8
dist = np.zeros((len(widths), seeds))
for i, w in enumerate(widths):
    for s in range(seeds):
        mdl = lf.LiftedTwoLayer.gaussian(jr.fold_in(jr.PRNGKey(10 + s), w), D, m, w,
                                         w**-0.5, w**-0.5)
        s_w = lf.flow(mdl, problem, saveat=lf.SaveAt(num=1))
        assert bool(s_w.converged)
        dist[i, s] = float(jnp.linalg.norm(s_w.final.predictor() - theta_hat))
    print(f"h = {w:>9,d}: mean |Theta(inf) - Theta_hat| = {dist[i].mean():.3e} "
          f"({s_w.form}, {int(s_w.stats['num_steps'])} steps)")
slope = np.polyfit(np.log(widths), np.log(dist).mean(axis=1), 1)[0]
predicted = limits.width_law_exponent(0.5)
print(f"log-log slope {slope:.3f}; Thm 2 predicts {predicted}")
# seed-to-seed spread of log(distance) is ~0.3; over four decades of h this moves the fitted
# slope by a few hundredths
assert abs(slope - predicted) < 0.1
"""),
    code(r"""
fig, ax = plt.subplots(figsize=(5, 4))
ax.loglog(widths, dist, "o", color="C0", alpha=0.4, ms=4)
ax.loglog(widths, np.exp(np.log(dist).mean(axis=1)), "o-", color="C0", label="lifted flow")
ref = np.exp(np.log(dist[0]).mean()) * (np.array(widths) / widths[0]) ** predicted
ax.loglog(widths, ref, "k:", label=r"$h^{-1/2}$ (Thm 2)")
ax.set_xlabel("width h")
ax.set_ylabel(r"$\|\Theta(\infty) - \hat\Theta\|_F$")
ax.legend();
"""),
]


YUN = [
    md(r"""
# Linear tensor networks (Yun, Krishnan & Mobahi, ICLR 2021)

A linear tensor network computes $f(x) = \mathcal M(x)\circ(v_1, \dots, v_L) = x^\top\beta$ with
a data tensor $\mathcal M(x)$ linear in $x$ (eq. (6)); `linflow.TensorNet` implements the three
architectures of the paper: diagonal (eq. (11)), full-length circular convolution (eq. (12)) and
fully connected (eq. (10)). The paper shows:

1. **Thm 6**: a two-layer network trained on one data point $(x, y)$ by gradient flow on the
   square loss converges to an explicit limit (computed by `two_layer_single_point_limit`);
   on the toy $x = [1, 2]$, $y = 1$ the three architectures end at different interpolants
   (Figs. 1-2).
2. **Thm 5 / Cor. 5-6**: deeper diagonal and convolutional networks started at
   $w_l = \alpha\eta$ converge to the minimiser of $Q_{L,\alpha,\eta}$ under $X\beta = y$; as
   $\alpha\to0$ the minimum-$\ell_1$ (diagonal) or minimum DFT-$\ell_1$ (convolution)
   interpolant, while fully connected networks tend to the minimum-$\ell_2$ one (Thm 7).
3. **Cor. 1-3**: with the exponential loss on separable data the direction of $\beta$
   converges to the $\ell_2$ (fully connected), $\ell_1$ (diagonal) or DFT-$\ell_1$
   (convolution) max-margin direction (`tensor_margin_direction`).
"""),
    code(SETUP),
    code(r"""
import diffrax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np

import linflow as lf
from linflow import limits

X_REG, Y_REG = jnp.array([[1.0, 2.0]]), jnp.array([1.0])  # the toy regression problem
X_CLS, Y_CLS = jnp.array([[1.0, 2.0], [0.0, -3.0]]), jnp.array([1.0, -1.0])  # and classification
KINDS = ("fully_connected", "diagonal", "convolution")
SOLVER = lf.SolverChoice(diffrax.Dopri8(), rtol=1e-12, atol=1e-14)
regression = lf.Regression(X_REG, Y_REG)


def directions(kind, z):
    # Initial layers (v1, v2) with beta(0) = alpha^2 z (Sec. 6) satisfying Thm 6's hypothesis
    z = np.asarray(z)
    if kind == "diagonal":
        a = np.sqrt(2 * np.abs(z))
        return jnp.asarray(a), jnp.asarray(z / a)
    if kind == "convolution":  # d = 2: the DFT is [w0 + w1, w0 - w1], beta_hat = w1_hat w2_hat
        zh = np.array([z[0] + z[1], z[0] - z[1]])
        a = np.sqrt(2 * np.abs(zh))
        b = zh / a
        return (jnp.asarray([a[0] + a[1], a[0] - a[1]]) / 2,
                jnp.asarray([b[0] + b[1], b[0] - b[1]]) / 2)
    xh = np.asarray(X_REG[0]) / np.linalg.norm(X_REG[0])
    a = 1.5 * np.max(np.sqrt(np.abs(z) / np.abs(xh)))
    return jnp.asarray(a * np.eye(2)), jnp.asarray(z / a)


zs = np.asarray(jr.normal(jr.PRNGKey(0), (4, 2)))[: 2 if SMALL else 4]
"""),
    md(r"""
## 1. Regression, two layers: the flow against Thm 6 (Figs. 1-2)

For each architecture, initial directions $z_j$ and scales $\alpha$, the flow is integrated to
its steady state and compared with Thm 6's closed-form limit.
"""),
    code(r"""
alphas = (0.01, 0.5, 1.0)
fig, axes = plt.subplots(len(alphas), 3, figsize=(12, 11))
worst = 0.0
for col, kind in enumerate(KINDS):
    for row, alpha in enumerate(alphas):
        ax = axes[row, col]
        for j, z in enumerate(zs):
            model = lf.TensorNet.from_directions(kind, directions(kind, z), alpha)
            sol = lf.flow(model, regression, saveat=lf.SaveAt(ts=jnp.logspace(-3, 4, 80)),
                          solver=SOLVER, max_steps=200_000)
            M = model.data_tensor(X_REG[0])
            vectors = limits.two_layer_single_point_limit(M, *model.vectors(), 1.0)
            limit = model.with_vectors(vectors).predictor()
            worst = max(worst, float(jnp.max(jnp.abs(sol.final.predictor() - limit))))
            path = np.asarray(sol.predictors)
            ax.plot(path[:, 0], path[:, 1], color=f"C{j}", lw=1)
            ax.plot(*path[0], "o", color="purple", ms=4)
            ax.plot(*np.asarray(limit), "o", mfc="none", mec="gold", ms=9, mew=2)
        ax.plot([-1, 1.5], [1, -0.25], color="gold", lw=1)  # the interpolants x^T beta = 1
        ax.set_xlim(-1.2, 1.2)
        ax.set_ylim(-1.2, 1.2)
        ax.set_title(f"{kind}, alpha={alpha}")
fig.tight_layout()
print(f"max |beta_flow - beta_Thm6| over {len(KINDS) * len(alphas) * len(zs)} flows: {worst:.1e}")
# the flow stops at relative excess loss 1e-10 (Dopri8, rtol 1e-12): ~1e-10 in beta
assert worst < 1e-8
"""),
    md(r"""
## 2. Deeper networks and $\alpha\to0$: Cor. 5, Cor. 6, Thm 7

Depth $L = 3$ from $w_l(0) = \alpha\eta$, $\eta = [1, 0.7]$ (`TensorNet.from_eta`): the flow's
limit is the $Q_{L,\alpha,\eta}$ minimiser (`diagonal_regression_limit`,
`convolution_regression_limit`), which tends to $[0, 0.5]$ (min $\ell_1$) for the diagonal and
$[1/3, 1/3]$ (min DFT-$\ell_1$) for the convolutional network as $\alpha\to0$. A fully
connected network from random directions tends to the min-$\ell_2$ interpolant $[0.2, 0.4]$
(Thm 7).
"""),
    code(r"""
eta = jnp.array([1.0, 0.7])
depth = 3
targets = {"diagonal": jnp.array([0.0, 0.5]), "convolution": jnp.array([1.0, 1.0]) / 3,
           "fully_connected": jnp.array([0.2, 0.4])}
cor = {"diagonal": limits.diagonal_regression_limit,
       "convolution": limits.convolution_regression_limit}
scales = [1.0, 0.5, 0.25] if SMALL else [1.0, 0.5, 0.25, 0.1, 0.05]
gaps = {kind: [] for kind in KINDS}
for alpha in scales:
    for kind in KINDS:
        if kind == "fully_connected":
            model = lf.TensorNet.fully_connected(jr.PRNGKey(5), 2, depth, alpha)
        else:
            model = lf.TensorNet.from_eta(kind, eta, depth, alpha)
        beta = lf.flow(model, regression, solver=SOLVER, max_steps=200_000).final.predictor()
        if kind in cor:
            want = cor[kind](X_REG, Y_REG, alpha, depth, eta)
            assert float(jnp.max(jnp.abs(beta - want))) < 1e-8, (kind, alpha)
        gaps[kind].append(float(jnp.linalg.norm(beta - targets[kind])))
for kind in KINDS:
    print(f"{kind:>15}: distance to {np.asarray(targets[kind]).round(3)} for alpha = {scales}:",
          np.array(gaps[kind]).round(5))
    assert gaps[kind][-1] < gaps[kind][0]  # closer to the alpha -> 0 limit at smaller alpha
"""),
    md(r"""
## 3. Classification: directions (Cor. 1-3)

The exponential loss on the separable toy $(([1, 2], +1), ([0, -3], -1))$: $\|\beta\|\to\infty$
and only the direction converges, slowly (like $(\log t)^{-1/2}$), so the flow is integrated
to a very large time with log-spaced saves; the adaptive step grows with $t$. The predicted
directions are $[1, 2]/\sqrt5$ (fully connected, $\ell_2$), $[0, 1]$ (diagonal, $\ell_1$) and
$[1, 1]/\sqrt2$ (convolution, DFT-$\ell_1$): each run must end nearer its own architecture's
direction than the other two.
"""),
    code(r"""
classification = lf.Classification(X_CLS, Y_CLS)  # exponential loss
t1 = 1e8 if SMALL else 1e100
save = lf.SaveAt(ts=jnp.logspace(-2, np.log10(t1), 60))
predicted = {kind: limits.tensor_margin_direction(kind, X_CLS, Y_CLS) for kind in KINDS}
fig, axes = plt.subplots(1, 3, figsize=(13, 4))
for ax, kind in zip(axes, KINDS):
    for alpha, ls in zip([0.5] if SMALL else [0.01, 0.5, 1.0], ["-", "--", ":"]):
        for j, z in enumerate(zs):
            model = lf.TensorNet.from_directions(kind, directions(kind, z), alpha)
            sol = lf.flow(model, classification, saveat=save, t1=t1, solver=SOLVER,
                          max_steps=200_000)
            B = sol.predictors
            u = B / jnp.linalg.norm(B, axis=1, keepdims=True)
            cos = {other: float(u[-1] @ predicted[other]) for other in KINDS}
            assert max(cos, key=cos.get) == kind, (kind, cos)
            ax.loglog(sol.ts, 1 - u @ predicted[kind], color=f"C{j}", ls=ls)
            print(f"{kind:>15} alpha={alpha}: cos(beta(t1), predicted) = {cos[kind]:.6f} "
                  f"({int(sol.stats['num_steps'])} steps)")
    ax.set_xlabel("t")
    ax.set_ylabel("1 - cos")
    ax.set_title(f"{kind}: {np.asarray(predicted[kind]).round(3)}")
fig.tight_layout()
"""),
]


TARMOUN = [
    md(r"""
# Closed-form dynamics of factorisations (Tarmoun et al., ICML 2021)

For $\tfrac12\|Y - UU^\top\|_F^2$ and $\tfrac12\|Y - UV^\top\|_F^2$ the gradient flow has closed
forms (linflow's loss is the paper's, so times and rates are the paper's):

1. **Prop. 1, eq. (8)**: $X = UU^\top$ obeys the Riccati equation $\dot X = 2YX + 2XY - 4X^2$
   (eq. (5)), solved in closed form from *any* start; **Prop. 2**: $X(t)$ converges to the
   projection $\tilde Y$ of $Y$ on the PSD cone at rate $4\min_i|\sigma_i(Y)|$.
2. **Cor. 1, eq. (9)**: from a spectral start each eigenvalue follows its own logistic curve and
   converges at rate $4|\sigma_i|$ (sequential learning).
3. **Prop. 3, eqs. (17)/(22)**: $Q = U^\top U - V^\top V$ is conserved (eq. (13)); from a
   spectral start with imbalance $\lambda_{0,i}$ each singular value converges at rate
   $\sqrt{4\sigma_i^2 + \lambda_{0,i}^2}$: imbalance accelerates convergence.
4. **Prop. 5, eq. (30)**: for $Q_0 = \lambda_0 I$, $RR^\top$ with $R = [U; V]$ in closed form.

Each closed form is compared with the exact flow at every saved time, and each rate with the
slope of the flow's own error.
"""),
    code(SETUP),
    code(r"""
import diffrax
import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np

import linflow as lf
from linflow import limits

# These small flows are not stiff; an explicit solver at a tight tolerance keeps the global
# error far below the 1e-7 used in the checks (and compiles faster than the implicit default).
SOLVER = lf.SolverChoice(diffrax.Tsit5(), rtol=1e-11, atol=1e-13)
T = 10.0
ts = jnp.concatenate([jnp.zeros(1), jnp.logspace(-2, np.log10(T), 60)])


def run(model, Y, ts=ts):
    return lf.flow(model, lf.Factorization(Y), saveat=lf.SaveAt(ts=ts), t1=float(ts[-1]),
                   stop=None, solver=SOLVER)


def max_rel(a, b):
    # the largest error over the trajectory, relative to the size of b at the same time
    err = jnp.abs(a - b).reshape(a.shape[0], -1).max(axis=1)
    return float((err / jnp.abs(b).reshape(b.shape[0], -1).max(axis=1)).max())


def fitted_rate(t, err, lo=1e-8, hi=1e-3):
    # slope of log(err) where the error is past its transient and above the solver's floor
    sel = (err > lo) & (err < hi)
    return -np.polyfit(np.asarray(t)[sel], np.log(err[sel]), 1)[0]
"""),
    md(r"""
## 1. Symmetric factorisation: Prop. 1 and Prop. 2

$Y = \Phi\,\mathrm{diag}(\sigma)\Phi^\top$ with eigenvalues of both signs, a random (not spectral)
start $U_0$ of width $k$.
"""),
    code(r"""
n, k = (5, 8) if SMALL else (10, 20)
Phi, _ = jnp.linalg.qr(jr.normal(jr.PRNGKey(0), (n, n)))
sigma = jnp.sort(jnp.concatenate([-jnp.linspace(0.6, 1.5, n // 2),
                                  jnp.linspace(0.5, 2.0, n - n // 2)]))
Y_sym = (Phi * sigma) @ Phi.T
U0 = 0.1 * jr.normal(jr.PRNGKey(1), (n, k))
sol_sym = run(lf.Symmetric(U0), Y_sym)
eq8 = limits.symmetric_riccati_solution(Y_sym, U0, ts)
err8 = max_rel(sol_sym.predictors, eq8)
print(f"flow vs eq. (8): max relative error {err8:.1e} ({int(sol_sym.stats['num_steps'])} steps)")
assert err8 < 1e-7

Y_psd = (Phi * jnp.maximum(sigma, 0.0)) @ Phi.T  # the projection on the PSD cone
late = limits.symmetric_riccati_solution(Y_sym, U0, jnp.array([1e8]))[0]  # no overflow
assert float(jnp.abs(late - Y_psd).max()) < 1e-12
dist = np.asarray(jnp.linalg.norm(sol_sym.predictors - Y_psd, axis=(1, 2)))
rate, predicted = fitted_rate(ts, dist), 4 * float(jnp.min(jnp.abs(sigma)))
print(f"|X(t) - Y_psd| decays at rate {rate:.4f}; Prop. 2: 4 min|sigma_i| = {predicted:.4f}")
assert abs(rate / predicted - 1) < 0.01
"""),
    md(r"""
## 2. Spectral start: eq. (9), one rate per eigenvalue

$U_0 = \Phi\,\mathrm{diag}(\sigma_0)^{1/2}$ with all $\sigma_{0,i} = 10^{-3}$: the eigenvalues of
$X(t)$ in the basis $\Phi$ follow eq. (9); positive ones are learned at rate $4\sigma_i$, one
after the other, negative ones decay to zero.
"""),
    code(r"""
sigma0 = jnp.full(n, 1e-3)
sol_spec = run(lf.Symmetric(Phi * jnp.sqrt(sigma0)[None, :]), Y_sym)
eig_flow = jnp.einsum("ia,tij,ja->ta", Phi, sol_spec.predictors, Phi)
eq9 = limits.symmetric_spectral_solution(sigma, sigma0, ts)
err9 = max_rel(eig_flow, eq9)
print(f"flow vs eq. (9): max relative error {err9:.1e}")
assert err9 < 1e-7

fig, ax = plt.subplots(figsize=(6, 3.5))
for i in range(n):
    line = ax.plot(ts, eig_flow[:, i], lw=2, alpha=0.5)[0]
    ax.plot(ts, eq9[:, i], "--", color=line.get_color(), lw=1)
ax.set_xlabel("t")
ax.set_ylabel(r"$\phi_i^\top X(t)\phi_i$")
ax.set_title("flow (thick) and eq. (9) (dashed)");
"""),
    md(r"""
## 3. Asymmetric factorisation: Prop. 3 and the role of imbalance

$Y\in\mathbb R^{m\times n'}$ with singular values $1, \dots, 1/4$; a spectral start
(`spectral_init`, Def. 3) with $x_{0,i} = 0.1$ and the same imbalance $\lambda_0$ on every
component, balanced ($\lambda_0 = 0$) and imbalanced ($\lambda_0 = 2$). Over a longer window
so that the balanced start finishes learning its smallest component.
"""),
    code(r"""
m, n2 = (3, 5) if SMALL else (5, 10)
Pa, _, Pb = jnp.linalg.svd(jr.normal(jr.PRNGKey(2), (m, n2)), full_matrices=False)
s_Y = jnp.linspace(1.0, 0.25, m)
Y = (Pa * s_Y) @ Pb
ts3 = jnp.linspace(0.0, 40.0, 161)
errors = {}
for lam0 in [0.0, 2.0]:
    model0 = lf.spectral_init(Y, 2 * m, 0.1, lam0, key=jr.PRNGKey(3))
    s3 = run(model0, Y, ts3)
    eq17 = limits.spectral_factorization_solution(Y, model0.U, model0.V, ts3)
    err17 = max_rel(s3.predictors, eq17)
    Q = s3.conserved["imbalance"]
    q_drift = float(jnp.abs(Q - Q[0]).max())  # absolute: Q(0) = 0 for the balanced start
    x = jnp.einsum("ip,tij,pj->tp", Pa, s3.predictors, Pb)  # singular values along Y's
    errors[lam0] = np.abs(np.asarray(x - s_Y))
    rates = [fitted_rate(ts3, errors[lam0][:, i] / float(s_Y[i])) for i in range(m)]
    predicted = np.asarray(limits.spectral_rate(s_Y, lam0))
    print(f"lambda0 = {lam0}: flow vs eq. (17) {err17:.1e}, |Q(t) - Q(0)| <= {q_drift:.1e}")
    print("   measured rates", np.round(rates, 4), " sqrt(4 sigma^2 + lambda0^2) =",
          np.round(predicted, 4))
    assert err17 < 1e-7 and q_drift < 1e-9
    np.testing.assert_allclose(rates, predicted, rtol=0.01)
"""),
    code(r"""
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
for ax, lam0 in zip(axes, errors):
    for i in range(m):
        line = ax.semilogy(ts3, errors[lam0][:, i], label=f"sigma = {float(s_Y[i]):.3g}")[0]
        rate = float(limits.spectral_rate(s_Y[i], lam0))
        ax.semilogy(ts3, errors[lam0][-40, i] * np.exp(-rate * (ts3 - ts3[-40])), ":",
                    color=line.get_color())
    ax.set_ylim(1e-14, 2)
    ax.set_xlabel("t")
    ax.set_title(f"lambda0 = {lam0}: |x_i(t) - sigma_i| (dotted: Prop. 3 rate)")
axes[0].legend(fontsize=8);
"""),
    md(r"""
## 4. Isotropic imbalance: Prop. 5

When $U_0^\top U_0 - V_0^\top V_0 = \lambda_0 I_k$ (possible for $k\le m$: take
$U_0 = Q(\lambda_0 I + V_0^\top V_0)^{1/2}$ with orthonormal $Q$), $R(t)R(t)^\top$,
$R = [U; V]$, has the closed form (30); its off-diagonal block is $U(t)V(t)^\top$.
"""),
    code(r"""
lam0, k5 = 0.7, m
kq, kv = jr.split(jr.PRNGKey(4))
V0 = 0.4 * jr.normal(kv, (n2, k5))
ev, P = jnp.linalg.eigh(lam0 * jnp.eye(k5) + V0.T @ V0)
Qo, _ = jnp.linalg.qr(jr.normal(kq, (m, k5)))
iso0 = lf.TwoLayer(Qo @ (P * jnp.sqrt(ev)[None, :]) @ P.T, V0)
assert float(jnp.abs(iso0.conserved()["imbalance"] - lam0 * jnp.eye(k5)).max()) < 1e-12
s5 = run(iso0, Y)
RR = limits.isotropic_imbalance_solution(Y, iso0.U, iso0.V, lam0, ts)
W = jnp.concatenate([s5.models.U, s5.models.V], axis=1)
err30 = max_rel(W @ jnp.swapaxes(W, 1, 2), RR)
print(f"flow vs eq. (30): R R^T {err30:.1e}, U V^T {max_rel(s5.predictors, RR[:, :m, m:]):.1e}")
assert err30 < 1e-7
"""),
]


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
    write("02_min.ipynb", MIN)
    write("03_woodworth.ipynb", WOODWORTH)
    write("04_yun.ipynb", YUN)
    write("05_tarmoun.ipynb", TARMOUN)
    write("06_scaling.ipynb", SCALING)
    write("07_differentiate.ipynb", DIFFERENTIATE)
    tidy()
