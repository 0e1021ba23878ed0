r"""Wide factorisations integrated through the propagator of their factors.

For `TwoLayer(U, V)` and `Symmetric(U)` on *any* problem, the flow moves the stacked factors
$Z$ ($q \times h$) by a $q \times q$ matrix that depends on the predictor only:

$$\dot Z = -S(g)\,Z,\qquad g = \nabla L(\Theta),$$

with, for $Z = [U; V]$ ($q = d_1 + d_2$), $S = [[0, g], [g^\top, 0]]$ and
$\Theta = UV^\top = (ZZ^\top)_{[:d_1,\,d_1:]}$; for $Z = U$ ($q = n$), $S = g + g^\top$ and
$\Theta = UU^\top = ZZ^\top$. Hence $Z(t) = M(t)Z(0)$ with the propagator

$$\dot M = -S(g)\,M,\quad M(0) = I_q,\quad ZZ^\top(t) = M(t)\,G_0\,M(t)^\top,\quad
G_0 = Z(0)Z(0)^\top,$$

a closed ODE of $q^2$ states, against the $qh$ parameters: smaller whenever the width exceeds
$q$ (matrix sensing and completion with many hidden units; e.g. $d_1 = d_2 = 6$, $h = 500$:
144 states instead of 6,000). The factors follow exactly at every time, $Z(t) = M(t)Z(0)$, so
`FlowSolution.final` and `sol.models` are the user's own model. This is the regression-free
counterpart of `linflow.lifted.TwoLayerRowSpaceSystem`, which also projects onto the row
space of $X$ on regression with fewer samples than inputs.

`linflow.Auto` integrates a propagator as it does the parameters, by size: small ones
(at most `Auto.implicit_max_size` states) explicitly first and implicitly if stiff. From a
small initialisation the propagator's flow can be stiff near its end (rank-one
$3 \times 3$ sensing at $\alpha = 10^{-3}$, width 7, in `tests/test_factor_propagator.py`:
Dopri8 does not finish within the fallback's budget).
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ._system import AbstractFlowSystem
from .models._base import AbstractModel
from .models.factorization import Symmetric, TwoLayer


class AbstractPropagatorForm(AbstractFlowSystem):
    r"""A form whose state is a $q \times q$ propagator $M$, $M(0) = I_q$, of a linear ODE
    $\dot Z = A(t)Z$ whose solution gives the model from a fixed base ($Z(t) = M(t)Z(0)$):
    the factor propagators below and `linflow.lifted.TwoLayerRowSpaceSystem`.

    Such a state accumulates the whole flow: from a small start $M$ grows by the factors'
    growth in some directions and shrinks in others, and an implicit solver continuing it
    late in a flow can stall where one started afresh from the same factors finishes
    (`tests/test_factor_propagator.py`). The flow is the same from any base, $M(t) =
    M'(t)B$ with $M'(t_B) = I_q$, so `restarted` re-bases the form at the current state
    (what `linflow.Fallback` does where its second solver takes over)."""

    @abc.abstractmethod
    def rebased(self, B: Float[Array, "q q"]) -> "AbstractPropagatorForm":
        """The same form with its base moved by `B`: its state $M'$ stands for $M'B$ of
        `self` (everything it computes from $M'$ equals `self`'s from $M'B$)."""

    def restarted(self, y):
        return self.rebased(y), jnp.eye(y.shape[0], dtype=y.dtype)

    def from_restarted(self, start, y):
        return y @ start

    def is_still(self, f, dpredictor):
        return predictor_still(dpredictor)


class AbstractFactorPropagatorSystem(AbstractPropagatorForm):
    r"""The propagator $M$ of the factors $Z$ as the state (module docstring): $\dot M =
    -S(g)M$, $M(0) = I_q$. Subclasses give the predictor from $M$, the product $S(g)M$ and the
    model from $Z = MZ(0)$."""

    Z0: eqx.AbstractVar[Float[Array, "q h"]]
    G0: eqx.AbstractVar[Float[Array, "q q"]]

    @abc.abstractmethod
    def predictor(self, y):
        """$\\Theta$ from $M$, without forming $Z$."""

    @abc.abstractmethod
    def coupling(self, g, y):
        """$S(g)\\,M$."""

    @abc.abstractmethod
    def factors_to_model(self, Z) -> AbstractModel:
        """The model with stacked factors `Z`."""

    @staticmethod
    def is_smaller(q: int, h: int) -> bool:
        """Whether the $q^2$ propagator has fewer states than $q$ stacked factor rows of
        width $h$ ($h > q$)."""
        return h > q

    def initial_state(self):
        return jnp.eye(self.G0.shape[0], dtype=self.G0.dtype)

    def vector_field(self, t, y, problem):
        del t
        g = jax.grad(problem.loss)(self.predictor(y))
        return -self.coupling(g, y)

    def to_model(self, y):
        return self.factors_to_model(y @ self.Z0)

    def rebased(self, B):
        Z0 = B @ self.Z0
        return eqx.tree_at(lambda s: (s.Z0, s.G0), self, (Z0, _gram(Z0)))

    @property
    def is_reduced(self) -> bool:
        # The same manifold of minimisers as the parameter flow (any rotation of the
        # factors' columns): no isolated steady state for `linflow.ImplicitAdjoint`.
        return False

    def predictor_magnitude(self, y, predictor):
        del y, predictor
        return None  # the factorisations' own: no cancellation floor


def predictor_still(dpredictor: Float[Array, "..."]) -> Bool[Array, ""]:
    r"""`AbstractFlowSystem.is_still` for a propagator $M$ of factors $Z = MZ_0$: whether the
    predictor stands still. $\dot M = -S(g)M$ does not vanish from $Z_0 = 0$, where nothing
    moves; along a gradient flow the predictor stands still exactly when the factors do
    ($\dot L = \nabla L\cdot\dot\Theta = -\|\nabla_Z L\|^2$), and it costs nothing more
    to read (the stop forms $\dot\Theta$ for $\dot L$)."""
    return jnp.all(dpredictor == 0)


def _sym(P):
    return 0.5 * (P + P.T)


def _gram(Z):
    return _sym(Z @ Z.T)


class TwoLayerPropagatorSystem(AbstractFactorPropagatorSystem):
    r"""`TwoLayer(U, V)` through the propagator of $Z = [U; V]$ (module docstring):
    $S(g)M = [gM_{[d_1:]};\ g^\top M_{[:d_1]}]$, $\Theta = M_{[:d_1]}\,(G_0M_{[d_1:]}^\top)$ in
    $O(q^2d_2 + d_1qd_2)$, and $U(t) = (MZ_0)_{[:d_1]}$, $V(t) = (MZ_0)_{[d_1:]}$."""

    Z0: Float[Array, "q h"]
    G0: Float[Array, "q q"]
    rows: int = eqx.field(static=True)  # d_1, the rows of U
    name = "propagator"

    @classmethod
    def build(cls, model: TwoLayer) -> "TwoLayerPropagatorSystem":
        Z0 = jnp.concatenate([model.U, model.V], axis=0)
        return cls(Z0, _gram(Z0), model.U.shape[0])

    def predictor(self, y):
        d1 = self.rows
        return y[:d1] @ (self.G0 @ y[d1:].T)

    def coupling(self, g, y):
        d1 = self.rows
        return jnp.concatenate([g @ y[d1:], g.T @ y[:d1]], axis=0)

    def factors_to_model(self, Z):
        return TwoLayer(Z[: self.rows], Z[self.rows :])


class SymmetricPropagatorSystem(AbstractFactorPropagatorSystem):
    r"""`Symmetric(U)` through the propagator of $Z = U$ (module docstring):
    $S(g)M = (g + g^\top)M$, $\Theta = MG_0M^\top$, $U(t) = MZ_0$."""

    Z0: Float[Array, "n k"]
    G0: Float[Array, "n n"]
    name = "propagator"

    @classmethod
    def build(cls, model: Symmetric) -> "SymmetricPropagatorSystem":
        return cls(model.U, _gram(model.U))

    def predictor(self, y):
        return _sym(y @ (self.G0 @ y.T))

    def coupling(self, g, y):
        return (g + g.T) @ y

    def factors_to_model(self, Z):
        return Symmetric(Z)
