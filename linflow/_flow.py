import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._adjoint import ImplicitAdjoint, poison_tangent, refine_steady_state
from ._checks import is_concrete
from ._results import RESULTS
from ._saveat import SaveAt
from ._solution import FlowSolution
from ._solver import Auto, Fallback, SolverChoice
from ._stop import Converged, excess_tolerance
from ._system import AbstractFlowSystem, GradientFlowSystem
from .models._base import AbstractModel
from .problems import AbstractProblem


_DIVERGENCE_FACTOR = 1e12
_ATOL_FLOOR = 1e-3  # x rtol x AbstractFlowSystem.state_scale(): see there


def _validate(model, problem, stop):
    if not isinstance(model, AbstractModel):
        raise TypeError(f"`model` must be a linflow model (AbstractModel), got {type(model)}.")
    if not isinstance(problem, AbstractProblem):
        raise TypeError(
            f"`problem` must be a linflow problem (AbstractProblem), got {type(problem)}."
        )
    pred = eqx.filter_eval_shape(model.predictor)
    problem.check_predictor(pred, "model")
    if stop is not None and not isinstance(stop, Converged):
        raise TypeError(f"`stop` must be a `linflow.Converged` or None, got {type(stop)}.")
    leaves = [x for x in jax.tree.leaves(eqx.filter((model, problem), eqx.is_array))]
    for leaf in leaves:
        if jnp.issubdtype(leaf.dtype, jnp.floating) and jnp.finfo(leaf.dtype).bits < 64:
            rtol = stop.rtol if stop is not None else Converged().rtol
            if rtol < 1e-6:
                raise TypeError(
                    f"`model`/`problem` hold {leaf.dtype} arrays but the stop tolerance "
                    f"rtol={rtol:g} needs float64. Call "
                    "`jax.config.update('jax_enable_x64', True)` before creating arrays, or "
                    "pass `stop=linflow.Converged(rtol=1e-5)`."
                )
    for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_array)):
        if is_concrete(leaf) and not bool(np.all(np.isfinite(leaf))):
            raise ValueError("`model` has non-finite parameters (NaN or inf).")


