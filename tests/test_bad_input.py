import equinox as eqx
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


def test_float16_is_refused_before_tracing():
    # float32 flows (tests/test_float32.py); below it the stop's floor (256 eps = 0.25 in
    # float16) means nothing, so the flow refuses, naming the dtype.
    # (A float16 Regression cannot even be built: its eigh has no float16 kernel.)
    prob = lf.Regression(jnp.ones((3, 4), jnp.float32), jnp.ones(3, jnp.float32))
    model = lf.DiagonalNet(jnp.ones(4, jnp.float16), jnp.ones(4, jnp.float16))
    with pytest.raises(TypeError, match="float16"):
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


# ---- checks that hold under jit: `eqx.error_if`'s value is used --------------------------------

_JIT_ERRORS = (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)


def test_negative_alpha_under_jit_raises():
    with pytest.raises(_JIT_ERRORS, match="`alpha` must be > 0"):
        jax.jit(lambda a: lf.DiagonalNet.unbiased(3, a).predictor())(-1.0)
    with pytest.raises(_JIT_ERRORS, match="`alpha` must be > 0"):
        jax.jit(lambda a: lf.HadamardNet.unbiased(3, a).predictor())(0.0)
    with pytest.raises(_JIT_ERRORS, match="`alpha` must be > 0"):
        jax.jit(lambda a: lf.TensorNet.from_eta("diagonal", jnp.ones(3), 3, a).predictor())(-1.0)
    # One step beside: a valid alpha under jit gives the closed form alpha^D - alpha^D = 0.
    assert (
        float(jnp.abs(jax.jit(lambda a: lf.DiagonalNet.unbiased(3, a).predictor())(0.5)).max()) == 0
    )


def test_jitted_flow_at_negative_alpha_raises():
    prob = lf.Regression(jnp.eye(3)[:2], jnp.ones(2))

    def run(a):
        return lf.flow(lf.DiagonalNet.unbiased(3, a), prob, saveat=lf.SaveAt(num=1)).final

    with pytest.raises(_JIT_ERRORS, match="`alpha` must be > 0"):
        eqx.filter_jit(run)(jnp.asarray(-0.5))
    # The same program at alpha = 0.5 interpolates y = (1, 1) on the first two coordinates
    # and leaves the third (no data) at 0.
    beta = eqx.filter_jit(run)(jnp.asarray(0.5)).predictor()
    np.testing.assert_allclose(np.asarray(beta), [1.0, 1.0, 0.0], atol=1e-8)


@pytest.mark.parametrize("alpha", ["a", None, [1.0, "b"], 1j])
def test_non_numeric_alpha_is_a_type_error(alpha):
    with pytest.raises(TypeError, match="`alpha` must be a real number"):
        lf.DiagonalNet.unbiased(3, alpha)


def test_nan_alpha_is_a_value_error():
    with pytest.raises(ValueError, match="`alpha` must be > 0 and finite"):
        lf.DiagonalNet.unbiased(3, float("nan"))


@pytest.mark.parametrize(
    "make, error, match",
    [
        # (The suite's runtime type checker may answer a type mistake first: a TypeError
        # naming the parameter, 'd' instead of `d`.)
        (lambda: lf.Regression(jnp.ones((3, 0)), jnp.ones(3)), ValueError, "`X` is empty"),
        (lambda: lf.Regression(jnp.ones((0, 3)), jnp.ones(0)), ValueError, "`X` is empty"),
        (lambda: lf.Classification(jnp.ones((0, 3)), jnp.ones(0)), ValueError, "`X` is empty"),
        (lambda: lf.Regression(jnp.ones((3, 3)), ["a", "b", "c"]), TypeError, "`Y` must be a"),
        (lambda: lf.DiagonalNet.unbiased(0, 1.0), ValueError, "`d` must be a positive"),
        (lambda: lf.DiagonalNet.unbiased(3.5, 1.0), TypeError, "`d` must be a pos|parameter 'd'"),
        (lambda: lf.DiagonalNet.unbiased(3, 1.0, depth=2.0), TypeError, "`depth` must|'depth'"),
        (lambda: lf.DiagonalNet.unbiased(3, 1.0, w0=jnp.ones(0)), ValueError, "`w0` is empty"),
        (lambda: lf.TensorNet.from_eta("diagonal", jnp.ones(3), 1, 1.0), ValueError, "`depth`"),
        (
            lambda: lf.TensorNet.from_eta("diagonal", jnp.ones(3), 2.5, 1.0),
            TypeError,
            "`depth`|'depth'",
        ),
        (lambda: lf.limits.hypentropy(jnp.ones(3), 1.0, depth=1), ValueError, "`depth`"),
        (
            lambda: lf.limits.hypentropy(jnp.ones(3), "x"),
            TypeError,
            "`alpha` must be a real|'alpha'",
        ),
    ],
)
def test_one_error_type_per_kind_of_mistake(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ---- outcomes are reported, per member, with the residual reached -----------------------------


def _sparse():
    X = jax.random.normal(jax.random.PRNGKey(0), (10, 25))
    return lf.Regression(X, X @ jnp.zeros(25).at[:3].set(1.0))


def test_gd_reports_an_unmet_stop():
    prob = _sparse()
    model = lf.DiagonalNet.unbiased(25, 0.1)
    sol = lf.gd(model, prob, 1e-3, steps=10, stop=lf.Converged(), throw=False)
    # 10 steps of size 1e-3 from beta = 0 cannot reach a relative excess of 1e-10.
    assert sol.result == lf.RESULTS.not_converged and sol.status == "not_converged"
    assert float(sol.residual) > 0.5
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"not_converged.*\n.*residual.*0\.9"):
        lf.gd(model, prob, 1e-3, steps=10, stop=lf.Converged())
    # Without a stop, running all the steps is the requested end.
    assert lf.gd(model, prob, 1e-3, steps=10).status == "successful"


