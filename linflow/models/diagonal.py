"""Diagonal linear networks (Woodworth et al. 2020, Sec. 4 and Sec. 5)."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import as_float_array, check_count, check_depth, check_positive
from ..limits.diagonal_paths import DeepDiagonalPotential, ExponentialPotential, log_square
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

    def potential(self) -> ExponentialPotential | DeepDiagonalPotential:
        r"""The potential of this initialisation's flow (`linflow.limits.diagonal_paths`):
        $\beta = w_+(0)^2e^{4s} - w_-(0)^2e^{-4s}$ at depth 2, and the depth-$D$ path
        $\sigma_+^D u^{-p} - \sigma_-^D v^{-p}$ otherwise. For `unbiased(d, alpha, depth, w0)`
        its minimiser is `hypentropy_minimiser(X, y, alpha, depth=depth, w0=w0)` (Woodworth et
        al. 2020, Thm 1, Thm 3)."""
        if self.depth == 2:
            return ExponentialPotential(
                log_a=log_square(self.w_plus), log_b=log_square(self.w_minus), rate=4
            )
        return DeepDiagonalPotential(self.w_plus, self.w_minus, self.depth)

    def at_dual_point(self, s: Float[Array, " d"]) -> "DiagonalNet":
        r"""$w_\pm = w_\pm(0)e^{\pm2s}$ at depth 2; at depth $D \ge 3$
        $w_\pm = \sigma_\pm(|w_\pm(0)|^{2-D} \mp D(D-2)\sigma_\pm^D s)^{-1/(D-2)}$."""
        D = self.depth
        wp0, wm0 = self.w_plus, self.w_minus
        if D == 2:
            return DiagonalNet(wp0 * jnp.exp(2 * s), wm0 * jnp.exp(-2 * s), 2)

        def branch(w0, sgn):
            sigma = jnp.sign(w0)
            a0 = jnp.abs(jnp.where(w0 == 0, 1.0, w0)) ** (2 - D)
            base = a0 - sgn * D * (D - 2) * sigma**D * s
            return jnp.where(w0 == 0, 0.0, sigma * base ** (-1.0 / (D - 2)))

        return DiagonalNet(branch(wp0, 1.0), branch(wm0, -1.0), D)

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

    def potential(self) -> ExponentialPotential:
        r"""The potential of this initialisation's flow: $\beta = a e^{2s} - b e^{-2s}$ with
        $a = (u_0+v_0)^2/4$, $b = (u_0-v_0)^2/4$ (`linflow.limits.diagonal_paths`), started
        anywhere ($u_0 v_0 \ne 0$ included)."""
        quarter = 2 * jnp.log(2.0)  # a, b = (u0 +- v0)^2 / 4, in log space
        return ExponentialPotential(
            log_a=log_square(self.u + self.v) - quarter,
            log_b=log_square(self.u - self.v) - quarter,
            rate=2,
        )

    def at_dual_point(self, s: Float[Array, " d"]) -> "HadamardNet":
        r"""$u \pm v = (u_0 \pm v_0)e^{\pm s}$."""
        p = (self.u + self.v) * jnp.exp(s)
        m = (self.u - self.v) * jnp.exp(-s)
        return HadamardNet(0.5 * (p + m), 0.5 * (p - m))

    def imbalances(self) -> dict[str, tuple[Array, Array]]:
        return {"u^2-v^2": (self.u**2, self.v**2)}
