"""The DFT matrix and Yun et al.'s even vectors: pure array functions shared by the tensor
models (`linflow.models.tensor`) and their limits (`linflow.limits`)."""

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array


def dft_matrix(d: int, dtype=jnp.complex128) -> Array:
    r"""The unitary DFT matrix $[F]_{jk} = d^{-1/2}\exp(-2\pi i (j-1)(k-1)/d)$ (Yun et al.,
    Cor. 3). $F$ is symmetric and $F^{-1} = F^*$ (entrywise conjugate)."""
    j = np.arange(d)
    return jnp.asarray(np.exp(-2j * np.pi * np.outer(j, j) / d) / np.sqrt(d), dtype)


def is_even(v) -> bool:
    r"""Whether a vector is even in Yun et al.'s sense (App. A.4): $[v]_{j+2} = [v]_{d-j}$,
    i.e. $v_{(d-i)\bmod d} = v_i$ for 0-based $i$."""
    v = np.asarray(v)
    return bool(np.allclose(v, np.roll(v[::-1], 1), rtol=1e-12, atol=1e-14 * np.abs(v).max()))
