"""The state that the flow engine integrates, and how it maps back to the user's model.

The default is the model itself with $\\dot\\theta = -\\nabla_\\theta L(\\theta)$. Exact
reduced forms (smaller states with the same trajectory) subclass `AbstractFlowSystem`.
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PyTree

from ._trace_cache import traced_shape
from .models._base import AbstractModel
from .problems import AbstractProblem


def tree_size(tree) -> int:
    """The number of array entries in `tree` (arrays, or their shapes from `jax.eval_shape`)."""
    leaves = jax.tree.leaves(
        eqx.filter(tree, lambda x: eqx.is_array(x) or isinstance(x, jax.ShapeDtypeStruct))
    )
    return sum(math.prod(x.shape) for x in leaves)


def tree_norm(tree) -> jax.Array:
    """The Euclidean norm of all array entries of `tree`."""
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_array))
    return jnp.sqrt(sum(jnp.sum(x**2) for x in leaves))


class AbstractFlowSystem(eqx.Module):
    """An ODE $\\dot y = f(t, y)$ whose solution maps onto the gradient flow of a model."""

    name: eqx.AbstractClassVar[str]

    @abc.abstractmethod
    def initial_state(self) -> PyTree:
        """$y(0)$."""

    @abc.abstractmethod
    def vector_field(self, t, y, problem: AbstractProblem) -> PyTree:
        """$f(t, y)$, with the problem passed as the ODE's `args`."""

    @abc.abstractmethod
    def to_model(self, y) -> AbstractModel:
        """The model whose parameters correspond to the state `y`."""

    def state_shape(self) -> PyTree[jax.ShapeDtypeStruct]:
        """The shapes and dtypes of the integrated state (nothing is run; traced once per
        shape)."""
        return traced_shape(self.initial_state)

    def state_size(self) -> int:
        """The number of entries of the integrated state (from its shapes: nothing is run)."""
        return tree_size(self.state_shape())

    def predictor(self, y):
        """The model's predictor at state `y` (default: `to_model(y).predictor()`; reduced
        forms override it with a formula that avoids the model's cancellation)."""
        return self.to_model(y).predictor()

    def mirror_coordinates(self, y):
        r"""Coordinates in which every plateau of the flow still moves, or `None` (default).

        The stationarity stop (`linflow.Converged`) measures how fast the *loss* still
        changes; from a vanishing initialisation the flow passes saddles where the loss is
        flat to far below any tolerance. Forms whose state has coordinates that drift at a
        steady rate across such plateaus and converge only at a true steady state (the dual
        point $s = X^\top\nu$ of `DualFlowSystem`) return them here, and the stop then also
        asks that they have settled."""
        del y
        return None

    def is_still(self, f, dpredictor) -> jax.Array:
        r"""Whether the model stands still when the state moves along the field `f` (its
        predictor then moving at `dpredictor`): the stop reads such a start, whose loss never
        changes, as a steady state (`linflow.Converged`). Default: $f = 0$ (states that move
        only where the parameters do; not the predictor's speed, which underflows on the first
        plateau of a vanishing initialisation while the state still moves)."""
        del dpredictor
        return tree_norm(f) == 0

    def restarted(self, y) -> tuple["AbstractFlowSystem", PyTree]:
        """The form and its state to continue the flow from the state `y` with, in new
        coordinates (`linflow.Fallback`'s second solver starts there). Default: `self` and
        `y`. Forms whose state accumulates over the flow and can be started afresh
        (propagators: `AbstractPropagatorForm`) return the form based at `y` and its
        initial state; `from_restarted` maps back."""
        return self, y

    def from_restarted(self, start, y) -> PyTree:
        """A state `y` of `self.restarted(start)[0]`, in `self`'s coordinates (default:
        `y`)."""
        del start
        return y

    def predictor_magnitude(self, y, predictor):
        """The rounding scale of `predictor = self.predictor(y)` (passed in, so that forms
        whose scale follows from it need not form it again; default:
        `AbstractModel.predictor_magnitude`), or `None`: the steady-state stop keeps its
        tolerance above the floor it implies."""
        del predictor
        return self.to_model(y).predictor_magnitude()

    @property
    def is_reduced(self) -> bool:
        """Whether this is an exact reduced form (a smaller state than the parameters, with
        isolated steady states: what `linflow.ImplicitAdjoint` needs); `False` for the
        parameter flow itself."""
        return True

    def solver_choice(self):
        """The `linflow.SolverChoice` this form is best integrated with, for `linflow.Auto`,
        or `None` to let `Auto` choose by form and size (the default)."""
        return None

    def state_scale(self):
        """The size the state reaches along the flow where rounding makes componentwise
        relative error control meaningless (see `DualFlowSystem.state_scale`), or `None`.
        The flow engine then raises an implicit solver's absolute tolerance to at least
        `1e-3 * rtol * state_scale`."""
        return None


class AbstractWrappedSystem(AbstractFlowSystem):
    """A form seen through a wrapper (another clock, another way of tracing): everything is
    `system`'s own unless a subclass overrides it."""

    system: eqx.AbstractVar[AbstractFlowSystem]

    @property
    def name(self):
        return self.system.name

    @property
    def is_reduced(self):
        return self.system.is_reduced

    def initial_state(self):
        return self.system.initial_state()

    def vector_field(self, t, y, problem):
        return self.system.vector_field(t, y, problem)

    def to_model(self, y):
        return self.system.to_model(y)

    def predictor(self, y):
        return self.system.predictor(y)

    def mirror_coordinates(self, y):
        return self.system.mirror_coordinates(y)

    def is_still(self, f, dpredictor):
        return self.system.is_still(f, dpredictor)

    def restarted(self, y):
        system, y = self.system.restarted(y)
        return eqx.tree_at(lambda w: w.system, self, system), y

    def from_restarted(self, start, y):
        return self.system.from_restarted(start, y)

    def predictor_magnitude(self, y, predictor):
        return self.system.predictor_magnitude(y, predictor)

    def state_scale(self):
        return self.system.state_scale()

    def solver_choice(self):
        return self.system.solver_choice()


def gradient_field(model: AbstractModel, problem: AbstractProblem) -> AbstractModel:
    """$-\\nabla_\\theta L(\\theta)$ as a model-shaped pytree."""
    grads = eqx.filter_grad(lambda m: problem.loss(m.predictor()))(model)
    return jax.tree.map(jnp.negative, grads)


class GradientFlowSystem(AbstractFlowSystem):
    """The full form: the state is the model's parameters."""

    model: AbstractModel
    name = "full"

    def initial_state(self):
        return self.model

    def vector_field(self, t, y, problem):
        return gradient_field(y, problem)

    def to_model(self, y):
        return y

    @property
    def is_reduced(self) -> bool:
        return False
