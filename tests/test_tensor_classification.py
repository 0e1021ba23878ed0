"""Yun et al. 2021, Cor. 1-3: exponential-loss flows of linear tensor networks on separable
data converge in direction to a max-margin direction in the transformed space."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensor_flows import SOLVER

import linflow
from linflow.limits import tensor_margin_direction


X = jnp.array([[1.0, 2.0], [0.0, -3.0]])
LABELS = jnp.array([1.0, -1.0])
TS = jnp.logspace(0, 100, 11)


def test_max_margin_directions_of_the_toy():
    # Sec. 6: the max-margin classifiers point along the toy regression's min-norm
    # solutions: l2 -> [0.2, 0.4], l1 -> [0, 0.5], DFT-l1 -> [1/3, 1/3].
    for kind, z in [("fully_connected", [1, 2]), ("diagonal", [0, 1]), ("convolution", [1, 1])]:
        want = np.array(z) / np.linalg.norm(z)
        np.testing.assert_allclose(tensor_margin_direction(kind, X, LABELS), want, atol=1e-7)


@pytest.mark.parametrize("kind", ["diagonal", "convolution", "fully_connected"])
def test_exponential_loss_flow_converges_in_direction(kind, getkey):
    # The flow has no steady state (|beta| grows like log t): run to a finite t1 = 1e100 with
    # log-spaced saves (about 1,300 adaptive steps: the step grows like t). The direction
    # converges slowly: measured, the angle to the limit decays like (log t)^(-p) with
    # p = 0.48 (diagonal), 0.65 (convolution, still in transit), 0.49 (fully connected) over
    # t in [1e50, 1e100] -- consistent with parameters growing like sqrt(log t) around a
    # bounded remainder, i.e. an angle O(1/sqrt(log t)) for depth 2. We check the fitted
    # exponent and a threshold this rate reaches at t = 1e100.
    model = getattr(linflow.TensorNet, kind)(getkey(), 2, 2, 0.5)
    sol = linflow.flow(
        model,
        linflow.Classification(X, LABELS),
        saveat=linflow.SaveAt(ts=TS),
        t1=float(TS[-1]),
        solver=SOLVER,
    )
    assert sol.result == linflow.RESULTS.successful
    target = tensor_margin_direction(kind, X, LABELS)
    B = sol.predictors
    cos = B @ target / jnp.linalg.norm(B, axis=1)
    angle = np.arccos(np.clip(np.asarray(cos), -1.0, 1.0))
    assert np.all(np.diff(angle[-6:]) < 0), angle
    logt = np.log(np.asarray(TS))
    p = -np.polyfit(np.log(logt[-6:]), np.log(angle[-6:]), 1)[0]
    assert 0.35 < p < 1.0, p
    assert float(cos[-1]) > 0.995, cos
    # and the loss goes to zero like 1/t (exp-loss, margin ~ log t)
    assert float(sol.losses[-1]) < 1e-90


def test_non_separable_data_is_reported():
    Xn = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="not linearly separable"):
        tensor_margin_direction("diagonal", Xn, jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="not linearly separable"):
        tensor_margin_direction("fully_connected", Xn, jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="labels"):
        tensor_margin_direction("diagonal", X, jnp.array([1.0, 2.0]))
    with pytest.raises(NotImplementedError):
        tensor_margin_direction("diagonal", X, LABELS, depth=3)


def test_problem_builds_inside_jit_with_closed_over_labels():
    # The +-1 check must not call bool() on a jnp comparison a caller's jit has staged.
    loss = jax.jit(lambda w: linflow.Classification(X, LABELS).loss(w))
    w = jnp.array([0.3, -0.2])
    np.testing.assert_allclose(loss(w), linflow.Classification(X, LABELS).loss(w), rtol=1e-14)
