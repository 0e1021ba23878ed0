import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import as_float_array, check_finite
from ._base import AbstractProblem


class MatrixCompletion(AbstractProblem):
    r"""Matrix completion $L(M) = \tfrac12\sum_{(i,j)\in\Omega}(M_{ij} - v_{ij})^2$ over the
    observed entries $\Omega$ (Woodworth et al. 2020, Sec. 6, "Low-Rank Matrix Completion":
    measurements $X_n = e_{i_n}e_{j_n}^\top$).

    Distinct entries can always be fitted exactly, so $L^\star = 0$.

    **Arguments:**

    - `rows`, `cols`: integer indices of the observed entries, shape `(N,)`, no duplicate pairs.
    - `values`: the observed values, shape `(N,)`.
    - `shape`: `(d1, d2)`, the shape of the completed matrix.
    """

    rows: Int[Array, " N"]
    cols: Int[Array, " N"]
    values: Float[Array, " N"]
    shape: tuple[int, int] = eqx.field(static=True)

    def __init__(self, rows, cols, values, shape):
        try:
            shape = tuple(int(s) for s in shape)
        except TypeError as e:
            raise TypeError(f"`shape` must be a pair of ints (d1, d2), got {shape!r}.") from e
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"`shape` must be a pair of positive ints (d1, d2), got {shape}.")
        r = np.asarray(rows)
        c = np.asarray(cols)
        for name, idx, size in (("rows", r, shape[0]), ("cols", c, shape[1])):
            if idx.ndim != 1:
                raise ValueError(f"`{name}` must be a 1-D array of indices, got shape {idx.shape}.")
            if idx.size and not np.issubdtype(idx.dtype, np.integer):
                if not np.all(idx == np.round(idx)):
                    raise ValueError(f"`{name}` must hold integer indices.")
            if idx.size and (idx.min() < 0 or idx.max() >= size):
                raise ValueError(
                    f"`{name}` holds indices outside [0, {size}) for `shape`={shape}: "
                    f"min {idx.min()}, max {idx.max()}."
                )
        if r.shape != c.shape:
            raise ValueError(
                f"`rows` and `cols` must have the same length, got {r.shape}, {c.shape}."
            )
        values = check_finite(as_float_array(values, "values", ndim=1), "values")
        if values.shape[0] != r.shape[0]:
            raise ValueError(
                f"`values` has {values.shape[0]} entries but {r.shape[0]} positions were given."
            )
        r = r.astype(np.int64 if values.dtype == jnp.float64 else np.int32)
        c = c.astype(r.dtype)
        flat = r * shape[1] + c
        uniq, counts = np.unique(flat, return_counts=True)
        if np.any(counts > 1):
            dup = uniq[counts > 1][0]
            raise ValueError(
                f"`rows`/`cols` observe entry ({dup // shape[1]}, {dup % shape[1]}) "
                f"{counts[counts > 1][0]} times; each entry may be observed once."
            )
        self.rows = jnp.asarray(r)
        self.cols = jnp.asarray(c)
        self.values = values
        self.shape = shape

    @property
    def n_observed(self) -> int:
        return self.rows.shape[0]

    def predictor_shape(self) -> tuple[int, ...]:
        return self.shape

    def mask(self) -> Float[Array, "d1 d2"]:
        """1 on observed entries, 0 elsewhere."""
        return jnp.zeros(self.shape, self.values.dtype).at[self.rows, self.cols].set(1.0)

    def observed(self, M: Float[Array, "d1 d2"]) -> Float[Array, " N"]:
        """$M_{i_n j_n}$ for every observed entry."""
        return M[self.rows, self.cols]

    def residual(self, M):
        return self.observed(M) - self.values

    def loss(self, predictor):
        return 0.5 * jnp.sum(self.residual(predictor) ** 2)

    def reference_loss(self):
        return 0.5 * jnp.sum(self.values**2)

    def relative_excess(self, predictor):
        den = jnp.sqrt(jnp.sum(self.values**2))
        return jnp.sqrt(jnp.sum(self.residual(predictor) ** 2)) / jnp.where(den > 0, den, 1.0)

    def time_scale(self):
        return jnp.asarray(1.0, self.values.dtype)

    def as_sensing(self):
        """The same problem as a `linflow.MatrixSensing` with $A_n = e_{i_n}e_{j_n}^\\top$."""
        from .sensing import MatrixSensing

        n = self.n_observed
        A = jnp.zeros((n,) + self.shape, self.values.dtype)
        A = A.at[jnp.arange(n), self.rows, self.cols].set(1.0)
        return MatrixSensing(A, self.values)
