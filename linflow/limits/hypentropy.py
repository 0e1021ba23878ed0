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

**Method.** The minimiser is computed by the one dual solver of the limits layer
(`linflow.limits.dual_minimise`, which documents the damped Newton method, the continuation
in $\alpha$, the conjugate-gradient steps and the support solution at tiny $\alpha$) for the
potential `Hypentropy(alpha, depth, w0)`, whose conjugate's gradient is the closed-form path
above: $\beta = \nabla\Phi^*(s)$ evaluated in log space ($\log c_i^2 + |s_i|$ at depth 2,
$D\log c_i - p\operatorname{log1p}(-|z_i|)$ at depth $D \ge 3$), finite for every
$\alpha \ge 10^{-300}$. Against a 60-digit reference (tests) the minimiser is accurate to
~1e-14 relative over $\alpha \in [10^{-8}, 10^{4}]$, $D \le 5$.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from .._checks import as_float_array, check_depth, check_finite, check_positive, is_concrete
from .dual import RESULTS, _check_problem, _dual_minimise
from .potential import AbstractPotential


# ---------------------------------------------------------------------------------------------
# Validation


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
    depth = check_depth(depth)
    beta = check_finite(as_float_array(beta, "beta", ndim=1), "beta")
    alpha = _check_alpha(alpha)
    w0 = _check_w0(w0, beta.shape[0], beta.dtype)
    return _hypentropy(beta, alpha, w0, depth)


@eqx.filter_jit
def _hypentropy(beta, alpha, w0, depth):
    logc = jnp.log(alpha) + jnp.log(w0)
    if depth == 2:
        return jnp.sum(_scaled_q2(beta, 2 * logc))
    return jnp.sum(w0 ** (2 - depth) * _scaled_qd(beta, depth * logc, depth))


def _scaled_q2(beta, logc2):
    r"""$c^2 q_2(\beta/c^2)$ with $\log c^2$ given: $|\beta|\operatorname{arcsinh}(|\beta|/2c^2)
    - \beta^2/(2c^2 + \sqrt{4c^4 + \beta^2})$, the arcsinh in log space (finite for any
    $c > 0$, e.g. $c^2 = 10^{-600}$)."""
    a = jnp.abs(beta)
    lx = jnp.log(jnp.where(a > 0, a, 1.0)) - jnp.log(2.0) - logc2
    big = lx > 0
    lxs = jnp.where(big, lx, 0.0)
    asinh = jnp.where(
        big,
        lxs + jnp.log1p(jnp.sqrt(1 + jnp.exp(-2 * lxs))),
        jnp.arcsinh(jnp.exp(jnp.minimum(lx, 0.0))),
    )
    c2 = jnp.exp(logc2)
    val = a * asinh - a * (a / (2 * c2 + jnp.hypot(2 * c2, a)))
    return jnp.where(a > 0, val, 0.0)


def _scaled_qd(beta, logcD, D):
    r"""$c^D q_D(\beta/c^D)$ ($D \ge 3$) with $\log c^D$ given, in three ranges of
    $|u| = |\beta|/c^D$: $u^2/(4p)$ below $10^{-6}$ (relative error $O(u^2)$); $z = h_D^{-1}(u)$
    and $uz - H_D(z)$ up to 1; above, $t = 1 - z$ by bisection on $\log t$ in its bracket
    $[-\log(2u)/p, -\log(u)/p]$ and $c^D q_D = |\beta|(1 - t) - c^D H_D(1 - t)$ with
    $c^D H_D(1-t) = e^{\log c^D + (1-p)\log t}(1 + (t/(2-t))^{p-1} - 2t^{p-1})/(p-1)$: finite
    for any $c > 0$ (e.g. $t = 10^{-900}$ at $\alpha = 10^{-300}$, $D = 5$)."""
    p = D / (D - 2)
    a = jnp.abs(beta)
    lu = jnp.log(jnp.where(a > 0, a, 1.0)) - logcD
    u = jnp.exp(jnp.minimum(lu, 0.0))
    z = _h_inverse(u, D)
    q_mid = jnp.where(u < 1e-6, u**2 / (4 * p), u * z - _big_h(z, D))
    lub = jnp.maximum(lu, 0.0)

    def body(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        # log h_D(1 - t) at t = e^mid: -p log t + log1p(-(t / (2 - t))^p), decreasing in t.
        logh = -p * mid + jnp.log1p(-jnp.exp(p * (mid - jnp.log(2 - jnp.exp(mid)))))
        above = logh > lub  # h too large: t too small
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 100, body, (-(lub + jnp.log(2.0)) / p, -lub / p))
    lt = 0.5 * (lo + hi)
    t = jnp.exp(lt)
    rest = 1 + jnp.exp((p - 1) * (lt - jnp.log(2 - t))) - 2 * jnp.exp((p - 1) * lt)
    q_big = a * (1 - t) - jnp.exp(logcD + (1 - p) * lt) * rest / (p - 1)
    val = jnp.where(lu <= 0, jnp.exp(logcD) * q_mid, q_big)
    return jnp.where(a > 0, val, 0.0)


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
    depth = check_depth(depth)
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
# The potential object


