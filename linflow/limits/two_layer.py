r"""Two-layer regression $\tfrac12\|Y - XUV^\top\|_F^2$: the quantities of Min et al. 2021.

Our loss is the paper's theory loss, eq. (8): $L = \tfrac12\|Y - XUV^\top\|_F^2$, a sum over
samples, and the flow is eq. (3)/(5). Every formula below is therefore used as printed, with
no change of constants. (The paper's *experiments* run gradient descent on the averaged loss
$\tilde L = \|Y - XUV^\top\|_F^2/n = (2/n) L$: a step $\eta$ on $\tilde L$ is a step
$2\eta/n$ on $L$, so GD iterate $k$ sits at flow time $t = 2\eta k/n$.)

Notation (eq. (4)): $X = W\,[\Sigma_x^{1/2}\ 0]\,[\Phi_1\ \Phi_2]^\top$ with
$W\in\mathbb R^{n\times r}$,
$\Sigma_x = \mathrm{diag}(\lambda_1,\dots,\lambda_r)$ the non-zero eigenvalues of $XX^\top$,
$\Phi_1\in\mathbb R^{D\times r}$ and $\Phi_2\in\mathbb R^{D\times(D-r)}$; $U_1 = \Phi_1^\top U$,
$U_2 = \Phi_2^\top U$.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, check_finite
from .norms import min_l2


class DataSVD(NamedTuple):
    r"""The split of the data matrix $X = W\Sigma_x^{1/2}\Phi_1^\top$ (Min et al. 2021, eq. (4)).

    - `W`: shape `(n, r)`, orthonormal columns spanning the range of $X$.
    - `sigma`: shape `(r,)`, the diagonal of $\Sigma_x$ (squared singular values of $X$,
      decreasing).
    - `Phi1`: shape `(D, r)`, the row space of $X$.
    - `Phi2`: shape `(D, D - r)`, the null space of $X$.
    """

    W: Float[Array, "n r"]
    sigma: Float[Array, " r"]
    Phi1: Float[Array, "D r"]
    Phi2: Float[Array, "D D-r"]

    @property
    def rank(self) -> int:
        return self.sigma.shape[0]


def _matrix(x, name):
    return check_finite(as_float_array(x, name, ndim=2), name)


def data_svd(X: Float[ArrayLike, "n D"], rtol: float | None = None) -> DataSVD:
    r"""The SVD split of $X$ into range and null space (Min et al. 2021, eq. (4)).

    The rank $r$ is decided eagerly (it fixes shapes): singular values below
    `rtol * s_max` count as zero (default `rtol = max(n, D) * eps`).

    **Arguments:**

    - `X`: shape `(n, D)`, concrete (not traced).
    - `rtol`: relative threshold for the numerical rank.

    **Returns:** a `DataSVD`.
    """
    X = _matrix(X, "X")
    if X.size == 0:
        raise ValueError(f"`X` must be non-empty, got shape {tuple(X.shape)}.")
    Wfull, s, Vt = jnp.linalg.svd(X, full_matrices=True)
    if rtol is None:
        rtol = max(X.shape) * float(jnp.finfo(X.dtype).eps)
    s_np = np.asarray(s)
    r = int(np.sum(s_np > rtol * s_np.max())) if s_np.size and s_np.max() > 0 else 0
    if r == 0:
        raise ValueError("`X` is zero: the regression has no signal.")
    return DataSVD(W=Wfull[:, :r], sigma=s[:r] ** 2, Phi1=Vt[:r].T, Phi2=Vt[r:].T)


def _svd(X, svd):
    return data_svd(X) if svd is None else svd


def _check_factors(X, U=None, V=None, Y=None, names=("U", "V")):
    """Check `X` (n, D), `U` (D, h), `V` (m, h) and `Y` (n, m): ranks, shapes, finiteness."""
    X = _matrix(X, "X")
    if X.size == 0:
        raise ValueError(f"`X` must be non-empty, got shape {tuple(X.shape)}.")
    u, v = names
    if U is not None:
        U = _matrix(U, u)
        if U.shape[0] != X.shape[1]:
            raise ValueError(
                f"`{u}` has {U.shape[0]} rows but `X` has {X.shape[1]} columns (features): "
                "they must match."
            )
    if V is not None:
        V = _matrix(V, v)
        if U is not None and V.shape[1] != U.shape[1]:
            raise ValueError(
                f"`{v}` has {V.shape[1]} columns but `{u}` has {U.shape[1]}: both are the width h."
            )
    if Y is not None:
        Y = _matrix(Y, "Y")
        if Y.shape[0] != X.shape[0]:
            raise ValueError(f"`X` has {X.shape[0]} rows but `Y` has {Y.shape[0]}.")
        if V is not None and V.shape[0] != Y.shape[1]:
            raise ValueError(
                f"`{v}` has {V.shape[0]} rows but `Y` has {Y.shape[1]} columns (outputs): "
                "they must match."
            )
    return X, U, V, Y


def split_weights(
    U: Float[ArrayLike, "D h"], X: Float[ArrayLike, "n D"], svd: DataSVD | None = None
) -> tuple[Float[Array, "r h"], Float[Array, "D-r h"]]:
    r"""$(U_1, U_2) = (\Phi_1^\top U, \Phi_2^\top U)$ (Min et al. 2021, Sec. 2.1). Along the flow
    $U_2$ is constant, eq. (7).

    **Arguments:**

    - `U`: the first layer, shape `(D, h)` (`TwoLayer.U`).
    - `X`: data, shape `(n, D)`.
    - `svd`: `data_svd(X)`, computed when not given.

    **Returns:** `(U1, U2)` with shapes `(r, h)` and `(D - r, h)`.
    """
    X, U, _, _ = _check_factors(X, U)
    svd = _svd(X, svd)
    return svd.Phi1.T @ U, svd.Phi2.T @ U


def min_imbalance(
    U: Float[ArrayLike, "D h"],
    V: Float[ArrayLike, "m h"],
    X: Float[ArrayLike, "n D"],
    svd: DataSVD | None = None,
) -> Float[Array, "h h"]:
    r"""Min's imbalance $\Lambda = U_1^\top U_1 - V^\top V$ (Min et al. 2021, eq. (9)), conserved
    by the flow of $\tfrac12\|Y - XUV^\top\|_F^2$ (with $X = I$ it is `TwoLayer.conserved()`).

    **Arguments:**

    - `U`, `V`: the layers of $\Theta = UV^\top$, shapes `(D, h)` and `(m, h)`.
    - `X`: data, shape `(n, D)`; `svd`: `data_svd(X)`, computed when not given.

    **Returns:** shape `(h, h)`.
    """
    X, U, V, _ = _check_factors(X, U, V)
    U1, _ = split_weights(U, X, svd)
    return U1.T @ U1 - V.T @ V


def min_error(
    U: Float[ArrayLike, "D h"],
    V: Float[ArrayLike, "m h"],
    X: Float[ArrayLike, "n D"],
    Y: Float[ArrayLike, "n m"],
    svd: DataSVD | None = None,
) -> Float[Array, "r m"]:
    r"""The error $E = W^\top Y - \Sigma_x^{1/2}U_1V^\top$ (Min et al. 2021, eq. (6)); the loss is
    $L = \tfrac12\|E\|_F^2 + L^\star$, eq. (8).

    **Arguments:**

    - `U`, `V`: the layers, shapes `(D, h)` and `(m, h)`.
    - `X`, `Y`: data, shapes `(n, D)` and `(n, m)`; `svd`: `data_svd(X)`, computed when not
      given.

    **Returns:** shape `(r, m)`.
    """
    X, U, V, Y = _check_factors(X, U, V, Y)
    svd = _svd(X, svd)
    U1 = svd.Phi1.T @ U
    return svd.W.T @ Y - jnp.sqrt(svd.sigma)[:, None] * (U1 @ V.T)


def optimal_loss(X: Float[Array, "n D"], Y: Float[Array, "n m"], svd: DataSVD | None = None):
    r"""$L^\star = \tfrac12\|(I - WW^\top)Y\|_F^2$, the least loss of any linear predictor
    (Min et al. 2021, after eq. (8)).

    **Returns:** a scalar.
    """
    X, _, _, Y = _check_factors(X, Y=Y)
    svd = _svd(X, svd)
    R = Y - svd.W @ (svd.W.T @ Y)
    return 0.5 * jnp.sum(R**2)


def min_norm_solution(
    X: Float[ArrayLike, "n D"], Y: Float[ArrayLike, "n m"], svd: DataSVD | None = None
) -> Float[Array, "D m"]:
    r"""The minimum-norm least-squares solution $\hat\Theta = X^\top(XX^\top)^\dagger Y
    = \Phi_1\Sigma_x^{-1/2}W^\top Y$ (Min et al. 2021, eqs. (11), (13)).

    The same matrix as `linflow.limits.min_l2(X, Y)`, which computes it when `svd` is not
    given; with the paper's `DataSVD` it is read off the decomposition.

    **Returns:** shape `(D, m)`.
    """
    X = _matrix(X, "X")
    Y = check_finite(as_float_array(Y, "Y", ndim=(1, 2)), "Y")
    if Y.shape[0] != X.shape[0]:
        raise ValueError(f"`X` has {X.shape[0]} rows but `Y` has {Y.shape[0]}.")
    if svd is None:
        return min_l2(X, Y)
    coef = (svd.W.T @ Y) / jnp.sqrt(svd.sigma).reshape((-1,) + (1,) * (Y.ndim - 1))
    return svd.Phi1 @ coef


def min_limit(
    X: Float[ArrayLike, "n D"],
    Y: Float[ArrayLike, "n m"],
    U0: Float[ArrayLike, "D h"],
    V_inf: Float[ArrayLike, "m h"],
    svd: DataSVD | None = None,
) -> Float[Array, "D m"]:
    r"""The limit decomposition $\Theta(\infty) = \hat\Theta + \Phi_2U_2(0)V(\infty)^\top$
    (Min et al. 2021, eq. (14)), valid whenever the error converges to zero (e.g. $c > 0$ in
    Thm 1). It says which part of the limit is *not* the min-norm solution: the null-space
    weights $U_2$, frozen at their initial value, times the final output layer.

    **Arguments:**

    - `X`, `Y`: data, shapes `(n, D)`, `(n, m)`.
    - `U0`: the initial first layer $U(0)$, shape `(D, h)` (only its null-space part
      $U_2(0)$ enters).
    - `V_inf`: the output layer at the end of the flow, shape `(m, h)`.
    - `svd`: `data_svd(X)`, computed when not given.

    **Returns:** shape `(D, m)`.
    """
    X, U0, V_inf, Y = _check_factors(X, U0, V_inf, Y, names=("U0", "V_inf"))
    svd = _svd(X, svd)
    U2 = svd.Phi2.T @ U0
    return min_norm_solution(X, Y, svd) + svd.Phi2 @ (U2 @ V_inf.T)


def invariant_set_distance(
    U: Float[ArrayLike, "D h"],
    V: Float[ArrayLike, "m h"],
    X: Float[ArrayLike, "n D"],
    svd: DataSVD | None = None,
) -> Float[Array, ""]:
    r"""$\|[VU_2^\top;\ U_1U_2^\top]\|_F$, the distance to the invariant set of Min et al. 2021,
    Prop. 1, eq. (15), bounded at a random initialisation by Lemma 1, eq. (18).

    **Arguments:**

    - `U`, `V`: the layers, shapes `(D, h)` and `(m, h)`.
    - `X`: data, shape `(n, D)`; `svd`: `data_svd(X)`, computed when not given.

    **Returns:** a scalar.
    """
    X, U, V, _ = _check_factors(X, U, V)
    U1, U2 = split_weights(U, X, svd)
    return jnp.sqrt(jnp.sum((V @ U2.T) ** 2) + jnp.sum((U1 @ U2.T) ** 2))