def flow(
    model: AbstractModel,
    problem: AbstractProblem,
    *,
    saveat: SaveAt | None = None,
    stop: Converged | None = None,
    solver: "diffrax.AbstractSolver | SolverChoice | Fallback | None" = None,
    t1: float = jnp.inf,
    max_steps: int = 100_000,
    throw: bool = True,
    form: str = "auto",
    adjoint: "diffrax.AbstractAdjoint | ImplicitAdjoint | None" = None,
) -> FlowSolution:
    r"""Integrate the exact gradient flow $\dot\theta = -\nabla_\theta L(\theta)$ to a steady state.

    The flow runs from $t = 0$ to `t1` (default $\infty$) and stops when `stop` holds
    (default `linflow.Converged()`: relative excess loss $\le 10^{-10}$). It reports why it
    stopped in `FlowSolution.result`.

    Works under `jax.jit`, `eqx.filter_vmap` (over a batch of models or problems; pass
    `throw=False` there and read `result`), and `jax.grad` (through
    `diffrax.RecursiveCheckpointAdjoint` by default). A batched flow runs until its slowest
    member stops.

    **Arguments:**

    - `model`: the initial model $\theta(0)$.
    - `problem`: the data and loss, e.g. `linflow.Regression(X, y)`.
    - `saveat`: which times to save (default `linflow.SaveAt()`: 64 log-spaced times).
    - `stop`: the steady-state criterion (default `linflow.Converged()` when `t1` is infinite).
    - `solver`: a diffrax solver, a `linflow.SolverChoice`, a `linflow.Fallback` (one solver,
      then another if the first runs out of its step budget), or `None` for `linflow.Auto()`,
      which picks the solver and tolerances from the form and size of the state (see the
      docs' *flow engine* page).
    - `t1`: final time; `inf` integrates to the steady state.
    - `max_steps`: solver step budget; hitting it is reported as `max_steps_reached`.
    - `throw`: raise if the run did not end at a steady state (or at a finite `t1`).
    - `form`: `"auto"` (use an exact reduced form when the model has one), `"full"` or
      `"reduced"`.
    - `adjoint`: a diffrax adjoint (default `diffrax.RecursiveCheckpointAdjoint()`:
      backpropagation through the solver), or `linflow.ImplicitAdjoint()` to differentiate the
      limit by the implicit function theorem (exact reduced forms only). A gradient through a
      run that did not converge is NaN (or the backward solve raises), never silently wrong.

    **Returns:** a `linflow.FlowSolution`.
    """
    _validate(model, problem, stop)
    if saveat is None:
        saveat = SaveAt()
    if stop is None and not np.isfinite(t1):
        stop = Converged()
    if not (float(t1) > 0):
        raise ValueError(f"`t1` must be > 0, got {t1}.")
    if max_steps is None or int(max_steps) < 1:
        raise ValueError(f"`max_steps` must be a positive integer, got {max_steps}.")
    system = _select_system(model, problem, form)
    if solver is None:
        solver = Auto()
    if isinstance(solver, diffrax.AbstractSolver):
        solver = SolverChoice(solver)
    if isinstance(solver, Auto):
        solver = solver.choose(system, problem)
    if not isinstance(solver, (SolverChoice, Fallback)):
        raise TypeError(
            "`solver` must be a diffrax solver, a `linflow.SolverChoice`, a `linflow.Fallback`, "
            "or None, "
            f"got {type(solver)}."
        )
    y0 = system.initial_state()
    dtype = jnp.result_type(*[x.dtype for x in jax.tree.leaves(eqx.filter(y0, eqx.is_array))])
    ts = saveat.times(problem.time_scale(), dtype)
    if adjoint is None:
        adjoint = diffrax.RecursiveCheckpointAdjoint()
    if isinstance(adjoint, ImplicitAdjoint):
        if system.name in ("full", "rowspace"):
            raise ValueError(
                "`adjoint=ImplicitAdjoint()` needs an isolated steady state, which only exact "
                f"reduced forms have; {type(model).__name__} on {type(problem).__name__} "
                "flows in its full form (a manifold of minimisers). Use the default adjoint."
            )
        if stop is None:
            raise ValueError(
                "`adjoint=ImplicitAdjoint()` differentiates a steady state: pass "
                "`t1=inf` (the default) or a `stop`."
            )
    return _integrate(
        system, problem, ts, stop, solver, float(t1), int(max_steps), bool(throw), adjoint
    )


def _select_system(model, problem, form) -> AbstractFlowSystem:
    if form not in ("auto", "full", "reduced"):
        raise ValueError(f"`form` must be 'auto', 'full' or 'reduced', got {form!r}.")
    if hasattr(model, "flow_system"):
        # Lifted models (linflow.lifted) carry their own exact ODE: the gradient flow of their
        # state (a Gram matrix) is not the network's flow.
        if form == "full":
            raise ValueError(
                f"`form='full'` is not available for {type(model).__name__}: its state is a Gram "
                "matrix, not the network's parameters. Use form='auto' (the lifted flow)."
            )
        return model.flow_system(problem)
    if form == "full":
        return GradientFlowSystem(model)
    from .lifted import TwoLayerRowSpaceSystem
    from .models import TwoLayer

    if isinstance(model, TwoLayer) and TwoLayerRowSpaceSystem.is_smaller(model, problem):
        return TwoLayerRowSpaceSystem.build(model, problem.X)
    from ._reduced import reduced_system

    reduced = reduced_system(model, problem)
    if reduced is None:
        if form == "reduced":
            raise ValueError(
                f"`form='reduced'`: no exact reduced form is known for {type(model).__name__} "
                f"on {type(problem).__name__}."
            )
        return GradientFlowSystem(model)
    return reduced


