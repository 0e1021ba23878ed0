r"""Forms whose state is the propagator of a linear ODE that moves the model from a base."""

import abc

import jax.numpy as jnp
from jaxtyping import Array, Float

from ._system import AbstractFlowSystem


class AbstractPropagatorForm(AbstractFlowSystem):
    r"""A form whose state is a $q \times q$ propagator $M$, $M(0) = I_q$, of a linear ODE
    $\dot Z = A(t)Z$ whose solution gives the model from a fixed base ($Z(t) = M(t)Z(0)$):
    the row-space forms of `linflow.lifted` (`RowSpacePropagator`).

    Such a state accumulates the whole flow: from a small start $M$ grows by the model's
    growth in some directions and shrinks in others, and an implicit solver continuing it
    late in a flow can stall where one started afresh from the same model finishes. The flow
    is the same from any base, $M(t) = M'(t)B$ with $M'(t_B) = I_q$, so `restarted` re-bases
    the form at the current state (what `linflow.Fallback` does where its second solver
    takes over)."""

    @abc.abstractmethod
    def rebased(self, B: Float[Array, "q q"]) -> "AbstractPropagatorForm":
        """The same form with its base moved by `B`: its state $M'$ stands for $M'B$ of
        `self` (everything it computes from $M'$ equals `self`'s from $M'B$)."""

    def restarted(self, y):
        return self.rebased(y), jnp.eye(y.shape[0], dtype=y.dtype)

    def from_restarted(self, start, y):
        return y @ start

    def is_still(self, f, dpredictor):
        r"""Whether the predictor stands still. $\dot M = A(t)M$ need not vanish from
        $Z_0 = 0$, where nothing moves; along a gradient flow the predictor stands still
        exactly when the model does ($\dot L = \nabla L\cdot\dot\Theta = -\|\nabla_Z L\|^2$),
        and it costs nothing more to read (the stop forms $\dot\Theta$ for $\dot L$)."""
        del f
        return jnp.all(dpredictor == 0)
