import jax
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


_NAN = np.full((3, 2), np.nan)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: lf.limits.min_imbalance(_NAN, np.ones((1, 2)), np.ones((2, 3))), "`U` contains"),
        (
            lambda: lf.limits.min_error(
                np.ones((3, 2)), np.ones((1, 2)), np.ones((2, 3)), np.full((2, 1), np.inf)
            ),
            "`Y` contains",
        ),
        (
            lambda: lf.limits.imbalance_level(np.ones((3, 2)), np.ones((1, 2)), np.zeros((0, 3))),
            "X",
        ),
        (
            lambda: lf.limits.two_layer_single_point_limit(
                np.eye(2), np.ones(2), np.ones(2), np.nan
            ),
            "`y` must be finite",
        ),
        (
            lambda: lf.limits.two_layer_single_point_limit(
                np.zeros((2, 2)), np.ones(2), np.ones(2), 1.0
            ),
            "data_tensor",
        ),
        (
            lambda: lf.limits.two_layer_single_point_limit(
                np.eye(2), np.array([1.0, 0.0]), np.array([0.0, 2.0]), 1.0
            ),
            "Thm 6 needs",
        ),
        (
            lambda: lf.limits.spectral_factorization_solution(
                np.eye(2), np.eye(2), np.eye(2), -1.0
            ),
            "`t` must be >= 0",
        ),
        (
            lambda: lf.limits.max_margin_solution(np.eye(2), np.array([1.0, np.nan])),
            "labels",
        ),
    ],
)
def test_limits_reject_bad_values_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_limits_shape_mismatch_is_named():
    # jaxtyping's runtime check (active in the test suite) raises a TypeError naming the
    # argument before the library's ValueError; without it the ValueError names it.
    with pytest.raises((ValueError, TypeError), match="V_inf"):
        lf.limits.min_limit(np.ones((2, 3)), np.ones((2, 1)), np.ones((3, 2)), np.ones((1, 3)))
    with pytest.raises((ValueError, TypeError), match="v1"):
        lf.limits.two_layer_single_point_limit(np.eye(2), np.ones(3), np.ones(2), 1.0)
    with pytest.raises((ValueError, TypeError), match="U"):
        lf.limits.split_weights(np.ones((4, 2)), np.ones((2, 3)))


def test_limits_check_values_under_jit():
    X, V = jnp.ones((2, 3)), jnp.ones((1, 2))
    svd = lf.limits.data_svd(X)  # decides the rank eagerly: computed outside jit
    imbalance = jax.jit(lambda U: lf.limits.min_imbalance(U, V, X, svd))
    assert imbalance(jnp.ones((3, 2))).shape == (2, 2)
    with pytest.raises(Exception, match="`U` contains NaN"):
        jax.block_until_ready(imbalance(jnp.full((3, 2), jnp.nan)))
