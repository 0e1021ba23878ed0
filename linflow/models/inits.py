r"""Initialisations of two-layer factorisations, each from an explicit PRNG key.

All return a `linflow.TwoLayer(U, V)` with $U\in\mathbb R^{D\times h}$, $V\in\mathbb R^{m\times h}$.
"""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import as_float_array
from ..limits.two_layer import data_svd
from .factorization import TwoLayer


def _check_dims(**dims):
    for name, v in dims.items():
        if int(v) != v or int(v) < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {v!r}.")


def _check_scale(x, name):
    if not float(x) >= 0 or not np.isfinite(float(x)):
        raise ValueError(f"`{name}` must be a finite number >= 0, got {x!r}.")


def gaussian_init(
    key: PRNGKeyArray, D: int, m: int, h: int, sigma_u: float, sigma_v: float
) -> TwoLayer:
    r"""$U_{ij} \sim \mathcal N(0, \sigma_U^2)$, $V_{ij} \sim \mathcal N(0, \sigma_V^2)$,
    independent
    (Min et al. 2021, App. A.1: $U(0) = \sigma_UU_0$, $V(0) = \sigma_VV_0$). Changing
    $(\sigma_U, \sigma_V)$ at fixed product keeps $U(0)V(0)^\top$ and changes the imbalance.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `D`, `m`, `h`: input dimension, output dimension, width.
    - `sigma_u`, `sigma_v`: standard deviations of the entries of $U$ and $V$.

    **Returns:** a `TwoLayer`.
    """
    _check_dims(D=D, m=m, h=h)
    _check_scale(sigma_u, "sigma_u")
    _check_scale(sigma_v, "sigma_v")
    ku, kv = jr.split(key)
    U = sigma_u * jr.normal(ku, (D, h))
    V = sigma_v * jr.normal(kv, (m, h))
    return TwoLayer(U, V)


def width_scaled_init(key: PRNGKeyArray, D: int, m: int, h: int, a: float = 0.5) -> TwoLayer:
    r"""$U_{ij}, V_{ij} \sim \mathcal N(0, h^{-2a})$ with $1/4 < a \le 1/2$ (Min et al. 2021,
    Sec. 3.2; Lemma 1 and Thm 2 give $\|\Theta(\infty) - \hat\Theta\| = O(h^{-(2a - 1/2)})$).

    **Raises:** `ValueError` for $a \le 1/4$ (no width law: the initial predictor does not
    shrink) or $a > 1/2$ (outside Thm 2).

    **Returns:** a `TwoLayer`.
    """
    _check_dims(D=D, m=m, h=h)
    if not 0.25 < float(a) <= 0.5:
        raise ValueError(
            f"`a` must satisfy 1/4 < a <= 1/2 (Min et al. 2021, Lemma 1), got {a}: with "
            "a <= 1/4 the imbalance and orthogonality conditions of Lemma 1 fail."
        )
    s = float(h) ** (-float(a))
    return gaussian_init(key, D, m, h, s, s)


def _orthonormal_columns(key, rows, cols, dtype):
    if key is None:
        return jnp.eye(rows, cols, dtype=dtype)
    Q, R = jnp.linalg.qr(jr.normal(key, (rows, cols), dtype))
    return Q * jnp.sign(jnp.diagonal(R))[None, :]


