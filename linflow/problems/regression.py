import jax.numpy as jnp
from jaxtyping import Array, Float

from .. import losses
from .._checks import as_float_array, check_finite
from ._base import AbstractProblem


class Regression(AbstractProblem):
    r"""Linear regression $L(\beta) = \tfrac12\|X\beta - Y\|^2$ (a sum, not a mean).

    `Y` may be a vector (predictor $\beta\in\mathbb R^d$) or a matrix (predictor
    $\Theta\in\mathbb R^{d\times m}$, loss $\tfrac12\|X\Theta - Y\|_F^2$, Min et al. 2021, eq. (1)).

    **Arguments:**

    - `X`: design matrix, shape `(n, d)`.
    - `Y`: targets, shape `(n,)` or `(n, m)`.
    """

    X: Float[Array, "n d"]
    Y: Float[Array, "n ..."]
    range_projector: Float[Array, "n n"]

    def __init__(self, X, Y):
        X = as_float_array(X, "X", ndim=2)
        Y = as_float_array(Y, "Y", ndim=(1, 2))
        if Y.shape[0] != X.shape[0]:
            raise ValueError(
                f"`X` has {X.shape[0]} rows (samples) but `Y` has {Y.shape[0]}: they must match."
            )
        self.X = check_finite(X, "X")
        self.Y = check_finite(Y, "Y")
        self.range_projector = _range_projector(self.X)

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
        num = jnp.sqrt(jnp.sum((self.range_projector @ self.residual(predictor)) ** 2))
        return num / self._projected_target_norm()

    def _projected_target_norm(self):
        r"""$\|PY\|$ (1 where it is 0), the scale of the relative excess."""
        den = jnp.sqrt(jnp.sum((self.range_projector @ self.Y) ** 2))
        return jnp.where(den > 0, den, 1.0)

    def excess_floor(self, magnitude):
        r"""$8u\,\big(\sum_{ij}\|X_{:,i}\|^2 m_{ij}^2\big)^{1/2} / \|PY\|$: the size of
        $\|X\delta\|$ for independent rounding errors $|\delta_{ij}| \approx u\,m_{ij}$ of
        the predictor, relative to the initial excess. (The worst case
        $\|X\|_F\|m\|$ is $\sqrt d$ times larger and stopped flows at $d = 10^6$ far above
        the accuracy the parameters hold.) The factor 8 covers the few roundings in each term
        and the noise of the excess near the floor."""
        eps = jnp.finfo(self.X.dtype).eps
        colsq = jnp.sum(self.X**2, axis=0)
        m2 = magnitude**2 if magnitude.ndim == 1 else jnp.sum(magnitude**2, axis=1)
        return 8 * eps * jnp.sqrt(jnp.sum(colsq * m2)) / self._projected_target_norm()

    def time_scale(self):
        r"""$1/\|X\|_F^2$, a lower bound on the fastest time scale of $\dot\beta = -X^\top r$."""
        return 1.0 / jnp.sum(self.X**2).clip(min=1e-300)


def _range_projector(X):
    r"""The orthogonal projector $P = G G^+$ on the column space of `X` ($G = XX^\top$, n x n,
    so that d = 10^6 features cost O(n^2 d), never O(d^2)). Singular values of `X` below
    $\sqrt{\max(n, d)\,\varepsilon}$ of the largest count as zero. Formed through the
    pseudo-inverse, whose derivative holds wherever the rank does not change (an
    eigenbasis of $G$ has none where eigenvalues repeat, e.g. orthonormal rows)."""
    G = X @ X.T
    P = G @ jnp.linalg.pinv(G, rtol=max(X.shape) * jnp.finfo(X.dtype).eps, hermitian=True)
    return 0.5 * (P + P.T)
