r"""The primal answer of the dual solver and its error estimate, with support recovery for
bounded potentials (`linflow.limits.dual_minimise`).

**Tiny scales.** For a bounded potential the gap of a support coordinate to the domain's
boundary is about $(\text{prefactor}/|\beta_i|)^{\text{gap\_power}/P}$ (e.g. $10^{-24}$ for the
depth-5 hypentropy at $\alpha = 10^{-8}$), below the float64 resolution of $s = X^\top\nu$, so
$\beta$ cannot be read off $\nu$ there. The solver therefore also forms the *support solution*:
$S = \{i : \text{gap}_i < 10^{-4}\}$, $\beta_{S^c}$ from the dual (well resolved: large gaps)
and $\beta_S$ from $X_S\beta_S = y - X_{S^c}\beta_{S^c}$, exact when $X_S$ has full column rank.
Rounding in $s_i$ causes an absolute error $\delta_i \approx p|\beta_i|u\kappa_i/\text{gap}_i$
in $\beta_i$ ($p = P/\text{gap\_power}$, $u$ the unit roundoff, $\kappa_i$ the rounding scale of
the gap); the error estimates are $\|\delta\|/\|\beta\|$ for the dual answer and
$(\|\delta_{S^c}\| + \|X_S^+X_{S^c}\delta_{S^c}\|)/\|\beta\|$ for the support solution (used only
if $X_S$ has full column rank and the signs of $\beta_S$ match their boundary's). Where the
support solution's residual exceeds $3\cdot10^{-11}\|y\|$ and $|S| \le N/4$, one Newton step of
the dual with $\beta_S$ free ($X_{S^c}\operatorname{diag}(\psi''_{S^c})X_{S^c}^\top\,\delta\nu =
r$ on $\operatorname{range}(X_S)^\perp$, done where $N^2d \le 3\cdot10^{10}$) followed by the
support solution again takes out what Newton left off $S$. The answer with the smaller
estimate is returned.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._dual_directions import _direction_cholesky, _top_k


_SUPPORT_GAP = 1e-4
_REFINE_ABOVE = 3e-11
_REFINE_MAX_WORK = 3e10  # N^2 d of the refinement's Hessian (N = 1000, d = 1e4: 1e10, 0.18 s)


def _dual_answer(X, y, absX, potential, nu, s):
    """$\\beta(X^\\top\\nu)$, its relative residual, the curvature, the gaps and the absolute
    error of each $\\beta_i$ caused by rounding the gap ($d\\beta/d\\,\\text{gap} \\approx
    p\\beta/\\text{gap}$)."""
    eps = jnp.finfo(X.dtype).eps
    beta, _, curv = potential.dual_terms(s, potential.log_scale())
    beta = jnp.where(jnp.isfinite(beta), beta, 0.0)
    residual = jnp.linalg.norm(X @ beta - y) / jnp.linalg.norm(y)
    if not potential.bounded:
        return beta, residual, curv, None, jnp.zeros_like(beta)
    p = potential.power / potential.gap_power
    gap = jnp.clip(potential.gap(s), eps, 1.0)
    kappa = 1 + potential.gap_rate(s) * (jnp.abs(nu) @ absX)
    delta = jnp.abs(beta) * p * eps * kappa / gap
    return beta, residual, curv, gap, delta


class _Support(NamedTuple):
    X: jax.Array
    y: jax.Array
    side: jax.Array  # the sign of beta near each coordinate's boundary
    on_s: jax.Array  # the support S (gap < _SUPPORT_GAP)
    idx: jax.Array  # the N smallest gaps, S first
    in_s: jax.Array
    m: jax.Array  # |S|
    small: int


def _qr_factor(sup):
    """A QR of the first N/4 sorted columns, of which the first |S| are X_S and the rest zero:
    Householder QR leaves the zero columns' part of R zero, so R[:m, :m] is X_S's factor and
    Q's first m columns span range(X_S). O(N k^2) against an SVD of an N x N block."""
    X, n, small, m = sup.X, sup.X.shape[0], sup.small, sup.m
    eps = jnp.finfo(X.dtype).eps
    Xk = X[:, sup.idx[:small]] * sup.in_s[None, :small]
    q, r = jnp.linalg.qr(Xk)
    first = jnp.arange(small) < m
    diag = jnp.abs(jnp.diagonal(r))
    rank = jnp.sum(first & (diag > n * eps * jnp.max(diag))).astype(m.dtype)
    r = r + jnp.diag(jnp.where(first, 0.0, 1.0))
    safe = jnp.where(rank == m, r, jnp.eye(small, dtype=r.dtype))
    return q * first[None, :], safe, rank


def _least_squares_qr(sup, factor, rhs):
    basis, safe, rank = factor
    sol = jax.scipy.linalg.solve_triangular(safe, basis.T @ rhs)
    n = sup.X.shape[0]
    return jnp.zeros((n, rhs.shape[1]), sol.dtype).at[: sup.small].set(sol), rank


def _least_squares_svd(sup, rhs):
    Xk = sup.X[:, sup.idx] * sup.in_s[None, :]
    sol, _, rank, _ = jnp.linalg.lstsq(Xk, rhs)
    return sol, rank.astype(sup.m.dtype)


