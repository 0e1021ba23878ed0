"""Following a classifier's direction in log-time (`linflow.LogTime`) far past the loss's stop,
against the l1 max-margin direction (HiGHS LP, `linflow.limits.max_margin`), which is where the
direction of a depth-2 diagonal network on the exponential loss converges as t -> infinity;
and the progress meter (off by default) leaving the flow unchanged."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow as lf
from linflow import limits


def _gap(beta, direction):
    beta = np.asarray(beta)
    return 1 - beta @ direction / (np.linalg.norm(beta) * np.linalg.norm(direction))


@pytest.mark.slow
def test_log_time_follows_the_direction_to_1e100_towards_the_l1_max_margin():
    k = jr.split(jr.PRNGKey(2), 2)
    X = jr.normal(k[0], (6, 10))
    labels = jnp.sign(X @ jr.normal(k[1], (10,)))
    problem = lf.Classification(X, labels)
    mm = np.asarray(limits.max_margin(X, labels, "l1"))
    model = lf.DiagonalNet.unbiased(10, 0.1)

    default = lf.flow(model, problem)
    assert default.stopped_by == lf.STOPS.optimum  # the loss converged, not the direction
    gap_default = _gap(default.final_predictor, mm)  # measured 0.019 at t = 1.5e17

    ts = jnp.array([1e99, 1e100])
    far = lf.flow(model, problem, stop=None, t1=1e100, clock=lf.LogTime(), saveat=lf.SaveAt(ts=ts))
    assert far.status == "successful"
    np.testing.assert_allclose(far.t_final, 1e100, rtol=1e-12)
    gap_far = _gap(far.final_predictor, mm)  # measured 0.0051
    # The direction converges like 1/log t: from log t = 40 to 230 the gap must shrink by a
    # large factor (measured 3.8x), far more than integration error could fake.
    assert gap_far <= 0.4 * gap_default

    # The reported rate is the direction's turning per unit log t: compare it with the
    # change of direction between the two saves (log t differs by log 10; the rate varies
    # like 1/(log t)^2 there, by ~2% over the interval).
    b = np.asarray(far.predictors)
    u = b / np.linalg.norm(b, axis=1, keepdims=True)
    fd = np.linalg.norm(u[1] - u[0]) / np.log(10.0)
    np.testing.assert_allclose(far.stats["direction_rate"], fd, rtol=0.05)


@pytest.mark.slow
def test_progress_meter_leaves_the_flow_unchanged():
    X = jr.normal(jr.PRNGKey(0), (4, 8))
    y = X @ jnp.zeros(8).at[0].set(1.0)
    model = lf.DiagonalNet.unbiased(8, 0.5)
    problem = lf.Regression(X, y)
    quiet = lf.flow(model, problem)
    shown = lf.flow(model, problem, progress=lf.Progress())
    # Same solver, same steps: the meter only reads the time (the solve runs to a finite
    # surrogate end, 1.3e154, that the stop ends long before).
    assert shown.status == "converged"
    np.testing.assert_allclose(shown.final_predictor, quiet.final_predictor, rtol=0, atol=1e-14)
    assert int(shown.stats["num_steps"]) == int(quiet.stats["num_steps"])


def test_log_time_and_progress_reject_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        lf.LogTime(scale=-1.0)
    with pytest.raises(ValueError, match="decades"):
        lf.Progress(decades=0.0)
    problem = lf.Regression(jnp.ones((2, 3)), jnp.ones(2))
    with pytest.raises(TypeError, match="clock"):
        lf.flow(lf.DiagonalNet.unbiased(3, 1.0), problem, clock="log")
    with pytest.raises(TypeError, match="progress"):
        lf.flow(lf.DiagonalNet.unbiased(3, 1.0), problem, progress=True)
