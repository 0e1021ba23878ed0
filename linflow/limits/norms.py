r"""Norm-minimising interpolants and max-margin directions: the $\alpha\to\infty$ and
$\alpha\to0$ limits of diagonal networks (Woodworth et al. 2020, Thm 1-3; Yun et al. 2021).

`min_l2` is a pure JAX function; `min_l1` solves a linear program eagerly with SciPy (HiGHS)
and then *polishes* on the active set so that the constraints hold to rounding error, not to
the LP tolerance; `max_margin` is `linflow.limits.max_margin_solution`'s direction.
"""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, check_finite
from .margin import max_margin_solution


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


def max_margin(
    X: Float[ArrayLike, "n d"], labels: Float[ArrayLike, " n"], norm: str = "l2"
) -> Float[Array, " d"]:
    r"""The hard-margin direction $\hat w = w^\star/\|w^\star\|$, $w^\star = \arg\min \|w\|$
    s.t. $y_i\langle x_i, w\rangle \ge 1$ for all $i$.

    `norm="l2"`: the SVM direction (the limit of gradient flow on exponential/logistic loss for a
    linear model, and for diagonal networks at large $\alpha$). `norm="l1"`: the $\ell_1$
    max-margin direction (the small-$\alpha$ limit for depth-2 diagonal networks, Woodworth et
    al. 2020 / Yun et al. 2021). Both are `max_margin_solution(X, labels, norm).value`: a
    least-distance QP (NNLS) or a HiGHS LP, polished on the support vectors so that their
    margins are equal to rounding error. Runs eagerly (NumPy).

    **Arguments:**

    - `X`: inputs, shape `(n, d)`.
    - `labels`: $\pm1$, shape `(n,)`.
    - `norm`: `"l2"` or `"l1"`.

    **Returns:**

    The unit-norm (in the chosen norm) direction, shape `(d,)`.

    **Raises:**

    `ValueError` if the data are not linearly separable (through the origin).
    """
    return max_margin_solution(X, labels, norm).value
