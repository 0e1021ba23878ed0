r"""Max-margin directions: the limit directions of gradient flow on separable data.

One solver per norm, shared by every caller (`max_margin`, `tensor_margin_direction`):

- $\ell_2$: $w^\star = \arg\min\|w\|_2$ s.t. $Zw \ge 1$ ($Z = \operatorname{diag}(y)X$) is a
  *least-distance program*. Lawson & Hanson (1995, Ch. 23) solve it exactly with one
  non-negative least-squares problem, $\min_{u\ge0}\|Eu - f\|$ with
  $E = [Z^\top; \mathbf 1^\top]$, $f = e_{d+1}$ (SciPy's active-set `nnls`): with $r = Eu - f$,
  $w^\star = -r_{1:d}/r_{d+1}$, and $\|r\|^2 = -r_{d+1}$ gives the margin
  $\gamma = 1/\|w^\star\| = \sqrt{|r_{d+1}|/(1 - |r_{d+1}|)}$; $r = 0$ certifies that the
  data are not separable. The points with $u_i > 0$ are the support vectors, and $w^\star$ is
  then polished as the minimum-norm solution of $Z_Aw = \mathbf 1$ on them (the KKT system),
  so their margins are equal to rounding error.
- $\ell_1$ (with an optional linear transform $T$): $\min\|Tz\|_1$ s.t. $Zz \ge 1$ is the
  linear program $\min\mathbf 1^\top s$ s.t. $-s \le Tz \le s$, $Zz \ge 1$ (SciPy's HiGHS),
  polished on its vertex: the active margins and the zero entries of $Tz$ fix $z$ by
  $[Z_A; T_0]z = [\mathbf 1; 0]$.

A polish is kept only when it stays feasible and does not increase the norm (to 1e-9
relative). Every solve is eager (NumPy), and answers with a `ConvexSolution`.
"""

import jax.numpy as jnp
import numpy as np
import scipy.optimize
import scipy.sparse
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array
from .._fourier import dft_matrix, is_even
from .._results import RESULTS
from ._convex_solution import ConvexSolution


_NORMS = ("l2", "l1")
_KINDS = ("diagonal", "convolution", "fully_connected")
# The data are scaled to unit largest row norm; a margin below this (relative to that scale) is
# indistinguishable from zero: the solution's norm, 1/margin, would exceed 1e12.
_MIN_MARGIN = 1e-12
# A solution whose smallest margin constraint is violated by more than this is not returned.
_FEASIBILITY_TOL = 1e-6


def _margin_data(X, labels):
    """$Z = \\operatorname{diag}(y)X$ as float64 NumPy, after checking both arguments."""
    X = as_float_array(X, "X", ndim=2)
    labels = as_float_array(labels, "labels", ndim=1)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"`X` must have at least one row and one column, got {tuple(X.shape)}.")
    if labels.shape != (X.shape[0],):
        raise ValueError(
            f"`labels` must have shape ({X.shape[0]},) to match `X` {tuple(X.shape)}, "
            f"got {tuple(labels.shape)}."
        )
    Xn = np.asarray(X, dtype=np.float64)
    lab = np.asarray(labels, dtype=np.float64)
    if not np.all(np.isfinite(Xn)):
        raise ValueError("`X` contains NaN or inf; the data must be finite.")
    if not np.all(np.isin(lab, (-1.0, 1.0))):
        raise ValueError("`labels` must contain only -1 and +1.")
    if not np.any(Xn):
        raise ValueError("`X` is zero: no direction separates the data.")
    return lab[:, None] * Xn


def _failure(result):
    return None, {}, result


def _l2_margin(Z):
    """The least-distance program $\\min\\|w\\|$ s.t. $Zw \\ge 1$ by NNLS, then the polish."""
    n, d = Z.shape
    E = np.vstack([Z.T, np.ones((1, n))])
    f = np.zeros(d + 1)
    f[-1] = 1.0
    try:
        u, rnorm = scipy.optimize.nnls(E, f, maxiter=20 * n + 100)
    except RuntimeError:  # the active-set iteration did not terminate
        return _failure(RESULTS.solver_failed)
    r = E @ u - f
    if rnorm <= _MIN_MARGIN or r[-1] >= 0:
        return _failure(RESULTS.not_separable)
    w = -r[:d] / r[-1]
    active = u > 0
    polished = False
    if np.any(active):
        wp, *_ = np.linalg.lstsq(Z[active], np.ones(active.sum()), rcond=None)
        if np.min(Z @ wp) >= 1 - 1e-10 and np.linalg.norm(wp) <= np.linalg.norm(w) * (1 + 1e-9):
            w, polished = wp, True
    stats = {"support_vectors": int(active.sum()), "polished": polished}
    return w, stats, RESULTS.converged


