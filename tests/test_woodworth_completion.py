"""Matrix completion in the rich regime (Woodworth et al. 2020, Sec. 6, Fig. 5)."""

import sys

import diffrax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow


DOPRI8 = linflow.SolverChoice(diffrax.Dopri8(), rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_small_scale_completion_approaches_min_nuclear_norm():
    pytest.importorskip("cvxpy")
    d = 6
    # Seed 0: 20 entries of a rank-1 6x6 matrix, an instance where min-nuclear-norm recovers
    # Y* (checked below), so the rich-limit prediction is unambiguous.
    prob, Y = linflow.matrix_completion(jr.PRNGKey(0), (d, d), 1, 20)
    sol_nuc = linflow.limits.min_nuclear_norm_solution(
        prob.rows, prob.cols, prob.values, prob.shape
    )
    assert sol_nuc.converged
    M_nuc = np.asarray(sol_nuc.value)
    np.testing.assert_allclose(M_nuc, Y, atol=1e-5 * np.abs(Y).max())
    errs = []
    for alpha in (3e-2, 1e-2):  # sigma sqrt(k) = alpha^2 k = 5.4e-3, 6e-4
        m0 = linflow.scaled_gaussian(jr.PRNGKey(1), (d, d), 6, alpha)
        sol = linflow.flow(m0, prob, solver=DOPRI8, stop=linflow.Converged(1e-9))
        M = np.asarray(sol.final.predictor())
        errs.append(np.linalg.norm(M - M_nuc) / np.linalg.norm(M_nuc))
    # There is no proven rate (Gunasekar et al.'s conjecture); measured err ~ 2 alpha here.
    # Assert the limit approaches the cvxpy solution as alpha^2 k -> 0: within 5% at
    # alpha^2 k = 6e-4, and at least twice closer than at a 3x larger alpha.
    assert errs[1] < 0.05
    assert errs[1] < errs[0] / 2


def test_min_nuclear_norm_of_a_2x2_with_one_missing_entry():
    # [[1, 1], [1, x]] is symmetric with eigenvalues ((1 + x) +- sqrt((1 - x)^2 + 4)) / 2:
    # its nuclear norm is sqrt((1 - x)^2 + 4) for x <= 1 and 1 + x for x >= 1, uniquely
    # smallest (= 2) at x = 1, the rank-1 completion. Scaled by 1e3: the answer scales.
    pytest.importorskip("cvxpy")
    for scale in (1.0, 1e3):
        sol = linflow.limits.min_nuclear_norm_solution(
            np.array([0, 0, 1]), np.array([0, 1, 0]), scale * np.ones(3), (2, 2)
        )
        assert sol.result == linflow.RESULTS.converged
        # Clarabel's interior point stops at relative gap ~1e-8: x is then off by ~1e-4
        # relative (the objective is quadratic in x - 1 near the minimum: 2 + (x - 1)^2 / 4).
        np.testing.assert_allclose(sol.value, scale * np.ones((2, 2)), rtol=3e-4)
        np.testing.assert_allclose(sol.stats["nuclear_norm"], 2 * scale, rtol=1e-7)
        assert float(sol.stats["constraint_residual"]) <= 1e-9 * scale


def test_min_nuclear_norm_recovers_a_low_rank_matrix_and_meets_its_dual():
    cp = pytest.importorskip("cvxpy")
    # Exact recovery (Candes & Recht 2009): 40 of the 64 entries of a rank-1 8x8 matrix;
    # seed 2 is an instance in the recovery regime (at seeds 0 and 1 the minimiser is not Y).
    prob, Y = linflow.matrix_completion(jr.PRNGKey(2), (8, 8), 1, 40)
    M = linflow.limits.min_nuclear_norm(prob.rows, prob.cols, prob.values, prob.shape)
    np.testing.assert_allclose(M, Y, atol=1e-6 * float(jnp.abs(Y).max()))
    # Where recovery fails (seed 0), optimality against the dual SDP solved separately:
    # min ||M||_* = max <L, P(Y)> s.t. ||L||_op <= 1, L supported on the observed entries.
    prob, _ = linflow.matrix_completion(jr.PRNGKey(0), (8, 8), 1, 40)
    sol = linflow.limits.min_nuclear_norm_solution(prob.rows, prob.cols, prob.values, prob.shape)
    r, c, v = map(np.asarray, (prob.rows, prob.cols, prob.values))
    mask = np.zeros((8, 8))
    mask[r, c] = 1.0
    P = np.zeros((8, 8))
    P[r, c] = v
    L = cp.Variable((8, 8))
    dual = cp.Problem(
        cp.Maximize(cp.sum(cp.multiply(L, P))),
        [cp.sigma_max(L) <= 1, cp.multiply(L, 1 - mask) == 0],
    )
    dual.solve(solver=cp.CLARABEL)
    np.testing.assert_allclose(float(sol.stats["nuclear_norm"]), dual.value, rtol=1e-7)


def test_min_nuclear_norm_without_cvxpy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cvxpy", None)  # `import cvxpy` now raises ImportError
    with pytest.raises(ImportError, match=r"linflow\[cvx\]"):
        linflow.limits.min_nuclear_norm(np.zeros(1, int), np.zeros(1, int), np.ones(1), (2, 2))


@pytest.mark.parametrize(
    "args, match",
    [
        (([0, 0], [1, 1], [1.0, 2.0], (2, 2)), "twice"),
        (([0], [2], [1.0], (2, 2)), "cols"),
        (([0], [0], [np.nan], (2, 2)), "values"),
        (([0, 1], [0], [1.0, 2.0], (2, 2)), "cols"),
        (([0], [0], [1.0], (0, 2)), "shape"),
    ],
)
def test_min_nuclear_norm_bad_input_names_the_argument(args, match):
    with pytest.raises(ValueError, match=match):
        rows, cols, values, shape = args
        linflow.limits.min_nuclear_norm_solution(
            np.array(rows), np.array(cols), np.array(values), shape
        )
