r"""The limit of a 2-layer linear tensor network trained on one data point, in closed form
(Yun, Krishnan, Mobahi, ICLR 2021, Thm 6)."""

import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array


def two_layer_single_point_limit(
    data_tensor: Float[ArrayLike, "k1 k2"],
    v1: Float[ArrayLike, " k1"],
    v2: Float[ArrayLike, " k2"],
    y: float,
) -> tuple[Float[Array, " k1"], Float[Array, " k2"]]:
    r"""The limit of the gradient flow of a 2-layer linear tensor network
    $f(x) = \mathcal M(x)\circ(v_1, v_2) = v_1^\top\mathcal M(x)v_2$ on one data point
    $(x, y)$ under the square loss, in closed form (Yun et al. 2021, Thm 6):

    $$v_1^\infty = U_1(\eta_1\odot\cosh(\nu^\star s) + \eta_2\odot\sinh(\nu^\star s))
    + (I - U_1U_1^\top)v_1(0),$$

    and symmetrically for $v_2$, where $\mathcal M(x) = U_1\operatorname{diag}(s)U_2^\top$ is
    the compact SVD, $\eta_l = U_l^\top v_l(0)$, and $\nu^\star$ is the root of the
    increasing $g(\nu) = \sum_j s_j\big(\tfrac{\eta_{1j}^2+\eta_{2j}^2}2\sinh(2s_j\nu)
    + \eta_{1j}\eta_{2j}\cosh(2s_j\nu)\big) = y$ (Brent's method). Holds for any 2-layer
    architecture, small convolution filters included.

    For a `linflow.TensorNet` `model` of depth 2:
    `model.with_vectors(two_layer_single_point_limit(model.data_tensor(x), *model.vectors(), y))`
    is the limit network.

    **Arguments:**

    - `data_tensor`: $\mathcal M(x)$, shape `(k1, k2)`, non-zero.
    - `v1`, `v2`: the initial layer vectors, shapes `(k1,)` and `(k2,)`, with
      $[U_1^\top v_1]_j^2 > [U_2^\top v_2]_j^2$ for every singular direction $j$ (Thm 6's
      hypothesis; a `ValueError` otherwise).
    - `y`: the target, a finite scalar.

    **Returns:** the limit layer vectors `(v1_inf, v2_inf)`, shapes `(k1,)` and `(k2,)`.
    """
    M = np.asarray(as_float_array(data_tensor, "data_tensor", ndim=2), dtype=np.float64)
    v1 = np.asarray(as_float_array(v1, "v1", ndim=1), dtype=np.float64)
    v2 = np.asarray(as_float_array(v2, "v2", ndim=1), dtype=np.float64)
    if v1.shape != (M.shape[0],) or v2.shape != (M.shape[1],):
        raise ValueError(
            f"`v1` and `v2` must have shapes ({M.shape[0]},) and ({M.shape[1]},) to match "
            f"`data_tensor` {M.shape}, got {v1.shape} and {v2.shape}."
        )
    for name, a in (("data_tensor", M), ("v1", v1), ("v2", v2)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"`{name}` contains NaN or inf; it must be finite.")
    y = float(y)
    if not np.isfinite(y):
        raise ValueError(f"`y` must be finite, got {y}.")
    U1, s, V2t = np.linalg.svd(M, full_matrices=False)
    keep = s > s.max() * max(M.shape) * np.finfo(float).eps if s.size and s.max() > 0 else s > 0
    if not np.any(keep):
        raise ValueError("`data_tensor` M(x) is zero: the data point `x` must be non-zero.")
    U1, s, U2 = U1[:, keep], s[keep], V2t[keep].T
    e1, e2 = U1.T @ v1, U2.T @ v2
    gap = e1**2 - e2**2
    if not np.all(gap > 0):
        raise ValueError(
            "Thm 6 needs [U1^T v1]_j^2 > [U2^T v2]_j^2 for every singular direction j of "
            f"`data_tensor`; got min gap {gap.min():.3e}."
        )
    half_sum, prod = 0.5 * (e1**2 + e2**2), e1 * e2

    def g(nu):
        return np.sum(s * (half_sum * np.sinh(2 * s * nu) + prod * np.cosh(2 * s * nu))) - y

    lo, hi = -1.0, 1.0
    while g(lo) > 0:
        lo *= 2
    while g(hi) < 0:
        hi *= 2
    nu = scipy.optimize.brentq(g, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    c, sh = np.cosh(nu * s), np.sinh(nu * s)
    w1 = U1 @ (e1 * c + e2 * sh) + v1 - U1 @ e1
    w2 = U2 @ (e1 * sh + e2 * c) + v2 - U2 @ e2
    return jnp.asarray(w1), jnp.asarray(w2)
