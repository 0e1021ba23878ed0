import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .. import losses
from .._checks import as_float_array, check_finite, is_concrete
from ._base import AbstractProblem


class Classification(AbstractProblem):
    r"""Linear classification with labels $\pm1$: $L(\beta) = \sum_i \ell(y_i\, x_i^\top \beta)$.

    `loss="exponential"` (default, Yun et al. 2021) or `"logistic"`.

    **Arguments:**

    - `X`: inputs, shape `(n, d)`.
    - `labels`: shape `(n,)`, each entry $+1$ or $-1$.
    """

    X: Float[Array, "n d"]
    labels: Float[Array, " n"]
    kind: str = eqx.field(static=True, default="exponential")

    def __init__(self, X, labels, loss: str = "exponential"):
        X = check_finite(as_float_array(X, "X", ndim=2), "X")
        labels = as_float_array(labels, "labels", ndim=1)
        if labels.shape[0] != X.shape[0]:
            raise ValueError(
                f"`X` has {X.shape[0]} rows but `labels` has {labels.shape[0]} entries."
            )
        if is_concrete(labels) and not np.all(np.abs(np.asarray(labels)) == 1):
            raise ValueError("`labels` must contain only +1 and -1.")
        if loss not in ("exponential", "logistic"):
            raise ValueError(f"`loss` must be 'exponential' or 'logistic', got {loss!r}.")
        self.X = X
        self.labels = labels
        self.kind = loss

    def predictor_shape(self):
        return (self.X.shape[1],)

    def margins(self, predictor):
        """$y_i\\,x_i^\\top\\beta$."""
        return self.labels * (self.X @ predictor)

    def output_loss(self, outputs):
        """The loss as a function of the outputs $z = X\beta$ (used by exact reduced forms)."""
        fn = losses.exponential if self.kind == "exponential" else losses.logistic
        return fn(self.labels * outputs)

    def loss(self, predictor):
        return self.output_loss(self.X @ predictor)

    def reference_loss(self):
        return self.loss(jnp.zeros(self.predictor_shape(), self.X.dtype))
