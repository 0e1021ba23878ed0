"""Gradients of the flow's limit against the implicit-function derivative of the Q_alpha minimiser
(Woodworth et al. 2020, Thm 1), computed here in closed form with NumPy, and finite differences."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow as lf


N, D = 8, 20


@pytest.fixture(scope="module")
def prob():
    return lf.sparse_regression(jr.PRNGKey(3), N, D, 3)[0]


def _limit(prob, alpha, adjoint=None, y=None, stop=None):
    p = prob if y is None else lf.Regression(prob.X, y)
    model = lf.DiagonalNet.unbiased(D, alpha)
    return lf.flow(model, p, adjoint=adjoint, stop=stop).final.predictor()


def _ift(X, beta, alpha):
    """d beta / d alpha and d beta / d y of argmin Q_alpha s.t. X beta = y, by the implicit
    function theorem on beta = 2 a^2 sinh(X^T nu), X beta = y."""
    s = np.arcsinh(beta / (2 * alpha**2))
    bp = 2 * alpha**2 * np.cosh(s)  # d beta / d s
    K = X @ (bp[:, None] * X.T)
    dbeta_dalpha = 2 * beta / alpha - bp * (X.T @ np.linalg.solve(K, X @ (2 * beta / alpha)))
    dbeta_dy = bp[:, None] * (X.T @ np.linalg.inv(K))
    return dbeta_dalpha, dbeta_dy


@pytest.mark.parametrize("alpha", [1e-2, 0.3, 10.0])
@pytest.mark.parametrize("adjoint", ["implicit", "backprop"])
def test_grad_of_limit_matches_implicit_function_theorem(prob, alpha, adjoint):
    adj = lf.ImplicitAdjoint() if adjoint == "implicit" else None
    X = np.asarray(prob.X)
    beta = np.asarray(_limit(prob, alpha))
    want_a, want_y = _ift(X, beta, alpha)
    # Both Jacobians from one reverse-mode program (one compilation instead of two).
    got_a, got_y = jax.jacrev(lambda a, y: _limit(prob, a, adj, y), argnums=(0, 1))(alpha, prob.Y)
    if adjoint == "implicit":
        # The limit is the minimiser to the stop tolerance 1e-10; its derivatives inherit that
        # error amplified by the conditioning of K = X diag(beta') X^T (~1e3 here).
        # Compared in norm: at alpha = 10 d beta / d alpha ~ 1e-8 and its smallest entries
        # carry the limit's absolute error, so an entrywise relative test is meaningless.
        tol_a = dict(rtol=0, atol=1e-6 * np.linalg.norm(want_a))
        tol_y = dict(rtol=0, atol=1e-6 * np.linalg.norm(want_y))
    else:
        # Backpropagation differentiates the discretised path, whose error is set by the
        # solver tolerance (1e-10 per step, relative to the state, not to the derivative)
        # accumulated over the 70-1000 steps and amplified by the conditioning of K (~1e3):
        # absolute errors up to ~rtol * steps * cond(K) |beta| / alpha ~ 1e-6 |beta| / alpha
        # in d beta / d alpha (measured 3.8e-7 |beta| / alpha at alpha = 10, where
        # d beta / d alpha ~ 1e-8 is itself at that floor and only its scale is checked:
        # use `ImplicitAdjoint` there), ~1e-9 in d beta / d y.
        tol_a = dict(rtol=1e-5, atol=1e-6 * np.abs(beta).max() / alpha)
        tol_y = dict(rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(got_a, want_a, **tol_a)
    np.testing.assert_allclose(got_y, want_y, **tol_y)


def test_grad_matches_finite_differences(prob):
    alpha, h = 0.3, 1e-5
    g = jax.grad(lambda a: jnp.sum(_limit(prob, a, lf.ImplicitAdjoint()) ** 2))(alpha)
    # The finite differences use limits stopped at 1e-12 (not the default 1e-10): each limit's
    # error, divided by h, is the rounding error of the difference quotient.
    f = lambda a: float(jnp.sum(_limit(prob, a, stop=lf.Converged(rtol=1e-12)) ** 2))
    fd = (f(alpha + h) - f(alpha - h)) / (2 * h)
    # Central differences: truncation O(h^2) ~ 1e-10; rounding ~ 1e-12 * cond / h ~ 1e-6
    # relative; the implicit gradient's own error (default stop) ~ 1e-10 * cond ~ 1e-7.
    np.testing.assert_allclose(g, fd, rtol=1e-5)


def test_grad_under_vmap_over_initialisations(prob):
    alphas = jnp.array([0.05, 0.3, 2.0])

    def loss(a):
        sol = lf.flow(
            lf.DiagonalNet.unbiased(D, a), prob, adjoint=lf.ImplicitAdjoint(), throw=False
        )
        return jnp.sum(sol.final.predictor() ** 2)

    batched = eqx.filter_vmap(jax.grad(loss))(alphas)
    X = np.asarray(prob.X)
    for a, g in zip(alphas, batched):
        beta = np.asarray(_limit(prob, float(a)))
        want = 2 * beta @ _ift(X, beta, float(a))[0]
        np.testing.assert_allclose(g, want, rtol=1e-6)


def test_grad_of_a_flow_that_did_not_converge_is_not_silent(prob):
    def loss(a):
        sol = lf.flow(
            lf.DiagonalNet.unbiased(D, a),
            prob,
            max_steps=4,
            throw=False,
            solver=lf.SolverChoice(__import__("diffrax").Dopri8()),
        )
        return jnp.sum(sol.final.predictor())

    assert bool(jnp.isnan(jax.grad(loss)(0.3)))


def test_implicit_adjoint_refuses_the_full_form(prob):
    with pytest.raises(ValueError, match="isolated steady state"):
        lf.flow(lf.DiagonalNet.unbiased(D, 0.3), prob, form="full", adjoint=lf.ImplicitAdjoint())


@pytest.mark.parametrize("which", ["diagonal", "two-layer"])
def test_grad_in_the_data_with_repeated_singular_values(which):
    # X with orthonormal rows (unit singular values: Min et al.'s data): X X^T has one
    # eigenvalue of multiplicity n, where an eigenbasis has no derivative. The flow's outputs
    # depend on X smoothly (the projector on its range is constant, I); the gradient of the
    # final loss in X along a random direction against central differences (step 1e-5 of
    # unit entries: truncation ~1e-10; the flow's own tolerance ~1e-10 over the step: 1e-5).
    X = jnp.eye(5, 12)
    Y = jr.normal(jr.PRNGKey(1), (5,) if which == "diagonal" else (5, 2))
    if which == "diagonal":
        model = lf.DiagonalNet.unbiased(12, 0.1)
    else:
        ku, kv = jr.split(jr.PRNGKey(2))
        model = lf.TwoLayer(0.3 * jr.normal(ku, (12, 4)), 0.3 * jr.normal(kv, (2, 4)))
    direction = jr.normal(jr.PRNGKey(3), X.shape)

    def final_loss(X):
        return lf.flow(model, lf.Regression(X, Y), stop=None, t1=2.0).losses[-1]

    g = jnp.sum(jax.grad(final_loss)(X) * direction)
    h = 1e-5
    central = (final_loss(X + h * direction) - final_loss(X - h * direction)) / (2 * h)
    assert abs(float(central)) > 1e-3
    np.testing.assert_allclose(g, central, rtol=1e-5)
