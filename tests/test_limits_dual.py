"""Tests of the one dual solver (`linflow.limits.dual_minimise`) and its implicit-function-theorem
derivatives: against closed forms (square systems), central finite differences of independent
solves, the other autodiff mode, and the solver's contract (result, stats, throw)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from linflow.limits import (
    RESULTS,
    Hypentropy,
    dual_minimise,
    hypentropy_minimiser,
)


def _data(seed, n=5, d=12):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    b = np.zeros(d)
    b[[0, 3, 7]] = [1.0, -0.6, 0.3]
    return X, X @ b + 0.1 * rng.standard_normal(n), rng


def _central(f, x, h):
    """Central differences of f at x along every coordinate of x (independent solves)."""
    x = np.asarray(x, np.float64)
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        e = e.reshape(x.shape)
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
    out = np.stack(cols, axis=-1)
    return out.reshape(out.shape[:-1] + x.shape)


# Finite-difference tolerance: the solves are accurate to ~1e-14 relative; with a step h of
# 1e-5 (relative) the central difference's truncation error is O(h^2) ~ 1e-10 and its rounding
# error ~1e-14 / 1e-5 = 1e-9, so agreement to 1e-6 relative leaves a 1000x margin.
_FD_RTOL = 1e-6


@pytest.mark.parametrize("depth, alpha", [(2, 0.3), (3, 0.5)])
def test_jacfwd_and_grad_in_alpha_and_y_match_finite_differences(depth, alpha):
    X, y, _ = _data(0)

    def solve(a, y):
        return hypentropy_minimiser(X, y, a, depth=depth)

    fd_alpha = _central(lambda a: solve(float(a), y), np.array(alpha), 1e-5 * alpha)
    jf_alpha = jax.jacfwd(solve, argnums=0)(alpha, jnp.asarray(y))
    scale = np.abs(fd_alpha).max()
    np.testing.assert_allclose(jf_alpha, fd_alpha, rtol=0, atol=_FD_RTOL * scale)

    fd_y = _central(lambda yy: solve(alpha, yy), y, 1e-5)
    jf_y = jax.jacfwd(solve, argnums=1)(alpha, jnp.asarray(y))
    np.testing.assert_allclose(jf_y, fd_y, rtol=0, atol=_FD_RTOL * np.abs(fd_y).max())
    # Reverse mode: the gradient of a scalar readout equals the forward Jacobian's row.
    w = np.linspace(-1.0, 1.0, X.shape[1])
    g_a, g_y = jax.grad(lambda a, yy: w @ solve(a, yy), argnums=(0, 1))(alpha, jnp.asarray(y))
    np.testing.assert_allclose(g_a, w @ fd_alpha, rtol=0, atol=_FD_RTOL * np.abs(w @ fd_alpha))
    np.testing.assert_allclose(g_y, w @ fd_y, rtol=0, atol=_FD_RTOL * np.abs(w @ fd_y).max())


def test_grad_in_design_and_shape_matches_finite_differences():
    X, y, _ = _data(1, n=4, d=8)
    w0 = np.linspace(0.5, 1.5, 8)
    w = np.cos(np.arange(8.0))

    def loss(X, w0):
        return w @ hypentropy_minimiser(X, y, 0.4, depth=3, w0=w0)

    gX, gw0 = jax.grad(loss, argnums=(0, 1))(jnp.asarray(X), jnp.asarray(w0))
    fdX = _central(lambda XX: loss(XX, w0), X, 1e-5).reshape(X.shape)
    fdw0 = _central(lambda ww: loss(X, ww), w0, 1e-5)
    np.testing.assert_allclose(gX, fdX, rtol=0, atol=_FD_RTOL * np.abs(fdX).max())
    np.testing.assert_allclose(gw0, fdw0, rtol=0, atol=_FD_RTOL * np.abs(fdw0).max())
    # The other mode on the same function.
    jf = jax.jacfwd(loss, argnums=1)(jnp.asarray(X), jnp.asarray(w0))
    np.testing.assert_allclose(jf, gw0, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("depth", [2, 4])
def test_square_system_derivatives_are_the_inverse(depth):
    # d = N: beta = X^{-1} y whatever the potential, so d beta / dy = X^{-1},
    # d beta / d alpha = 0 and d beta = -X^{-1} dX beta (closed forms).
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5, 5)) + 3 * np.eye(5)
    y = rng.standard_normal(5)
    Xinv = np.linalg.inv(X)

    def solve(X, y, a):
        return hypentropy_minimiser(X, y, a, depth=depth)

    J_y = jax.jacfwd(solve, argnums=1)(jnp.asarray(X), jnp.asarray(y), 0.2)
    np.testing.assert_allclose(J_y, Xinv, rtol=0, atol=1e-10)
    J_a = jax.jacrev(solve, argnums=2)(jnp.asarray(X), jnp.asarray(y), 0.2)
    np.testing.assert_allclose(J_a, 0.0, atol=1e-10)
    dX = rng.standard_normal((5, 5))
    _, dbeta = jax.jvp(lambda X: solve(X, y, 0.2), (jnp.asarray(X),), (jnp.asarray(dX),))
    np.testing.assert_allclose(dbeta, -Xinv @ dX @ Xinv @ y, rtol=0, atol=1e-10)


def test_grad_under_vmap_and_jit_matches_unbatched():
    X, y, _ = _data(2)
    alphas = jnp.array([0.1, 0.5, 2.0])

    def readout(a):
        return jnp.sum(hypentropy_minimiser(X, y, a, depth=2, throw=False) ** 2)

    batched = jax.jit(jax.vmap(jax.grad(readout)))(alphas)
    for a, g in zip(alphas, batched):
        fd = _central(lambda aa: readout(float(aa)), np.array(float(a)), 1e-5 * float(a))
        # (atol: the central difference's rounding, ~1e-16 |f| / h ~ 1e-11 with h = 1e-5 alpha,
        # where the gradient itself is tiny, e.g. 7e-8 at alpha = 2.)
        np.testing.assert_allclose(g, fd.reshape(g.shape), rtol=_FD_RTOL, atol=1e-10)


def test_dual_minimise_contract():
    X, y, _ = _data(4)
    sol = dual_minimise(Hypentropy(0.1, 3), X, y)
    assert sol.result == RESULTS.successful
    assert int(sol.stats["newton_steps"]) > 0
    # The residual it reports is the one of the answer it returns.
    res = np.linalg.norm(X @ np.asarray(sol.value) - y) / np.linalg.norm(y)
    np.testing.assert_allclose(float(sol.stats["residual"]), res, rtol=1e-6, atol=1e-16)
    # Under jit the same answer.
    jitted = jax.jit(lambda X, y: dual_minimise(Hypentropy(0.1, 3), X, y).value)(X, y)
    np.testing.assert_allclose(jitted, sol.value, rtol=0, atol=1e-13)


def test_infeasible_system_says_so():
    # Noisy targets with more samples than features: X beta = y has no solution.
    rng = np.random.default_rng(5)
    X = rng.standard_normal((8, 3))
    y = rng.standard_normal(8)
    sol = dual_minimise(Hypentropy(0.5), X, y, throw=False)
    assert sol.result == RESULTS.infeasible
    with pytest.raises(eqx.EquinoxRuntimeError, match="no solution"):
        dual_minimise(Hypentropy(0.5), X, y)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Hypentropy(0.0), "alpha"),
        (lambda: Hypentropy(float("inf")), "alpha"),
        (lambda: Hypentropy(0.5, 1), "depth"),
        (lambda: Hypentropy(0.5, 2, -np.ones(12)), "w0"),
        (lambda: Hypentropy(0.5, 2, np.full(12, np.nan)), "w0"),
    ],
)
def test_bad_potentials_raise_value_error_naming_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_potential_of_wrong_dimension_is_rejected():
    X, y, _ = _data(6)
    with pytest.raises(ValueError, match="w0"):
        dual_minimise(Hypentropy(0.5, 2, np.ones(11)), X, y)


def test_bad_alpha_under_jit_raises_through_the_used_check():
    X, y, _ = _data(7)
    f = jax.jit(lambda a: hypentropy_minimiser(X, y, a))
    # (Under a plain jax.jit the check surfaces as a runtime error carrying its message.)
    with pytest.raises((eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError), match="alpha"):
        f(-1.0)
