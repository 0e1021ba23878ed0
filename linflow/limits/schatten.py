r"""The Schatten-$Q_\mu$ limit of wide factorisations with commuting measurements
(Woodworth et al. 2020, Thm 4): the hypentropy $Q_\mu$ on the joint eigen-coordinates of the
measurements, solved by the limits layer's one dual solver (`dual_minimise`)."""

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array
from .dual import dual_minimise
from .hypentropy import Hypentropy, hypentropy


def schatten_q(M: ArrayLike, mu: float) -> float:
    r"""$Q_\mu(\operatorname{spectrum}(M)) = \mu^2\sum_i q(\sigma_i/\mu^2)$ with
    $q(z) = 2 - \sqrt{4+z^2} + z\operatorname{arcsinh}(z/2)$ over the singular values $\sigma_i$
    (Woodworth et al. 2020, Thm 4; $q$ is even, so eigenvalues of a symmetric $M$ give the same)."""
    s = np.linalg.svd(np.asarray(M, np.float64), compute_uv=False)
    return float(hypentropy(jnp.asarray(s), mu))


def joint_eigenbasis(
    A: ArrayLike, *, atol: float = 1e-9
) -> tuple[Float[Array, "d d"], Float[Array, "N d"]]:
    r"""An orthonormal $Q$ with $A_n = Q\operatorname{diag}(a_n)Q^\top$ for every $n$, for
    symmetric, pairwise commuting $A_n$.

    **Returns:** `(Q, a)`, `a` of shape `(N, d)`.

    **Raises:** `ValueError` when some $A_n$ is not symmetric or the $A_n$ do not commute.
    """
    A = np.asarray(A, np.float64)
    if A.ndim != 3 or A.shape[1] != A.shape[2]:
        raise ValueError(f"`A` must have shape (N, d, d), got {A.shape}.")
    scale = max(np.abs(A).max(), 1e-300)
    if np.abs(A - A.transpose(0, 2, 1)).max() > atol * scale:
        raise ValueError("`A` must hold symmetric matrices.")
    # A generic combination separates the joint eigenspaces (ties have measure zero).
    c = np.cos(1.0 + np.arange(A.shape[0]) * np.sqrt(2.0))
    _, Q = np.linalg.eigh(np.einsum("n,nij->ij", c, A))
    D = np.einsum("ki,nkl,lj->nij", Q, A, Q)
    a = np.diagonal(D, axis1=1, axis2=2)
    off = D - a[:, :, None] * np.eye(A.shape[1])[None]
    if np.abs(off).max() > 1e-7 * scale:
        raise ValueError(
            "`A` must hold commuting (simultaneously diagonalisable) matrices; "
            f"after joint diagonalisation off-diagonal entries reach {np.abs(off).max():.2e}."
        )
    return jnp.asarray(Q), jnp.asarray(np.ascontiguousarray(a))


def qmu_minimiser(
    X: Float[ArrayLike, "N d"],
    y: Float[ArrayLike, " N"],
    mu: float | Float[ArrayLike, ""],
    *,
    rtol: float = 1e-8,
    throw: bool = True,
) -> Float[Array, " d"]:
    r"""$\arg\min_\delta Q_\mu(\delta)$ s.t. $X\delta = y$, with $Q_\mu(\delta) = \mu^2\sum
    q(\delta_i/\mu^2)$ (Woodworth et al. 2020, Thm 4's diagonal problem in eigen-coordinates).

    $Q_\mu$ is the depth-2 hypentropy at $\alpha = \mu$ (Thm 1), so this is
    `dual_minimise(Hypentropy(mu, 2), X, y)`: $\delta = 2\mu^2\sinh(X^\top\nu)$.

    **Arguments:** `X` shape `(N, d)`; `y` shape `(N,)`; `mu` $>0$; `rtol`, `throw` as for
    `dual_minimise`.

    **Returns:** $\delta$, shape `(d,)`.
    """
    X = as_float_array(X, "X", ndim=2)
    return dual_minimise(Hypentropy(mu, 2), X, y, rtol=rtol, throw=throw).value


def schatten_q_minimiser(A: ArrayLike, y: ArrayLike, mu: float) -> Float[Array, "d d"]:
    r"""$\arg\min_M Q_\mu(\operatorname{spectrum}(M))$ s.t. $\langle A_n, M\rangle = y_n$ for
    symmetric commuting $A_n$ (Woodworth et al. 2020, Thm 4, the limit of `TwoLayer(U, V)` of
    width $k\to\infty$ with $\mathcal N(0,\alpha^2)$ entries and $\mu^2 = \tfrac12\alpha^2 k
    = \tfrac12\sigma\sqrt k$).

    With $A_n = Q\operatorname{diag}(a_n)Q^\top$ the minimiser is
    $Q\operatorname{diag}(\delta)Q^\top$,
    $\delta = \arg\min Q_\mu$ s.t. $[a_n]\,\delta = y$ (App. G).

    **Arguments:** `A` shape `(N, d, d)`; `y` shape `(N,)`; `mu` $>0$.

    **Returns:** shape `(d, d)`.
    """
    Q, a = joint_eigenbasis(A)
    delta = qmu_minimiser(a, y, mu)
    return (Q * delta[None, :]) @ Q.T
