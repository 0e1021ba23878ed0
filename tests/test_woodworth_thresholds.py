"""Woodworth et al. 2020, Thm 1-3: depth-D potentials and the alpha thresholds of Thm 2."""

import diffrax
import jax.random as jr
import numpy as np
import pytest
from scipy.optimize import linprog

import linflow
from linflow.limits import (
    alpha_l1_threshold,
    alpha_l2_threshold,
    q_depth,
    sparse_dense_ratio,
)


# Same solver, stop and shapes (N = 3, d = 6) as tests/test_woodworth_kernel.py: one compile.
DOPRI8 = linflow.SolverChoice(diffrax.Dopri8(), rtol=1e-12, atol=1e-14)
STOP = linflow.Converged(1e-10)  # 1e-12 sits below the solver floor at tiny alpha


def _instance(seed):
    kx, ky = jr.split(jr.PRNGKey(seed))
    return linflow.Regression(jr.normal(kx, (3, 6)), jr.normal(ky, (3,)))


def _min_l1(X, y):
    d = X.shape[1]
    res = linprog(np.ones(2 * d), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs")
    return res.x[:d] - res.x[d:]


def _flow_limit(prob, alpha, depth=2):
    sol = linflow.flow(
        linflow.DiagonalNet.unbiased(6, alpha, depth), prob, solver=DOPRI8, stop=STOP
    )
    return np.asarray(sol.final.predictor())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eps", [0.5, 1.0])
def test_thm2_thresholds_hold(seed, eps):
    prob = _instance(seed)
    X, y = np.asarray(prob.X), np.asarray(prob.Y)
    l1 = np.abs(_min_l1(X, y)).sum()
    l2 = np.linalg.norm(np.linalg.pinv(X) @ y)
    a1 = alpha_l1_threshold(l1, 6, eps)
    b = _flow_limit(prob, a1)
    assert np.abs(b).sum() <= (1 + eps) * l1
    a2 = alpha_l2_threshold(l2, eps)
    b = _flow_limit(prob, a2)
    assert np.sum(b**2) <= (1 + eps) * l2**2
    # The theorem is not vacuous here: at alpha = 1 neither regime is reached to 1 + eps/100.
    b = _flow_limit(prob, 1.0)
    assert np.abs(b).sum() > (1 + eps / 100) * l1 or np.sum(b**2) > (1 + eps / 100) * l2**2


@pytest.mark.parametrize("depth, alpha", [(2, 0.05), (3, 0.3), (3, 1.0), (4, 0.5)])
def test_flow_limit_satisfies_qd_optimality(depth, alpha):
    # Thm 1 / Thm 3: beta minimises Q^D_alpha s.t. X beta = y, i.e. the gradient
    # q_D'(beta / alpha^D) lies in the row space of X. q_D' from central differences of
    # q_depth (error ~ h^2 q''' + eps/h ~ 1e-8), so the null-space part is checked to 1e-6.
    prob = _instance(7)
    X = np.asarray(prob.X)
    b = _flow_limit(prob, alpha, depth)
    z = b / alpha**depth
    h = 1e-5 * np.maximum(1.0, np.abs(z))
    g = (q_depth(z + h, depth) - q_depth(z - h, depth)) / (2 * h)
    P_null = np.eye(6) - np.linalg.pinv(X) @ X
    assert np.linalg.norm(P_null @ g) <= 1e-6 * np.linalg.norm(g)


def test_q_depth_closed_forms():
    u = np.array([1e-6, 1e-3, 0.5, 3.0])
    # Near 0, h_D(z) = 2 p z + O(z^3), p = D/(D-2), so q_D(u) = u^2 / (4p) + O(u^4).
    for D in (3, 4, 5):
        p = D / (D - 2)
        np.testing.assert_allclose(q_depth(u[:2], D), u[:2] ** 2 / (4 * p), rtol=1e-5)
    # q_D' = h_D^{-1}: at u = h_D(z) the derivative is z.
    for D in (3, 4):
        p = D / (D - 2)
        zz = np.array([0.1, 0.5, 0.9, 0.999])
        uu = (1 - zz) ** -p - (1 + zz) ** -p
        hh = 1e-6 * uu
        dq = (q_depth(uu + hh, D) - q_depth(uu - hh, D)) / (2 * hh)
        np.testing.assert_allclose(dq, zz, rtol=1e-6)
    np.testing.assert_allclose(q_depth(-u, 3), q_depth(u, 3))


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_sparse_dense_ratio_limits(depth):
    d = 100
    # Fig. 3(b): ratio -> 1 (l2) as alpha -> inf and -> 1/sqrt(d) (l1) as alpha -> 0.
    np.testing.assert_allclose(sparse_dense_ratio(1e3, d, depth), 1.0, rtol=1e-6)
    small = {2: 1e-60, 3: 1e-8, 4: 1e-6}[depth]  # l1 needs exp-small alpha at D = 2 (Thm 2)
    np.testing.assert_allclose(sparse_dense_ratio(small, d, depth), 0.1, rtol=2e-2)


def test_threshold_bad_input():
    with pytest.raises(ValueError, match="`eps`"):
        alpha_l2_threshold(1.0, 0.0)
    with pytest.raises(ValueError, match="eps < d"):
        alpha_l1_threshold(1.0, 3, 5.0)
    with pytest.raises(ValueError, match="`depth`"):
        q_depth(1.0, 1)