def balanced_init(
    Theta0: Float[Array, "D m"],
    X: Float[Array, "n D"],
    h: int,
    key: PRNGKeyArray | None = None,
) -> TwoLayer:
    r"""The balanced initialisation with end-to-end matrix $\Theta_0$ (Min et al. 2021, Sec. 4 and
    App. A.1): with $M = \Theta_0^\top\Phi_1\Phi_1^\top\Theta_0$ and $Q\in\mathbb R^{h\times m}$,
    $Q^\top Q = I_m$,

    $$U_b = \Theta_0M^{-1/4}Q^\top,\qquad V_b = M^{1/4}Q^\top,$$

    so $U_bV_b^\top = \Theta_0$ and Min's imbalance $U_1^\top U_1 - V^\top V = QM^{1/2}Q^\top -
    QM^{1/2}Q^\top = 0$. (The paper prints $V_b = M^{1/4}Q$; its transpose is what has the shape
    of $V$ and gives $UV^\top = \Theta_0$.) The choice of $Q$ does not change the loss curve.

    **Arguments:**

    - `Theta0`: end-to-end matrix, shape `(D, m)`, with $\Phi_1^\top\Theta_0$ of full column rank.
    - `X`: data, shape `(n, D)` (only its row space $\Phi_1$ is used).
    - `h`: width, $\ge m$.
    - `key`: picks a random $Q$; `None` takes the first $m$ coordinate vectors.

    **Returns:** a `TwoLayer`.
    """
    Theta0 = as_float_array(Theta0, "Theta0", ndim=2)
    X = as_float_array(X, "X", ndim=2)
    _check_dims(h=h)
    D, m = Theta0.shape
    if X.shape[1] != D:
        raise ValueError(f"`Theta0` has {D} rows but `X` has {X.shape[1]} columns.")
    if h < m:
        raise ValueError(f"`h` must be >= m = {m} for a balanced initialisation, got {h}.")
    svd = data_svd(X)
    A = svd.Phi1.T @ Theta0
    evals, evecs = jnp.linalg.eigh(A.T @ A)
    # singular values of Phi1^T Theta0 relative to ||Theta0||_2 (a Theta0 in the null space of
    # X gives rounding-level values, not exact zeros)
    tol = (max(D, m) * float(jnp.finfo(evals.dtype).eps) * jnp.linalg.norm(Theta0, 2)) ** 2
    if not bool(evals[0] > tol):
        raise ValueError(
            "`Theta0` projected on the row space of `X` is rank deficient: "
            "Theta0^T Phi1 Phi1^T Theta0 is singular, so no balanced factorisation exists."
        )
    Mq = (evecs * evals[None, :] ** 0.25) @ evecs.T
    Mmq = (evecs * evals[None, :] ** -0.25) @ evecs.T
    Q = _orthonormal_columns(key, h, m, Theta0.dtype)
    return TwoLayer(Theta0 @ Mmq @ Q.T, Mq @ Q.T)


def invariant_set_init(
    key: PRNGKeyArray,
    X: Float[Array, "n D"],
    m: int,
    h: int,
    scale: float = 1.0,
    rank: int | None = None,
) -> TwoLayer:
    r"""A random initialisation inside Min's invariant set $\{VU_2^\top = 0,\ U_1U_2^\top = 0\}$
    (Min et al. 2021, Prop. 1, eq. (15)), from which the flow converges *exactly* to the
    min-norm solution $\hat\Theta$ (when the error converges, e.g. $c > 0$).

    Construction: a random orthogonal $P\in\mathbb R^{h\times h}$ is split into $P_1$ (first
    `rank` columns) and $P_2$; $U_1 = A_1P_1^\top$, $V = BP_1^\top$, $U_2 = A_2P_2^\top$ with
    Gaussian $A_1, B, A_2$ of standard deviation `scale`; then
    $VU_2^\top = BP_1^\top P_2A_2^\top = 0$ and $U_1U_2^\top = 0$. The default
    `rank = min(h, r + m)` leaves room for both $\lambda_r(\Lambda) > 0$ and
    $\lambda_m(-\Lambda) > 0$ (so $c > 0$ in Thm 1 almost surely when $h \ge r + m$).

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `X`: data, shape `(n, D)`.
    - `m`, `h`: output dimension and width.
    - `scale`: standard deviation of the Gaussian factors.
    - `rank`: number of hidden directions used by $(U_1, V)$, $1 \le$ `rank` $\le h$.

    **Returns:** a `TwoLayer`.
    """
    X = as_float_array(X, "X", ndim=2)
    _check_dims(m=m, h=h)
    _check_scale(scale, "scale")
    svd = data_svd(X)
    r, D = svd.rank, X.shape[1]
    p = min(h, r + m) if rank is None else int(rank)
    if not 1 <= p <= h:
        raise ValueError(f"`rank` must be in [1, h={h}], got {rank}.")
    kp, k1, kv, k2 = jr.split(key, 4)
    P = _orthonormal_columns(kp, h, h, X.dtype)
    P1, P2 = P[:, :p], P[:, p:]
    U1 = scale * jr.normal(k1, (r, p), X.dtype) @ P1.T
    V = scale * jr.normal(kv, (m, p), X.dtype) @ P1.T
    U2 = scale * jr.normal(k2, (D - r, h - p), X.dtype) @ P2.T
    return TwoLayer(svd.Phi1 @ U1 + svd.Phi2 @ U2, V)


