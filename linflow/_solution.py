import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._results import RESULTS, result_names
from ._saved_models import SavedModels
from .models._base import AbstractModel


class FlowSolution(eqx.Module):
    r"""The record of a run of `linflow.flow` (or of `linflow.gd`, which returns the same
    record so that the two compare directly).

    **Fields:**

    - `ts`: save times, shape `(T,)`. For `gd`, `ts = k * learning_rate`.
    - `saved`: the saved trajectory (`linflow.SavedModels`): the states of the
      integrated form at the saved times where those are the smaller record (the thin
      row-space factors of a wide `TwoLayer`: 10,201 numbers per save instead of 200,500
      parameters), otherwise the models. Read it through `models` and `predictors`.
    - `losses`: the training loss at each saved time, shape `(T,)`.
    - `final`: the model at the end of the run (the steady state when `result` is
      `RESULTS.converged`).
    - `final_predictor`: the predictor at the end of the run. For a flow in a reduced form
      it is computed from the integrated state without the cancellation of
      `final.predictor()` (e.g. $w_+^D - w_-^D$ with $w_\pm \approx \alpha = 100$ loses
      $\log_{10}\alpha^D$ digits to rounding); otherwise it equals `final.predictor()`.
    - `t_final`: the time at which the run ended.
    - `residual`: the problem's relative excess loss at `final_predictor` (the accuracy
      achieved).
    - `result`: a `linflow.RESULTS` saying why the run ended.
    - `stats`: `num_steps`, `num_accepted_steps`, `num_rejected_steps`, `max_steps`,
      `direction_rate` (for `linflow.flow`: how fast the predictor's direction still turns
      at the end, per unit of log-time, `linflow._steady_state.direction_rate`); with a
      `linflow.Fallback` also `fallback_steps` (the steps taken by its second solver).
    - `solver`: the name of the solver used (the automatic choice is recorded here), e.g.
      `"Dopri8 then Kvaerno5"` for a `linflow.Fallback`.
    - `solver_reason`: why that solver was chosen (`linflow.Auto`'s rule, or "given by the
      user").
    - `form`: which state was integrated: `"full"` (the parameters) or a reduced exact form.
    - `stopped_by`: a `linflow.STOPS` naming the steady-state criterion that ended the flow
      (`optimum`, `reachable_optimum`, `stationary`, ...; `none` when it did not stop at a
      steady state; `None` for `linflow.gd`).
    """

    ts: Float[Array, " times"]
    saved: SavedModels
    losses: Float[Array, " times"]
    final: AbstractModel
    final_predictor: Float[Array, "..."]
    t_final: Float[Array, ""]
    residual: Float[Array, ""]
    result: RESULTS
    stats: dict[str, Int[Array, ""]]
    solver: str = eqx.field(static=True, default="")
    solver_reason: str = eqx.field(static=True, default="")
    form: str = eqx.field(static=True, default="full")
    stopped_by: object = None

    @property
    def converged(self) -> Bool[Array, ""]:
        """`True` where the steady-state stop held."""
        return self.result == RESULTS.converged

    @property
    def status(self) -> "str | np.ndarray":
        """The name of `result` (e.g. `"converged"`, `"max_steps_reached"`), for printing: a
        `str` for a single run, a NumPy array of names (the batch's shape) for a batched
        solution. Needs a concrete solution (outside `jit`)."""
        return result_names(self.result)

    @property
    def models(self) -> AbstractModel:
        """The model at each saved time (each array field gains a leading axis `T`, after the
        batch axes of a vmapped solution), rebuilt exactly from `saved` where it holds the
        integrated states (`AbstractFlowSystem.to_model`)."""
        return self.saved.models(self.ts.ndim - 1)

    @property
    def predictors(self) -> Float[Array, "times ..."]:
        """The effective linear map at each saved time, shape `(T, *predictor_shape)` (after
        the batch axes of a vmapped solution). Where `saved` holds the states of a reduced
        form, formed from them without the model's cancellation (`final_predictor`)."""
        return self.saved.predictors(self.ts.ndim - 1)

    @property
    def conserved(self) -> dict[str, Array]:
        """The model's conserved quantities at each saved time (leading axis `T`, after the
        batch axes of a vmapped solution)."""
        fn = lambda m: m.conserved()  # noqa: E731
        for _ in range(self.ts.ndim):  # the saved times, then each batch axis
            fn = jax.vmap(fn)
        return fn(self.models)

    def conserved_drift(self) -> dict[str, Float[Array, "..."]]:
        r"""$\max_t \|c(t) - c(0)\|_\infty / s$ for each conserved quantity $c$, over the saved
        times (entries after a failure are ignored), with $s$ the size of the terms that form
        $c(0)$ (`model.conserved_scale()`: $\||A| + |B|\|_\infty$ for an imbalance $A - B$, so
        a balanced start, $c(0) = 0$ up to rounding, is measured against its terms). Where the
        scale is 0 the drift is reported in absolute terms. Scalars, or arrays of the batch's
        shape for a vmapped solution (one drift per member)."""
        fn = _conserved_drift
        for _ in range(self.ts.ndim - 1):
            fn = jax.vmap(fn)
        return fn(self.models, self.losses)


def _conserved_drift(models, losses):
    # One solution's drift (`FlowSolution.conserved_drift`): `models` with a leading axis T.
    finite_t = jnp.isfinite(losses)
    first = jax.tree_util.tree_map(lambda x: x[0], models)
    scales = first.conserved_scale()
    out = {}
    for name, c in jax.vmap(lambda m: m.conserved())(models).items():
        dev = jnp.abs(c - c[0][None]).reshape(c.shape[0], -1).max(axis=1)
        dev = jnp.where(finite_t, dev, 0.0).max()
        scale = jnp.abs(scales[name]).max()
        out[name] = dev / jnp.where(scale > 0, scale, 1.0)
    return out
