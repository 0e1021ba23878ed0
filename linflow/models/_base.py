import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


class AbstractModel(eqx.Module):
    """A parametrisation of a linear predictor.

    The model's array fields are its trainable parameters (the state of the gradient flow);
    configuration such as depth lives in static fields. Subclasses implement `predictor()`
    and may list the quantities the gradient flow conserves in `conserved()`.
    """

    @abc.abstractmethod
    def predictor(self) -> Float[Array, "..."]:
        """The effective linear map (a vector $\\beta$ or a matrix $\\Theta$)."""

    def imbalances(self) -> dict[str, tuple[Array, Array]]:
        """Conserved quantities that are differences $A - B$ (layer imbalances), as their two
        terms $(A, B)$. Models that define them get `conserved()` and `conserved_scale()`
        from them."""
        return {}

    def conserved(self) -> dict[str, Array]:
        """Quantities that are constant along the gradient flow of any loss of the predictor
        (default: the differences $A - B$ of `imbalances()`)."""
        return {k: a - b for k, (a, b) in self.imbalances().items()}

    def conserved_scale(self) -> dict[str, Array]:
        """The size of the terms that form each conserved quantity (same keys and shapes as
        `conserved()`): the reference for its relative drift
        (`FlowSolution.conserved_drift`).

        For an imbalance $A - B$ it is $|A| + |B|$, so that a balanced start ($A = B$, the
        quantity zero up to rounding) still has a meaningful scale. For quantities that are
        not differences it is $|c|$."""
        terms = self.imbalances()
        if terms:
            return {k: jnp.abs(a) + jnp.abs(b) for k, (a, b) in terms.items()}
        return jax.tree_util.tree_map(jnp.abs, self.conserved())

    def potential(self):
        """The separable potential $\\Phi$ (a `linflow.limits.AbstractPotential`) whose mirror
        flow is this parametrisation's gradient flow, $\\beta(t) = \\nabla\\Phi^*(X^\\top\\nu(t))$,
        or `None` (the default: no such closed form is known). Models that return one get the
        exact reduced flow in $N$ dual coordinates and their regression limit
        `linflow.limits.dual_minimise(model.potential(), X, y)` from the same formula."""
        return None

    def at_dual_point(self, s: Float[Array, " d"]) -> "AbstractModel":
        """The model on its flow's path at the dual point $s = X^\\top\\nu$ (for models with a
        `potential()`)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form dual path.")

    def predictor_magnitude(self) -> Float[Array, "..."] | None:
        """The elementwise size of the terms whose sum is `predictor()`, or `None`.

        Where the predictor is a difference of large terms (e.g. $w_+^D - w_-^D$ at a large
        initialisation), rounding limits how small the loss can get; the steady-state stop
        (`linflow.Converged`) uses this to keep its tolerance above that floor."""
        return None

    def reachable_optimum(self, problem) -> Float[Array, "..."] | None:
        """The best predictor this parametrisation can reach on `problem`, where it is known
        in closed form (e.g. Eckart–Young for a width-$k$ factorisation), or `None`.

        The steady-state stop (`linflow.Converged`) ends a flow that reaches it (reported as
        `STOPS.reachable_optimum`); flows of models that return `None` still end at any
        steady state by the stationarity criterion. Default: `None`."""
        del problem
        return None

    def flow_system(self, problem):
        """The exact ODE `linflow.flow` integrates for this model on `problem` (an
        `AbstractFlowSystem`).

        Default: the exact reduced form the problem has for this model where one is known
        (`linflow._reduced.reduced_system`: diagonal and Hadamard nets on regression and
        classification), else the gradient flow of the parameters (`full_flow_system`).
        Models whose state is not their parameters (the lifted Gram models) override it."""
        from .._reduced import reduced_system

        reduced = reduced_system(self, problem)
        return self.full_flow_system() if reduced is None else reduced

    def full_flow_system(self):
        """The gradient flow $\\dot\\theta = -\\nabla_\\theta L$ of this model's array
        fields (`linflow.flow(..., form="full")`, and what `linflow.gd` discretises), or
        `None` where the array fields are not the network's parameters (lifted models)."""
        from .._system import GradientFlowSystem

        return GradientFlowSystem(self)
