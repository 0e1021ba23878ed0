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
from jaxtyping import Array, Float

from .._checks import as_float_array
from ..models.factorization import TwoLayer
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


def data_svd(X: Float[Array, "n D"], rtol: float | None = None) -> DataSVD:
    r"""The SVD split of $X$ into range and null space (Min et al. 2021, eq. (4)).

    The rank $r$ is decided eagerly (it fixes shapes): singular values below
    `rtol * s_max` count as zero (default `rtol = max(n, D) * eps`).

    **Arguments:**

    - `X`: shape `(n, D)`, concrete (not traced).
    - `rtol`: relative threshold for the numerical rank.

    **Returns:** a `DataSVD`.
    """
    X = as_float_array(X, "X", ndim=2)
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


def _check_model(model, X, Y=None):
    if not isinstance(model, TwoLayer):
        raise TypeError(f"`model` must be a `linflow.TwoLayer`, got {type(model).__name__}.")
    X = as_float_array(X, "X", ndim=2)
    if model.U.shape[0] != X.shape[1]:
        raise ValueError(
            f"`model.U` has {model.U.shape[0]} rows but `X` has {X.shape[1]} columns (features):"
            " they must match."
        )
    if Y is not None:
        Y = as_float_array(Y, "Y", ndim=2)
        if Y.shape[0] != X.shape[0]:
            raise ValueError(f"`X` has {X.shape[0]} rows but `Y` has {Y.shape[0]}.")
        if model.V.shape[0] != Y.shape[1]:
            raise ValueError(
                f"`model.V` has {model.V.shape[0]} rows but `Y` has {Y.shape[1]} columns "
                "(outputs): they must match."
            )
    return X, Y


def split_weights(
    model: TwoLayer, X: Float[Array, "n D"], svd: DataSVD | None = None
) -> tuple[Float[Array, "r h"], Float[Array, "D-r h"]]:
    r"""$(U_1, U_2) = (\Phi_1^\top U, \Phi_2^\top U)$ (Min et al. 2021, Sec. 2.1). Along the flow
    $U_2$ is constant, eq. (7).

    **Returns:** `(U1, U2)` with shapes `(r, h)` and `(D - r, h)`.
    """
    X, _ = _check_model(model, X)
    svd = _svd(X, svd)
    return svd.Phi1.T @ model.U, svd.Phi2.T @ model.U


def min_imbalance(
    model: TwoLayer, X: Float[Array, "n D"], svd: DataSVD | None = None
) -> Float[Array, "h h"]:
    r"""Min's imbalance $\Lambda = U_1^\top U_1 - V^\top V$ (Min et al. 2021, eq. (9)), conserved
    by the flow of $\tfrac12\|Y - XUV^\top\|_F^2$ (with $X = I$ it is `model.conserved()`).

    **Returns:** shape `(h, h)`.
    """
    U1, _ = split_weights(model, X, svd)
    return U1.T @ U1 - model.V.T @ model.V


def min_error(
    model: TwoLayer, X: Float[Array, "n D"], Y: Float[Array, "n m"], svd: DataSVD | None = None
) -> Float[Array, "r m"]:
    r"""The error $E = W^\top Y - \Sigma_x^{1/2}U_1V^\top$ (Min et al. 2021, eq. (6)); the loss is
    $L = \tfrac12\|E\|_F^2 + L^\star$, eq. (8).

    **Returns:** shape `(r, m)`.
    """
    X, Y = _check_model(model, X, Y)
    svd = _svd(X, svd)
    U1 = svd.Phi1.T @ model.U
    return svd.W.T @ Y - jnp.sqrt(svd.sigma)[:, None] * (U1 @ model.V.T)


def optimal_loss(X: Float[Array, "n D"], Y: Float[Array, "n m"], svd: DataSVD | None = None):
    r"""$L^\star = \tfrac12\|(I - WW^\top)Y\|_F^2$, the least loss of any linear predictor
    (Min et al. 2021, after eq. (8)).

    **Returns:** a scalar.
    """
    X = as_float_array(X, "X", ndim=2)
    Y = as_float_array(Y, "Y", ndim=2)
    svd = _svd(X, svd)
    R = Y - svd.W @ (svd.W.T @ Y)
    return 0.5 * jnp.sum(R**2)


def min_norm_solution(
    X: Float[Array, "n D"], Y: Float[Array, "n m"], svd: DataSVD | None = None
) -> Float[Array, "D m"]:
    r"""The minimum-norm least-squares solution $\hat\Theta = X^\top(XX^\top)^\dagger Y
    = \Phi_1\Sigma_x^{-1/2}W^\top Y$ (Min et al. 2021, eqs. (11), (13)).

    The same matrix as `linflow.limits.min_l2(X, Y)`, which computes it when `svd` is not
    given; with the paper's `DataSVD` it is read off the decomposition.

    **Returns:** shape `(D, m)`.
    """
    X = as_float_array(X, "X", ndim=2)
    Y = as_float_array(Y, "Y", ndim=(1, 2))
    if Y.shape[0] != X.shape[0]:
        raise ValueError(f"`X` has {X.shape[0]} rows but `Y` has {Y.shape[0]}.")
    if svd is None:
        return min_l2(X, Y)
    coef = (svd.W.T @ Y) / jnp.sqrt(svd.sigma).reshape((-1,) + (1,) * (Y.ndim - 1))
    return svd.Phi1 @ coef


def min_limit(
    X: Float[Array, "n D"],
    Y: Float[Array, "n m"],
    model0: TwoLayer,
    V_inf: Float[Array, "m h"],
    svd: DataSVD | None = None,
) -> Float[Array, "D m"]:
    r"""The limit decomposition $\Theta(\infty) = \hat\Theta + \Phi_2U_2(0)V(\infty)^\top$
    (Min et al. 2021, eq. (14)), valid whenever the error converges to zero (e.g. $c > 0$ in
    Thm 1). It says which part of the limit is *not* the min-norm solution: the null-space
    weights $U_2$, frozen at their initial value, times the final output layer.

    **Arguments:**

    - `X`, `Y`: data, shapes `(n, D)`, `(n, m)`.
    - `model0`: the initialisation $(U(0), V(0))$.
    - `V_inf`: the output layer at the end of the flow, shape `(m, h)`.

    **Returns:** shape `(D, m)`.
    """
    X, Y = _check_model(model0, X, Y)
    V_inf = as_float_array(V_inf, "V_inf", ndim=2)
    if V_inf.shape != model0.V.shape:
        raise ValueError(
            f"`V_inf` has shape {tuple(V_inf.shape)} but `model0.V` has shape "
            f"{tuple(model0.V.shape)}."
        )
    svd = _svd(X, svd)
    U2 = svd.Phi2.T @ model0.U
    return min_norm_solution(X, Y, svd) + svd.Phi2 @ (U2 @ V_inf.T)


def invariant_set_distance(
    model: TwoLayer, X: Float[Array, "n D"], svd: DataSVD | None = None
) -> Float[Array, ""]:
    r"""$\|[VU_2^\top;\ U_1U_2^\top]\|_F$, the distance to the invariant set of Min et al. 2021,
    Prop. 1, eq. (15), bounded at a random initialisation by Lemma 1, eq. (18).

    **Returns:** a scalar.
    """
    U1, U2 = split_weights(model, X, svd)
    return jnp.sqrt(jnp.sum((model.V @ U2.T) ** 2) + jnp.sum((U1 @ U2.T) ** 2))
