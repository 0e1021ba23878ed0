import jax.numpy as jnp
import numpy as np
import pytest

import linflow as lf


def test_regression_shape_mismatch():
    with pytest.raises(ValueError, match="`X` has 3 rows"):
        lf.Regression(jnp.ones((3, 4)), jnp.ones(5))
    with pytest.raises(ValueError, match="`X` must have 2"):
        lf.Regression(jnp.ones(3), jnp.ones(3))


def test_non_finite_data():
    X = np.ones((3, 4))
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="`X` contains NaN"):
        lf.Regression(X, jnp.ones(3))
    with pytest.raises(ValueError, match="`Y` contains NaN"):
        lf.Regression(jnp.ones((3, 4)), jnp.array([1.0, jnp.inf, 0.0]))


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_alpha_must_be_positive(alpha):
    with pytest.raises(ValueError, match="`alpha` must be > 0"):
        lf.DiagonalNet.unbiased(4, alpha)


def test_depth_at_least_two():
    with pytest.raises(ValueError, match="`depth` must be an integer >= 2"):
        lf.DiagonalNet.unbiased(4, 1.0, depth=1)


def test_model_problem_shape_mismatch():
    prob = lf.Regression(jnp.ones((3, 4)), jnp.ones(3))
    with pytest.raises(ValueError, match=r"predictor of shape \(5,\).*expects shape \(4,\)"):
        lf.flow(lf.DiagonalNet.unbiased(5, 1.0), prob)


def test_float32_with_a_float64_tolerance_is_refused():
    prob = lf.Regression(jnp.ones((3, 4), jnp.float32), jnp.ones(3, jnp.float32))
    model = lf.DiagonalNet(jnp.ones(4, jnp.float32), jnp.ones(4, jnp.float32))
    with pytest.raises(TypeError, match="needs float64"):
        lf.flow(model, prob)


def test_bad_saveat_and_stop():
    with pytest.raises(ValueError, match="non-decreasing"):
        lf.SaveAt(ts=jnp.array([1.0, 0.5]))
    with pytest.raises(ValueError, match="rtol"):
        lf.Converged(rtol=0.0)


def test_gd_needs_a_step_size():
    prob = lf.Regression(jnp.ones((3, 4)), jnp.ones(3))
    with pytest.raises(ValueError, match="`learning_rate` is required"):
        lf.gd(lf.DiagonalNet.unbiased(4, 1.0), prob, steps=10)
    with pytest.raises(ValueError, match="`steps` must be >= 1"):
        lf.gd(lf.DiagonalNet.unbiased(4, 1.0), prob, 0.1, steps=0)