def _l1_margin(Z, T):
    """The LP $\\min\\|Tz\\|_1$ s.t. $Zz \\ge 1$ by HiGHS, then the polish on its vertex."""
    n, d = Z.shape
    Ts = scipy.sparse.identity(d, format="csr") if T is None else scipy.sparse.csr_array(T)
    m = Ts.shape[0]
    Im = scipy.sparse.identity(m, format="csr")
    A_ub = scipy.sparse.vstack(
        [
            scipy.sparse.hstack([Ts, -Im]),
            scipy.sparse.hstack([-Ts, -Im]),
            scipy.sparse.hstack([scipy.sparse.csr_array(-Z), scipy.sparse.csr_array((n, m))]),
        ],
        format="csr",
    )
    b_ub = np.concatenate([np.zeros(2 * m), -np.ones(n)])
    cost = np.concatenate([np.zeros(d), np.ones(m)])
    bounds = [(None, None)] * d + [(0, None)] * m
    res = scipy.optimize.linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status == 2:
        return _failure(RESULTS.not_separable)
    if res.status != 0:
        return _failure(RESULTS.solver_failed)
    z = res.x[:d]
    Tm = Ts.toarray()
    tz = Tm @ z
    obj = np.sum(np.abs(tz))
    if obj <= _MIN_MARGIN:
        return _failure(RESULTS.solver_failed)
    support = np.abs(tz) > 1e-9 * np.max(np.abs(tz))
    active = Z @ z <= 1 + 1e-7
    polished = False
    A = np.vstack([Z[active], Tm[~support]])
    rhs = np.concatenate([np.ones(active.sum()), np.zeros((~support).sum())])
    zp, *_ = np.linalg.lstsq(A, rhs, rcond=None)
    tzp = Tm @ zp
    if (
        np.min(Z @ zp) >= 1 - 1e-10
        and np.all(np.sign(tzp[support]) == np.sign(tz[support]))
        and np.sum(np.abs(tzp)) <= obj * (1 + 1e-9)
    ):
        z, polished = zp, True
    stats = {
        "support_vectors": int(active.sum()),
        "polished": polished,
        "num_steps": int(res.nit),
        "support": int(support.sum()),
    }
    return z, stats, RESULTS.converged


def max_margin_solution(
    X: Float[ArrayLike, "n d"],
    labels: Float[ArrayLike, " _n"],
    norm: str = "l2",
    *,
    transform: Float[ArrayLike, "_m _d"] | None = None,
    throw: bool = True,
) -> ConvexSolution:
    r"""The hard-margin direction $w^\star/\|w^\star\|$,
    $w^\star = \arg\min\|w\|$ s.t. $y_i\langle x_i, w\rangle \ge 1$ for all $i$: the one
    solver behind `max_margin` and `tensor_margin_direction` (module docstring).

    - `norm="l2"`: the SVM direction, the limit direction of gradient flow on exponential or
      logistic loss for linear models and fully connected linear networks of any depth
      (Soudry et al. 2018; Ji & Telgarsky 2019; Yun et al. 2021, Cor. 1).
    - `norm="l1"`: $\min\|Tw\|_1$ ($T = I$ by default), the limit direction of depth-2
      diagonal networks at small initialisation ($T = I$; Woodworth et al. 2020,
      Yun et al. 2021, Cor. 2) and of full-length convolutional ones ($T = \operatorname{Re}F$
      on even data; Yun et al. 2021, Cor. 3).

    **Arguments:**

    - `X`: inputs, shape `(n, d)`.
    - `labels`: $\pm1$, shape `(n,)`.
    - `norm`: `"l2"` or `"l1"`.
    - `transform`: $T$ for `norm="l1"`, shape `(m, d)` (default: the identity).
    - `throw`: raise when the solve fails (`ValueError` if the data are not separable,
      `RuntimeError` if the solver fails); with `throw=False` read `result`.

    **Returns:**

    A `ConvexSolution`: `value` is the direction, unit in the chosen norm, shape `(d,)`;
    `stats` holds `margin` (the max margin $\gamma = \min_i y_i\langle x_i, w\rangle$ of the
    unit direction), `support_vectors` (active margin constraints), `polished` (whether the
    exact polish on the active set was kept), `constraint_violation`
    ($\max(0, 1 - \min_i y_i\langle x_i, w^\star\rangle)$ before normalisation), and for
    $\ell_1$ also `num_steps` (HiGHS iterations) and `support` (non-zeros of $Tw$).
    """
    if norm not in _NORMS:
        raise ValueError(f'`norm` must be "l2" or "l1", got {norm!r}.')
    Z = _margin_data(X, labels)
    n, d = Z.shape
    T = None
    if transform is not None:
        if norm != "l1":
            raise ValueError('`transform` is only supported with `norm="l1"`.')
        T = np.asarray(as_float_array(transform, "transform", ndim=2), dtype=np.float64)
        if T.shape[1] != d or not np.all(np.isfinite(T)):
            raise ValueError(
                f"`transform` must be finite with {d} columns (as `X`), got shape {T.shape}."
            )
    # Margins are scale-equivariant: solve on rows of norm at most 1, scale w back.
    scale = float(np.max(np.linalg.norm(Z, axis=1)))
    w, stats, result = _l2_margin(Z / scale) if norm == "l2" else _l1_margin(Z / scale, T)
    if w is not None:
        w = w / scale
        violation = max(0.0, 1.0 - float(np.min(Z @ w)))
        if violation > _FEASIBILITY_TOL:
            w, result = None, RESULTS.solver_failed
    if w is None:
        if throw:
            message = RESULTS[result]
            if result == RESULTS.not_separable:
                raise ValueError(f"max_margin_solution({norm}): {message}")
            raise RuntimeError(f"max_margin_solution({norm}): {message}")
        value = jnp.full((d,), jnp.nan)
        stats = {"margin": jnp.asarray(jnp.nan), "support_vectors": jnp.asarray(0)}
        return ConvexSolution(value=value, result=result, stats=stats)
    size = np.linalg.norm(w) if norm == "l2" else np.sum(np.abs(w if T is None else T @ w))
    stats = {key: jnp.asarray(v) for key, v in stats.items()}
    stats["margin"] = jnp.asarray(1.0 / size)
    stats["constraint_violation"] = jnp.asarray(violation)
    return ConvexSolution(value=jnp.asarray(w / size), result=result, stats=stats)


