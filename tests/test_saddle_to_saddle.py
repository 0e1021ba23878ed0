"""The alpha -> 0 limit process of diagonal nets (Pesme & Flammarion 2023) and flows at any
alpha > 0: the limit against hand-derivable pieces, an LP, and the flow itself."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import linflow as lf
from linflow.limits import saddle_to_saddle


def _data(seed=7, n=5, d=10):
    # Seed 7: five plateaus, each at least 10% of its end time long, so the alpha = 1e-30
    # flow's transitions (width ~ 1/log(1/alpha) = 0.014 in tau) do not overlap mid-plateau.
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal(n)


def _predictors(sol):
    return np.asarray(jax.vmap(lambda m: m.predictor())(sol.models))


def _min_l1_lp(X, y):
    # Independent of linflow: basis pursuit as an LP in (u, v) >= 0 with HiGHS.
    n, d = X.shape
    res = scipy.optimize.linprog(
        np.ones(2 * d), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs"
    )
    assert res.status == 0
    return res.x[:d] - res.x[d:]


def test_first_jump_and_first_saddle_by_hand():
    X, y = _data()
    proc = saddle_to_saddle(X, y)
    # Library loss 1/2 ||X b - y||^2, beta = 2 alpha^2 sinh(4 s): the box is |s~| <= 1/2 and
    # s~ moves at speed X^T y from 0, so tau_1 = 1 / (2 ||X^T y||_inf).
    g = X.T @ y
    i = np.argmax(np.abs(g))
    np.testing.assert_allclose(proc.times[0], 1 / (2 * np.abs(g).max()), rtol=1e-14)
    # First saddle: least squares on the one coordinate i (its sign is that of x_i^T y).
    first = np.zeros(X.shape[1])
    first[i] = g[i] / (X[:, i] @ X[:, i])
    np.testing.assert_allclose(proc.saddles[0], first, rtol=1e-13, atol=1e-15)
    assert proc.times.shape == (proc.stats["num_jumps"],)
    assert np.all(np.diff(proc.times) > 0)
    assert proc.result == lf.RESULTS.converged


@pytest.mark.parametrize("seed, n, d", [(7, 5, 10), (3, 8, 40), (11, 20, 15)])
def test_last_saddle_is_min_l1_and_dual_stays_in_box(seed, n, d):
    # (20, 15): more samples than features, y not in the range: the process ends at the
    # least-squares solution (unique, X has full column rank).
    X, y = _data(seed, n, d)
    proc = saddle_to_saddle(X, y)
    ref = _min_l1_lp(X, y) if n < d else np.linalg.lstsq(X, y, rcond=None)[0]
    # LP tolerance ~1e-9 of HiGHS; the process polishes each saddle by least squares.
    np.testing.assert_allclose(proc.saddles[-1], ref, atol=1e-8)
    # The dual certificate: |s~| <= 1/2, and each saddle is sign-consistent with it.
    assert np.all(np.abs(proc.duals) <= 0.5)
    assert np.all(proc.saddles * proc.duals >= 0)
    assert np.all(proc.saddles[np.abs(proc.duals) < 0.5] == 0)
    # Each saddle is stationary on its plateau's constraint set (KKT of the constrained LS).
    for b, s in zip(proc.saddles, proc.duals):
        g = X.T @ (y - X @ b)
        assert np.abs(g[b != 0]).max() <= 1e-12 * np.abs(X.T @ y).max()


@pytest.mark.slow  # one compiled flow (~25 s on a loaded 2-core CPU)
def test_flow_at_1e30_sits_on_each_saddle_mid_plateau():
    X, y = _data()
    proc = saddle_to_saddle(X, y)
    T = proc.times
    assert np.min(np.diff(T) / T[1:]) > 0.1  # the data's precondition (see _data)
    mids = np.concatenate([(T[:-1] + T[1:]) / 2, [T[-1] + 0.5]])
    alpha = 1e-30
    sol = lf.flow(
        lf.DiagonalNet.unbiased(X.shape[1], alpha),
        lf.Regression(X, y),
        saveat=lf.SaveAt.rescaled(mids, alpha),
    )
    np.testing.assert_allclose(sol.ts, mids * np.log(1e30), rtol=1e-14)
    beta = _predictors(sol)
    # Mid-plateau the flow is within O(alpha^c) of the saddle for a c > 0 set by the
    # plateau's half-length; the bound 2e-2 (measured: 2.4e-3).
    np.testing.assert_array_less(np.abs(beta - proc.saddles).max(axis=1), 2e-2)
    # The predictor method gives the same staircase.
    np.testing.assert_array_equal(proc.predictor(mids), proc.saddles)
    np.testing.assert_array_equal(proc.predictor(np.array([0.0, T[0] * 0.99])), 0.0)


@pytest.mark.slow  # one compiled flow (~25 s on a loaded 2-core CPU)
def test_hadamard_net_runs_the_same_process_at_twice_the_rescaled_time():
    # HadamardNet.unbiased(d, alpha) is the depth-2 flow at twice the speed: radius 1.
    X, y = _data()
    proc = saddle_to_saddle(X, y)
    T = proc.times
    taus = 2 * np.concatenate([(T[:-1] + T[1:]) / 2, [T[-1] + 0.5]])
    alpha = 1e-30
    sol = lf.flow(
        lf.HadamardNet.unbiased(X.shape[1], alpha),
        lf.Regression(X, y),
        saveat=lf.SaveAt.rescaled(taus, alpha),
    )
    beta = _predictors(sol)
    np.testing.assert_array_less(np.abs(beta - proc.saddles).max(axis=1), 2e-2)


@pytest.mark.slow  # one compiled flow (~25 s on a loaded 2-core CPU)
def test_depth3_process_is_the_same_staircase_in_its_own_clock():
    X, y = _data()
    p2, p3 = saddle_to_saddle(X, y), saddle_to_saddle(X, y, depth=3)
    np.testing.assert_allclose(p3.times, 2 * p2.times, rtol=1e-12)
    np.testing.assert_allclose(p3.saddles, p2.saddles, rtol=1e-12, atol=1e-15)
    assert p3.radius == 1.0
    # The depth-3 flow at alpha = 1e-8 in tau = D(D-2) alpha^(D-2) t: corrections are
    # polynomial in alpha there (beta = alpha^3 [(1-s)^-3 - (1+s)^-3] inside the box).
    alpha = 1e-8
    T = p3.times
    mids = np.concatenate([(T[:-1] + T[1:]) / 2, [T[-1] + 1.0]])
    sol = lf.flow(
        lf.DiagonalNet.unbiased(X.shape[1], alpha, depth=3),
        lf.Regression(X, y),
        saveat=lf.SaveAt(ts=jnp.asarray(mids / (3 * alpha))),
    )
    beta = _predictors(sol)
    np.testing.assert_array_less(np.abs(beta - p3.saddles).max(axis=1), 2e-2)


def test_ties_enter_together_and_duplicates_are_a_clear_error():
    # Two orthogonal features with equal correlation arrive at the same time: both enter,
    # and the saddle is the least squares on both (exact: x1 = e1, x2 = e2, y = (1, 1)).
    X = np.array([[1.0, 0.0, 0.3], [0.0, 1.0, 0.3]])
    y = np.array([1.0, 1.0])
    proc = saddle_to_saddle(X, y)
    # |X^T y| = (1, 1, 0.6): tau_1 = 1/2; then y is interpolated by (1, 1, 0) and g = 0.
    np.testing.assert_allclose(proc.times, [0.5])
    np.testing.assert_allclose(proc.saddles, [[1.0, 1.0, 0.0]], atol=1e-15)
    assert not np.any(np.isnan(proc.saddles))
    # Identical features: the limit saddle is not unique.
    Xd = np.array([[1.0, 1.0, 0.2], [0.5, 0.5, 1.0]])
    with pytest.raises(ValueError, match="degenerate plateau"):
        saddle_to_saddle(Xd, np.array([1.0, 0.3]))


def test_bad_input():
    X, y = _data()
    with pytest.raises(ValueError, match="`depth`"):
        saddle_to_saddle(X, y, depth=1)
    with pytest.raises(ValueError, match="`X`"):
        saddle_to_saddle(X[:3], y)
    with pytest.raises(ValueError, match="X.T @ y"):
        saddle_to_saddle(X, np.zeros_like(y))
    with pytest.raises(ValueError, match="NaN"):
        saddle_to_saddle(X, y * np.nan)
    with pytest.raises(RuntimeError, match="max_jumps"):
        saddle_to_saddle(X, y, max_jumps=1)
    out = saddle_to_saddle(X, y, max_jumps=1, throw=False)
    assert out.result == lf.RESULTS.max_steps_reached
    with pytest.raises(ValueError, match="`alpha`"):
        lf.SaveAt.rescaled(np.array([0.1]), 2.0)
