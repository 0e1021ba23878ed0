import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float


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

    def excess_floor(self, magnitude: Float[Array, "..."]) -> Float[Array, ""]:
        r"""The relative excess that rounding alone leaves in a predictor whose entries are
        known to absolute accuracy $u\,m$ ($u$ the unit roundoff, $m$ = `magnitude`, from
        `model.predictor_magnitude()`). 0 (no floor) unless the problem defines it."""
        del magnitude
        return jnp.asarray(0.0)

    def best_of_rank(self, rank: int) -> Float[Array, "..."] | None:
        """The predictor of rank at most `rank` with the lowest loss, where known in closed
        form (`linflow.TwoLayer.reachable_optimum`), else `None` (the default)."""
        del rank
        return None

    def best_psd_of_rank(self, rank: int) -> Float[Array, "..."] | None:
        """The positive semi-definite predictor of rank at most `rank` with the lowest loss,
        where known in closed form (`linflow.Symmetric.reachable_optimum`), else `None` (the
        default)."""
        del rank
        return None

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
