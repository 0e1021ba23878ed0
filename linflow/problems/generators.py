"""Random problem instances, each drawn from an explicit PRNG key."""

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .regression import Regression


def sparse_regression(
    key: PRNGKeyArray,
    n: int,
    d: int,
    sparsity: int,
    *,
    noise: float = 0.0,
    dtype=None,
) -> tuple[Regression, Float[Array, " d"]]:
    r"""A planted sparse regression instance (Woodworth et al. 2020, Fig. 1).

    $x_i \sim \mathcal N(0, I_d)$, $\beta^\star$ has `sparsity` = $r^\star$ nonzero entries equal
    to $1/\sqrt{r^\star}$ (on the first $r^\star$ coordinates), and $y = X\beta^\star + \sigma\xi$,
    $\xi\sim\mathcal N(0, I_n)$.

    **Arguments:**

    - `key`: PRNG key.
    - `n`, `d`: samples and features.
    - `sparsity`: $r^\star$, $1 \le r^\star \le d$.
    - `noise`: $\sigma \ge 0$.

    **Returns:** `(problem, beta_star)`.
    """
    if not (1 <= sparsity <= d):
        raise ValueError(f"`sparsity` must be in [1, d={d}], got {sparsity}.")
    if n < 1 or d < 1:
        raise ValueError(f"`n` and `d` must be >= 1, got n={n}, d={d}.")
    if noise < 0:
        raise ValueError(f"`noise` must be >= 0, got {noise}.")
    dtype = dtype or jnp.result_type(float)
    kx, kn = jr.split(key)
    X = jr.normal(kx, (n, d), dtype)
    beta = jnp.zeros(d, dtype).at[:sparsity].set(1.0 / jnp.sqrt(sparsity))
    y = X @ beta + noise * jr.normal(kn, (n,), dtype)
    return Regression(X, y), beta
