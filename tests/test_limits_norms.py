"""Tests of `linflow.limits.min_l2 / min_l1 / max_margin` against closed forms, KKT conditions
checked independently, and cvxpy (an independent convex solver)."""

import jax
import numpy as np
import pytest

from linflow.limits import max_margin, min_l1, min_l2


def _data(seed, n=8, d=20, m=None):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n) if m is None else rng.standard_normal((n, m))
    return X, y


@pytest.mark.parametrize("m", [None, 3])
def test_min_l2_is_normal_equations_solution(m):
    X, y = _data(0, m=m)
    expected = X.T @ np.linalg.solve(X @ X.T, y)  # X^T (X X^T)^{-1} y
    np.testing.assert_allclose(min_l2(X, y), expected, rtol=1e-10, atol=1e-12)


def test_min_l2_least_squares_when_overdetermined():
    X, y = _data(1, n=20, d=5)
    np.testing.assert_allclose(min_l2(X, y), np.linalg.pinv(X) @ y, rtol=1e-10)


def test_min_l2_is_jittable():
    X, y = _data(2)
    np.testing.assert_allclose(jax.jit(min_l2)(X, y), min_l2(X, y), rtol=1e-12)


def test_min_l1_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    X, y = _data(3)
    b = cp.Variable(X.shape[1])
    prob = cp.Problem(cp.Minimize(cp.norm1(b)), [X @ b == y])
    prob.solve(solver=cp.CLARABEL)
    beta = np.asarray(min_l1(X, y))
    # Interior-point accuracy of cvxpy ~1e-8; the LP+polish is exact to rounding.
    np.testing.assert_allclose(np.abs(beta).sum(), prob.value, rtol=1e-7)
    np.testing.assert_allclose(beta, b.value, atol=1e-6)
    assert np.linalg.norm(X @ beta - y) <= 1e-13 * np.linalg.norm(y)


def test_min_l1_weighted_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    X, y = _data(4)
    w = np.random.default_rng(5).uniform(0.5, 2.0, X.shape[1])
    b = cp.Variable(X.shape[1])
    prob = cp.Problem(cp.Minimize(w @ cp.abs(b)), [X @ b == y])
    prob.solve(solver=cp.CLARABEL)
    beta = np.asarray(min_l1(X, y, weights=w))
    np.testing.assert_allclose(np.sum(w * np.abs(beta)), prob.value, rtol=1e-7)


def test_min_l1_recovers_planted_sparse_vector():
    # Compressed sensing: with n = 40 Gaussian measurements of a 3-sparse vector in d = 80,
    # basis pursuit recovers it exactly (well above the Donoho-Tanner phase transition).
    rng = np.random.default_rng(6)
    X = rng.standard_normal((40, 80))
    b = np.zeros(80)
    b[[3, 17, 60]] = [1.0, -2.0, 0.5]
    np.testing.assert_allclose(min_l1(X, X @ b), b, atol=1e-12)


def test_min_l1_satisfies_lp_optimality():
    # Dual certificate: nu with |X^T nu| <= 1, equality (with the sign) on the support.
    X, y = _data(7)
    beta = np.asarray(min_l1(X, y))
    S = np.abs(beta) > 1e-10
    nu, *_ = np.linalg.lstsq(X[:, S].T, np.sign(beta[S]), rcond=None)
    np.testing.assert_allclose(X[:, S].T @ nu, np.sign(beta[S]), atol=1e-10)
    assert np.all(np.abs(X.T @ nu) <= 1 + 1e-9)


def test_min_l1_infeasible_raises():
    X = np.array([[1.0, 1.0], [2.0, 2.0]])
    with pytest.raises(ValueError, match="no solution"):
        min_l1(X, np.array([1.0, 0.0]))


def test_max_margin_l2_closed_form():
    # Two points x1 = e1 (label +1) and x2 = e2 (label -1): w* = (1, -1), direction / sqrt 2.
    X = np.eye(2)
    np.testing.assert_allclose(
        max_margin(X, np.array([1.0, -1.0])), [2**-0.5, -(2**-0.5)], atol=1e-12
    )


def _separable(seed, n=12, d=6):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    return X, np.sign(X @ w)


def test_max_margin_l2_kkt():
    # SVM KKT: w = sum lambda_i z_i, lambda >= 0 on the active (margin-minimising) points only.
    X, labels = _separable(8)
    w = np.asarray(max_margin(X, labels, "l2"))
    np.testing.assert_allclose(np.linalg.norm(w), 1.0, rtol=1e-14)
    Z = labels[:, None] * X
    margins = Z @ w
    gamma = margins.min()
    assert gamma > 0
    active = margins <= gamma * (1 + 1e-8)
    lam, *_ = np.linalg.lstsq(Z[active].T, w / gamma, rcond=None)
    np.testing.assert_allclose(Z[active].T @ lam, w / gamma, atol=1e-9)
    assert np.all(lam >= -1e-9)


def test_max_margin_l1_matches_cvxpy():
    cp = pytest.importorskip("cvxpy")
    X, labels = _separable(9)
    Z = labels[:, None] * X
    w = cp.Variable(X.shape[1])
    cp.Problem(cp.Minimize(cp.norm1(w)), [Z @ w >= 1]).solve(solver=cp.CLARABEL)
    ref = w.value / np.abs(w.value).sum()
    got = np.asarray(max_margin(X, labels, "l1"))
    np.testing.assert_allclose(np.abs(got).sum(), 1.0, rtol=1e-14)
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_max_margin_non_separable_raises():
    X = np.array([[1.0], [1.0]])
    for norm in ["l2", "l1"]:
        with pytest.raises(ValueError, match="separable"):
            max_margin(X, np.array([1.0, -1.0]), norm)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: min_l2(np.ones((3, 4)), np.ones(2)), "y"),
        (lambda: min_l2(np.full((3, 4), np.nan), np.ones(3)), "X"),
        (lambda: min_l1(np.ones((3, 4)), np.ones((3, 2))), "y"),
        (lambda: min_l1(np.ones((3, 4)), np.ones(3), weights=-np.ones(4)), "weights"),
        (lambda: max_margin(np.ones((3, 4)), np.array([1.0, 0.0, 1.0])), "labels"),
        (lambda: max_margin(np.ones((3, 4)), np.ones(3), norm="linf"), "norm"),
    ],
)
def test_bad_inputs_raise_value_error_naming_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
