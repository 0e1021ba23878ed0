import jax.numpy as jnp
from jaxtyping import Array, Float

from .. import losses
from .._checks import as_float_array, check_finite
from ._base import AbstractProblem


class Factorization(AbstractProblem):
    r"""Matrix factorisation $L(\Theta) = \tfrac12\|Y - \Theta\|_F^2$ (a sum, not a mean).

    With `linflow.TwoLayer(U, V)` this is the asymmetric problem
    $\tfrac12\|Y - UV^\top\|_F^2$ of Tarmoun et al. 2021, eq. (11); with `linflow.Symmetric(U)`
    it is the symmetric problem $\tfrac12\|Y - UU^\top\|_F^2$, eq. (3), which needs a square
    $Y$. For a symmetric model only the symmetric part of $Y$ drives the flow.

    The best linear predictor is $\Theta = Y$ with $L^\star = 0$, so `relative_excess` is
    $\|Y - \Theta\|_F / \|Y\|_F$. A model that cannot reach $Y$ (a symmetric factorisation of
    an indefinite or non-symmetric $Y$, a width below the rank of $Y$) ends at a stationary
    point with a positive loss, its reachable optimum (`best_of_rank`, `best_psd_of_rank`);
    the default stop ends it there.

    **Arguments:**

    - `Y`: the target matrix, shape `(m, n)`.
    """

    Y: Float[Array, "m n"]

    def __init__(self, Y):
        Y = as_float_array(Y, "Y", ndim=2)
        if Y.shape[0] == 0 or Y.shape[1] == 0:
            raise ValueError(f"`Y` must be non-empty, got shape {tuple(Y.shape)}.")
        self.Y = check_finite(Y, "Y")

    def predictor_shape(self) -> tuple[int, ...]:
        return tuple(self.Y.shape)

    def loss(self, predictor):
        return losses.square(predictor - self.Y)

    def reference_loss(self):
        return losses.square(self.Y)

    def relative_excess(self, predictor):
        r"""$\|\Theta - Y\|_F / \|Y\|_F$, computed without squaring (reaches $10^{-15}$)."""
        num = jnp.sqrt(jnp.sum((predictor - self.Y) ** 2))
        den = jnp.sqrt(jnp.sum(self.Y**2))
        return num / jnp.where(den > 0, den, 1.0)

    def best_of_rank(self, rank: int) -> Float[Array, "m n"]:
        r"""Eckart–Young: $\sum_{i \le k} \sigma_i u_i v_i^\top$ from the SVD of $Y$,
        $k$ = `rank` (unique when $\sigma_k > \sigma_{k+1}$; the limit of the flow of
        `TwoLayer(U, V)` of width $k$ from a generic start, Tarmoun et al. 2021, Sec. 4)."""
        u, s, vt = jnp.linalg.svd(self.Y, full_matrices=False)
        keep = jnp.arange(s.shape[0]) < rank
        return (u * jnp.where(keep, s, 0.0)[None, :]) @ vt

    def best_psd_of_rank(self, rank: int) -> Float[Array, "n n"]:
        r"""The best PSD approximation of rank $\le k$ of $Y$: the $k$ largest positive
        eigenpairs of its symmetric part $(Y + Y^\top)/2$ (the skew part is orthogonal to
        every symmetric predictor). With $k \ge n$ it is the projection on the PSD cone, the
        limit of `Symmetric(U)` (Tarmoun et al. 2021, Cor. 1 / Prop. 2)."""
        sym = 0.5 * (self.Y + self.Y.T)
        lam, P = jnp.linalg.eigh(sym)  # ascending
        n = lam.shape[0]
        keep = (jnp.arange(n) >= n - rank) & (lam > 0)
        return (P * jnp.where(keep, lam, 0.0)[None, :]) @ P.T

    def time_scale(self):
        r"""$1/\|Y\|_F$: once learned, a component of singular value $\sigma$ relaxes at a rate
        of order $\sigma$ (Tarmoun et al. 2021, eq. (9) and (23))."""
        return 1.0 / jnp.sqrt(jnp.sum(self.Y**2)).clip(min=1e-300)

    def check_predictor(self, predictor, name: str = "model") -> None:
        shape = tuple(predictor.shape)
        want = self.predictor_shape()
        if shape != want:
            hint = ""
            if len(shape) == 2 and shape[0] == shape[1] and want[0] != want[1]:
                hint = (
                    " A symmetric factorisation UU^T has a square predictor: it needs a square "
                    "target `Y`; use `linflow.TwoLayer(U, V)` for a rectangular one."
                )
            raise ValueError(
                f"`{name}` has a predictor of shape {shape}, but `Factorization` expects the "
                f"shape of `Y`, {want}.{hint}"
            )
