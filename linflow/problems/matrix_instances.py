"""Random matrix sensing and completion instances (Woodworth et al. 2020, Sec. 6 and App. A),
each drawn from an explicit PRNG key."""

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from .completion import MatrixCompletion
from .sensing import MatrixSensing


def _positive_int(x, name):
    if int(x) != x or int(x) < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {x!r}.")
    return int(x)


def _shape(shape):
    try:
        d1, d2 = (int(s) for s in shape)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`shape` must be a pair of positive ints, got {shape!r}.") from e
    if d1 < 1 or d2 < 1:
        raise ValueError(f"`shape` must be a pair of positive ints, got {shape!r}.")
    return d1, d2


def low_rank_matrix(key: PRNGKeyArray, shape, rank: int, dtype=None) -> Float[Array, "d1 d2"]:
    r"""$Y^\star = U^\star V^{\star\top}$ with $U^\star\in\mathbb R^{d_1\times r}$,
    $V^\star\in\mathbb R^{d_2\times r}$ standard Gaussian (Woodworth et al. 2020, Fig. 5: rank 1).

    **Arguments:** `key`; `shape` = `(d1, d2)`; `rank` $r\ge1$.

    **Returns:** the matrix, shape `(d1, d2)`.
    """
    d1, d2 = _shape(shape)
    rank = _positive_int(rank, "rank")
    if rank > min(d1, d2):
        raise ValueError(f"`rank` must be <= min(shape) = {min(d1, d2)}, got {rank}.")
    dtype = dtype or jnp.result_type(float)
    ku, kv = jr.split(key)
    return jr.normal(ku, (d1, rank), dtype) @ jr.normal(kv, (d2, rank), dtype).T


def matrix_completion(
    key: PRNGKeyArray, shape, rank: int, n_observed: int, dtype=None
) -> tuple[MatrixCompletion, Float[Array, "d1 d2"]]:
    r"""A rank-$r$ ground truth $Y^\star$ (`low_rank_matrix`) observed on `n_observed` distinct
    entries drawn uniformly without replacement (Woodworth et al. 2020, App. A, Fig. 5:
    $d = 10$, rank 1, $N = 60$).

    **Returns:** `(problem, Y_star)`.
    """
    d1, d2 = _shape(shape)
    n_observed = _positive_int(n_observed, "n_observed")
    if n_observed > d1 * d2:
        raise ValueError(f"`n_observed` must be <= d1*d2 = {d1 * d2}, got {n_observed}.")
    kY, kO = jr.split(key)
    Y = low_rank_matrix(kY, (d1, d2), rank, dtype)
    flat = jr.choice(kO, d1 * d2, (n_observed,), replace=False)
    rows, cols = flat // d2, flat % d2
    return MatrixCompletion(rows, cols, Y[rows, cols], (d1, d2)), Y


def commuting_sensing(
    key: PRNGKeyArray, d: int, n_measurements: int, rank: int, dtype=None
) -> tuple[MatrixSensing, Float[Array, "d d"], Float[Array, "d d"]]:
    r"""Commuting (simultaneously diagonalisable, symmetric) measurements
    $A_n = Q\operatorname{diag}(a_n)Q^\top$, $a_n\sim\mathcal N(0, I_d)$, $Q$ a random
    orthogonal matrix, and a rank-$r$ symmetric ground truth $M^\star =
    Q\operatorname{diag}(m)Q^\top$
    with $r$ nonzero Gaussian eigenvalues (Woodworth et al. 2020, Thm 4 setting).

    **Returns:** `(problem, M_star, Q)`.
    """
    d = _positive_int(d, "d")
    n = _positive_int(n_measurements, "n_measurements")
    rank = _positive_int(rank, "rank")
    if rank > d:
        raise ValueError(f"`rank` must be <= d = {d}, got {rank}.")
    dtype = dtype or jnp.result_type(float)
    kq, ka, km = jr.split(key, 3)
    Q, R = jnp.linalg.qr(jr.normal(kq, (d, d), dtype))
    Q = Q * jnp.sign(jnp.diag(R))[None, :]
    a = jr.normal(ka, (n, d), dtype)
    A = jnp.einsum("ik,nk,jk->nij", Q, a, Q)
    m = jnp.zeros(d, dtype).at[:rank].set(jr.normal(km, (rank,), dtype))
    M = (Q * m[None, :]) @ Q.T
    y = a @ m
    return MatrixSensing(A, y), M, Q


def gaussian_sensing(
    key: PRNGKeyArray, shape, n_measurements: int, rank: int, dtype=None
) -> tuple[MatrixSensing, Float[Array, "d1 d2"]]:
    r"""Gaussian measurements $A_n$ with i.i.d. $\mathcal N(0, 1/(d_1d_2))$ entries (unit expected
    Frobenius norm) of a rank-$r$ ground truth (`low_rank_matrix`).

    **Returns:** `(problem, Y_star)`.
    """
    d1, d2 = _shape(shape)
    n = _positive_int(n_measurements, "n_measurements")
    dtype = dtype or jnp.result_type(float)
    kA, kY = jr.split(key)
    A = jr.normal(kA, (n, d1, d2), dtype) / jnp.sqrt(d1 * d2)
    Y = low_rank_matrix(kY, (d1, d2), rank, dtype)
    return MatrixSensing(A, jnp.einsum("nij,ij->n", A, Y)), Y
