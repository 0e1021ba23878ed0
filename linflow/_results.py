import diffrax
import equinox as eqx
import jax
import numpy as np

from ._checks import is_concrete


class RESULTS(diffrax.RESULTS):  # pyright: ignore[reportGeneralTypeIssues]
    """Why a flow stopped. `RESULTS.converged` is the only success.

    Extends `diffrax.RESULTS` (`max_steps_reached`, `dt_min_reached`, ...) with the outcomes of
    a steady-state solve.
    """

    converged = ""
    diverged = (
        "The flow diverged: the loss became non-finite or grew by more than 1e12 times its "
        "reference value. Check the data scale or the initialisation."
    )
    not_converged = (
        "The run ended before the stop criterion held (`flow` reached `t1`, or `gd` ran all "
        "its `steps`). Increase `t1` or `steps`, or loosen `stop`."
    )
    not_separable = (
        "The data are not linearly separable through the origin: no max-margin direction "
        "exists (the margin problem is infeasible)."
    )
    solver_failed = (
        "The convex solver of the limit did not return an optimal solution to the requested "
        "accuracy."
    )


def result_names(result: RESULTS) -> "str | np.ndarray":
    """The name of each outcome in `result` (e.g. `"converged"`): a `str` for a single run, a
    NumPy array of strings of the batch's shape for a batched one. Needs concrete values
    (outside `jit`)."""
    value = result._value
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            "`FlowSolution.status` needs a concrete solution: read it outside `jit`/`vmap` "
            "(inside, compare `result` with `linflow.RESULTS.<name>`)."
        )
    names = {int(item._value): name for name, item in RESULTS._name_to_item.items()}
    codes = np.asarray(value)
    if codes.ndim == 0:
        return names.get(int(codes), "unknown")
    return np.vectorize(lambda c: names.get(int(c), "unknown"), otypes=[str])(codes)


def raise_if_failed(sol, stop):
    """`sol` if its run ended well (`converged` or `successful`); otherwise raise.

    For a concrete solution the error (`equinox.EquinoxRuntimeError`) says why the run ended,
    the time and steps it took, and the relative excess loss reached against the stop's
    tolerance. Under `jit`/`vmap` it is an `eqx.error_if` on `sol.final` with the outcome's
    message (read `residual` with `throw=False` there)."""
    result = sol.result
    if isinstance(result._value, jax.core.Tracer):
        bad = (result != RESULTS.converged) & (result != RESULTS.successful)
        return eqx.tree_at(lambda s: s.final, sol, result.error_if(sol.final, bad))
    # Concrete: in NumPy (two array operations run eagerly would be two more programs).
    ok = [int(RESULTS.converged._value), int(RESULTS.successful._value)]
    bad = ~np.isin(np.asarray(result._value), ok)
    if not bad.any():
        return sol
    names = np.atleast_1d(result_names(result))
    codes = np.atleast_1d(np.asarray(result._value))
    first = int(np.flatnonzero(bad.ravel())[0])
    text = RESULTS._index_to_message[int(codes.ravel()[first])]

    def pick(x, spec):
        # Under `jax.grad`/`jax.jvp` outside `jit` the outcome is a value but the times and
        # losses are tracers of the transformation: said so rather than converted.
        if not is_concrete(x):
            return "(traced)"
        x = np.asarray(x)
        return format(x.ravel()[first] if bad.ndim else x, spec)

    target = "" if stop is None else f"; the stop asks for {stop.rtol:g} (or its rounding floor)"
    where = f" (batch member {first}, of {bad.size})" if bad.ndim else ""
    raise eqx.EquinoxRuntimeError(
        f"{names.ravel()[first]}{where}: {text}\n"
        f"The run ended at t = {pick(sol.t_final, '.4g')} "
        f"after {pick(sol.stats['num_steps'], 'd')} steps with relative excess loss "
        f"(`FlowSolution.residual`) {pick(sol.residual, '.3g')}{target}. Pass `throw=False` "
        "to get the solution."
    )
