"""Run functions used by tests/test_sweep.py, importable from subprocesses (tests/ on the path)."""

import os
import time

import jax
import jax.numpy as jnp
import jax.random as jr

import linflow


TRACES = {"count": 0}
EVALUATIONS = {"count": 0}
DELAY = {"seconds": 0.0}


def closed_form(point, key):
    """Metrics with a closed form in the coordinates, plus one draw from the point's key."""
    TRACES["count"] += 1
    n = point["n"]
    x = jnp.arange(1.0, n + 1.0) * point["alpha"]  # shape depends on the static axis n
    return {
        "total": jnp.sum(x) + point["seed"],  # alpha n (n + 1) / 2 + seed
        "head": x[:2],  # alpha * [1, 2]
        "draw": jr.uniform(key, dtype=jnp.float64),
    }


def _slow_identity(alpha):
    EVALUATIONS["count"] += 1
    time.sleep(DELAY["seconds"])
    return alpha


def slow(point, key):
    """`closed_form` plus a host callback that counts (and optionally delays) evaluations."""
    alpha = jax.pure_callback(
        _slow_identity,
        jax.ShapeDtypeStruct((), jnp.float64),
        point["alpha"],
        vmap_method="sequential",
    )
    return {"value": alpha * point["n"] + point["seed"], "draw": jr.uniform(key, dtype=jnp.float64)}


def flow_point(point, key):
    """A small sparse-regression flow (reduced exact form) and its outcome."""
    del key
    d = 6
    data_key = jr.fold_in(jr.PRNGKey(3), point["seed"])
    problem, beta_star = linflow.sparse_regression(data_key, point["n"], d, 2, noise=0.0)
    sol = linflow.flow(
        linflow.DiagonalNet.unbiased(d, point["alpha"]),
        problem,
        saveat=linflow.SaveAt(num=1),
        throw=False,
    )
    beta = sol.final.predictor()
    return {
        "beta": beta,
        "train_residual": problem.X @ beta - problem.Y,
        "error": jnp.sum((beta - beta_star) ** 2),
        "num_steps": sol.stats["num_steps"],
        "result": sol.result,
    }


def outcomes(point, key):
    """A made-up status: alpha > 1 'fails' with max_steps_reached; alpha == 0.5 gives NaN."""
    del key
    a = point["alpha"]
    result = linflow.RESULTS.where(
        a > 1.0, linflow.RESULTS.max_steps_reached, linflow.RESULTS.converged
    )
    return {"value": jnp.where(a == 0.5, jnp.nan, a), "result": result}


def _exit_once_at(seed):
    """Kill this process (as a crash would) the first time it evaluates a point whose seed is
    $LINFLOW_TEST_KILL_SEED while the marker file $LINFLOW_TEST_KILL_MARKER exists."""
    marker = os.environ.get("LINFLOW_TEST_KILL_MARKER", "")
    if int(seed) == int(os.environ.get("LINFLOW_TEST_KILL_SEED", "-1")) and os.path.exists(marker):
        os.remove(marker)
        os._exit(17)
    return seed


def dies_once(point, key):
    """`closed_form`'s metrics; evaluating it kills the process once (see `_exit_once_at`)."""
    seed = jax.pure_callback(
        _exit_once_at,
        jax.ShapeDtypeStruct((), point["seed"].dtype),
        point["seed"],
        vmap_method="sequential",
    )
    out = closed_form(point, key)
    out["total"] = out["total"] - point["seed"] + seed  # the callback's value is used
    return out