class Hypentropy(AbstractPotential):
    r"""The hypentropy potential $Q^D_{\alpha,w_0}$ (Woodworth et al. 2020, Thm 1, Thm 3) as the
    mirror map of the unbiased diagonal network `DiagonalNet.unbiased(d, alpha, depth, w0)`.

    Its conjugate's gradient is the flow's closed-form path (module doc):
    $\beta_i = 2c_i^2\sinh(s_i)$ at depth 2 and $\beta_i = c_i^D h_D(w_{0,i}^{D-2}s_i)$ at depth
    $D\ge3$ (domain $|w_{0,i}^{D-2}s_i| < 1$), $c_i = \alpha w_{0,i}$, all in log space:
    finite from $\alpha = 10^{-300}$ up.

    **Arguments:**

    - `alpha`: the scale $\alpha > 0$.
    - `depth`: $D \ge 2$.
    - `w0`: positive per-coordinate shape, shape `(d,)` or a scalar (default 1).
    """

    alpha: Float[Array, ""]
    w0: Float[Array, "..."]
    depth: int = eqx.field(static=True)

    def __init__(self, alpha, depth: int = 2, w0=None):
        self.depth = check_depth(depth)
        self.alpha = _check_alpha(alpha)
        if w0 is None:
            self.w0 = jnp.ones((), self.alpha.dtype)
        else:
            w0 = as_float_array(w0, "w0", ndim=(0, 1))
            self.w0 = check_positive(check_finite(w0, "w0"), "w0")

    @property
    def power(self) -> int:
        return self.depth

    @property
    def gap_power(self) -> int:
        return self.depth - 2

    def log_scale(self):
        return jnp.log(self.alpha)

    def log_amplitude(self):
        return self.depth * jnp.log(self.w0)

    def dual_terms(self, s, log_scale):
        w0 = jnp.broadcast_to(self.w0, s.shape)
        return _dual_terms(s, log_scale + jnp.log(w0), w0, self.depth)

    def gap(self, s):
        return 1 - jnp.abs(self.w0 ** (self.depth - 2) * s)

    def gap_rate(self, s):
        return jnp.broadcast_to(self.w0 ** (self.depth - 2), s.shape)

    def value(self, beta):
        w0 = jnp.broadcast_to(self.w0, beta.shape)
        return _hypentropy(beta, self.alpha, w0, self.depth)


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

    `dual_minimise(Hypentropy(alpha, depth, w0), X, y)` (its doc has the method): damped
    Newton on the dual, continued in $\alpha$ from the kernel regime. `jit`-, `vmap`- and
    differentiable (`jax.grad`, `jax.jacfwd`) in `X`, `y`, `alpha` and `w0` by the implicit
    function theorem at the dual optimum. A vmapped batch is solved one member after another
    (pass `throw=False` under `vmap`).

    **Arguments:**

    - `X`: design matrix, shape `(n, d)`, with `y` in its range (so $X\beta = y$ is solvable).
    - `y`: targets, shape `(n,)`.
    - `alpha`: scale $\alpha > 0$ (scalar).
    - `depth`: $D \ge 2$.
    - `w0`: positive per-coordinate shape, shape `(d,)` (default all ones).
    - `rtol`: the accepted relative error estimate (at tiny $\alpha$ and depth $\ge3$ the
      rounding estimate of the support solution; elsewhere the relative residual
      $\|X\beta-y\|/\|y\|$, typically $10^{-15}$).
    - `newton_solve`: `"cholesky"`, `"cg"` or `"auto"` (see `dual_minimise`).
    - `throw`: raise (via `eqx.error_if`) when the estimate exceeds `rtol` or the system is
      infeasible. With `throw=False`, check `info["ok"]`.
    - `return_info`: also return a dict with `residual` ($\|X\beta-y\|/\|y\|$),
      `error_estimate`, `support_solution`, `newton_steps`, `cg_steps`, `result` (a
      `linflow.limits.RESULTS` item) and `ok`.

    **Returns:**

    $\beta$, shape `(d,)`; or `(beta, info)` when `return_info=True`.
    """
    depth = check_depth(depth)
    X, y = _check_problem(X, y)
    alpha = _check_alpha(alpha)
    if w0 is not None:
        w0 = _check_w0(w0, X.shape[1], X.dtype)
    sol = _dual_minimise(Hypentropy(alpha, depth, w0), X, y, rtol, newton_solve, throw)
    if not return_info:
        return sol.value
    info = dict(sol.stats, result=sol.result, ok=sol.result == RESULTS.successful)
    return sol.value, info
