"""Diagonal linear networks (Woodworth et al. 2020, Sec. 4 and Sec. 5)."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import as_float_array, check_count, check_depth, check_positive
from ._base import AbstractModel


def _scale(d: int, alpha, w0, name: str = "w0"):
    alpha = check_positive(alpha, "alpha")
    alpha = jnp.asarray(alpha, dtype=jnp.result_type(float))
    if w0 is None:
        w0 = jnp.ones(d, alpha.dtype)
    else:
        w0 = as_float_array(w0, name, ndim=1)
        if w0.shape != (d,):
            raise ValueError(f"`{name}` must have shape ({d},), got {tuple(w0.shape)}.")
        w0 = check_positive(w0, name)
    return alpha * w0


class DiagonalNet(AbstractModel):
    r"""A depth-$D$ diagonal network $\beta = w_+^D - w_-^D$ (Woodworth et al. 2020, Sec. 4-5).

    The gradient flow of any loss of $\beta$ conserves, coordinate-wise,
    $w_+ w_-$ for $D = 2$ and $w_+^{2-D} + w_-^{2-D}$ for $D \ge 3$ (both follow from
    $\dot w_\pm = \mp D w_\pm^{D-1} g$ with the same $g = \nabla_\beta L$).

    **Fields:**

    - `w_plus`, `w_minus`: shape `(d,)`.
    - `depth`: $D \ge 2$ (static).
    """

    w_plus: Float[Array, " d"]
    w_minus: Float[Array, " d"]
    depth: int = eqx.field(static=True, default=2)

    def __check_init__(self):
        check_depth(self.depth)
        if self.w_plus.shape != self.w_minus.shape or self.w_plus.ndim != 1:
            raise ValueError(
                "`w_plus` and `w_minus` must be vectors of the same shape, got "
                f"{tuple(self.w_plus.shape)} and {tuple(self.w_minus.shape)}."
            )

    @classmethod
    def unbiased(cls, d: int, alpha, depth: int = 2, w0=None) -> "DiagonalNet":
        r"""The unbiased initialisation $w_+ = w_- = \alpha w_0$, so $\beta(0) = 0$.

        **Arguments:**

        - `d`: number of coordinates.
        - `alpha`: scale $\alpha > 0$.
        - `depth`: $D \ge 2$.
        - `w0`: positive shape vector of size `d` (default: all ones).
        """
        d, depth = check_count(d, "d"), check_depth(depth)
        w = _scale(d, alpha, w0)
        return cls(w, w, depth)

    @classmethod
    def gaussian(cls, key: PRNGKeyArray, d: int, scale: float, depth: int = 2) -> "DiagonalNet":
        """A random initialisation with $w_\\pm \\sim |\\mathcal N(0, s^2)|$ entrywise."""
        k1, k2 = jr.split(key)
        dtype = jnp.result_type(float)
        return cls(
            scale * jnp.abs(jr.normal(k1, (d,), dtype)),
            scale * jnp.abs(jr.normal(k2, (d,), dtype)),
            depth,
        )

    def predictor(self) -> Float[Array, " d"]:
        return self.w_plus**self.depth - self.w_minus**self.depth

    def predictor_magnitude(self) -> Float[Array, " d"]:
        return jnp.abs(self.w_plus) ** self.depth + jnp.abs(self.w_minus) ** self.depth

    def conserved(self) -> dict[str, Array]:
        if self.depth == 2:
            return {"w_plus*w_minus": self.w_plus * self.w_minus}
        e = 2 - self.depth
        return {"w_plus^(2-D)+w_minus^(2-D)": self.w_plus**e + self.w_minus**e}


class HadamardNet(AbstractModel):
    r"""The two-factor parametrisation $\beta = u \odot v$ (Woodworth et al. 2020, Sec. 4).

    With $u = w_+ + w_-$, $v = w_+ - w_-$ it is the depth-2 `DiagonalNet` run at half speed
    ($u\odot v = w_+^2 - w_-^2$). The flow conserves $u^2 - v^2$ coordinate-wise.
    """

    u: Float[Array, " d"]
    v: Float[Array, " d"]

    def __check_init__(self):
        if self.u.shape != self.v.shape or self.u.ndim != 1:
            raise ValueError(
                "`u` and `v` must be vectors of the same shape, got "
                f"{tuple(self.u.shape)} and {tuple(self.v.shape)}."
            )

    @classmethod
    def unbiased(cls, d: int, alpha, w0=None) -> "HadamardNet":
        r"""$u = 2\alpha w_0$, $v = 0$: the image of `DiagonalNet.unbiased` (depth 2) under
        $u = w_+ + w_-$, $v = w_+ - w_-$. Then $u\odot v = w_+^2 - w_-^2$ and the Hadamard flow
        is the diagonal net's flow at half speed: $\beta_{u\odot v}(2t) = \beta_D(t)$."""
        d = check_count(d, "d")
        w = _scale(d, alpha, w0)
        return cls(2.0 * w, jnp.zeros_like(w))

    def predictor(self) -> Float[Array, " d"]:
        return self.u * self.v

    def imbalances(self) -> dict[str, tuple[Array, Array]]:
        return {"u^2-v^2": (self.u**2, self.v**2)}