@eqx.filter_jit
def _integrate(system, problem, ts, stop, choice, t1, max_steps, throw, adjoint):
    # One compiled function per (shapes, solver, stop, t1): repeated flows with new data,
    # scales or initialisations reuse it.
    implicit = isinstance(adjoint, ImplicitAdjoint)
    adjoint_cfg = adjoint
    if implicit:
        diff_args = (system, problem)
        system, problem = jax.lax.stop_gradient((system, problem))
        adjoint = diffrax.RecursiveCheckpointAdjoint()
    y0 = system.initial_state()
    if np.isfinite(t1):
        ts = jnp.minimum(ts, t1)
    ref = problem.reference_loss()

    def converged_fn(t, y, args, **kwargs):
        del t, args, kwargs
        # The system's predictor: for reduced forms, without the cancellation of the model's
        # own (w+^D - w-^D at a large scale would put the stop's floor at its rounding level).
        pred = system.predictor(y)
        tol = excess_tolerance(stop, problem, system.predictor_magnitude(y, pred))
        done = problem.relative_excess(pred) <= tol
        if stop.gtol is not None:
            g = system.vector_field(0.0, y, problem)
            gnorm = _tree_norm(g)
            pnorm = _tree_norm(eqx.filter(system.to_model(y), eqx.is_array))
            done = done | (gnorm * pnorm <= stop.gtol * 2 * ref)
        return done

    def diverged_fn(t, y, args, **kwargs):
        del t, args, kwargs
        loss = problem.loss(system.predictor(y))
        return ~jnp.isfinite(loss) | (loss > _DIVERGENCE_FACTOR * jnp.maximum(ref, 1.0))

    conds = [diverged_fn] if stop is None else [converged_fn, diverged_fn]
    event = diffrax.Event(cond_fn=conds)
    term = diffrax.ODETerm(system.vector_field)

    scale = system.state_scale()
    if scale is not None:
        scale = jax.lax.stop_gradient(scale)  # a tolerance, not part of the flow's value

    def run(c, t0, y_start, save_ts, steps):
        controller = c.stepsize_controller
        implicit_solver = isinstance(c.solver, diffrax.AbstractImplicitSolver)
        if scale is not None and implicit_solver and isinstance(controller, diffrax.PIDController):
            # Componentwise relative control below the rounding level of the state stalls
            # an implicit solver (`AbstractFlowSystem.state_scale`). (Explicit solvers keep
            # pure relative control: at large scales, where the state stays far below its
            # boundary scale, an absolute floor stalls them above the stop.)
            atol = jnp.maximum(controller.atol, _ATOL_FLOOR * controller.rtol * scale)
            controller = eqx.tree_at(lambda p: p.atol, controller, atol)
        dt0 = c.dt0(problem)
        if dt0 is None and isinstance(controller, diffrax.PIDController):
            # diffrax's own first-step rule (Hairer, Norsett & Wanner II.4), called on the
            # bare term: inside `diffeqsolve` the term arrives wrapped and the rule falls back
            # to dt0 = 0.01, which a high-order explicit step can accept in the middle of a
            # fast transient (seen: depth-3 reduced flow, alpha = 10, first step to t = 0.01
            # accepted, loss 1e9).
            tnext, _ = controller.init(
                term, t0, t1, y_start, None, problem, c.solver.func, c.solver.error_order(term)
            )
            dt0 = tnext - t0
            # The rule probes the field at y0 + h f(y0); a probe off the model's domain can
            # make it NaN, and a NaN step size would be rejected forever: start from the
            # problem's time scale instead and let the controller adapt.
            ok_dt0 = jnp.isfinite(dt0) & (dt0 > 0)
            dt0 = jnp.where(ok_dt0, dt0, 1e-3 * problem.time_scale())
            dt0 = jax.lax.stop_gradient(dt0)
        sol = diffrax.diffeqsolve(
            term,
            c.solver,
            t0=t0,
            t1=t1,
            dt0=dt0,
            y0=y_start,
            args=problem,
            saveat=diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=save_ts), diffrax.SubSaveAt(t1=True)]),
            stepsize_controller=controller,
            event=event,
            max_steps=steps,
            throw=False,
            adjoint=adjoint,
        )
        ys_ts, ys_final = sol.ys
        stats = {k: sol.stats[k] for k in ("num_steps", "num_accepted_steps", "num_rejected_steps")}
        if stop is None:  # (converged, diverged)
            mask = (jnp.asarray(False), sol.event_mask[0])
        else:
            mask = tuple(sol.event_mask)
        return _Phase(
            ys_ts,
            jax.tree.map(lambda x: x[0], ys_final),
            sol.ts[1][0],
            RESULTS.promote(sol.result),
            *mask,
            stats,
        )

    if isinstance(choice, Fallback):
        budget = min(choice.budget, max(1, max_steps // 2))
        phase = run(choice.first, 0.0, y0, ts, budget)

        def continue_with_then(first):
            # Continue from where `first` ran out of steps; saves before that come from
            # `first`. A gradient flow cannot diverge, so a divergence of `first` is a
            # numerical failure: `then` restarts from the initial state.
            restart = first.diverged & ~first.converged
            t_start = jnp.where(restart, 0.0, first.t_final)
            y_start = jax.tree.map(lambda a, b: jnp.where(restart, a, b), y0, first.y_final)
            second = run(
                choice.then, t_start, y_start, jnp.maximum(ts, t_start), max(1, max_steps - budget)
            )
            before = (ts <= t_start) & ~restart

            def merge(a, b):
                return jnp.where(before.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)

            stats = {k: first.stats[k] + second.stats[k] for k in first.stats}
            stats["fallback_steps"] = second.stats["num_steps"]
            ys_ts = jax.tree.map(merge, first.ys_ts, second.ys_ts)
            return eqx.tree_at(lambda p: (p.ys_ts, p.stats), second, (ys_ts, stats))

        def keep(first):
            stats = dict(first.stats, fallback_steps=jnp.zeros_like(first.stats["num_steps"]))
            return eqx.tree_at(lambda p: p.stats, first, stats)

        out_of_steps = phase.result == RESULTS.max_steps_reached
        switch = out_of_steps | (phase.diverged & ~phase.converged)
        phase = jax.lax.cond(switch, continue_with_then, keep, phase)
    else:
        phase = run(choice, 0.0, y0, ts, max_steps)
    ys_ts, final_y, t_final = phase.ys_ts, phase.y_final, phase.t_final
    result, converged, diverged = phase.result, phase.converged, phase.diverged
    is_event = result == RESULTS.event_occurred
    result = RESULTS.where(is_event & converged, RESULTS.converged, result)
    result = RESULTS.where(is_event & diverged & ~converged, RESULTS.diverged, result)
    if stop is not None and np.isfinite(t1):
        # Reaching a finite t1 before the stop is a legitimate end, reported as `successful`.
        pass
    elif stop is not None:
        result = RESULTS.where(result == RESULTS.successful, RESULTS.not_converged, result)

    # Saves requested after a steady state hold that steady state; after a failure, inf.
    after = ts > t_final
    fill = after & (result == RESULTS.converged)

    def _fill(x, xf):
        mask = fill.reshape((-1,) + (1,) * (x.ndim - 1))
        return jnp.where(mask, xf[None], x)

    ys_ts = jax.tree.map(_fill, ys_ts, final_y)
    ok = (result == RESULTS.converged) | (result == RESULTS.successful)
    models = jax.vmap(system.to_model)(ys_ts)
    if implicit:
        system, problem = diff_args
        final_y, root_ok = refine_steady_state(system, problem, final_y, adjoint_cfg)
        ok = ok & root_ok
    # A gradient through a run that did not end well is NaN, never silently wrong.
    final_y = poison_tangent(final_y, ok)
    final = system.to_model(final_y)
    losses = jax.vmap(lambda m: problem.loss(m.predictor()))(models)
    final_predictor = system.predictor(final_y)
    residual = problem.relative_excess(final_predictor)
    if throw:
        bad = (result != RESULTS.converged) & (result != RESULTS.successful)
        final = result.error_if(final, bad)
    stats = dict(phase.stats, max_steps=jnp.asarray(max_steps))
    return FlowSolution(
        ts=ts,
        models=models,
        losses=losses,
        final=final,
        final_predictor=final_predictor,
        t_final=t_final,
        residual=residual,
        result=result,
        stats=stats,
        solver=choice.name,
        solver_reason=choice.reason,
        form=system.name,
    )


class _Phase(eqx.Module):
    """What one `diffeqsolve` of a flow returns."""

    ys_ts: object
    y_final: object
    t_final: object
    result: RESULTS
    converged: object
    diverged: object
    stats: dict


def _tree_norm(tree):
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_array))
    return jnp.sqrt(sum(jnp.sum(x**2) for x in leaves))
