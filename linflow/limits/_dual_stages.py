r"""Continuation in scale for the dual solver (`linflow.limits.dual_minimise`).

The dual is solved from the kernel regime (a scale $\alpha_0$ where the potential is close to
quadratic over the data's range and Newton from $\nu = 0$ converges in a few steps) down to
the requested $\alpha$, in stages that shrink $\alpha^P$ by $10^4$ (unbounded potentials) or
$10^8$ (bounded ones), at most 16 stages, each of at most 60 Newton steps, so it is
`jit`/`vmap`-able. Each stage starts from the best (lowest $F$) of the last stage's $\nu$ and
two extrapolations from the last two stages: on the support $S$ at small $\alpha$,
$X_S^\top\nu$ is affine in $\log\alpha$ for the exponential potentials, and the gaps to a
bounded potential's boundary scale like $\alpha^{\text{gap\_power}}$ (so $\nu$ is geometric in
$\log\alpha$). A bounded potential also gets a fourth start that targets the gaps directly:
where every coordinate with a gap below $10^{-2}$ is among the $N/4$ smallest gaps, the
least-norm change of $\nu$ that scales those gaps by
$(\alpha_{new}/\alpha_{old})^{\text{gap\_power}}$.
Intermediate stages stop at $\|X\beta - y\| \le 10^{-3}\|y\|$; a stage that ends with the
support resolved to rounding is followed directly by the stage at $\alpha$.
"""

import jax
import jax.numpy as jnp

from ._dual_directions import _top_k
from ._dual_newton import _dual_value, _newton, _Problem


_NUM_STAGES = 16
_STAGE_SHRINK = 1e4
_STAGE_SHRINK_DEEP = 1e8
_STAGE_TOL = 1e-3
_MAX_NEWTON = 60
_PREDICT_GAP = 1e-2


def _start_scale(potential, X, XT, y):
    r"""$\log\alpha_0$: where the smallest prefactor $\alpha^P e^{m_i}$ exceeds 10^P times the
    size of any single-feature fit."""
    col2 = jnp.sum(XT * XT, axis=1)
    b_scale = jnp.max(jnp.abs(y @ X) / jnp.where(col2 > 0, col2, 1.0))
    P = potential.power
    m = jnp.min(potential.log_amplitude())
    return jnp.log(10.0) + (jnp.log(b_scale) - m) / P


def _starts(prob, nu_prev, la_prev, nu, la_cur, la):
    """The stage's starting points (module doc), stacked."""
    X, XT, pot = prob.X, prob.XT, prob.potential
    n = X.shape[0]
    dn, dp = la - la_cur, la_cur - la_prev
    moved = (dp != 0) & (dn != 0)
    dp = jnp.where(moved, dp, -1.0)
    affine = jnp.where(moved, dn / dp, 0.0)
    e = pot.gap_power if pot.bounded else 1
    geometric = jnp.where(moved, jnp.exp(e * dp) * jnp.expm1(e * dn) / jnp.expm1(e * dp), 0.0)
    cands = [nu, nu + affine * (nu - nu_prev), nu + geometric * (nu - nu_prev)]
    if pot.bounded:
        # At fixed beta the gaps scale like alpha^gap_power: move the smallest-gap
        # coordinates there by the least-norm change of nu (unselected columns zeroed).
        sv = nu @ X
        gap = pot.gap(sv)
        k = max(1, n // 4)
        _, idx = _top_k(-gap, k)
        # Only where every such coordinate is among the k (a sparse support).
        fits = jnp.sum(gap < _PREDICT_GAP) <= k
        sel = (gap[idx] < _PREDICT_GAP) & (dn < 0) & fits
        ds = pot.side(sv)[idx] * gap[idx] * (-jnp.expm1(e * dn)) / pot.gap_rate(sv)[idx]
        ds = jnp.where(sel, ds, 0.0)

        def predict():
            # dnu = A (A^T A)^-1 ds for the N x k block A of the selected columns (its Gram by
            # Cholesky: a QR that forms Q took 5x longer at N = 1000, k = 250).
            At = XT[idx] * sel[:, None]
            gram = At @ At.T + jnp.diag(jnp.where(sel, 0.0, 1.0))
            dnu = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(gram), ds) @ At
            return jnp.where(jnp.all(jnp.isfinite(dnu)), nu + dnu, nu)

        cands.append(jax.lax.cond(jnp.any(sel), predict, lambda: nu))
    return jnp.stack(cands)


def _continue(X, XT, absX, y, potential, precond_rank):
    """The stages of the module doc; returns the final $\\nu$, and the Newton and CG step
    counts."""
    n, d = X.shape
    truncate = precond_rank is not None and d > 4 * n
    colsq = jnp.sum(XT * XT, axis=1)
    log_a = potential.log_scale()
    log_a0 = jnp.maximum(log_a, _start_scale(potential, X, XT, y))
    shrink = _STAGE_SHRINK_DEEP if potential.bounded else _STAGE_SHRINK
    log_step = jnp.maximum(jnp.log(shrink) / potential.power, (log_a0 - log_a) / _NUM_STAGES)

    def problem(la):
        return _Problem(X, XT, absX, colsq, y, potential, la)

    def stage_cond(carry):
        *_, la_cur, _, _, settled, _, i = carry
        return (i < _NUM_STAGES) & ~((la_cur <= log_a) & settled)

    def stage(carry):
        nu_prev, la_prev, nu, la_cur, steps, cg, _, resolved, i = carry
        # Once a stage ends with the support resolved to rounding, smaller scales only push the
        # gaps further below what the stages can resolve: go straight to alpha (beta_S is then
        # the support solution).
        la = jnp.where(resolved, log_a, jnp.maximum(la_cur - log_step, log_a))
        prob = problem(la)
        cands = _starts(prob, nu_prev, la_prev, nu, la_cur, la)
        vals = jax.vmap(lambda c: _dual_value(prob, c, c @ X)[0])(cands)
        start = cands[jnp.argmin(vals)]
        # Intermediate stages only need to be close enough to start the next one. A stage at
        # alpha that stops at the Newton step cap is continued by the next one.
        tol = jnp.where(la > log_a, _STAGE_TOL, 0.0)
        new, k, c, settled, resolved = _newton(
            prob, start, _MAX_NEWTON, precond_rank, tol, truncate
        )
        return (nu, la_cur, new, la, steps + k, cg + c, settled, settled & resolved, i + 1)

    zero, false = jnp.array(0), jnp.array(False)
    nu0 = jnp.zeros(n, X.dtype)
    carry = (nu0, log_a0, nu0, log_a0, zero, zero, false, false, zero)
    _, _, nu, _, steps, cg_steps, *_ = jax.lax.while_loop(stage_cond, stage, carry)
    return nu, steps, cg_steps
