r"""Newton directions of the dual solver (`dual_minimise`): exact (Cholesky), on a truncated
Hessian, and inexact by preconditioned conjugate gradients.

Each solves $X\operatorname{diag}(\psi'')X^\top\delta = -\nabla F$ for the dual
$F(\nu) = \sum_i\psi_i((X^\top\nu)_i) - y^\top\nu$ of any separable potential; see
`linflow.limits.dual_minimise` for where each is used.
"""

import jax
import jax.numpy as jnp
import lineax as lx
import lineax.internal as lxi


_MAX_CG = 200
_TRUNCATE = 1e-6
_OUTLIER = 10.0


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


def _preconditioner(X, XT, colsq, curv, rank, keep):
    r"""The CG preconditioner $P = UU^\top + \mu I$ of `_direction_cg` (applied by the Woodbury
    identity), and the `keep` largest curvature contributions' indices, the rest's sum and
    whether that rest is negligible (for the truncated Hessian)."""
    n = X.shape[0]
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
    return precond, idx_keep, rest_keep, fits


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
    precond, idx_keep, rest_keep, fits = _preconditioner(X, XT, colsq, curv, rank, keep)
    structure = jax.ShapeDtypeStruct((n,), X.dtype)
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
