"""Matrix completion in the rich regime (Woodworth et al. 2020, Sec. 6, Fig. 5)."""

import diffrax
import jax.random as jr
import numpy as np
import pytest

import linflow


DOPRI8 = linflow.SolverChoice(diffrax.Dopri8(), rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_small_scale_completion_approaches_min_nuclear_norm():
    cp = pytest.importorskip("cvxpy")
    d = 6
    # Seed 0: 20 entries of a rank-1 6x6 matrix, an instance where min-nuclear-norm recovers
    # Y* (checked below), so the rich-limit prediction is unambiguous.
    prob, Y = linflow.matrix_completion(jr.PRNGKey(0), (d, d), 1, 20)
    r, c, v = map(np.asarray, (prob.rows, prob.cols, prob.values))
    X = cp.Variable((d, d))
    cons = [X[int(i), int(j)] == float(val) for i, j, val in zip(r, c, v)]
    cp.Problem(cp.Minimize(cp.normNuc(X)), cons).solve()
    M_nuc = X.value
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
