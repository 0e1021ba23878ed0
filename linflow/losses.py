"""Pointwise losses, as pure functions of residuals or margins.

All losses are *sums* over samples (not means): the gradient flow of a mean loss is the
same flow run at a different clock, so limits are unchanged while times differ by `n`.
"""

import jax.numpy as jnp
from jaxtyping import Array, Float


def square(residual: Float[Array, "..."]) -> Float[Array, ""]:
    r"""$\tfrac12 \sum r^2$ for a residual $r = \hat y - y$ of any shape."""
    return 0.5 * jnp.sum(residual**2)


def exponential(margins: Float[Array, " n"]) -> Float[Array, ""]:
    r"""$\sum_i e^{-m_i}$ for margins $m_i = y_i f(x_i)$ (Yun et al. 2021, Sec. 2)."""
    return jnp.sum(jnp.exp(-margins))


def logistic(margins: Float[Array, " n"]) -> Float[Array, ""]:
    r"""$\sum_i \log(1 + e^{-m_i})$, computed without overflow."""
    return jnp.sum(jnp.logaddexp(0.0, -margins))
