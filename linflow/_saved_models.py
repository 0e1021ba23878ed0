r"""The models at a flow's saved times, kept in the smaller of two exact representations.

A flow integrates a state $y$ from which its model follows exactly (`AbstractFlowSystem`:
`to_model`). The saved trajectory can be kept either as the $T$ models themselves or as the
$T$ states together with the form that maps them back; the second is far smaller when the
state is (the thin row-space factors of a wide `TwoLayer`: $(n + m)^2$ numbers per save against
$(D + m)h$ parameters, 10,201 against 200,500 in Min et al.'s setting), and the first when the
form carries large data (a reduced diagonal form holds $X$). `SavedModels.smaller` picks the
smaller from the shapes alone (at trace time), and `FlowSolution.models` rebuilds the models
from whichever was kept: the values are the same either way.
"""

import equinox as eqx
import jax
from jaxtyping import PyTree

from ._system import AbstractFlowSystem, tree_size
from .models._base import AbstractModel


class SavedModels(eqx.Module):
    """The saved trajectory of a run: `states` at the saved times (leading axis `T`, after any
    batch axes) and the `system` that maps one state to its model, or `system=None` when the
    states are the models themselves (every `linflow.gd` run, and flows whose form is not
    smaller to keep)."""

    states: PyTree
    system: AbstractFlowSystem | None = None

    @classmethod
    def smaller(cls, system: AbstractFlowSystem, states: PyTree) -> "SavedModels":
        r"""Keep `states` with `system` when, for $T$ saves, $T\,|y| + |\text{system}|$ is
        smaller than $T\,|\text{model}|$ (sizes in array entries, from the shapes alone);
        otherwise build the $T$ models now."""
        T = jax.tree.leaves(states)[0].shape[0]
        one = jax.tree.map(lambda x: x[0], states)
        model_size = tree_size(jax.eval_shape(system.to_model, one))
        if T * tree_size(one) + tree_size(system) < T * model_size:
            return cls(states, system)
        return cls(jax.vmap(system.to_model)(states), None)

    def models(self, batch_ndim: int = 0) -> AbstractModel:
        """The model at each saved time (each array field with a leading axis `T`, after
        `batch_ndim` batch axes)."""
        if self.system is None:
            return self.states
        return self._map(lambda system, y: system.to_model(y), batch_ndim)

    def predictors(self, batch_ndim: int = 0):
        """The predictor at each saved time, from the states where they were kept (for a
        reduced form without the model's own cancellation, `AbstractFlowSystem.predictor`)."""
        if self.system is None:
            return self._map(lambda _, model: model.predictor(), batch_ndim)
        return self._map(lambda system, y: system.predictor(y), batch_ndim)

    def _map(self, fn, batch_ndim):
        # `fn(system, state)` over the saves, then over each batch axis (`system` may be None).
        def over_saves(system, states):
            return jax.vmap(lambda y: fn(system, y))(states)

        for _ in range(batch_ndim):
            over_saves = eqx.filter_vmap(over_saves)
        return over_saves(self.system, self.states)
