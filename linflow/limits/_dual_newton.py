r"""Damped Newton on the dual $F(\nu) = \sum_i\psi_i((X^\top\nu)_i) - y^\top\nu$ of a separable
potential (one stage of `linflow.limits.dual_minimise` at a fixed scale).

Armijo backtracking on $F$, or on $\|\nabla F\|$ once $F$ is flat to rounding; for bounded
potentials each line search starts at 90% of the step to the domain's boundary (a full Newton
step towards a support coordinate overshoots it by orders of magnitude at small $\alpha$).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._dual_directions import _direction_cg, _direction_cholesky, _direction_exact


_FLOOR_CHECK = 1e-3
_TO_BOUNDARY = 0.9
_MAX_BACKTRACK = 60
_MAX_IDLE = 6
_CG_EXACT_AFTER = 50
_NEAR_BOUNDARY = 1e-3


class _Problem(NamedTuple):
    """What every Newton step reads: the data, its transpose and absolute value, the
    columns' squared norms, the potential and the stage's scale."""

    X: jax.Array
    XT: jax.Array
    absX: jax.Array
    colsq: jax.Array
    y: jax.Array
    potential: object
    log_scale: jax.Array


def _dual_value(prob, nu, s):
    r"""$F(\nu)$ ($+\infty$ off the domain), the size of its terms ($\sum\psi + |y^\top\nu|$, for
    "flat to rounding"), $\beta(s)$, $\psi''(s)$ and (bounded potentials) whether the support is
    resolved to rounding, given $s = X^\top\nu$: $O(d)$. (Callers form $s$ as `nu @ X`: XLA's
    CPU matrix-vector product is several times faster in this orientation for a row-major X.)"""
    pot, y = prob.potential, prob.y
    beta, psi, curv = pot.dual_terms(s, prob.log_scale)
    ok = jnp.all(jnp.isfinite(beta))
    total = jnp.sum(psi)
    F = jnp.where(ok, total - y @ nu, jnp.inf)
    fscale = jnp.where(ok, total + jnp.abs(y @ nu), jnp.inf)
    if pot.bounded:
        # A gap at 1e-12 means the scale's prefactor is below 1e-20 |beta_i|: beta_S is then
        # recovered by the support solution, and more Newton steps cannot resolve s any
        # further (the stagnation test then stops after 2 idle steps instead of _MAX_IDLE).
        resolved = ok & (jnp.min(pot.gap(s)) <= 1e-12)
    else:
        resolved = jnp.array(False)
    return F, fscale, beta, curv, resolved


def _finished(prob, nu, g, curv, beta, g_prev, tol):
    r"""Whether $\|X\beta - y\|$ reached its rounding floor: $10^{-14}$ relative to
    $\|y\| + \||X||\beta|\|$, or the error that rounding of $s = X^\top\nu$ causes in $\beta$
    ($4u\||X|(\psi''\odot|X|^\top|\nu|)\|$), whichever is larger (computed only once
    $\|X\beta - y\| \le 10^{-3}\|y\|$), or `tol` relative to $\|y\|$."""
    absX, ynorm = prob.absX, jnp.linalg.norm(prob.y)
    eps = jnp.finfo(absX.dtype).eps
    gnorm = jnp.linalg.norm(g)
    loose = gnorm <= tol * ynorm

    def rounding_floor():
        # Three passes over |X|: only evaluated once the residual is small (and the loose stop
        # of an intermediate stage does not already hold).
        base = 1e-14 * (ynorm + jnp.linalg.norm(absX @ jnp.abs(beta)))
        dual = 4 * eps * jnp.linalg.norm(absX @ (curv * (jnp.abs(nu) @ absX)))
        return base + dual, base

    floor, base = jax.lax.cond(
        (gnorm <= _FLOOR_CHECK * ynorm) & ~loose,
        rounding_floor,
        lambda: (jnp.zeros_like(gnorm), jnp.zeros_like(gnorm)),
    )
    # The floor is a worst-case rounding bound: while Newton still converges fast (the last
    # step cut the residual 10x), one more step usually lands far below it, unless the residual
    # is already within 10x of the data's own rounding level.
    fast = (gnorm <= 0.1 * g_prev) & (gnorm > 10 * base)
    at_floor = (gnorm <= floor) & (~fast | (gnorm <= 0.01 * floor))
    return jnp.isfinite(g).all() & (at_floor | loose)


def _direction(prob, s, curv, g, exact, precond_rank, truncate):
    """The Newton step, its CG iteration count and whether the rest of the stage takes exact
    steps.

    Where the preconditioner fails (CG at its step cap: e.g. d ~ 2N, a dense target and a
    bounded potential near the boundary), inexact steps stall Newton, and where it struggles
    (over _CG_EXACT_AFTER iterations) CG costs more than an exact step: from then on the stage
    takes exact (Cholesky) steps (always finite: `_direction_cholesky` falls back to a scaled
    gradient step). CG stops on the forcing test alone (`_direction_cg`) except within
    _NEAR_BOUNDARY of a bounded potential's boundary (fewer Newton steps there)."""
    X, XT, colsq, y = prob.X, prob.XT, prob.colsq, prob.y
    zero = jnp.array(0)
    if precond_rank is None:
        step, _ = _direction_cholesky(X, curv, g)
        return step, zero, exact
    pot = prob.potential
    far = jnp.min(pot.gap(s)) > _NEAR_BOUNDARY if pot.bounded else jnp.array(True)
    ynorm = jnp.linalg.norm(y)

    def exact_step():
        return _direction_exact(X, XT, colsq, curv, g, truncate), zero, jnp.array(True)

    def inexact_step():
        step, n, ok = _direction_cg(X, XT, colsq, curv, g, ynorm, precond_rank, truncate, far)
        n = n.astype(zero.dtype)
        # A CG solve that needed more than _CG_EXACT_AFTER iterations is kept, but the rest of
        # the stage takes exact steps.
        return jax.lax.cond(
            ok & jnp.all(jnp.isfinite(step)),
            lambda: (step, n, n > _CG_EXACT_AFTER),
            lambda: (exact_step()[0], n, jnp.array(True)),
        )

    return jax.lax.cond(exact, exact_step, inexact_step)