def tensor_margin_direction(
    kind: str,
    X: Float[ArrayLike, "n d"],
    labels: Float[ArrayLike, " _n"],
    depth: int = 2,
) -> Float[Array, " d"]:
    r"""The limit direction $\beta^\infty/\|\beta^\infty\|_2$ of the exponential-loss flow of
    a linear tensor network on separable data (Yun et al. 2021, Cor. 1-3; Thm 2): a KKT point
    of $\min\|S^{-\top}z\|_{2/L}$ s.t. $y_ix_i^\top z \ge 1$.

    - `"fully_connected"`, any depth (Cor. 1): the $\ell_2$ max-margin direction.
    - `"diagonal"`, depth 2 (Cor. 2): the $\ell_1$ max-margin direction.
    - `"convolution"`, full length, depth 2 (Cor. 3): the DFT-domain $\ell_1$ max-margin
      direction $\min\|Fz\|_1$. It is an LP when $F$ is real on the data's span: $d \le 2$ or
      even data (then an even optimum exists, on which $F$ is real).

    All three are solved by `max_margin_solution`. For diagonal and convolutional networks of
    depth $L \ge 3$ the $\ell_{2/L}$ problem is non-convex and the flow picks *a* stationary
    point, depending on the initialisation: not implemented (raises).

    **Arguments:**

    - `kind`: `"diagonal"`, `"convolution"` or `"fully_connected"`.
    - `X`: shape `(n, d)`; `labels`: shape `(n,)`, entries $\pm1$.
    - `depth`: $L \ge 2$.

    **Returns:** the unit ($\ell_2$) direction, shape `(d,)`.

    **Raises:** `ValueError` if the data are not linearly separable.
    """
    if kind not in _KINDS:
        raise ValueError(f"`kind` must be one of {_KINDS}, got {kind!r}.")
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 2:
        raise ValueError(f"`depth` must be an integer >= 2, got {depth!r}.")
    if kind == "fully_connected":
        z = max_margin_solution(X, labels, "l2").value
        return z / jnp.linalg.norm(z)
    if depth != 2:
        raise NotImplementedError(
            f"The {kind} limit direction for depth {depth} >= 3 is a stationary point of a "
            "non-convex l_(2/L) problem that depends on the initialisation."
        )
    T = None
    if kind == "convolution":
        Xn = np.asarray(as_float_array(X, "X", ndim=2))
        d = Xn.shape[1]
        if not (d <= 2 or all(is_even(r) for r in Xn)):
            raise NotImplementedError(
                "The DFT-domain l1 max margin is a second-order cone program unless d <= 2 "
                "or the data are even; only those cases are implemented."
            )
        T = np.real(np.asarray(dft_matrix(d)))
    z = max_margin_solution(X, labels, "l1", transform=T).value
    return z / jnp.linalg.norm(z)