def test_max_steps_error_names_the_residual_reached():
    prob = _sparse()
    model = lf.DiagonalNet.unbiased(25, 1e-3)
    sol = lf.flow(model, prob, max_steps=5, throw=False)
    with pytest.raises(eqx.EquinoxRuntimeError, match="maximum number of solver steps") as err:
        lf.flow(model, prob, max_steps=5)
    # The message carries the residual and the target, formatted from the solution.
    assert f"{float(sol.residual):.3g}" in str(err.value)
    assert "asks for 1e-10" in str(err.value)


def test_a_failed_flow_under_grad_raises_its_outcome():
    # Under `jax.grad` outside `jit` the outcome is a value (it raises at once) while the
    # time and the residual are tracers of the transformation: the message names the outcome
    # and the steps and marks what it cannot show.
    prob = _sparse()

    def final_loss(alpha):
        return lf.flow(lf.DiagonalNet.unbiased(25, alpha), prob, max_steps=5).losses[-1]

    with pytest.raises(eqx.EquinoxRuntimeError, match="maximum number of solver steps") as err:
        jax.grad(final_loss)(1e-3)
    assert "after 5 steps" in str(err.value) and "(traced)" in str(err.value)


def test_batched_status_gives_a_name_per_member():
    prob = _sparse()
    models = eqx.filter_vmap(lambda a: lf.DiagonalNet.unbiased(25, a))(jnp.array([1e-3, 1.0]))
    sol = eqx.filter_vmap(
        lambda m: lf.flow(m, prob, max_steps=200, throw=False, saveat=lf.SaveAt(num=1))
    )(models)
    # alpha = 1e-3 needs more than 200 steps (test above: 5 steps leave it at residual 1);
    # alpha = 1 converges in about 100.
    assert sol.status.tolist() == ["max_steps_reached", "converged"]
    with pytest.raises(TypeError, match="concrete"):
        eqx.filter_jit(lambda s: s.status)(sol)


def test_explicit_save_times_under_jit():
    # Built inside `jit` the times are traced: a valid grid saves exactly there (as the
    # eager call does), a decreasing one raises from the compiled flow.
    prob = lf.Regression(jnp.asarray(np.random.default_rng(0).standard_normal((3, 4))), jnp.ones(3))
    model = lf.DiagonalNet.unbiased(4, 0.5)

    @eqx.filter_jit
    def run(times):
        return lf.flow(model, prob, saveat=lf.SaveAt(ts=jnp.asarray(times)), throw=False)

    good = np.array([0.0, 0.5, 2.0])
    eager = lf.flow(model, prob, saveat=lf.SaveAt(ts=jnp.asarray(good)))
    traced = run(jnp.asarray(good))
    np.testing.assert_array_equal(traced.ts, good)
    np.testing.assert_allclose(traced.predictors, eager.predictors, rtol=1e-12, atol=1e-14)
    with pytest.raises(_JIT_ERRORS, match="non-decreasing"):
        jax.block_until_ready(run(jnp.array([0.0, 2.0, 0.5])).ts)
