"""A parametrisation written by subclassing `linflow.AbstractModel`, exactly as in
docs/concepts/custom-model.md, flowed by the engine and checked against an independent
N-dimensional root solve of its limit's optimality conditions."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import scipy.optimize
from jaxtyping import Array, Float

import linflow as lf


class SquaredNet(lf.AbstractModel):
    r"""beta = w * w: a non-negative diagonal network."""

    w: Float[Array, " d"]

    def predictor(self) -> Float[Array, " d"]:
        return self.w * self.w


def test_user_subclass_flows_to_the_minimum_relative_entropy_interpolant():
    N, d = 4, 10
    X = jr.normal(jr.PRNGKey(0), (N, d))
    beta_true = jnp.zeros(d).at[:2].set(jnp.array([1.0, 0.5]))
    y = X @ beta_true
    w0 = jnp.full(d, 0.1)

    sol = lf.flow(SquaredNet(w0), lf.Regression(X, y))
    assert sol.status == "converged"
    assert sol.form == "full"  # no reduced form is known for it: the parameter flow

    # w(t) = w0 e^{2s}, s in the row space of X: beta = w0^2 exp(X^T lam) with X beta = y
    # (the docs page derives it).
    Xn, yn, a = np.asarray(X), np.asarray(y), np.asarray(w0) ** 2
    # lam minimises the convex dual sum(a exp(X^T lam)) - y^T lam (its gradient is
    # X beta - y): scipy's trust-region Newton with the exact Hessian.
    root = scipy.optimize.minimize(
        lambda lam: np.sum(a * np.exp(Xn.T @ lam)) - yn @ lam,
        np.zeros(N),
        jac=lambda lam: Xn @ (a * np.exp(Xn.T @ lam)) - yn,
        hess=lambda lam: (Xn * (a * np.exp(Xn.T @ lam))) @ Xn.T,
        method="trust-exact",
        options=dict(gtol=1e-13),
    )
    truth = a * np.exp(Xn.T @ root.x)
    # relative excess 1e-10 at the stop; the limit's error is that times the conditioning of
    # X diag(beta) X^T restricted to the path (~1e2 here): 1e-7 relative, measured ~1e-10.
    np.testing.assert_allclose(sol.final.predictor(), truth, rtol=0, atol=1e-7 * truth.max())
    assert np.all(np.asarray(sol.final.predictor()) >= 0)
