import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_finite
from ._base import AbstractProblem
from .regression import Regression


class MatrixSensing(AbstractProblem):
    r"""Matrix sensing $L(M) = \tfrac12\sum_n(\langle A_n, M\rangle - y_n)^2$ with
    $\langle A, M\rangle = \operatorname{tr}(A^\top M)$ (Yun et al. 2021, eq. (13), up to
    the factor $\tfrac12$, which only rescales time; Arora et al. 2019).

    It is the regression $\tfrac12\|\mathcal A\operatorname{vec}(M) - y\|^2$ with the
    sensors as rows of $\mathcal A$, and reuses `linflow.Regression` for the relative stop.

    **Arguments:**

    - `A`: sensors, shape `(N, d1, d2)`.
    - `y`: measurements, shape `(N,)`.
    """

    A: Float[Array, "N d1 d2"]
    y: Float[Array, " N"]
    regression: Regression

    def __init__(self, A, y):
        A = check_finite(as_float_array(A, "A", ndim=3), "A")
        y = check_finite(as_float_array(y, "y", ndim=1), "y")
        if y.shape[0] != A.shape[0]:
            raise ValueError(
                f"`A` holds {A.shape[0]} sensors but `y` has {y.shape[0]} entries: they must match."
            )
        self.A = A
        self.y = y
        self.regression = Regression(A.reshape(A.shape[0], -1), y)

    def predictor_shape(self) -> tuple[int, ...]:
        return tuple(self.A.shape[1:])

    def measurements(self, M: Float[Array, "d1 d2"]) -> Float[Array, " N"]:
        r"""$\langle A_n, M\rangle$ for every sensor."""
        return jnp.einsum("nij,ij->n", self.A, M)

    def loss(self, predictor):
        return 0.5 * jnp.sum((self.measurements(predictor) - self.y) ** 2)

    def reference_loss(self):
        return self.regression.reference_loss()

    def relative_excess(self, predictor):
        return self.regression.relative_excess(predictor.reshape(-1))

    def time_scale(self):
        return self.regression.time_scale()
