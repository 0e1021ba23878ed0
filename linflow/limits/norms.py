r"""Norm-minimising interpolants and max-margin directions: the $\alpha\to\infty$ and
$\alpha\to0$ limits of diagonal networks (Woodworth et al. 2020, Thm 1-3; Yun et al. 2021).

`min_l2` is a pure JAX function; `min_l1` and `max_margin` solve linear / quadratic programs
eagerly with SciPy (HiGHS) and then *polish* on the active set so that the constraints hold to
rounding error, not to the LP tolerance.
"""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, check_finite


def _check_xy(X, y, y_name="y", y_ndim=(1, 2)):
    X = as_float_array(X, "X", ndim=2)
    y = as_float_array(y, y_name, ndim=y_ndim)
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"`X` has {X.shape[0]} rows (samples) but `{y_name}` has {y.shape[0]}: they must match."
        )
    return check_finite(X, "X"), check_finite(y, y_name)


def min_l2(
    X: Float[ArrayLike, "n d"], y: Float[ArrayLike, "..."]
) -> Float[Array, " d"] | Float[Array, "d m"]:
    r"""The minimum-$\ell_2$-norm least-squares solution $\beta^\star_{\ell_2} = X^+ y$.

    When $Xβ = y$ is solvable this is $\arg\min \|\beta\|_2$ s.t. $X\beta = y$, the
    $\alpha\to\infty$ (kernel-regime) limit of diagonal networks (Woodworth et al. 2020, Thm 1
    and Thm 3). Computed with an SVD-based least-squares solve (`jnp.linalg.lstsq`), never by
    forming $(XX^\top)^{-1}$: a Householder QR of $X^\top$ (or of $X$ when $n > d$),
    $O(\min(n,d)^2\max(n,d))$, with an SVD least-squares fallback (`jnp.linalg.lstsq`) when
    $R$ reveals a rank deficiency. (An SVD of a $1000\times10^4$ matrix took over 100 s on a
    2-core CPU where the QR takes about a second.)

    **Arguments:**

    - `X`: design matrix, shape `(n, d)`.
    - `y`: targets, shape `(n,)` or `(n, m)`.

    **Returns:**

    $X^+ y$, shape `(d,)` or `(d, m)`.
    """
    X, y = _check_xy(X, y)
    return _min_norm(X, y)


@jax.jit
def _min_norm(X, y):
    n, d = X.shape
    wide = n <= d
    Q, R = jnp.linalg.qr(X.T if wide else X)
    diag = jnp.abs(jnp.diagonal(R))
    full_rank = jnp.min(diag) > max(n, d) * jnp.finfo(X.dtype).eps * jnp.max(diag)

    def by_qr():
        if wide:  # X = R^T Q^T: beta = Q R^{-T} y is the min-norm interpolant.
            return Q @ jax.scipy.linalg.solve_triangular(R.T, y, lower=True)
        return jax.scipy.linalg.solve_triangular(R, Q.T @ y, lower=False)

    return jax.lax.cond(full_rank, by_qr, lambda: jnp.linalg.lstsq(X, y)[0])


def _polish_equality(X, y, beta, support):
    """Re-solve `X[:, S] b = y` on the support by least squares (exact equality to rounding)."""
    if not np.any(support):
        return beta
    b_s, *_ = np.linalg.lstsq(X[:, support], y, rcond=None)
    out = np.zeros_like(beta)
    out[support] = b_s
    return out


def min_l1(
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "..."],
    *,
    weights: Float[ArrayLike, " _d"] | None = None,
) -> Float[Array, " d"]:
    r"""Basis pursuit: $\beta^\star_{\ell_1} = \arg\min \sum_i w_i|\beta_i|$ s.t. $X\beta = y$.

    The $\alpha\to0$ (rich-regime) limit of diagonal networks (Woodworth et al. 2020, Thm 2 and
    Thm 3). Solved exactly as the linear program in $(u, v) \ge 0$, $\beta = u - v$, with
    SciPy's HiGHS; the returned $\beta$ is then polished on its support $S$ by solving
    $X_S\beta_S = y$ by least squares, so $\|X\beta - y\|$ is at rounding level (~1e-14 relative)
    instead of the LP's feasibility tolerance. The polish is kept only if it leaves the support's
    signs and the objective unchanged (to 1e-9 relative). Runs eagerly (NumPy), not under `jit`.

    **Arguments:**

    - `X`: design matrix, shape `(n, d)`.
    - `y`: targets, shape `(n,)`.
    - `weights`: optional positive weights $w$, shape `(d,)` (default: all ones).

    **Returns:**

    $\beta^\star_{\ell_1}$, shape `(d,)`.

    **Raises:**

    `ValueError` if $X\beta = y$ has no solution, or the LP solver fails.
    """
    X, y = _check_xy(X, y, y_ndim=1)
    Xn, yn = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, d = Xn.shape
    if weights is None:
        w = np.ones(d)
    else:
        w = np.asarray(as_float_array(weights, "weights", ndim=1), dtype=np.float64)
        if w.shape != (d,):
            raise ValueError(f"`weights` must have shape ({d},), got {w.shape}.")
        if not np.all(np.isfinite(w) & (w > 0)):
            raise ValueError("`weights` must be finite and > 0.")
    res = scipy.optimize.linprog(
        np.concatenate([w, w]),
        A_eq=np.hstack([Xn, -Xn]),
        b_eq=yn,
        bounds=(0, None),
        method="highs",
    )
    if res.status == 2:
        raise ValueError("`X` beta = `y` has no solution (the basis-pursuit LP is infeasible).")
    if res.status != 0:
        raise ValueError(f"min_l1: the LP solver failed: {res.message}")
    beta = res.x[:d] - res.x[d:]
    scale = max(np.max(np.abs(beta)), 1e-300)
    support = np.abs(beta) > 1e-9 * scale
    polished = _polish_equality(Xn, yn, beta, support)
    obj, obj_p = np.sum(w * np.abs(beta)), np.sum(w * np.abs(polished))
    same_signs = np.all(np.sign(polished[support]) == np.sign(beta[support]))
    if same_signs and obj_p <= obj * (1 + 1e-9) + 1e-300:
        beta = polished
    return jnp.asarray(beta)