def _line_search(prob, nu, s, F, g, step):
    """Backtracking from the fraction-to-the-boundary step (bounded potentials) or 1.

    Trial points are $s + tX^\\top\\delta$ ($O(d)$ each); once $\\|X\\beta - y\\| \\le
    10^{-3}\\|y\\|$ they take $s = X^\\top\\nu$ afresh, so that the converged point is not offset
    by the rounding the updates accumulate. $\\nabla F = X\\beta - y$ is formed only where a
    trial point can be accepted."""
    X, y, pot = prob.X, prob.y, prob.potential
    eps = jnp.finfo(X.dtype).eps
    slope = g @ step
    gnorm = jnp.linalg.norm(g)
    ds = step @ X
    fresh = gnorm <= _FLOOR_CHECK * jnp.linalg.norm(y)

    def trial(t):
        nut = nu + t * step
        st = jax.lax.cond(fresh, lambda: nut @ X, lambda: s + t * ds)
        Ft, fscale, bt, ct, rt = _dual_value(prob, nut, st)
        armijo = Ft <= F + 1e-4 * t * slope
        # F is flat to rounding near the optimum: then accept a decrease of the gradient.
        flat = jnp.isfinite(Ft) & (Ft - F <= 1e3 * eps * jnp.maximum(fscale, jnp.abs(F)))
        gt = jax.lax.cond(armijo | flat, lambda: X @ bt - y, lambda: jnp.full_like(y, jnp.inf))
        decrease = jnp.linalg.norm(gt) <= (1 - 1e-4 * t) * gnorm
        accepted = jnp.all(jnp.isfinite(gt)) & (armijo | (flat & decrease))
        return nut, st, Ft, gt, ct, bt, rt, accepted

    def ls_cond(ls):
        *_, accepted, j = ls
        return ~accepted & (j < _MAX_BACKTRACK)

    def ls_body(ls):
        t, *_, j = ls
        return (0.5 * t, *trial(0.5 * t), j + 1)

    if pot.bounded:
        rate = pot.gap_rate(s) * jnp.abs(ds)
        t_max = jnp.min(jnp.where(rate != 0, pot.room(s, ds) / rate, jnp.inf))
        t0 = jnp.minimum(1.0, _TO_BOUNDARY * t_max).astype(nu.dtype)
    else:
        t0 = jnp.array(1.0, nu.dtype)
    _, *out, _ = jax.lax.while_loop(ls_cond, ls_body, (t0, *trial(t0), 0))
    return out


