"""`linflow.LU` against dense solves, and `linflow.with_lu`."""

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest

import linflow


def _system(key, n=6, batch=()):
    ka, kb = jr.split(key)
    # Diagonally dominant: well posed.
    A = jr.normal(ka, batch + (n, n)) + n * jnp.broadcast_to(jnp.eye(n), batch + (n, n))
    return A, jr.normal(kb, batch + (n,))


def test_lu_solves_matrix_and_transposed_systems():
    A, b = _system(jr.PRNGKey(0))
    op = lx.MatrixLinearOperator(A)
    x = lx.linear_solve(op, b, linflow.LU()).value
    xt = lx.linear_solve(op.T, b, linflow.LU()).value
    # Residuals at the rounding level of a 6 x 6 solve (entries O(1), condition O(1)).
    np.testing.assert_allclose(A @ x, b, rtol=0, atol=1e-13)
    np.testing.assert_allclose(A.T @ xt, b, rtol=0, atol=1e-13)


def test_lu_on_pytree_operators_vmap_and_gradients():
    # A linear map between dicts of arrays: the solution comes back in the input structure.
    def fn(y):
        return {"a": 2 * y["a"] + y["b"][:2], "b": 3 * y["b"] - y["a"].sum()}

    struct = {
        "a": jax.ShapeDtypeStruct((2,), jnp.float64),
        "b": jax.ShapeDtypeStruct((3,), jnp.float64),
    }
    rhs = {"a": jnp.array([1.0, -2.0]), "b": jnp.arange(3.0)}
    sol = lx.linear_solve(lx.FunctionLinearOperator(fn, struct), rhs, linflow.LU()).value
    jax.tree.map(lambda p, q: np.testing.assert_allclose(p, q, rtol=0, atol=1e-13), fn(sol), rhs)

    # vmapped (on a CPU: one factorisation after another) equals numpy's batched solve.
    A, b = _system(jr.PRNGKey(1), batch=(5,))
    solve = lambda A, b: lx.linear_solve(lx.MatrixLinearOperator(A), b, linflow.LU()).value
    np.testing.assert_allclose(
        jax.vmap(solve)(A, b),
        np.linalg.solve(np.asarray(A), np.asarray(b)[..., None])[..., 0],
        rtol=1e-12,
        atol=0,
    )
    # Reverse mode goes through the transposed solve: d/dA sum(A^-1 b) = -A^-T 1 (A^-1 b)^T.
    g = jax.grad(lambda A: solve(A, b[0]).sum())(A[0])
    x = np.linalg.solve(np.asarray(A[0]), np.asarray(b[0]))
    want = -np.outer(np.linalg.solve(np.asarray(A[0]).T, np.ones(6)), x)
    np.testing.assert_allclose(g, want, rtol=1e-11, atol=1e-13)


def test_with_lu_replaces_the_root_finders_linear_solver_and_flows_agree():
    solver = linflow.with_lu(diffrax.Kvaerno5())
    assert isinstance(solver.root_finder.linear_solver, linflow.LU)
    with pytest.raises(TypeError, match="solver"):
        linflow.with_lu(diffrax.Dopri8())
    problem, _ = linflow.sparse_regression(jr.PRNGKey(0), 8, 20, 2, noise=0.0)
    model = linflow.DiagonalNet.unbiased(20, 0.1)
    betas = [
        linflow.flow(model, problem, solver=linflow.SolverChoice(s, 1e-9, 1e-11)).final_predictor
        for s in (solver, diffrax.Kvaerno5())
    ]
    # Same method, same steps: the two LU implementations differ by rounding only.
    np.testing.assert_allclose(betas[0], betas[1], rtol=0, atol=1e-12)