def _check_labels(X, labels):
    X, labels = _check_xy(X, labels, "labels", y_ndim=1)
    lab = np.asarray(labels)
    if not np.all(np.isin(lab, (-1.0, 1.0))):
        raise ValueError("`labels` must contain only -1 and +1.")
    return np.asarray(X, dtype=np.float64), lab.astype(np.float64)


def max_margin(
    X: Float[ArrayLike, "n d"], labels: Float[ArrayLike, "..."], norm: str = "l2"
) -> Float[Array, " d"]:
    r"""The hard-margin direction $\hat w = w^\star/\|w^\star\|$, $w^\star = \arg\min \|w\|$
    s.t. $y_i\langle x_i, w\rangle \ge 1$ for all $i$.

    `norm="l2"`: the SVM direction (the limit of gradient flow on exponential/logistic loss for a
    linear model, and for diagonal networks at large $\alpha$); solved as a QP (cvxpy when
    installed, else SciPy SLSQP). `norm="l1"`: the $\ell_1$ max-margin direction (the small-$\alpha$
    limit for depth-2 diagonal networks, Woodworth et al. 2020 / Yun et al. 2021), solved
    exactly as an LP with HiGHS. Both are polished on the active constraints
    (support vectors), so the margins of the support vectors are equal to rounding error.
    Runs eagerly (NumPy).

    **Arguments:**

    - `X`: inputs, shape `(n, d)`.
    - `labels`: $\pm1$, shape `(n,)`.
    - `norm`: `"l2"` or `"l1"`.

    **Returns:**

    The unit-norm (in the chosen norm) direction, shape `(d,)`.

    **Raises:**

    `ValueError` if the data are not linearly separable (through the origin).
    """
    if norm not in ("l2", "l1"):
        raise ValueError(f'`norm` must be "l2" or "l1", got {norm!r}.')
    Xn, lab = _check_labels(X, labels)
    Z = lab[:, None] * Xn  # margin constraints Z w >= 1
    n, d = Z.shape
    if norm == "l1":
        res = scipy.optimize.linprog(
            np.ones(2 * d),
            A_ub=-np.hstack([Z, -Z]),
            b_ub=-np.ones(n),
            bounds=(0, None),
            method="highs",
        )
        if res.status == 2:
            raise ValueError("The data are not linearly separable (the margin LP is infeasible).")
        if res.status != 0:
            raise ValueError(f"max_margin: the LP solver failed: {res.message}")
        w = res.x[:d] - res.x[d:]
        scale = np.max(np.abs(w))
        support = np.abs(w) > 1e-9 * scale
        active = Z @ w < 1 + 1e-7
        # Polish: the active margins equal 1 with the support fixed (a square/least-squares solve).
        ws, *_ = np.linalg.lstsq(Z[np.ix_(active, support)], np.ones(active.sum()), rcond=None)
        wp = np.zeros(d)
        wp[support] = ws
        if np.all(Z @ wp >= 1 - 1e-9) and np.sum(np.abs(wp)) <= np.sum(np.abs(w)) * (1 + 1e-9):
            w = wp
        return jnp.asarray(w / np.sum(np.abs(w)))
    w = _svm_primal(Z)
    if w is None:
        raise ValueError("The data are not linearly separable (the margin QP is infeasible).")
    active = Z @ w < 1 + 1e-6
    Za = Z[active]
    # Polish: w = Za^T lam with Za w = 1 (the KKT system of the QP on the active set).
    lam, *_ = np.linalg.lstsq(Za @ Za.T, np.ones(active.sum()), rcond=None)
    wp = Za.T @ lam
    if np.all(lam >= -1e-10) and np.all(Z @ wp >= 1 - 1e-9):
        w = wp
    return jnp.asarray(w / np.linalg.norm(w))


def _svm_primal(Z):
    n, d = Z.shape
    try:
        import cvxpy as cp
    except ImportError:  # pragma: no cover - depends on the environment
        cp = None
    if cp is not None:
        w = cp.Variable(d)
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(w)), [Z @ w >= 1])
        prob.solve()
        if prob.status in ("infeasible", "infeasible_inaccurate") or w.value is None:
            return None
        return np.asarray(w.value)
    # Feasibility first (an LP), then SLSQP from the feasible point.
    res = scipy.optimize.linprog(
        np.zeros(d), A_ub=-Z, b_ub=-np.ones(n), bounds=(None, None), method="highs"
    )
    if res.status == 2:
        return None
    sol = scipy.optimize.minimize(
        lambda w: 0.5 * w @ w,
        res.x,
        jac=lambda w: w,
        constraints=[{"type": "ineq", "fun": lambda w: Z @ w - 1, "jac": lambda w: Z}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    return sol.x
