import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._flow import _validate
from ._results import RESULTS, raise_if_failed
from ._saved_models import SavedModels
from ._solution import FlowSolution
from ._stop import Converged, excess_tolerance
from .models._base import AbstractModel
from .problems import AbstractProblem


# One transformation object for plain GD, with the step size held in the optimiser *state*:
# repeated calls with new step sizes reuse the compiled loop instead of recompiling.
_PLAIN_GD = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)


def default_save_steps(steps: int, num: int = 64) -> np.ndarray:
    """`num` log-spaced step indices in `[0, steps]` (0 and `steps` included, deduplicated)."""
    idx = np.unique(np.round(np.geomspace(1, steps, max(num - 1, 1))).astype(np.int64))
    return np.concatenate([[0], idx])


def gd(
    model: AbstractModel,
    problem: AbstractProblem,
    learning_rate: float | None = None,
    *,
    steps: int,
    optimiser: optax.GradientTransformation | None = None,
    save_steps=None,
    stop: Converged | None = None,
    throw: bool = True,
) -> FlowSolution:
    r"""Train `model` on `problem` with an optax optimiser, recording what `linflow.flow` records.

    Plain gradient descent $\theta_{k+1} = \theta_k - \eta\nabla L(\theta_k)$ is the forward-Euler
    discretisation of the gradient flow, so with `optimiser=None` the record's times are
    `ts = k * learning_rate` and the two compare directly: $\theta_k \approx \theta(k\eta)$
    with an error $O(\eta)$.

    The loop is a jitted `lax.scan` over the save points with a `while_loop` between them;
    a second call with the same shapes (and, for plain GD, any step size) does not recompile.

    **Arguments:**

    - `model`, `problem`: as for `linflow.flow`.
    - `learning_rate`: $\eta > 0$. Required unless `optimiser` is given; with a custom
      optimiser it only sets the clock `ts = k * learning_rate`.
    - `steps`: number of optimiser steps.
    - `optimiser`: any `optax.GradientTransformation` (default plain GD, `optax.sgd`).
    - `save_steps`: increasing step indices to save (default: 64 log-spaced, 0 and `steps`
      included).
    - `stop`: optional `linflow.Converged`; the run then ends early when it holds, and later
      saves repeat the final state. If it never holds within `steps`, `result` is
      `RESULTS.not_converged`.
    - `throw`: raise if the run did not end well: the loss became non-finite, or a `stop`
      was given and did not hold within `steps` (the message names the residual reached).

    **Returns:** a `linflow.FlowSolution` (`stats["num_steps"]` = steps taken).
    """
    _validate(model, problem, stop)
    if model.full_flow_system() is None:
        raise TypeError(
            f"`gd` needs a model whose state is its parameters; {type(model).__name__} is a "
            "lifted (Gram-matrix) model. Run gd on the TwoLayer/Symmetric model instead."
        )
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"`steps` must be >= 1, got {steps}.")
    if optimiser is None:
        if learning_rate is None:
            raise ValueError("`learning_rate` is required for plain gradient descent.")
        if not float(learning_rate) > 0:
            raise ValueError(f"`learning_rate` must be > 0, got {learning_rate}.")
    elif not isinstance(optimiser, optax.GradientTransformation):
        raise TypeError(f"`optimiser` must be an optax GradientTransformation, got {optimiser}.")
    if save_steps is None:
        save_steps = default_save_steps(steps)
    save_steps = np.asarray(save_steps, dtype=np.int64)
    if save_steps.ndim != 1 or save_steps.size == 0:
        raise ValueError("`save_steps` must be a non-empty 1-D array of step indices.")
    if np.any(np.diff(save_steps) < 0) or save_steps[0] < 0 or save_steps[-1] > steps:
        raise ValueError(f"`save_steps` must be increasing and within [0, steps={steps}].")
    dtype = jnp.result_type(*jax.tree.leaves(eqx.filter(model, eqx.is_array)))
    if optimiser is None:
        opt = _PLAIN_GD
        clock = jnp.asarray(learning_rate, dtype)
    else:
        opt = optimiser
        clock = jnp.asarray(1.0 if learning_rate is None else learning_rate, dtype)
    models, final, k_final, losses, diverged, converged = _run(
        model,
        problem,
        opt,
        None if optimiser is not None else clock,
        jnp.asarray(save_steps),
        stop,
    )
    # Without a stop, running all `steps` is the requested end; with one, it is a failure to
    # converge, reported as such.
    ended = RESULTS.successful if stop is None else RESULTS.not_converged
    result = RESULTS.where(
        diverged, RESULTS.diverged, RESULTS.where(converged, RESULTS.converged, ended)
    )
    sol = FlowSolution(
        ts=jnp.asarray(save_steps, dtype) * clock,
        saved=SavedModels(models),
        losses=losses,
        final=final,
        final_predictor=final.predictor(),
        t_final=k_final.astype(dtype) * clock,
        residual=problem.relative_excess(final.predictor()),
        result=result,
        stats={
            "num_steps": k_final,
            "num_accepted_steps": k_final,
            "num_rejected_steps": jnp.asarray(0),
            "max_steps": jnp.asarray(steps),
        },
        solver="gd" if optimiser is None else "optax",
        form="gd",
    )
    if throw:
        sol = raise_if_failed(sol, stop)
    return sol


@eqx.filter_jit
def _run(model, problem, opt, lr, save_steps, stop):
    params, static = eqx.partition(model, eqx.is_array)
    opt_state = opt.init(params)
    if lr is not None:
        opt_state.hyperparams["learning_rate"] = lr

    def loss_fn(p):
        return problem.loss(eqx.combine(p, static).predictor())

    def is_done(p):
        if stop is None:
            return jnp.asarray(False)
        model = eqx.combine(p, static)
        pred = model.predictor()
        tol = excess_tolerance(stop, problem, model.predictor_magnitude(), pred.dtype)
        return problem.relative_excess(pred) <= tol

    def bad(loss):
        return ~jnp.isfinite(loss)

    def inner(carry, target):
        def cond(c):
            p, s, k, done, div = c
            return (k < target) & ~done & ~div

        def body(c):
            p, s, k, done, div = c
            loss, grads = jax.value_and_grad(loss_fn)(p)
            updates, s = opt.update(grads, s, p)
            p = eqx.apply_updates(p, updates)
            return p, s, k + 1, is_done(p), bad(loss)

        carry = jax.lax.while_loop(cond, body, carry)
        p = carry[0]
        return carry, (p, loss_fn(p))

    init = (params, opt_state, jnp.asarray(0), is_done(params), jnp.asarray(False))
    carry, (saved, losses) = jax.lax.scan(inner, init, save_steps)
    p_final, _, k_final, converged, diverged = carry
    diverged = diverged | bad(loss_fn(p_final))
    models = eqx.combine(saved, static)
    final = eqx.combine(p_final, static)
    return models, final, k_final, losses, diverged, converged & ~diverged
