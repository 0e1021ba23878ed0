import functools

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import _exported as exported
from ._adjoint import ImplicitAdjoint, poison_tangent, refine_steady_state
from ._autodiff_mode import default_adjoint
from ._checks import checks_as_nan, is_concrete
from ._gc_deferral import full_collections_deferred
from ._log_time import LogTime, RealTime
from ._progress import Progress
from ._results import RESULTS, raise_if_failed
from ._saveat import SaveAt
from ._saved_models import SavedModels
from ._solution import FlowSolution
from ._solver import Auto, Fallback, SolverChoice
from ._steady_state import STOPS, SteadyState, direction_rate
from ._stop import Converged, precision_floor
from ._system import AbstractFlowSystem
from ._trace_cache import traced_shape
from ._traced_once import TracedOnce
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
    pred = traced_shape(model.predictor)
    problem.check_predictor(pred, "model")
    if stop is not None and not isinstance(stop, Converged):
        raise TypeError(f"`stop` must be a `linflow.Converged` or None, got {type(stop)}.")
    leaves = jax.tree.leaves(eqx.filter((model, problem), eqx.is_array))
    for leaf in leaves:
        # float32 works, down to its precision floor (`linflow.Converged`); below float32 the
        # floor is above 1e-3 and the stop means little.
        if jnp.issubdtype(leaf.dtype, jnp.floating) and precision_floor(leaf.dtype) > 1e-3:
            raise TypeError(
                f"`model`/`problem` hold {leaf.dtype} arrays: flows need float32 or float64 "
                f"(the stop's precision floor in {leaf.dtype} would be "
                f"{precision_floor(leaf.dtype):.2g}). Convert them with `.astype(jnp.float32)`."
            )
    floats = {
        name: sorted(
            {
                str(x.dtype)
                for x in jax.tree.leaves(eqx.filter(obj, eqx.is_array))
                if jnp.issubdtype(x.dtype, jnp.floating)
            }
        )
        for name, obj in (("model", model), ("problem", problem))
    }
    if len(set(floats["model"]) | set(floats["problem"])) > 1:
        raise TypeError(
            f"`model` holds {'/'.join(floats['model'])} arrays and `problem` "
            f"{'/'.join(floats['problem'])}: the flow runs in one precision. Convert both to "
            "float64 (with `jax_enable_x64`) or both to float32."
        )
    for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_array)):
        if is_concrete(leaf) and not bool(np.all(np.isfinite(leaf))):
            raise ValueError("`model` has non-finite parameters (NaN or inf).")