def spectral_init(
    Y: Float[Array, "m n"],
    k: int,
    x0: float | Float[Array, ""] | Float[Array, " p"],
    lambda0: float | Float[Array, ""] | Float[Array, " p"],
    key: PRNGKeyArray | None = None,
) -> TwoLayer:
    r"""The asymmetric spectral initialisation (Tarmoun et al. 2021, Def. 3) with a scalar
    imbalance: with $Y = \Phi\Sigma\Psi^\top$ ($p = \min(m, n)$ components),
    $U_0 = \Phi\bar U_0G^\top$, $V_0 = \Psi\bar V_0G^\top$ where $\bar U_0, \bar V_0$ are
    rectangular diagonal with $\bar u_i\bar v_i = x_{0,i}$ and
    $\bar u_i^2 - \bar v_i^2 = \lambda_0$:
    $\bar u_i^2 = (\lambda_0 + \sqrt{\lambda_0^2 + 4x_{0,i}^2})/2$. Then $U_0V_0^\top =
    \Phi\,\mathrm{diag}(x_0)\Psi^\top$ and each component follows eq. (17) at rate
    $\sqrt{4\sigma_i^2 + \lambda_0^2}$ (`linflow.limits.spectral_factorization_solution`).

    **Arguments:**

    - `Y`: target, shape `(m, n)`.
    - `k`: width, $\ge \min(m, n)$.
    - `x0`: initial singular values $U_0V_0^\top$ along those of $Y$ (scalar or shape `(p,)`).
    - `lambda0`: the imbalance of each component (scalar, or shape `(p,)`).
    - `key`: a random orthogonal $G$ (the flow's rotation symmetry); `None` for $G = I$.

    **Returns:** a `TwoLayer` with `U` of shape `(m, k)` and `V` of shape `(n, k)`.
    """
    Y = as_float_array(Y, "Y", ndim=2)
    m, n = Y.shape
    p = min(m, n)
    _check_dims(k=k)
    if k < p:
        raise ValueError(f"`k` must be >= min(m, n) = {p} for a spectral initialisation, got {k}.")
    Phi, _, PsiT = jnp.linalg.svd(Y, full_matrices=False)
    x0 = jnp.broadcast_to(jnp.asarray(x0, Y.dtype), (p,))
    lam = jnp.broadcast_to(jnp.asarray(lambda0, Y.dtype), (p,))
    u = jnp.sqrt(0.5 * (lam + jnp.sqrt(lam**2 + 4.0 * x0**2)))
    # Each branch's argument is kept finite where the other is taken, so that neither
    # branch's derivative is inf there (which `where` would turn into NaN).
    v = jnp.where(
        u > 0,
        x0 / jnp.where(u > 0, u, 1.0),
        jnp.sqrt(jnp.where(u > 0, 1.0, jnp.maximum(-lam, 0.0))),
    )
    G = _orthonormal_columns(key, k, k, Y.dtype)
    Ub = jnp.zeros((p, k), Y.dtype).at[jnp.arange(p), jnp.arange(p)].set(u)
    Vb = jnp.zeros((p, k), Y.dtype).at[jnp.arange(p), jnp.arange(p)].set(v)
    return TwoLayer(Phi @ Ub @ G.T, PsiT.T @ Vb @ G.T)
