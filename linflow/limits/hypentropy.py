r"""The hypentropy potentials $Q_\alpha$, $Q^D_\alpha$ and their constrained minimisers: the exact
limit of the gradient flow of an unbiased diagonal network on a regression problem
(Woodworth et al. 2020, Thm 1 for depth 2, Thm 3 for depth $D \ge 3$).

**Normalisation.** For `DiagonalNet.unbiased(d, alpha, depth, w0)` let $c_i = \alpha w_{0,i}$.
The flow $\dot w_\pm = \mp D w_\pm^{D-1} X^\top r$ integrates in closed form (proof of Thm 1 /
Appendix F): with $s = X^\top\nu \in \operatorname{range}(X^\top)$ (a positive rescaling of
$-X^\top\!\int r$),

- $D = 2$: $\beta_i = 2c_i^2\sinh(s_i)$;
- $D \ge 3$: $\beta_i = c_i^D\,h_D(w_{0,i}^{D-2}s_i)$, $h_D(z) = (1-z)^{-p} - (1+z)^{-p}$,
  $p = D/(D-2)$, $|w_{0,i}^{D-2}s_i| < 1$.

So the limit $\beta^\infty$ is the $\beta$ with $X\beta = y$ and $\nabla Q(\beta) = s \in
\operatorname{range}(X^\top)$, i.e. $\arg\min Q$ s.t. $X\beta = y$, for

$$Q^D_{\alpha,w_0}(\beta) = \alpha^D \sum_i w_{0,i}^2 q_D\big(\beta_i / (\alpha w_{0,i})^D\big),$$
$$q_2(z) = 2 - \sqrt{4+z^2} + z\operatorname{arcsinh}(z/2),\quad q_D = \int_0^{\cdot} h_D^{-1},$$

which for $w_0 = \mathbf 1$ is exactly the paper's $Q_\alpha$ (Thm 1) and $Q^D_\alpha$ (Thm 3).
($\partial Q/\partial\beta_i = \operatorname{arcsinh}(\beta_i/2c_i^2)$ for $D=2$ and
$w_{0,i}^{2-D} h_D^{-1}(\beta_i/c_i^D)$ for $D\ge3$: both equal $s_i$ above.)

**Method.** The minimiser is found from the convex dual
$F(\nu) = \sum_i \psi_i((X^\top\nu)_i) - y^\top\nu$ with $\psi_i = \varphi_i^*$
($\psi_i' = \beta_i(s_i)$), minimised by a damped Newton method (Armijo backtracking on $F$, or on
$\|\nabla F\|$ once $F$ is flat to rounding), continued in $\alpha$ from the kernel regime down to
the requested $\alpha$ (stages that shrink $\alpha^D$ by $10^4$ at $D = 2$, i.e. $\alpha$ by 100,
and by $10^8$ at $D \ge 3$, which took 16-18% fewer Newton steps over
`benchmarks/limits_robustness.py`; at most 16 stages, so it is `jit`/`vmap`-able). Each stage
starts from the best (lowest $F$) of three points (four at $D \ge 3$): the last stage's $\nu$
and two extrapolations from the last two stages. On the support $S$ of $\beta$ at small $\alpha$,
$X_S^\top\nu = \log|\beta_S| - 2\log\alpha\,\operatorname{sign}\beta_S$ is affine in $\log\alpha$
for $D = 2$, and $1 - |z_S| \propto \alpha^{D-2}$ makes $\nu$ geometric in $\log\alpha$ for
$D \ge 3$; with these starts most small-$\alpha$ stages take 0-2 Newton steps. At $D \ge 3$ a
fourth point targets the gaps directly: where every coordinate with $1 - |z_i| < 10^{-2}$ is
among the $N/4$ smallest gaps (a sparse support), the least-norm change of $\nu$ that scales
those gaps by $(\alpha_{new}/\alpha_{old})^{D-2}$ (their small-$\alpha$ law at fixed $\beta$;
the Cholesky factor of the $N/4\times N/4$ Gram of their columns). The extrapolations cross
the boundary $|z| = 1$ there (F = $\infty$); this start took the planted-sparse problem of
`limits_speed` at $N = 1000$, $d = 10^4$, $\alpha = 10^{-8}$ from 38 / 50 / 48 to 29 / 38 / 33
Newton steps at depths 3 / 4 / 5 (robustness problems: 2% fewer in all, up to 14% fewer on
sparse targets, up to 4% more on dense ones, where it is not tried). Intermediate stages stop at
$\|X\beta - y\| \le 10^{-3}\|y\|$; at $D \ge 3$ a stage that ends with the support resolved to
rounding ($1 - |z_S| \le 10^{-12}$) is followed directly by the stage at $\alpha$ (see *Tiny
$\alpha$* below). For $D \ge 3$ each line search starts at 90% of the step to the domain boundary
$|z| = 1$ (a full Newton step towards it overshoots by orders of magnitude at small $\alpha$). A
step reads $X$ twice: $X^\top\delta$ for the direction $\delta$ (trial points of the line search
are $s + tX^\top\delta$ and their $F$ costs $O(d)$) and $\nabla F = X\beta - y$ where a trial point
can be accepted. Each Newton step solves $X\operatorname{diag}(\psi'')X^\top\delta = -\nabla F$: by
Cholesky for small problems, and for $N \ge 256$, $d \ge 2N$ by conjugate gradients (`lineax.CG`)
preconditioned with the columns of largest curvature kept exactly and the rest replaced by their
mean (`_direction_cg`), which costs $O(Nd)$ per iteration instead of $O(N^2d)$ per step (and
$O(N^2)$ where the curvature is concentrated enough to truncate the Hessian to its $2N$ largest
columns plus the rest's mean, at small $\alpha$ with $d > 4N$); after a CG solve that stalls at
its step cap or needs more than 50 iterations (supports of about $N$ coordinates) the stage
switches to exact steps (Cholesky of that truncated Hessian where it applies,
$O(N^2\cdot 2N)$; switching after 50 rather than only at the cap of 200 took a third of the CG
iterations off `benchmarks/limits_robustness.py`, 2% of the Newton steps, and a quarter of the
time off the past-recovery solves under *Speed* in `docs/limits.md`). CG stops on the forcing test
$\min(0.1, \sqrt{\|\nabla F\|/\|y\|})$ (within $10^{-3}$ of the boundary $|z| = 1$ at $D \ge 3$
also on lineax's test that the last update be small: `_direction_cg`). The Cholesky factor carries
a ridge of $N u$ on the unit diagonal of the Jacobi-scaled Hessian, whose condition number can
exceed $1/u$ at small $\alpha$. All exponentials are evaluated in log space ($\log c_i^2 + |s_i|$),
so nothing overflows for $\alpha \in [10^{-8}, 10^4]$.

**Tiny $\alpha$ at depth $D\ge3$.** On the support of $\beta$ the gap $1 - |z_i|$ is about
$(c^D/|\beta_i|)^{(D-2)/D}$ (e.g. $10^{-24}$ at $\alpha = 10^{-8}$, $D = 5$), below the
float64 resolution of $z = X^\top\nu$, so $\beta$ cannot be read off $\nu$ there. The solver
therefore also forms the *support solution*: $S = \{i : 1 - |z_i| < 10^{-4}\}$,
$\beta_{S^c}$ from the dual (well resolved: large gaps) and $\beta_S$ from
$X_S\beta_S = y - X_{S^c}\beta_{S^c}$, which is exact when $X_S$ has full column rank (the
minimiser satisfies the constraint, and only $\beta_S$ is unknown). Rounding in $z_i$ causes
an absolute error $\delta_i \approx p\,|\beta_i|\,u\,\kappa_i/(1-|z_i|)$ in $\beta_i$ ($u$ the
unit roundoff, $\kappa_i$ the rounding scale of $z_i$); the error estimates are
$\|\delta\|/\|\beta\|$ for the dual answer and
$(\|\delta_{S^c}\| + \|X_S^+X_{S^c}\delta_{S^c}\|)/\|\beta\|$ for the support solution
(which is used only if $X_S$ has full column rank and the signs of $\beta_S$ match $z_S$).
Newton on the dual stops where the rounding of $z_S$ dominates $\nabla F$, which can leave
$\nu$ short of converged off $S$ (the support solution's residual up to ~1e-9 at depth 4,
$\alpha = 10^{-2}$ with CG steps): where that residual $r$ exceeds $3\cdot10^{-11}\|y\|$ and
$|S| \le N/4$, one Newton step of the dual with $\beta_S$ free,
$X_{S^c}\operatorname{diag}(\psi''_{S^c})X_{S^c}^\top\,\delta\nu = r$ on
$\operatorname{range}(X_S)^\perp$ (so $z_S$ stays put; one Cholesky factorisation, $O(N^2d)$,
done where $N^2d \le 3\cdot10^{10}$), followed by the support solution again, takes it out
(kept if its estimate is smaller).
The answer with the smaller estimate is returned; if it exceeds `rtol` the call raises (or,
with `throw=False`, returns it with `info["ok"] = False`). Against a 60-digit reference
(tests) both are accurate to ~1e-14 relative over $\alpha \in [10^{-8}, 10^{4}]$, $D \le 5$.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import lineax.internal as lxi
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from .._checks import as_float_array, check_depth, check_finite, check_positive, is_concrete


_NUM_STAGES = 16
_FLOOR_CHECK = 1e-3
_TO_BOUNDARY = 0.9
_STAGE_SHRINK = 1e4
_STAGE_SHRINK_DEEP = 1e8
_STAGE_TOL = 1e-3
_MAX_NEWTON = 60
_MAX_BACKTRACK = 60
_MAX_IDLE = 6
_SUPPORT_GAP = 1e-4
_REFINE_ABOVE = 3e-11
_REFINE_MAX_WORK = 3e10  # N^2 d of the refinement's Hessian (N = 1000, d = 1e4: 1e10, 0.18 s)
_MAX_CG = 200
_CG_EXACT_AFTER = 50
_TRUNCATE = 1e-6
_NEAR_BOUNDARY = 1e-3
_PREDICT_GAP = 1e-2
_OUTLIER = 10.0


# ---------------------------------------------------------------------------------------------
# Validation


def _check_depth(depth):
    return check_depth(depth)


def _check_alpha(alpha):
    alpha = as_float_array(alpha, "alpha", ndim=0)
    if is_concrete(alpha):
        a = float(alpha)
        if not np.isfinite(a) or a <= 0:
            raise ValueError(f"`alpha` must be finite and > 0, got {a!r}.")
        return alpha
    return check_positive(alpha, "alpha")


def _check_w0(w0, d, dtype):
    if w0 is None:
        return jnp.ones(d, dtype)
    w0 = as_float_array(w0, "w0", ndim=1)
    if w0.shape != (d,):
        raise ValueError(f"`w0` must have shape ({d},), got {tuple(w0.shape)}.")
    w0 = check_finite(w0, "w0")
    return check_positive(w0, "w0")


def _check_problem(X, y):
    X = as_float_array(X, "X", ndim=2)
    y = as_float_array(y, "y", ndim=1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"`X` has {X.shape[0]} rows (samples) but `y` has {y.shape[0]}: they must match."
        )
    return check_finite(X, "X"), check_finite(y, "y")


# ---------------------------------------------------------------------------------------------
# The closed-form path and its potential (elementwise)


def _h(z, D):
    """$h_D(z)$ for $|z| < 1$, accurate for tiny $|z|$ (no cancellation) and near $\\pm1$."""
    p = D / (D - 2)
    a = jnp.abs(z)
    val = jnp.exp(-p * jnp.log1p(-a)) * (-jnp.expm1(-2 * p * jnp.arctanh(a)))
    return jnp.sign(z) * val


def _big_h(z, D):
    r"""$H_D(z) = \int_0^z h_D = \frac{D-2}{2}[(1-z)^{-r} + (1+z)^{-r} - 2]$, $r = 2/(D-2)$,
    as $\frac{2}{r}[\operatorname{expm1}(m)\cosh\delta + 2\sinh^2(\delta/2)]$ (no cancellation)."""
    r = 2.0 / (D - 2)
    m = -0.5 * r * jnp.log1p(-(z**2))
    delta = r * jnp.arctanh(z)
    return (2.0 / r) * (jnp.expm1(m) * jnp.cosh(delta) + 2 * jnp.sinh(0.5 * delta) ** 2)


def _dual_terms(s, logc, w0, D):
    """$\\beta(s)$, $\\psi(s)$ and $\\psi''(s)$ coordinate-wise; $\\psi = +\\infty$ off-domain."""
    if D == 2:
        a = jnp.abs(s)
        e = jnp.exp(jnp.minimum(2 * logc + a, 800.0))  # c^2 e^{|s|}; inf beyond float range
        beta = jnp.sign(s) * e * (-jnp.expm1(-2 * a))
        psi = e * jnp.expm1(-a) ** 2
        curv = e * (1 + jnp.exp(-2 * a))
        return beta, psi, curv
    p = D / (D - 2)
    z = w0 ** (D - 2) * s
    # A margin of a few ulps keeps iterates whose X^T nu may round to |z| = 1 out.
    inside = jnp.abs(z) < 1 - 8 * jnp.finfo(z.dtype).eps
    zs = jnp.where(inside, z, 0.0)
    a = jnp.abs(zs)
    Dlogc = D * logc
    beta = jnp.sign(zs) * jnp.exp(Dlogc - p * jnp.log1p(-a)) * (-jnp.expm1(-2 * p * jnp.arctanh(a)))
    psi = jnp.exp(Dlogc) * w0 ** (2 - D) * _big_h(zs, D)
    curv = (
        p
        * w0 ** (D - 2)
        * (jnp.exp(Dlogc - (p + 1) * jnp.log1p(-a)) + jnp.exp(Dlogc - (p + 1) * jnp.log1p(a)))
    )
    inf = jnp.inf
    return jnp.where(inside, beta, jnp.nan), jnp.where(inside, psi, inf), curv


def _q2(z):
    """$q(z) = 2 - \\sqrt{4+z^2} + z\\,\\operatorname{arcsinh}(z/2)$ without cancellation."""
    hyp = jnp.hypot(2.0, z)
    return z * jnp.arcsinh(z / 2) - z * (z / (2 + hyp))


def _h_inverse(u, D, iters=200):
    """$h_D^{-1}(u)$ by bisection on $|z| \\in [0, 1)$ ($h_D$ is odd and increasing)."""
    target = jnp.abs(u)

    def body(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        big = _h(mid, D) > target
        return jnp.where(big, lo, mid), jnp.where(big, mid, hi)

    lo, hi = jax.lax.fori_loop(
        0, iters, body, (jnp.zeros_like(target), jnp.full_like(target, 1.0 - 2**-53))
    )
    return jnp.sign(u) * 0.5 * (lo + hi)


def _grad_q(beta, alpha, depth, w0):
    c = alpha * w0
    if depth == 2:
        return jnp.arcsinh(beta / (2 * c**2))
    return w0 ** (2 - depth) * _h_inverse(beta / c**depth, depth)


# ---------------------------------------------------------------------------------------------
# Public: the potential


def hypentropy(
    beta: Float[ArrayLike, " _d"],
    alpha: float | Real[ArrayLike, ""],
    depth: int = 2,
    w0: Float[ArrayLike, " _d"] | None = None,
) -> Float[Array, ""]:
    r"""The hypentropy potential $Q^D_{\alpha,w_0}(\beta)$ (Woodworth et al. 2020, Thm 1, Thm 3).

    $$Q^D_{\alpha,w_0}(\beta)
      = \alpha^D\sum_i w_{0,i}^2\,q_D\!\big(\beta_i/(\alpha w_{0,i})^D\big)$$

    with $q_2(z) = 2 - \sqrt{4+z^2} + z\operatorname{arcsinh}(z/2)$ (Thm 1) and, for $D\ge3$,
    $q_D(u) = \int_0^u h_D^{-1} = u\,z - H_D(z)$ with $z = h_D^{-1}(u)$,
    $H_D(z) = \frac{D-2}{2}[(1-z)^{-2/(D-2)} + (1+z)^{-2/(D-2)} - 2]$ (Thm 3, eq. (60); the
    Legendre transform of $H_D = \int h_D$). With $w_0 = \mathbf 1$ this is the paper's
    $Q_\alpha$ / $Q^D_\alpha$; with a shape $w_0$ it is the potential whose gradient is
    $X^\top\nu$ along the flow of `DiagonalNet.unbiased(d, alpha, depth, w0)` (module doc).
    Evaluated without cancellation or overflow for $\alpha\in[10^{-8},10^4]$.

    **Arguments:**

    - `beta`: shape `(d,)`.
    - `alpha`: scale $\alpha > 0$.
    - `depth`: $D \ge 2$.
    - `w0`: positive per-coordinate shape, shape `(d,)` (default all ones).

    **Returns:**

    The scalar $Q^D_{\alpha,w_0}(\beta) \ge 0$.
    """
    depth = _check_depth(depth)
    beta = check_finite(as_float_array(beta, "beta", ndim=1), "beta")
    alpha = _check_alpha(alpha)
    w0 = _check_w0(w0, beta.shape[0], beta.dtype)
    return _hypentropy(beta, alpha, w0, depth)


@eqx.filter_jit
def _hypentropy(beta, alpha, w0, depth):
    c = alpha * w0
    if depth == 2:
        return jnp.sum(c**2 * _q2(beta / c**2))
    cd = c**depth
    u = beta / cd
    z = _h_inverse(u, depth)
    qd = u * z - _big_h(z, depth)
    return jnp.sum(w0 ** (2 - depth) * cd * qd)


def hypentropy_kkt_residual(
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "..."],
    beta: Float[ArrayLike, " _d"],
    alpha: float | Real[ArrayLike, ""],
    depth: int = 2,
    w0: Float[ArrayLike, " _d"] | None = None,
) -> Float[Array, ""]:
    r"""Relative KKT residual of $\beta$ for $\min Q^D_{\alpha,w_0}$ s.t. $X\beta = y$.

    $$\max\Big(\frac{\|X\beta - y\|}{\|y\|},\;
    \frac{\|(I - P)\nabla Q(\beta)\|}{\|\nabla Q(\beta)\|}\Big)$$

    with $P$ the orthogonal projector onto $\operatorname{range}(X^\top)$, computed by a
    least-squares solve of $\nabla Q$ on $X^\top$ (independent of the minimiser's dual
    variables). Limited by rounding to about $10^{-15}$-$10^{-12}$; at tiny $\alpha$ and
    depth $\ge3$ the stationarity term cannot see errors of $\beta$ on its support (module doc).

    **Returns:** the scalar residual.
    """
    depth = _check_depth(depth)
    X, y = _check_problem(X, y)
    beta = check_finite(as_float_array(beta, "beta", ndim=1), "beta")
    if beta.shape[0] != X.shape[1]:
        raise ValueError(f"`beta` must have shape ({X.shape[1]},), got {tuple(beta.shape)}.")
    alpha = _check_alpha(alpha)
    w0 = _check_w0(w0, X.shape[1], X.dtype)
    return _kkt(X, y, beta, alpha, w0, depth)


@eqx.filter_jit
def _kkt(X, y, beta, alpha, w0, depth):
    primal = jnp.linalg.norm(X @ beta - y) / jnp.linalg.norm(y)
    g = _grad_q(beta, alpha, depth, w0)
    nu, *_ = jnp.linalg.lstsq(X.T, g)
    gnorm = jnp.linalg.norm(g)
    stat = jnp.linalg.norm(g - nu @ X) / jnp.where(gnorm > 0, gnorm, 1.0)
    return jnp.maximum(primal, stat)


# ---------------------------------------------------------------------------------------------
# Public: the minimiser


def hypentropy_minimiser(
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "..."],
    alpha: float | Real[ArrayLike, ""],
    *,
    depth: int = 2,
    w0: Float[ArrayLike, " _d"] | None = None,
    rtol: float = 1e-8,
    newton_solve: str = "auto",
    throw: bool = True,
    return_info: bool = False,
):
    r"""$\arg\min Q^D_{\alpha,w_0}(\beta)$ s.t. $X\beta = y$: the limit of the gradient flow of
    `DiagonalNet.unbiased(d, alpha, depth, w0)` on `Regression(X, y)` from $\beta(0) = 0$
    (Woodworth et al. 2020, Thm 1 ($D=2$) and Thm 3 ($D\ge3$); normalisation in the module doc).

    Solved on the dual: $\beta = \beta(X^\top\nu)$ (the flow's closed-form path) with $\nu$
    minimising $F(\nu) = \sum_i\psi_i((X^\top\nu)_i) - y^\top\nu$ by damped Newton in log space,
    continued in $\alpha$ from the kernel regime (stages that shrink $\alpha^D$ by $10^4$ at depth 2
    and $10^8$ at depth $\ge 3$, each started from an extrapolation of the previous two, at most 16
    stages of at most 60 Newton steps; each step one $N\times N$ Cholesky solve of
    $X\operatorname{diag}(\psi'')X^\top$, $O(N^2 d)$, or preconditioned conjugate gradients, $O(Nd)$
    per iteration: see `newton_solve`).
    `jit`- and `vmap`-able (e.g. over `alpha`, or over the rows of a matrix of targets `Y` for
    several targets; pass `throw=False` under `vmap`). A vmapped batch is solved one member
    after another (a `lax.map`: batched, every branch of the solver would run both sides and
    every loop to its slowest member), so it costs what a loop of single calls costs.

    **Arguments:**

    - `X`: design matrix, shape `(n, d)`, of full row rank (so $X\beta = y$ is solvable).
    - `y`: targets, shape `(n,)`.
    - `alpha`: scale $\alpha > 0$ (scalar).
    - `depth`: $D \ge 2$.
    - `w0`: positive per-coordinate shape, shape `(d,)` (default all ones).
    - `rtol`: the accepted relative error estimate (see the module doc for how it is estimated
      at tiny $\alpha$ and depth $\ge3$; elsewhere it is the relative residual
      $\|X\beta-y\|/\|y\|$, typically $10^{-15}$).
    - `newton_solve`: how each Newton step solves $X\operatorname{diag}(\psi'')X^\top\delta
      = -\nabla F$: `"cholesky"` (exact, $O(N^2d)$ per step), `"cg"` (preconditioned
      conjugate gradients, $O(Nd)$ per iteration, no $N\times N$ Hessian; see the module
      doc), or `"auto"`: `"cg"` when $N \ge 256$ and $d \ge 2N$, else `"cholesky"`. Both
      stop on the same residual floor, so the answer's accuracy does not depend on it.
    - `throw`: raise (via `eqx.error_if`) when the estimate exceeds `rtol` or the result is not
      finite. With `throw=False`, check `info["ok"]`.
    - `return_info`: also return a dict with `residual` ($\|X\beta-y\|/\|y\|$),
      `error_estimate`, `support_solution` (whether the tiny-$\alpha$ support solution was used),
      `newton_steps`, `cg_steps` (conjugate-gradient iterations, 0 with Cholesky steps) and
      `ok`.

    **Returns:**

    $\beta$, shape `(d,)`; or `(beta, info)` when `return_info=True`.
    """
    depth = _check_depth(depth)
    X, y = _check_problem(X, y)
    alpha = _check_alpha(alpha)
    w0 = _check_w0(w0, X.shape[1], X.dtype)
    # (numpy: a jnp comparison inside a caller's jit is traced even for concrete data.)
    if is_concrete(y) and not np.any(np.asarray(y)):
        beta = jnp.zeros(X.shape[1], X.dtype)
        info = dict(
            residual=jnp.array(0.0),
            error_estimate=jnp.array(0.0),
            support_solution=jnp.array(False),
            newton_steps=jnp.array(0),
            cg_steps=jnp.array(0),
            ok=jnp.array(True),
        )
        return (beta, info) if return_info else beta
    # X^T as its own (row-major) array, formed outside the solver's program: reductions over
    # the columns of X (column norms, |X|^T v) and gathers of columns then read contiguous rows
    # (on a row-major X each is a strided pass: 20-40 ms at N = 1000, d = 1e4, against 2 ms).
    # (Inside the solver's program XLA formed the transpose once per consumer.)
    XT = jnp.transpose(X)
    beta, info = _minimise(
        X,
        XT,
        y,
        alpha,
        w0,
        depth,
        jnp.asarray(rtol, X.dtype),
        _precond_rank(newton_solve, *X.shape),
    )
    if throw:
        beta = eqx.error_if(
            beta,
            ~info["ok"],
            "hypentropy_minimiser: could not reach the requested accuracy `rtol` "
            "(call with throw=False, return_info=True to inspect the error estimate).",
        )
    return (beta, info) if return_info else beta


def _direction_cholesky(X, curv, g, basis=None, shift=None):
    """The Newton step $-H^{-1}g$, $H = X\\operatorname{diag}(\\psi'')X^\\top$, by Cholesky:
    $O(N^2d)$.

    With `basis` ($N\\times k$, orthonormal or zero columns $Q$), the step restricted to
    $\\operatorname{range}(Q)^\\perp$: $H$ is replaced by $P_\\perp HP_\\perp + \\tau QQ^\\top$,
    $P_\\perp = I - QQ^\\top$, $\\tau = \\operatorname{tr}H/N$ (for $g \\perp Q$ the step is then
    $\\perp Q$ too). With `shift`, $H + \\mathrm{shift}\\,I$ (before the projection)."""
    hess = (X * curv[None, :]) @ X.T
    n = hess.shape[0]
    if shift is not None:
        hess = hess + shift * jnp.eye(n, dtype=hess.dtype)
    if basis is not None:
        tau = jnp.trace(hess) / n
        perp = jnp.eye(n, dtype=hess.dtype) - basis @ basis.T
        hess = perp @ hess @ perp + tau * (basis @ basis.T)
        g = perp @ g
    dscale = jnp.sqrt(jnp.diagonal(hess))
    dscale = jnp.where(dscale > 0, dscale, 1.0)
    # Cholesky of the Jacobi-scaled Hessian (unit diagonal) with a ridge of N u: at small alpha
    # and depth >= 3 its condition number can exceed 1/u and the plain factor is not finite
    # (jax.scipy: lineax's wrapper added ~3 s of compile time per depth here for the same
    # factorisation). The ridge only damps directions that rounding cannot resolve anyway.
    ridge = n * jnp.finfo(hess.dtype).eps
    scaled = hess / dscale[:, None] / dscale[None, :] + ridge * jnp.eye(n, dtype=hess.dtype)
    chol = jax.scipy.linalg.cho_factor(scaled)
    step = jax.scipy.linalg.cho_solve(chol, -g / dscale) / dscale
    # Last resort: the Jacobi-scaled gradient step (a descent direction).
    step = jnp.where(jnp.all(jnp.isfinite(step)), step, -g / dscale**2)
    return step, jnp.array(0)


def _direction_exact(X, XT, colsq, curv, g, truncate):
    r"""The exact Newton step where CG failed: by `_direction_cholesky`, on the same truncated
    Hessian as CG (`_direction_cg`: the $2N$ columns of largest curvature exactly, the rest's
    mean on the diagonal) where that truncation applies, $O(N^2 \cdot 2N)$ instead of
    $O(N^2 d)$ (at $N = 1000$, $d = 10^4$: 35 ms against 150 ms per step)."""
    if not truncate:
        return _direction_cholesky(X, curv, g)[0]
    n = X.shape[0]
    _, _, _, idx, rest, fits = _largest_contributions(curv, colsq, 2 * n)

    def truncated():
        return _direction_cholesky(XT[idx].T, curv[idx], g, shift=rest / n)[0]

    return jax.lax.cond(fits, truncated, lambda: _direction_cholesky(X, curv, g)[0])


def _largest_contributions(curv, colsq, k):
    r"""The columns' curvature contributions $\psi''_j\|X_{:,j}\|^2$, their total, the `k`
    largest (values and indices), the rest's sum, and whether that rest is at most
    `_TRUNCATE` of the total (where the Hessian may be truncated to those `k` columns)."""
    contrib = curv * colsq
    total = jnp.sum(contrib)
    top, idx = _top_k(contrib, k)
    rest = total - jnp.sum(top)
    return contrib, total, top, idx, rest, rest <= _TRUNCATE * total


def _top_k(values, k):
    """`jax.lax.top_k(values, k)` for a 1-d array by one integer sort: each value's IEEE bits
    as an order-preserving integer, the low bits replaced by its index (ties by index; the
    dropped mantissa bits only reorder values within $2^{b-52}$ relative of each other, $b$
    the index bits: 4e-12 at d = 1e4). XLA's CPU sort with the floating-point comparator that
    `top_k` uses took 1.4 ms for d = 1e4, this 0.2 ms."""
    (d,) = values.shape
    bits = (d - 1).bit_length()
    mantissa = jnp.finfo(values.dtype).nmant
    if bits > mantissa - 8:
        return jax.lax.top_k(values, k)
    itype = jnp.int64 if values.dtype.itemsize == 8 else jnp.int32
    key = jax.lax.bitcast_convert_type(values, itype)
    # Negative floats: flip all but the sign bit, so integer order is float order.
    key = jnp.where(key < 0, key ^ jnp.iinfo(itype).max, key)
    key = ((key >> bits) << bits) | jnp.arange(d, dtype=itype)
    idx = (jnp.sort(key)[::-1][:k] & ((1 << bits) - 1)).astype(jnp.int32)
    return values[idx], idx


def _direction_cg(X, XT, colsq, curv, g, ynorm, rank, truncate=False, step_units=True):
    r"""An inexact Newton step by preconditioned conjugate gradients (`lineax.CG`): $O(Nd)$ per
    iteration, no $N\times N$ Hessian.

    The preconditioner keeps the `rank` columns with the largest curvature contributions
    $\psi''_j\|X_{:,j}\|^2$ exactly and replaces the rest by their mean,
    $P = UU^\top + \mu I$ with $U = X_{:,A}\operatorname{diag}(\psi''_A)^{1/2}$ and
    $\mu = \sum_{j\notin A}\psi''_j\|X_{:,j}\|^2 / N$, applied by the Woodbury identity
    ($O(N\,\mathrm{rank}^2)$ to build). At small $\alpha$ the curvature concentrates on the
    support of $\beta$, which $A$ captures; at large $\alpha$ it is nearly uniform and $P$
    is close to a multiple of the identity. Half the rank is used where it leaves at most
    `rank` / 16 outliers (columns outside it whose contribution exceeds 10x $\mu$: each costs
    CG about one iteration) and at most doubles $\mu$, since the Gram $U^\top U$ and its
    Cholesky factor are most of a step's fixed cost (N = 1000, d = 1e4, a planted support of
    100: 4.85 s against 4.1-4.2 s for the eight solves at depths 2-5, alpha = 1e-8 and 1e-2).
    The forcing term $\min(10^{-1}, \sqrt{\|g\|/\|y\|})$ keeps Newton superlinear; CG iterates
    from 0 are descent directions, so the line search stays valid even when CG stops at its
    step cap.

    Where the $2N$ largest contributions hold all but $10^{-6}$ of the Hessian's trace (small
    $\alpha$: curvatures spread over many orders of magnitude) and $d > 4N$, CG multiplies by
    $X_K\operatorname{diag}(\psi''_K)X_K^\top + \mu_R I$ instead, the $K = 2N$ top columns
    exactly and the rest by their mean $\mu_R$: each iteration reads $2N$ columns instead of
    $d$. The gradient stays exact, so the Newton iteration converges to the same point; the
    Hessian's error only slows it from quadratic to a linear rate of about its relative size.
    """
    n = X.shape[0]
    # `truncate` is set exactly where truncation may pay: d > 4N.
    keep = 2 * n if truncate else rank
    contrib, total, top_keep, idx_keep, rest_keep, fits = _largest_contributions(curv, colsq, keep)
    top, idx = top_keep[:rank], idx_keep[:rank]
    # Rows of X^T: a contiguous gather (columns of a row-major X are strided).
    Ut = XT[idx] * jnp.sqrt(curv[idx])[:, None]
    eye = jnp.eye(rank, dtype=X.dtype)
    half = max(1, rank // 2)
    # Half the rank where that leaves at most `half` / 8 outliers outside it (contributions
    # above 10x the full rank's mu, each about one more CG iteration) and at most doubles mu
    # (the bulk's level): the N x rank^2 Gram and its Cholesky factor are most of a step's
    # fixed cost. The factor is padded to the full rank with sqrt(mu) I (and U's unused
    # columns zeroed), so CG sees one shape either way.
    mu_full = jnp.maximum(total - jnp.sum(top), 1e-6 * total) / n
    mu_half = jnp.maximum(total - jnp.sum(top[:half]), 1e-6 * total) / n
    use_half = (jnp.sum(contrib > _OUTLIER * mu_full) <= half + half // 8) & (
        mu_half <= 2 * mu_full
    )

    def factor_half():
        Uh = Ut[:half]
        L = jnp.linalg.cholesky(mu_half * eye[:half, :half] + Uh @ Uh.T)
        L = (jnp.sqrt(mu_half) * eye).at[:half, :half].set(L)
        return L, mu_half, jnp.arange(rank) < half

    def factor_full():
        L = jnp.linalg.cholesky(mu_full * eye + Ut @ Ut.T)
        return L, mu_full, jnp.ones(rank, bool)

    L, mu, used = jax.lax.cond(use_half, factor_half, factor_full)
    Ut = jnp.where(used[:, None], Ut, 0.0)
    structure = jax.ShapeDtypeStruct((n,), X.dtype)
    precond = lx.FunctionLinearOperator(
        lambda v: (v - jax.scipy.linalg.cho_solve((L, True), Ut @ v) @ Ut) / mu,
        structure,
        tags=lx.positive_semidefinite_tag,
    )
    forcing = jnp.minimum(0.1, jnp.sqrt(jnp.linalg.norm(g) / ynorm))
    solver = lx.CG(
        rtol=forcing, atol=forcing * jnp.max(jnp.abs(g)), norm=lxi.max_norm, max_steps=_MAX_CG
    )

    # lineax's CG stops when the residual meets the forcing test *and* the last update is below
    # atol + rtol |iterate|, with atol in the right-hand side's units, which the step does not
    # share: where the curvature is small (steps much larger than gradients) that second test
    # asks every coordinate of the step to settle far below the forcing level. With
    # `step_units` (a boolean array), CG solves for w = step / sigma with
    # sigma = 2^40 max(1, |P^-1 g| / |g|) rounded up to a power of 2 (exact scaling: CG's
    # iterates are unchanged), which puts |w| far below atol, so the forcing test (the inexact
    # Newton criterion) alone decides. `_newton` sets it except within 1e-3 of the domain
    # boundary at depth >= 3, where the fraction-to-the-boundary rule makes the step length
    # depend on every coordinate of the step and the more accurate steps save Newton steps (at
    # N = 1000, d = 1e4, depth 5, alpha = 1e-2: 0.78 s and 108 CG iterations against 0.87 s and
    # 236 with the forcing test alone everywhere, which also meets `rtol` on all 640 solves of
    # `benchmarks/limits_robustness.py`). At N = 1000, d = 1e4, alpha = 1e-8 it took depth 2
    # from 0.96 to 0.76-0.80 s and depth 3 / 5 from 0.97 / 1.15 to 0.76 / 0.96 s; CG iterations
    # over limits_robustness fell by 17-40%. (The update test in step units without the 2^40,
    # i.e. still active, stalled Newton on 6 of those 640, at N = 256, d = 600, depth 5.)
    first = precond.mv(-g)
    ratio = jnp.max(jnp.abs(first)) / jnp.max(jnp.abs(g))
    ratio = jnp.where(jnp.isfinite(ratio) & (ratio > 1), ratio, 1.0)
    sigma = jnp.where(step_units, jnp.exp2(jnp.ceil(jnp.log2(ratio)) + 40), 1.0).astype(X.dtype)

    def solve(matvec):
        # lineax forms the initial residual b - A y0 with y0 = 0: skip that product (a full
        # pass over X, or over the truncated columns, per Newton step).
        def mv(w):
            return jax.lax.cond(
                jnp.any(w != 0), lambda: matvec(sigma * w), lambda: jnp.zeros_like(w)
            )

        hess = lx.FunctionLinearOperator(mv, structure, tags=lx.positive_semidefinite_tag)
        scaled = lx.FunctionLinearOperator(
            lambda v: precond.mv(v) / sigma, structure, tags=lx.positive_semidefinite_tag
        )
        options = {"preconditioner": scaled}
        sol = lx.linear_solve(hess, -g, solver, options=options, throw=False)
        return sigma * sol.value, sol.stats["num_steps"], sol.result == lx.RESULTS.successful

    def full():
        return solve(lambda v: X @ (curv * (v @ X)))

    if not truncate:
        return full()

    def truncated():
        XTk, ck = XT[idx_keep], curv[idx_keep]
        return solve(lambda v: (ck * (XTk @ v)) @ XTk + rest_keep / n * v)

    return jax.lax.cond(fits, truncated, full)


def _precond_rank(newton_solve, n, d):
    """The static rank of the CG preconditioner, or None for Cholesky steps."""
    if newton_solve not in ("auto", "cholesky", "cg"):
        raise ValueError(
            f"`newton_solve` must be 'auto', 'cholesky' or 'cg', got {newton_solve!r}."
        )
    if newton_solve == "cholesky" or (newton_solve == "auto" and (n < 256 or d < 2 * n)):
        return None
    return int(min(d, max(16, n // 4)))


def _dual_value(s, nu, y, logc, w0, D):
    r"""$F(\nu)$ ($+\infty$ where $\beta$ is not finite, i.e. off the domain), the size of its
    terms ($\sum\psi + |y^\top\nu|$, for "flat to rounding"), $\beta(s)$ and $\psi''(s)$,
    given $s = X^\top\nu$: $O(d)$. (Callers form $s$ as `nu @ X` rather than `X.T @ nu`:
    XLA's CPU matrix-vector product is several times faster in this orientation for a
    row-major X.)"""
    beta, psi, curv = _dual_terms(s, logc, w0, D)
    ok = jnp.all(jnp.isfinite(beta))
    total = jnp.sum(psi)
    F = jnp.where(ok, total - y @ nu, jnp.inf)
    fscale = jnp.where(ok, total + jnp.abs(y @ nu), jnp.inf)
    return F, fscale, beta, curv


def _newton(
    X, XT, absX, colsq, y, logc, w0, D, nu0, max_iter, precond_rank=None, tol=0.0, truncate=False
):
    """Damped Newton on $F(\\nu)$ from `nu0`.

    `precond_rank=None`: exact Newton steps by Cholesky; an integer: inexact steps by
    preconditioned CG (`_direction_cg`).

    Stops when $\\|X\\beta - y\\|$ reaches its rounding floor: $10^{-14}$ relative to
    $\\|y\\| + \\||X||\\beta|\\|$, or the error that rounding of $z = X^\\top\\nu$ causes in
    $\\beta$ ($\\||X|(\\psi''\\odot|X|^\\top|\\nu|)\\|\\,u$), whichever is larger (computed only
    once $\\|X\\beta - y\\| \\le 10^{-3}\\|y\\|$), or `tol` relative to $\\|y\\|$ (the loose stop of
    intermediate stages); or when no step decreases $F$ or $\\|\\nabla F\\|$, or neither has
    improved for `_MAX_IDLE` steps (rounding stagnation). Returns the final nu,
    the Newton and CG step counts, and whether it stopped (converged or stalled).

    Passes over $X$ per step: $X^\\top\\delta$ for the step $\\delta$, then the line search's
    trial points $s + tX^\\top\\delta$ and $F$ cost $O(d)$ each, and $\\nabla F = X\\beta - y$ is
    formed only where a trial point can be accepted. Once $\\|X\\beta - y\\| \\le
    10^{-3}\\|y\\|$ trial points take $s = X^\\top\\nu$ afresh, so that the converged point is
    not offset by the rounding the updates accumulate.
    """
    eps = jnp.finfo(X.dtype).eps
    ynorm = jnp.linalg.norm(y)

    def at(nu, s):
        F, fscale, beta, curv = _dual_value(s, nu, y, logc, w0, D)
        if D > 2:
            # A gap 1 - |z_i| at 1e-12 means c^D < 1e-20 |beta_i|: beta_S is then recovered by
            # the support solution, and more Newton steps cannot resolve z any further (the
            # stagnation test below then stops after 2 idle steps instead of _MAX_IDLE).
            gap = 1 - jnp.max(w0 ** (D - 2) * jnp.abs(s))
            resolved = jnp.all(jnp.isfinite(beta)) & (gap <= 1e-12)
        else:
            resolved = jnp.array(False)
        return F, fscale, beta, curv, resolved

    def finished(nu, g, curv, beta, g_prev):
        gnorm = jnp.linalg.norm(g)
        loose = gnorm <= tol * ynorm

        def rounding_floor():
            # Three passes over |X|: only evaluated once the residual is small (and the loose
            # stop of an intermediate stage does not already hold).
            base = 1e-14 * (ynorm + jnp.linalg.norm(absX @ jnp.abs(beta)))
            dual = 4 * eps * jnp.linalg.norm(absX @ (curv * (jnp.abs(nu) @ absX)))
            return base + dual, base

        floor, base = jax.lax.cond(
            (gnorm <= _FLOOR_CHECK * ynorm) & ~loose,
            rounding_floor,
            lambda: (jnp.zeros_like(gnorm), jnp.zeros_like(gnorm)),
        )
        # The floor is a worst-case rounding bound: while Newton still converges fast (the
        # last step cut the residual 10x), one more step usually lands far below it, unless
        # the residual is already within 10x of the data's own rounding level.
        fast = (gnorm <= 0.1 * g_prev) & (gnorm > 10 * base)
        at_floor = (gnorm <= floor) & (~fast | (gnorm <= 0.01 * floor))
        return jnp.isfinite(g).all() & (at_floor | loose)

    def cond(carry):
        nu, s, F, g, curv, done, k, stalled, *_ = carry
        return (k < max_iter) & ~stalled & ~done

    def body(carry):
        nu, s, F, g, curv, done, k, _, num_cg, exact, best, idle, resolved = carry
        # CG on the forcing test alone (`_direction_cg`), except within _NEAR_BOUNDARY of the
        # domain boundary |z| = 1 at depth >= 3 (fewer Newton steps there).
        far = (D == 2) | (1 - jnp.max(w0 ** (D - 2) * jnp.abs(s)) > _NEAR_BOUNDARY)
        if precond_rank is None:
            step, cg_steps = _direction_cholesky(X, curv, g)
        else:
            # Where the preconditioner fails (CG at its step cap: e.g. d ~ 2N, a dense target and
            # depth >= 3 near the boundary), inexact steps stall Newton, and where it struggles
            # (over _CG_EXACT_AFTER iterations) CG costs more than an exact step: from then on,
            # this stage takes exact (Cholesky) steps (always finite: `_direction_cholesky`
            # falls back to a scaled gradient step).
            def exact_step():
                step = _direction_exact(X, XT, colsq, curv, g, truncate)
                return step, jnp.zeros_like(num_cg), jnp.array(True)

            def inexact_step():
                step, n, ok = _direction_cg(
                    X, XT, colsq, curv, g, ynorm, precond_rank, truncate, far
                )
                n = n.astype(num_cg.dtype)
                # A CG solve that needed more than _CG_EXACT_AFTER iterations is kept, but the
                # rest of the stage takes exact steps.
                return jax.lax.cond(
                    ok & jnp.all(jnp.isfinite(step)),
                    lambda: (step, n, n > _CG_EXACT_AFTER),
                    lambda: (exact_step()[0], n, jnp.array(True)),
                )

            step, cg_steps, exact = jax.lax.cond(exact, exact_step, inexact_step)
        slope = g @ step
        gnorm = jnp.linalg.norm(g)
        ds = step @ X
        fresh = gnorm <= _FLOOR_CHECK * ynorm

        def trial(t):
            nut = nu + t * step
            st = jax.lax.cond(fresh, lambda: nut @ X, lambda: s + t * ds)
            Ft, fscale, bt, ct, rt = at(nut, st)
            armijo = Ft <= F + 1e-4 * t * slope
            # F is flat to rounding near the optimum: then accept a decrease of the gradient.
            flat = jnp.isfinite(Ft) & (Ft - F <= 1e3 * eps * jnp.maximum(fscale, jnp.abs(F)))
            gt = jax.lax.cond(armijo | flat, lambda: X @ bt - y, lambda: jnp.full_like(y, jnp.inf))
            finite = jnp.all(jnp.isfinite(gt))
            decrease = jnp.linalg.norm(gt) <= (1 - 1e-4 * t) * gnorm
            accepted = finite & (armijo | (flat & decrease))
            return nut, st, Ft, gt, ct, bt, rt, accepted

        def ls_cond(ls):
            *_, accepted, j = ls
            return ~accepted & (j < _MAX_BACKTRACK)

        def ls_body(ls):
            t, *_, j = ls
            t = 0.5 * t
            return (t, *trial(t), j + 1)

        if D > 2:
            # Fraction to the boundary |z| = 1 of the dual domain: a full Newton step towards a
            # support coordinate overshoots the boundary by orders of magnitude at small alpha,
            # and halving back from t = 1 would cost one evaluation per factor 2.
            z, dz = w0 ** (D - 2) * s, w0 ** (D - 2) * ds
            room = jnp.where(dz > 0, 1 - z, 1 + z)
            t_max = jnp.min(jnp.where(dz != 0, room / jnp.abs(dz), jnp.inf))
            t0 = jnp.minimum(1.0, _TO_BOUNDARY * t_max).astype(nu.dtype)
        else:
            t0 = jnp.array(1.0, nu.dtype)
        t, nut, st, Ft, gt, ct, bt, rt, accepted, j = jax.lax.while_loop(
            ls_cond, ls_body, (t0, *trial(t0), 0)
        )
        failed = ~accepted | ~jnp.all(jnp.isfinite(step))
        # Rounding stagnation: neither F nor the best |grad F| improves for _MAX_IDLE steps (at
        # small alpha and depth >= 3, 1 - |z| on the support can fall below the resolution of
        # z = X^T nu before the rounding floor above is reached).
        gt_norm = jnp.linalg.norm(gt)
        progress = (gt_norm <= 0.9 * best) | (F - Ft > 1e-13 * (1 + jnp.abs(F)))
        idle = jnp.where(progress, 0, idle + 1)
        keep = lambda new, old: jnp.where(failed, old, new)
        # The accepted point is carried as evaluated (re-computing X^T nu could round across
        # the domain boundary |z| = 1).
        return (
            keep(nut, nu),
            keep(st, s),
            keep(Ft, F),
            keep(gt, g),
            keep(ct, curv),
            keep(finished(nut, gt, ct, bt, gnorm), done),
            k + 1,
            failed | (idle >= jnp.where(rt, 2, _MAX_IDLE)),
            num_cg + cg_steps,
            exact,
            jnp.minimum(best, keep(gt_norm, best)),
            idle,
            keep(rt, resolved),
        )

    s0 = nu0 @ X
    F0, _, b0, c0, r0 = at(nu0, s0)
    g0 = X @ b0 - y
    F0 = jnp.where(jnp.all(jnp.isfinite(g0)), F0, jnp.inf)
    d0 = finished(nu0, g0, c0, b0, jnp.inf)
    zero, false = jnp.array(0), jnp.array(False)
    carry = (nu0, s0, F0, g0, c0, d0, zero, false, zero, false, jnp.linalg.norm(g0), zero, r0)
    nu, s, F, g, curv, done, k, stalled, num_cg, *_, resolved = jax.lax.while_loop(
        cond, body, carry
    )
    return nu, k, num_cg, done | stalled, resolved


@eqx.filter_jit
def _minimise(X, XT, y, alpha, w0, D, rtol, precond_rank=None):
    # Under `vmap` (over alpha, targets, ...) the batch is solved one member after another
    # (`lax.map`). Batched, every `lax.cond` of the solver runs both branches (exact and CG
    # steps, full and truncated Hessian products, every CG solve to the slowest member's
    # count) and every while loop runs to its slowest member: at N = 300, d = 3000, depth 3
    # a vmap over two alphas had not finished in 10 minutes, where a loop over four takes
    # 0.11 s; at N = 40, d = 100 over four alphas it took 2-3x the loop's time.
    def one(X, XT, y, alpha, w0, rtol):
        return _minimise_one(X, XT, y, alpha, w0, D, rtol, precond_rank)

    return jax.custom_batching.sequential_vmap(one)(X, XT, y, alpha, w0, rtol)


def _minimise_one(X, XT, y, alpha, w0, D, rtol, precond_rank):
    dtype = X.dtype
    eps = jnp.finfo(dtype).eps
    ynorm = jnp.linalg.norm(y)
    n, d = X.shape
    # |X| for the rounding bounds: matrix-vector products (a fused |.| inside a reduction ran
    # 5-10x slower than a product with a stored |X|).
    absX = jnp.abs(X)
    truncate = precond_rank is not None and d > 4 * n
    # Kernel-regime starting scale: where c^D exceeds the size of any single-feature fit, the
    # potential is close to quadratic and Newton from nu = 0 converges in a few steps.
    col2 = jnp.sum(XT * XT, axis=1)
    b_scale = jnp.max(jnp.abs(y @ X) / jnp.where(col2 > 0, col2, 1.0))
    alpha_start = 10.0 * (b_scale / jnp.min(w0) ** D) ** (1.0 / D)
    log_a = jnp.log(alpha)
    log_a0 = jnp.maximum(log_a, jnp.log(alpha_start))
    # Stages shrink alpha^D by a factor _STAGE_SHRINK at depth 2 (alpha by 100) and
    # _STAGE_SHRINK_DEEP at depth >= 3 (more if _NUM_STAGES stages would not reach alpha), and
    # stop once a stage at alpha has converged.
    shrink = _STAGE_SHRINK if D == 2 else _STAGE_SHRINK_DEEP
    log_step = jnp.maximum(jnp.log(shrink) / D, (log_a0 - log_a) / _NUM_STAGES)
    log_w0 = jnp.log(w0)

    def stage_cond(carry):
        *_, la_cur, _, _, settled, _, i = carry
        return (i < _NUM_STAGES) & ~((la_cur <= log_a) & settled)

    def stage(carry):
        nu_prev, la_prev, nu, la_cur, steps, cg, _, resolved, i = carry
        # Once a stage ends with the support resolved to rounding (depth >= 3, gaps 1 - |z_S|
        # at 1e-12), smaller alphas only push z_S closer to |z| = 1, which the stages below
        # cannot resolve either: go straight to alpha (beta_S is then the support solution).
        la = jnp.where(resolved, log_a, jnp.maximum(la_cur - log_step, log_a))
        # Predictors from the last two stages. For small alpha, on the support S of beta:
        # D = 2: X_S^T nu = log|beta_S| - 2 log(alpha) sign(beta_S) is affine in log(alpha);
        # D >= 3: 1 - |z_S| ~ (alpha^D/|beta_S|)^((D-2)/D), so nu - nu_0 ~ alpha^(D-2) is
        # geometric in log(alpha). Keep whichever candidate (or the last point) has the lowest F.
        dn, dp = la - la_cur, la_cur - la_prev
        moved = (dp != 0) & (dn != 0)
        dp = jnp.where(moved, dp, -1.0)
        affine = jnp.where(moved, dn / dp, 0.0)
        e = D - 2 if D > 2 else 1
        geometric = jnp.where(moved, jnp.exp(e * dp) * jnp.expm1(e * dn) / jnp.expm1(e * dp), 0.0)
        logc = la + log_w0
        cands = [nu, nu + affine * (nu - nu_prev), nu + geometric * (nu - nu_prev)]
        if D > 2:
            # Gap predictor (module doc): at fixed beta the gaps 1 - |z_S| scale like
            # alpha^(D-2); move the smallest-gap coordinates there by the least-norm change of
            # nu (unselected columns zeroed).
            sv = nu @ X
            scale = w0 ** (D - 2)
            gap = 1 - jnp.abs(scale * sv)
            k = max(1, n // 4)
            _, idx = _top_k(-gap, k)
            # Only where every such coordinate is among the k (a sparse support).
            fits = jnp.sum(gap < _PREDICT_GAP) <= k
            sel = (gap[idx] < _PREDICT_GAP) & (dn < 0) & fits
            ds = jnp.sign(sv[idx]) * gap[idx] * (-jnp.expm1(e * dn)) / scale[idx]
            ds = jnp.where(sel, ds, 0.0)

            def predict():
                # dnu = A (A^T A)^-1 ds for the N x k block A of the selected columns (its
                # Gram by Cholesky: a QR that forms Q took 5x longer at N = 1000, k = 250).
                At = XT[idx] * sel[:, None]
                gram = At @ At.T + jnp.diag(jnp.where(sel, 0.0, 1.0))
                dnu = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(gram), ds) @ At
                return jnp.where(jnp.all(jnp.isfinite(dnu)), nu + dnu, nu)

            cands.append(jax.lax.cond(jnp.any(sel), predict, lambda: nu))
        cands = jnp.stack(cands)
        vals = jax.vmap(lambda c: _dual_value(c @ X, c, y, logc, w0, D)[0])(cands)
        start = cands[jnp.argmin(vals)]
        # Intermediate stages only need to be close enough to start the next one. A stage at
        # alpha that stops at the Newton step cap is continued by the next one.
        tol = jnp.where(la > log_a, _STAGE_TOL, 0.0)
        new, k, c, settled, resolved = _newton(
            X, XT, absX, col2, y, logc, w0, D, start, _MAX_NEWTON, precond_rank, tol, truncate
        )
        return (nu, la_cur, new, la, steps + k, cg + c, settled, settled & resolved, i + 1)

    zero = jnp.array(0)
    nu0 = jnp.zeros(X.shape[0], dtype)
    false = jnp.array(False)
    carry = (nu0, log_a0, nu0, log_a0, zero, zero, false, false, zero)
    _, _, nu, _, steps, cg_steps, *_ = jax.lax.while_loop(stage_cond, stage, carry)
    logc = log_a + jnp.log(w0)
    s = nu @ X
    if D == 2:
        beta, _, _ = _dual_terms(s, logc, w0, D)
        beta = jnp.where(jnp.isfinite(beta), beta, 0.0)
        residual = jnp.linalg.norm(X @ beta - y) / ynorm
        info = dict(
            residual=residual,
            error_estimate=residual,
            support_solution=jnp.array(False),
            newton_steps=steps,
            cg_steps=cg_steps,
        )
        info["ok"] = jnp.isfinite(residual) & (residual <= rtol)
        return beta, info

    p = D / (D - 2)

    def dual_answer(nu, s):
        # beta(X^T nu), its relative residual, and the absolute error of each beta_i caused by
        # rounding z_i (d beta / d z = p beta / gap roughly).
        beta, _, curv = _dual_terms(s, logc, w0, D)
        beta = jnp.where(jnp.isfinite(beta), beta, 0.0)
        residual = jnp.linalg.norm(X @ beta - y) / ynorm
        gap = jnp.clip(1 - jnp.abs(w0 ** (D - 2) * s), eps, 1.0)
        kappa = 1 + w0 ** (D - 2) * (jnp.abs(nu) @ absX)
        delta = jnp.abs(beta) * p * eps * kappa / gap
        return beta, residual, curv, gap, delta

    beta, residual, curv, gap, delta = dual_answer(nu, s)
    bnorm = jnp.linalg.norm(beta)
    bnorm = jnp.where(bnorm > 0, bnorm, 1.0)
    e_dual = jnp.maximum(jnp.linalg.norm(delta) / bnorm, residual) + eps

    # Support solution: beta off S from the dual (well resolved there: large gaps), and
    # X_S beta_S = y - X_{S^c} beta_{S^c}, unique when X_S has full column rank.
    on_s = gap < _SUPPORT_GAP
    # |S| <= N is needed for a unique beta_S; gather the N smallest gaps into an N x N block so
    # the solve costs O(N^3) at most (O(N^3 / 16) when |S| <= N / 4), not an SVD of the
    # N x d matrix.
    # (S first whatever the sort's tie-breaking: its gaps lifted above every other one.)
    idx = _top_k(jnp.where(on_s, 2 - gap, -gap), n)[1]
    in_s = on_s[idx]
    m = jnp.sum(on_s)
    Xk = X[:, idx] * in_s[None, :]
    small = max(1, n // 4)

    def qr_factor():
        # Typical supports are sparse: a QR of the first n/4 sorted columns, of which the first
        # m are X_S and the rest zero: Householder QR leaves the zero columns' part of R zero,
        # so R[:m, :m] is X_S's factor and Q's first m columns (kept, the rest zeroed) span
        # range(X_S). O(N k^2) against an SVD of an N x N block (0.14 s at N = 1000).
        q, r = jnp.linalg.qr(Xk[:, :small])
        first = jnp.arange(small) < m
        diag = jnp.abs(jnp.diagonal(r))
        rank = jnp.sum(first & (diag > n * eps * jnp.max(diag))).astype(m.dtype)
        r = r + jnp.diag(jnp.where(first, 0.0, 1.0))
        safe = jnp.where(rank == m, r, jnp.eye(small, dtype=r.dtype))
        return q * first[None, :], safe, rank

    def least_squares_qr(factor, rhs):
        basis, safe, rank = factor
        sol = jax.scipy.linalg.solve_triangular(safe, basis.T @ rhs)
        return jnp.zeros((n, rhs.shape[1]), sol.dtype).at[:small].set(sol), rank

    def least_squares_svd(rhs):
        sol, _, rank, _ = jnp.linalg.lstsq(Xk, rhs)
        return sol, rank.astype(m.dtype)

    def support_solution(beta, delta, least_squares):
        # S (gap < _SUPPORT_GAP) is a prefix of idx (the gaps sorted).
        beta_off = jnp.where(on_s, 0.0, beta)
        delta_off = jnp.where(on_s, 0.0, delta)
        rhs = jnp.stack([y - X @ beta_off, X @ delta_off], axis=1)
        sol, rank = least_squares(rhs)
        beta_sup = beta_off.at[idx].add(jnp.where(in_s, sol[:, 0], 0.0))
        res_sup = jnp.linalg.norm(X @ beta_sup - y) / ynorm
        full_rank = (rank == m) & (m <= n)
        signs_ok = jnp.all(jnp.where(on_s, jnp.sign(beta_sup) == jnp.sign(s), True))
        bsup_norm = jnp.linalg.norm(beta_sup)
        bsup_norm = jnp.where(bsup_norm > 0, bsup_norm, 1.0)
        # The errors of beta_{S^c} propagate to beta_S through X_S^+ X_{S^c}.
        e_sup = (jnp.linalg.norm(delta_off) + jnp.linalg.norm(sol[:, 1])) / bsup_norm
        e_sup = jnp.maximum(e_sup, res_sup) + eps
        ok = signs_ok & full_rank & jnp.all(jnp.isfinite(beta_sup))
        return beta_sup, res_sup, jnp.where(ok, e_sup, jnp.inf)

    def refine(factor, beta_sup, res_sup, e_sup):
        # Newton on the dual stops where the rounding of z_S (gaps near 0, huge curvature)
        # dominates grad F, which can leave nu short of converged off S: the support solution
        # then keeps a residual r of up to ~1e-9 (depth 4, alpha = 1e-2). One Newton step of the
        # dual with beta_S free takes it out: the saddle-point system
        # [H_{S^c} X_S; X_S^T 0] [dnu; dbeta_S] = [r; 0], H_{S^c} = X_{S^c} diag(psi'') X_{S^c}^T,
        # i.e. H_{S^c} dnu = r on range(X_S)^perp (z_S = X_S^T nu stays put; beta_S is re-solved).
        basis = factor[0]
        r = y - X @ beta_sup
        curv_off = jnp.where(on_s, 0.0, curv)
        step, _ = _direction_cholesky(X, curv_off, -r, basis)
        nu2 = nu + step
        b2, _, _, _, delta2 = dual_answer(nu2, nu2 @ X)
        beta2, res2, e2 = support_solution(b2, delta2, lambda rhs: least_squares_qr(factor, rhs))
        better = jnp.isfinite(e2) & (e2 < e_sup)
        return (
            jnp.where(better, beta2, beta_sup),
            jnp.where(better, res2, res_sup),
            jnp.where(better, e2, e_sup),
        )

    def narrow():
        factor = qr_factor()
        out = support_solution(beta, delta, lambda rhs: least_squares_qr(factor, rhs))
        # Refined where the residual, not the rounding of beta_{S^c}, is what is left.
        if n * n * d > _REFINE_MAX_WORK:
            return out
        return jax.lax.cond(
            jnp.isfinite(out[2]) & (out[1] > _REFINE_ABOVE),
            lambda: refine(factor, *out),
            lambda: out,
        )

    def wide():
        return support_solution(beta, delta, least_squares_svd)

    def supported():
        return jax.lax.cond(m <= small, narrow, wide) if small < n else wide()

    # (Skipped when no coordinate is near the boundary.)
    beta_sup, res_sup, e_sup = jax.lax.cond(
        jnp.any(on_s),
        supported,
        lambda: (beta, residual, jnp.array(jnp.inf, dtype)),
    )

    use_sup = e_sup < e_dual
    beta = jnp.where(use_sup, beta_sup, beta)
    err = jnp.minimum(e_dual, e_sup)
    info = dict(
        residual=jnp.where(use_sup, res_sup, residual),
        error_estimate=err,
        support_solution=use_sup,
        newton_steps=steps,
        cg_steps=cg_steps,
    )
    info["ok"] = jnp.isfinite(err) & (err <= rtol) & jnp.all(jnp.isfinite(beta))
    return beta, info