@full_collections_deferred()  # tracing builds a large heap: no repeated full collections
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
    clock: LogTime | None = None,
    progress: "Progress | None" = None,
) -> FlowSolution:
    r"""Integrate the exact gradient flow $\dot\theta = -\nabla_\theta L(\theta)$ to a steady state.

    The flow runs from $t = 0$ to `t1` (default $\infty$) and stops when `stop` holds
    (default `linflow.Converged()`: relative excess loss $\le 10^{-10}$). It reports why it
    stopped in `FlowSolution.result`.

    Works under `jax.jit`, `eqx.filter_vmap` (over a batch of models or problems; pass
    `throw=False` there and read `result`), `jax.grad` (through
    `diffrax.RecursiveCheckpointAdjoint` by default) and `jax.jvp` / `jax.jacfwd` (through
    `diffrax.ForwardMode`, picked automatically; see `adjoint`), with either adjoint. A
    batched flow runs until its slowest member stops.

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
    - `adjoint`: a diffrax adjoint, or `None` (default) for the one the call's autodiff
      mode needs: `diffrax.RecursiveCheckpointAdjoint()` (backpropagation through the
      solver) normally, `diffrax.ForwardMode()` when `flow` is called under `jax.jvp` /
      `jax.jacfwd`, `diffrax.DirectAdjoint()` under both modes (`jax.hessian`); inside your
      own `jax.jit` the mode cannot be seen, so pass `adjoint=diffrax.ForwardMode()` there
      for forward mode. Or `linflow.ImplicitAdjoint()` to differentiate the
      limit by the implicit function theorem (exact reduced forms only). A gradient through a
      run that did not converge is NaN (or the backward solve raises), never silently wrong.
    - `clock`: `None` (integrate in $t$) or `linflow.LogTime()`: integrate in
      $s = \log(1 + t/\tau)$, to follow a flow over many decades of time (e.g. a
      classifier's direction to $t = 10^{100}$); the trajectory and all times reported are
      the same.
    - `progress`: `None` (default: silent) or `linflow.Progress()`: a diffrax progress
      meter (tqdm) over a log-time scale, for long single flows.

    **Returns:** a `linflow.FlowSolution`.
    """
    _validate(model, problem, stop)
    if saveat is None:
        saveat = SaveAt()
    saveat = saveat.checked()
    if stop is None and not np.isfinite(t1):
        stop = Converged()
    if not (float(t1) > 0):
        raise ValueError(f"`t1` must be > 0, got {t1}.")
    if max_steps is None or int(max_steps) < 1:
        raise ValueError(f"`max_steps` must be a positive integer, got {max_steps}.")
    # One compiled program builds the form (a reduced form computes from the model and the
    # data): built eagerly, each of its array operations would be a program of its own, and
    # a new process would load each from the cache before its first flow.
    system = _build_system(model, problem, form)
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
    if adjoint is None:
        adjoint = default_adjoint((model, problem))
    if isinstance(adjoint, ImplicitAdjoint):
        if not system.is_reduced:
            raise ValueError(
                "`adjoint=ImplicitAdjoint()` needs an isolated steady state, which only exact "
                f"reduced forms have; {type(model).__name__} on {type(problem).__name__} "
                f"flows in its {system.name!r} form, whose minimisers form a manifold. Use "
                "the default adjoint."
            )
        if stop is None:
            raise ValueError(
                "`adjoint=ImplicitAdjoint()` differentiates a steady state: pass "
                "`t1=inf` (the default) or a `stop`."
            )
    if clock is None:
        clock = RealTime()
    if not isinstance(clock, (LogTime, RealTime)):
        raise TypeError(f"`clock` must be None or a `linflow.LogTime`, got {type(clock)}.")
    if progress is not None and not isinstance(progress, Progress):
        raise TypeError(f"`progress` must be None or a `linflow.Progress`, got {type(progress)}.")
    args = (system, problem, saveat, stop, solver, float(t1), int(max_steps), adjoint, clock)
    args = args + (progress,)
    # Concrete calls run through the flow's exported program, traced once per configuration
    # and kept on disk for the next process (`linflow._exported`); not with a progress meter,
    # whose host callbacks cannot be exported.
    call = exported.call if progress is None else _direct
    if isinstance(solver, Fallback) and _is_concrete(args):
        # Compile `then` only if `first` runs out of its budget: most flows never need it, and
        # it is the larger program (an implicit solver with its Newton iteration and linear
        # solver). Under a caller's `jit`/`vmap`/`grad` the choice is a value the program
        # computes, so both stay in one program (`part="both"`).
        sol, first, switch = call(_integrate, *args, part="first")
        if bool(switch):
            sol = call(_integrate, *args, part="then", first=first)
    elif _is_concrete(args):
        sol = call(_integrate, *args)
    else:
        sol = _integrate(*args)
    # Outside the compiled solve, so that a concrete failure's error can name the residual
    # reached (under jit/vmap: an `eqx.error_if` on `final`).
    return raise_if_failed(sol, stop) if throw else sol


def _direct(fn, *args, **kwargs):
    return fn(*args, **kwargs)


def _is_concrete(tree) -> bool:
    """Whether the flow can be decided here: `tree` holds values, and no caller's `jit` is
    tracing (inside one, an operation on constants gives a tracer, and so would the switch)."""
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_array))
    return all(is_concrete(x) for x in leaves) and is_concrete(jnp.zeros(()))


@eqx.filter_jit
def _build_system(model, problem, form) -> AbstractFlowSystem:
    return _select_system(model, problem, form)


def _select_system(model, problem, form) -> AbstractFlowSystem:
    # The model chooses its integrated form (`AbstractModel.flow_system`,
    # `AbstractModel.full_flow_system`); `form` only asks for one of them.
    if form not in ("auto", "full", "reduced"):
        raise ValueError(f"`form` must be 'auto', 'full' or 'reduced', got {form!r}.")
    if form == "full":
        system = model.full_flow_system()
        if system is None:
            raise ValueError(
                f"`form='full'` is not available for {type(model).__name__}: its state is not "
                "the network's parameters (e.g. a Gram matrix). Use form='auto'."
            )
        return system
    system = model.flow_system(problem)
    if form == "reduced" and not system.is_reduced:
        raise ValueError(
            f"`form='reduced'`: no exact reduced form is known for {type(model).__name__} "
            f"on {type(problem).__name__}."
        )
    return system