def _support_solution(sup, beta, delta, least_squares):
    """$\\beta_{S^c}$ from the dual, $\\beta_S$ by least squares; its residual and estimate
    ($+\\infty$ where it does not apply)."""
    X, y, on_s, in_s, idx = sup.X, sup.y, sup.on_s, sup.in_s, sup.idx
    eps = jnp.finfo(X.dtype).eps
    n = X.shape[0]
    beta_off = jnp.where(on_s, 0.0, beta)
    delta_off = jnp.where(on_s, 0.0, delta)
    rhs = jnp.stack([y - X @ beta_off, X @ delta_off], axis=1)
    sol, rank = least_squares(rhs)
    beta_sup = beta_off.at[idx].add(jnp.where(in_s, sol[:, 0], 0.0))
    res_sup = jnp.linalg.norm(X @ beta_sup - y) / jnp.linalg.norm(y)
    full_rank = (rank == sup.m) & (sup.m <= n)
    signs_ok = jnp.all(jnp.where(on_s, jnp.sign(beta_sup) == sup.side, True))
    bsup_norm = jnp.linalg.norm(beta_sup)
    bsup_norm = jnp.where(bsup_norm > 0, bsup_norm, 1.0)
    # The errors of beta_{S^c} propagate to beta_S through X_S^+ X_{S^c}.
    e_sup = (jnp.linalg.norm(delta_off) + jnp.linalg.norm(sol[:, 1])) / bsup_norm
    e_sup = jnp.maximum(e_sup, res_sup) + eps
    ok = signs_ok & full_rank & jnp.all(jnp.isfinite(beta_sup))
    return beta_sup, res_sup, jnp.where(ok, e_sup, jnp.inf)


def _refine(sup, factor, answer, nu, curv, absX, potential, out):
    """One Newton step of the dual with $\\beta_S$ free (module doc): the saddle-point system
    $[H_{S^c}\\ X_S; X_S^\\top\\ 0][\\delta\\nu; \\delta\\beta_S] = [r; 0]$, i.e.
    $H_{S^c}\\delta\\nu = r$ on $\\operatorname{range}(X_S)^\\perp$ ($X_S^\\top\\nu$ stays put)."""
    X, y = sup.X, sup.y
    beta_sup, res_sup, e_sup = out
    r = y - X @ beta_sup
    step, _ = _direction_cholesky(X, jnp.where(sup.on_s, 0.0, curv), -r, factor[0])
    nu2 = nu + step
    b2, _, _, _, delta2 = _dual_answer(X, y, absX, potential, nu2, nu2 @ X)
    beta2, res2, e2 = _support_solution(
        sup, b2, delta2, lambda rhs: _least_squares_qr(sup, factor, rhs)
    )
    better = jnp.isfinite(e2) & (e2 < e_sup)
    return (
        jnp.where(better, beta2, beta_sup),
        jnp.where(better, res2, res_sup),
        jnp.where(better, e2, e_sup),
    )


def _answer(X, y, absX, potential, nu):
    """$\\beta$ at the dual point $\\nu$, its relative residual, error estimate and whether the
    support solution was used."""
    eps = jnp.finfo(X.dtype).eps
    n, d = X.shape
    s = nu @ X
    beta, residual, curv, gap, delta = _dual_answer(X, y, absX, potential, nu, s)
    if not potential.bounded:
        return beta, residual, residual, jnp.array(False)
    bnorm = jnp.linalg.norm(beta)
    e_dual = jnp.maximum(jnp.linalg.norm(delta) / jnp.where(bnorm > 0, bnorm, 1.0), residual)
    e_dual = e_dual + eps
    on_s = gap < _SUPPORT_GAP
    # |S| <= N is needed for a unique beta_S; gather the N smallest gaps into an N x N block so
    # the solve costs O(N^3) at most (O(N^3 / 16) when |S| <= N / 4). (S first whatever the
    # sort's tie-breaking: its gaps lifted above every other one.)
    idx = _top_k(jnp.where(on_s, 2 - gap, -gap), n)[1]
    small = max(1, n // 4)
    sup = _Support(X, y, potential.side(s), on_s, idx, on_s[idx], jnp.sum(on_s), small)

    def narrow():
        factor = _qr_factor(sup)
        out = _support_solution(sup, beta, delta, lambda r: _least_squares_qr(sup, factor, r))
        # Refined where the residual, not the rounding of beta_{S^c}, is what is left.
        if n * n * d > _REFINE_MAX_WORK:
            return out
        return jax.lax.cond(
            jnp.isfinite(out[2]) & (out[1] > _REFINE_ABOVE),
            lambda: _refine(sup, factor, beta, nu, curv, absX, potential, out),
            lambda: out,
        )

    def wide():
        return _support_solution(sup, beta, delta, lambda r: _least_squares_svd(sup, r))

    def supported():
        return jax.lax.cond(sup.m <= small, narrow, wide) if small < n else wide()

    # (Skipped when no coordinate is near the boundary.)
    beta_sup, res_sup, e_sup = jax.lax.cond(
        jnp.any(on_s), supported, lambda: (beta, residual, jnp.array(jnp.inf, X.dtype))
    )
    use_sup = e_sup < e_dual
    beta = jnp.where(use_sup, beta_sup, beta)
    return beta, jnp.where(use_sup, res_sup, residual), jnp.minimum(e_dual, e_sup), use_sup
