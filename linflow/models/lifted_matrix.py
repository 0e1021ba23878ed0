import jax.numpy as jnp
from jaxtyping import Array, Float

from .factorization import Symmetric, TwoLayer


def lifted_matrix(model: TwoLayer | Symmetric) -> Float[Array, "n n"]:
    r"""The lifted matrix $\bar M =
    \begin{bmatrix}U\\V\end{bmatrix}\begin{bmatrix}U\\V\end{bmatrix}^\top
    = \begin{bmatrix}UU^\top & UV^\top\\ VU^\top & VV^\top\end{bmatrix}$
    (Woodworth et al. 2020, Sec. 6, "Lifted symmetric factorization").

    Its off-diagonal block is the predictor $M = UV^\top$; its dynamics under the gradient flow
    depend on $\bar M$ alone, so its scale, $\alpha^2 k$ for $\mathcal N(0,\alpha^2)$ entries
    of width $k$, sets the regime. For `Symmetric(U)` it is $UU^\top$ itself.

    **Arguments:** `model`: a `TwoLayer(U, V)` (`U` of shape `(d1, k)`, `V` of shape `(d2, k)`)
    or a `Symmetric(U)`.

    **Returns:** shape `(d1 + d2, d1 + d2)` (or `(d, d)` for `Symmetric`).
    """
    if isinstance(model, Symmetric):
        return model.U @ model.U.T
    if not isinstance(model, TwoLayer):
        raise TypeError(f"`model` must be a TwoLayer or Symmetric, got {type(model).__name__}.")
    W = jnp.concatenate([model.U, model.V], axis=0)
    return W @ W.T