@eqx.filter_jit
def _integrate(
    system,
    problem,
    saveat,
    stop,
    choice,
    t1,
    max_steps,
    adjoint,
    clock,
    progress,
    part="both",
    first=None,
):
    # One compiled function per (shapes, solver, stop, t1): repeated flows with new data,
    # scales or initialisations reuse it. For a `Fallback`, `part` is "both" (one program
    # choosing at run time), "first" (its first solver only; also returns that phase and
    # whether `then` must continue it) or "then" (continues `first`, the phase "first" gave).
    implicit = isinstance(adjoint, ImplicitAdjoint)
    adjoint_cfg = adjoint
    if implicit:
        diff_args = (system, problem)
        system, problem = jax.lax.stop_gradient((system, problem))
        adjoint = diffrax.RecursiveCheckpointAdjoint()
    y0 = system.initial_state()
    dtype = jnp.result_type(*[x.dtype for x in jax.tree.leaves(eqx.filter(y0, eqx.is_array))])
    ts = saveat.times(problem.time_scale(), dtype, t1)
    if np.isfinite(t1):
        ts = jnp.minimum(ts, t1)
    ref = problem.reference_loss()

    # The records below use `system` itself; the solve and its stop test call the field and
    # the predictor a dozen times each while tracing, and trace each once (`TracedOnce`).
    flow_system = system
    system = traced_system = TracedOnce(system)
    steady = None if stop is None else SteadyState(system, problem, stop, y0)
    # The solver's independent variable (`linflow.LogTime`): `ts`, `t1` and the times the
    # solves return are in its units until converted back below.
    clock = clock.bind(problem)
    system = clock.wrap(system)
    ts_user = ts
    ts = clock.to_solver(ts)
    t1_solver = clock.to_solver(t1)
    if progress is None:
        meter, t1_run = diffrax.NoProgressMeter(), t1_solver
    else:
        meter, t1_run = progress.meter(clock, problem, t1, t1_solver, ts.dtype)

    def diverged_fn(pred):
        loss = problem.loss(pred)
        return ~jnp.isfinite(loss) | (loss > _DIVERGENCE_FACTOR * jnp.maximum(ref, 1.0))

    def run(c, t0, y_start, save_ts, steps, system=system, steady=steady):
        # `system`, `steady`: the form (and the stop bound to it) whose state `y_start` is;
        # another than the flow's own after `AbstractFlowSystem.restarted`.
        def stop_fn(t, y, args, **kwargs):
            # One event function, with one evaluation of the predictor: diffrax evaluates
            # every event function at every step and keeps a mask for each; which of the two
            # tests held is read off the final state (below). The system's predictor: for
            # reduced forms, without the cancellation of the model's own (w+^D - w-^D at a
            # large scale would put the stop's floor at its rounding level).
            del args, kwargs
            pred = system.predictor(y)
            done = diverged_fn(pred)
            return done if stop is None else done | steady.holds(clock.from_solver(t), y, pred)

        event = diffrax.Event(cond_fn=stop_fn)
        term = diffrax.ODETerm(system.vector_field)
        scale = system.state_scale()
        if scale is not None:
            scale = jax.lax.stop_gradient(scale)  # a tolerance, not part of the flow's value
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
            # (Times in the state's dtype: the rule's internal branches must agree on it, and
            # a float32 state under x64 would otherwise meet float64 times.)
            tnext, _ = controller.init(
                term,
                jnp.asarray(t0, dtype),
                jnp.asarray(t1_solver, dtype),
                y_start,
                None,
                problem,
                c.solver.func,
                c.solver.error_order(term),
            )
            dt0 = tnext - t0
            # The rule probes the field at y0 + h f(y0); a probe off the model's domain can
            # make it NaN, and a NaN step size would be rejected forever: start from the
            # problem's time scale instead and let the controller adapt.
            ok_dt0 = jnp.isfinite(dt0) & (dt0 > 0)
            dt0 = jnp.where(ok_dt0, dt0, 1e-3 * problem.time_scale())
            dt0 = jax.lax.stop_gradient(dt0)
        with checks_as_nan():  # a program without host callbacks is cached on disk
            sol = diffrax.diffeqsolve(
                term,
                c.solver,
                t0=t0,
                t1=t1_run,
                dt0=dt0,
                y0=y_start,
                args=problem,
                saveat=diffrax.SaveAt(
                    subs=[diffrax.SubSaveAt(ts=save_ts), diffrax.SubSaveAt(t1=True)]
                ),
                stepsize_controller=controller,
                event=event,
                max_steps=steps,
                throw=False,
                adjoint=adjoint,
                progress_meter=meter,
            )
        ys_ts, ys_final = sol.ys
        y_final = jax.tree.map(lambda x: x[0], ys_final)
        t_final = sol.ts[1][0]
        stats = {k: sol.stats[k] for k in ("num_steps", "num_accepted_steps", "num_rejected_steps")}
        # The event ends the solve at the first step end where the stop or the divergence
        # test holds (never both: a loss above 1e12 L_ref, or NaN, fails the stop).
        diverged = sol.event_mask & diverged_fn(system.predictor(y_final))
        converged = sol.event_mask & ~diverged if stop is not None else jnp.asarray(False)
        return _Phase(
            ys_ts, y_final, t_final, RESULTS.promote(sol.result), converged, diverged, stats
        )

    if isinstance(choice, Fallback):
        budget = min(choice.budget, max(1, max_steps // 2))
        phase = first if part == "then" else run(choice.first, 0.0, y0, ts, budget)

        def continue_with_then(first):
            # Continue from where `first` ran out of steps; saves before that come from
            # `first`. A gradient flow cannot diverge, so a divergence of `first` is a
            # numerical failure: `then` restarts from the initial state.
            restart = first.diverged & ~first.converged
            t_start = jnp.where(restart, 0.0, first.t_final)
            y_start = jax.tree.map(lambda a, b: jnp.where(restart, a, b), y0, first.y_final)
            # `then` integrates the form restarted where `first` ended: a propagator grown
            # over the whole flow can stall an implicit solver that finishes from a fresh
            # base (`AbstractPropagatorForm`); other forms continue their own state.
            # (Restarted once, then seen through the clock as the flow's own form is.)
            restarted, y_new = traced_system.restarted(y_start)
            if steady is None:
                steady_new = None
            else:
                steady_new = eqx.tree_at(lambda s: s.system, steady, restarted)
            second = run(
                choice.then,
                t_start,
                y_new,
                jnp.maximum(ts, t_start),
                max(1, max_steps - budget),
                clock.wrap(restarted),
                steady_new,
            )
            back = functools.partial(system.from_restarted, y_start)
            second = eqx.tree_at(
                lambda p: (p.ys_ts, p.y_final),
                second,
                (jax.vmap(back)(second.ys_ts), back(second.y_final)),
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
        if part == "both":
            phase = jax.lax.cond(switch, continue_with_then, keep, phase)
        elif part == "first":
            first = phase
            phase = keep(phase)
        else:
            phase = continue_with_then(phase)
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

    s_final, t_final = t_final, clock.from_solver(t_final)
    # Saves requested after a steady state hold that steady state; after a failure, NaN.
    after = ts > s_final
    fill = after & (result == RESULTS.converged)

    def _fill(x, xf):
        mask = fill.reshape((-1,) + (1,) * (x.ndim - 1))
        nan = (after & ~fill).reshape(mask.shape)
        return jnp.where(mask, xf[None], jnp.where(nan, jnp.nan, x))

    ys_ts = jax.tree.map(_fill, ys_ts, final_y)
    ts, ys_ts = saveat.select(ts_user, ys_ts, y0, t_final, final_y)
    if steady is None:
        stopped_by = STOPS.where(jnp.asarray(False), STOPS.none, STOPS.none)
    else:
        stopped_by = steady.which(t_final, final_y, result == RESULTS.converged)
    turning = direction_rate(flow_system, problem, t_final, final_y)
    ok = (result == RESULTS.converged) | (result == RESULTS.successful)
    saved = SavedModels.smaller(flow_system, ys_ts)
    if implicit:
        system, problem = diff_args
        final_y, root_ok = refine_steady_state(system, problem, final_y, adjoint_cfg)
        ok = ok & root_ok
    # A gradient through a run that did not end well is NaN, never silently wrong.
    final_y = poison_tangent(final_y, ok)
    final = system.to_model(final_y)
    losses = jax.vmap(lambda y: problem.loss(flow_system.predictor(y)))(ys_ts)
    final_predictor = system.predictor(final_y)
    residual = problem.relative_excess(final_predictor)
    stats = dict(phase.stats, max_steps=jnp.asarray(max_steps), direction_rate=turning)
    solution = FlowSolution(
        ts=ts,
        saved=saved,
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
        stopped_by=stopped_by,
    )
    if part == "first":
        return solution, first, switch
    return solution


class _Phase(eqx.Module):
    """What one `diffeqsolve` of a flow returns."""

    ys_ts: object
    y_final: object
    t_final: object
    result: RESULTS
    converged: object
    diverged: object
    stats: dict
