"""One jitted flow runner shared by the tensor-network tests: runs with the same model
structure and data shapes reuse one compilation."""

import diffrax
import equinox as eqx
import jax.numpy as jnp

import linflow


# Explicit 8th-order RK at tight tolerances: these small flows are not stiff for the scales
# tested (alpha >= 1e-3), and its compile time is a fraction of Kvaerno5's.
SOLVER = linflow.SolverChoice(diffrax.Dopri8(), rtol=1e-12, atol=1e-14)
SAVEAT = linflow.SaveAt(ts=jnp.logspace(-2, 6, 17))


@eqx.filter_jit
def _run(model, problem, saveat, stop):
    return linflow.flow(
        model, problem, saveat=saveat, stop=stop, solver=SOLVER, max_steps=200_000, throw=False
    )


def run(model, problem, stop=None):
    """The flow to its steady state (checked by the caller via `sol.result`)."""
    return _run(model, problem, SAVEAT, stop if stop is not None else linflow.Converged())
