"""Forward-mode derivatives (`jax.jacfwd`, `jax.jvp`) of the flow's limit, with both adjoints
and under `vmap`, against central finite differences of independent solves."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow as lf


N, D = 4, 8
ALPHA, H = 0.3, 1e-5


@pytest.fixture(scope="module")
def prob():
    return lf.sparse_regression(jr.PRNGKey(7), N, D, 2)[0]


def _limit(prob, alpha, y, adjoint=None, stop=None):
    model = lf.DiagonalNet.unbiased(D, alpha)
    return lf.flow(model, lf.Regression(prob.X, y), adjoint=adjoint, stop=stop).final_predictor


def _fd(fn, x, h, direction):
    """Central difference of `fn` at `x` along `direction`, from independent solves."""
    return (np.asarray(fn(x + h * direction)) - np.asarray(fn(x - h * direction))) / (2 * h)


# Central differences: truncation O(h^2) ~ 1e-10; rounding ~ (limit error 1e-12 x cond ~1e2)
# / h ~ 1e-5 relative; the forward derivative of the default stop (rtol 1e-10) carries ~1e-8.
RTOL = 1e-4


def _adjoint(name):
    return lf.ImplicitAdjoint() if name == "implicit" else None


@pytest.mark.parametrize("adjoint", ["default", "implicit"])
def test_jacfwd_of_limit_matches_finite_differences(prob, adjoint):
    adj = _adjoint(adjoint)
    ja, jy = jax.jacfwd(lambda a, y: _limit(prob, a, y, adj), argnums=(0, 1))(ALPHA, prob.Y)
    tight = lf.Converged(rtol=1e-12)
    fd_a = _fd(lambda a: _limit(prob, a, prob.Y, stop=tight), ALPHA, H, 1.0)
    scale = np.abs(fd_a).max()
    np.testing.assert_allclose(ja, fd_a, rtol=RTOL, atol=RTOL * scale)
    # d beta / d y along one data direction
    e = jnp.zeros(N).at[1].set(1.0)
    fd_y = _fd(lambda y: _limit(prob, ALPHA, y, stop=tight), prob.Y, H, e)
    np.testing.assert_allclose(jy[:, 1], fd_y, rtol=RTOL, atol=RTOL * np.abs(fd_y).max())


@pytest.mark.slow
@pytest.mark.parametrize("adjoint", ["default", "implicit"])
def test_jvp_of_limit_under_vmap_matches_finite_differences(prob, adjoint):
    adj = _adjoint(adjoint)
    alphas = jnp.array([0.1, 0.5])

    def tangent(a):
        return jax.jvp(lambda b: _limit(prob, b, prob.Y, adj), (a,), (jnp.ones_like(a),))[1]

    got = jax.vmap(tangent)(alphas)
    tight = lf.Converged(rtol=1e-12)
    for i, a in enumerate(np.asarray(alphas)):
        fd = _fd(lambda b: _limit(prob, b, prob.Y, stop=tight), float(a), H, 1.0)
        np.testing.assert_allclose(got[i], fd, rtol=RTOL, atol=RTOL * np.abs(fd).max())


def test_default_adjoint_follows_the_autodiff_mode():
    import diffrax

    from linflow._autodiff_mode import default_adjoint

    seen = {}

    def record(name):
        def fn(x):
            seen[name] = type(default_adjoint(x)).__name__
            return x**2

        return fn

    default_adjoint(jnp.ones(2))
    jax.jvp(record("jvp"), (1.0,), (1.0,))
    jax.jacfwd(record("jacfwd"))(jnp.ones(2))
    jax.vmap(jax.jacfwd(record("vmap_jacfwd")))(jnp.ones(2))
    jax.grad(record("grad"))(1.0)
    jax.hessian(record("hessian"))(1.0)
    assert seen == {
        "jvp": "ForwardMode",
        "jacfwd": "ForwardMode",
        "vmap_jacfwd": "ForwardMode",
        "grad": "RecursiveCheckpointAdjoint",
        "hessian": "DirectAdjoint",
    }
    assert isinstance(default_adjoint(jnp.ones(2)), diffrax.RecursiveCheckpointAdjoint)
