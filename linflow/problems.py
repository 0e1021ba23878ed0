"""Problems: data together with a loss on the effective linear predictor.

A problem sees only the model's predictor (a vector $\beta$ or a matrix $\Theta$); the
parametrisation is the model's business. This keeps every model usable with every problem
whose predictor shape matches.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from . import losses
from ._checks import as_float_array, check_finite


class AbstractProblem(eqx.Module):
    """Data and a loss $L(\\text{predictor})$."""

    @abc.abstractmethod
    def loss(self, predictor: Float[Array, "..."]) -> Float[Array, ""]:
        """The training loss of an effective linear predictor."""

    @abc.abstractmethod
    def predictor_shape(self) -> tuple[int, ...]:
        """The shape the model's `predictor()` must have for this problem."""

    @abc.abstractmethod
    def reference_loss(self) -> Float[Array, ""]:
        """The loss of the zero predictor: the scale relative stops are measured against."""

    def relative_excess(self, predictor: Float[Array, "..."]) -> Float[Array, ""]:
        r"""$\sqrt{(L - L^\star)/(L_{\rm ref} - L^\star)}$, the dimensionless distance to
        optimality used by the steady-state stop ($L^\star$: best loss of any linear
        predictor). The default assumes $L^\star = 0$."""
        return jnp.sqrt(self.loss(predictor) / self.reference_loss())

    def time_scale(self) -> Float[Array, ""]:
        """The natural time unit of the flow on this problem (used for default save times)."""
        return jnp.asarray(1.0)

    def check_predictor(self, predictor, name: str = "model") -> None:
        """Raise `ValueError` if a predictor's shape does not fit this problem."""
        want = self.predictor_shape()
        if tuple(predictor.shape) != want:
            raise ValueError(
                f"`{name}` has a predictor of shape {tuple(predictor.shape)}, but "
                f"`{type(self).__name__}` expects shape {want}."
            )


class Regression(AbstractProblem):
    r"""Linear regression $L(\beta) = \tfrac12\|X\beta - Y\|^2$ (a sum, not a mean).

    `Y` may be a vector (predictor $\beta\in\mathbb R^d$) or a matrix (predictor
    $\Theta\in\mathbb R^{d\times m}$, loss $\tfrac12\|X\Theta - Y\|_F^2$, Min et al. 2021, eq. (1)).

    **Arguments:**

    - `X`: design matrix, shape `(n, d)`.
    - `Y`: targets, shape `(n,)` or `(n, m)`.
    """

    X: Float[Array, "n d"]
    Y: Float[Array, "n *m"]
    range_basis: Float[Array, "n r"]

    def __init__(self, X, Y):
        X = as_float_array(X, "X", ndim=2)
        Y = as_float_array(Y, "Y", ndim=(1, 2))
        if Y.shape[0] != X.shape[0]:
            raise ValueError(
                f"`X` has {X.shape[0]} rows (samples) but `Y` has {Y.shape[0]}: they must match."
            )
        self.X = check_finite(X, "X")
        self.Y = check_finite(Y, "Y")
        self.range_basis = _range_basis(self.X)

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    def predictor_shape(self) -> tuple[int, ...]:
        return (self.X.shape[1],) + tuple(self.Y.shape[1:])

    def residual(self, predictor):
        """$X\\beta - Y$."""
        return self.X @ predictor - self.Y

    def output_loss(self, outputs):
        """The loss as a function of the outputs $z = X\beta$ (used by exact reduced forms)."""
        return losses.square(outputs - self.Y)

    def loss(self, predictor):
        return self.output_loss(self.X @ predictor)

    def reference_loss(self):
        return losses.square(self.Y)

    def relative_excess(self, predictor):
        r"""$\|P(X\beta - Y)\| / \|PY\|$ with $P$ the projector on the range of $X$.

        Equals $\sqrt{(L-L^\star)/(L(0)-L^\star)}$ exactly, computed without the cancellation
        of subtracting $L^\star$ (so it reaches $10^{-14}$ on noisy, non-interpolating data)."""
        Q = self.range_basis
        num = jnp.sqrt(jnp.sum((Q.T @ self.residual(predictor)) ** 2))
        den = jnp.sqrt(jnp.sum((Q.T @ self.Y) ** 2))
        return num / jnp.where(den > 0, den, 1.0)

    def time_scale(self):
        """$1/\|X\|_F^2$, a lower bound on the fastest time scale of $\dot\beta = -X^\top r$."""
        return 1.0 / jnp.sum(self.X**2).clip(min=1e-300)


def _range_basis(X):
    """An orthonormal basis of the column space of `X` (n x rank), from the n x n Gram matrix
    so that d = 10^6 features cost O(n^2 d), never O(d^2)."""
    G = X @ X.T
    evals, evecs = jnp.linalg.eigh(G)
    tol = evals[-1] * max(X.shape) * jnp.finfo(X.dtype).eps
    # Keep the static shape (vmap/jit friendly): zero the columns of the null space.
    return evecs * (evals > tol)[None, :]


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
        if not isinstance(labels, jax.core.Tracer) and not bool(jnp.all(jnp.abs(labels) == 1)):
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