def _newton(prob, nu0, max_iter, precond_rank=None, tol=0.0, truncate=False):
    """Damped Newton on $F(\\nu)$ from `nu0`.

    `precond_rank=None`: exact Newton steps by Cholesky; an integer: inexact steps by
    preconditioned CG (`_direction_cg`). Stops at the rounding floor or `tol` (`_finished`),
    or when no step decreases $F$ or $\\|\\nabla F\\|$, or neither has improved for
    `_MAX_IDLE` steps (rounding stagnation). Returns the final nu, the Newton and CG step
    counts, whether it stopped (converged or stalled), and whether the support is resolved
    to rounding."""
    X, y = prob.X, prob.y

    def cond(carry):
        nu, s, F, g, curv, done, k, stalled, *_ = carry
        return (k < max_iter) & ~stalled & ~done

    def body(carry):
        nu, s, F, g, curv, done, k, _, num_cg, exact, best, idle, resolved = carry
        step, cg_steps, exact = _direction(prob, s, curv, g, exact, precond_rank, truncate)
        nut, st, Ft, gt, ct, bt, rt, accepted = _line_search(prob, nu, s, F, g, step)
        failed = ~accepted | ~jnp.all(jnp.isfinite(step))
        # Rounding stagnation: neither F nor the best |grad F| improves for _MAX_IDLE steps
        # (near a bounded potential's boundary the gap can fall below the resolution of s).
        gt_norm = jnp.linalg.norm(gt)
        progress = (gt_norm <= 0.9 * best) | (F - Ft > 1e-13 * (1 + jnp.abs(F)))
        idle = jnp.where(progress, 0, idle + 1)

        def keep(new, old):
            return jnp.where(failed, old, new)

        # The accepted point is carried as evaluated (re-computing X^T nu could round across
        # the domain's boundary).
        done = keep(_finished(prob, nut, gt, ct, bt, jnp.linalg.norm(g), tol), done)
        return (
            keep(nut, nu),
            keep(st, s),
            keep(Ft, F),
            keep(gt, g),
            keep(ct, curv),
            done,
            k + 1,
            failed | (idle >= jnp.where(rt, 2, _MAX_IDLE)),
            num_cg + cg_steps.astype(num_cg.dtype),
            exact,
            jnp.minimum(best, keep(gt_norm, best)),
            idle,
            keep(rt, resolved),
        )

    s0 = nu0 @ X
    F0, _, b0, c0, r0 = _dual_value(prob, nu0, s0)
    g0 = X @ b0 - y
    F0 = jnp.where(jnp.all(jnp.isfinite(g0)), F0, jnp.inf)
    d0 = _finished(prob, nu0, g0, c0, b0, jnp.inf, tol)
    zero, false = jnp.array(0), jnp.array(False)
    carry = (nu0, s0, F0, g0, c0, d0, zero, false, zero, false, jnp.linalg.norm(g0), zero, r0)
    nu, s, F, g, curv, done, k, stalled, num_cg, *_, resolved = jax.lax.while_loop(
        cond, body, carry
    )
    return nu, k, num_cg, done | stalled, resolved
