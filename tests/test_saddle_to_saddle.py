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


def _q_alpha_reference(X, y, alpha):
    """argmin Q_alpha(beta) s.t. X beta = y at depth 2, independently of linflow: damped
    Newton on the dual F(nu) = sum_i psi(x_i^T nu) - y^T nu with psi(s) = alpha^2 cosh(4s)/2
    (psi' = 2 alpha^2 sinh(4s) = beta on the flow's path), in log space (alpha^2 underflows
    below 1e-154), started from the min-l1 LP's dual certificate scaled into the box."""
    n, d = X.shape
    la = 2 * np.log(alpha)
    lp = scipy.optimize.linprog(
        np.ones(2 * d), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs"
    )
    nu = -np.log(alpha) * lp.eqlin.marginals / 2

    def parts(nu):
        s = X.T @ nu
        e_p, e_m = np.exp(la + 4 * np.abs(s)), np.exp(la - 4 * np.abs(s))
        return np.sum(e_p + e_m) / 4 - y @ nu, np.sign(s) * (e_p - e_m), 4 * (e_p + e_m)

    F, beta, h = parts(nu)
    for _ in range(200):
        g = X @ beta - y
        if np.linalg.norm(g) <= 1e-15 * np.linalg.norm(y):
            break
        H = (X * h) @ X.T
        # (Regularised: off the support the curvature underflows and H is singular.)
        step = np.linalg.solve(H + 1e-14 * np.trace(H) * np.eye(n), -g)
        t = 1.0
        while True:
            F1, b1, h1 = parts(nu + t * step)
            if F1 <= F + 1e-4 * t * (g @ step) or t < 1e-12:
                break
            t /= 2
        nu, F, beta, h = nu + t * step, F1, b1, h1
    assert np.linalg.norm(X @ beta - y) <= 1e-12 * np.linalg.norm(y)
    return beta


@pytest.mark.slow  # four flows and five Newton solves (~40 s on a loaded 2-core CPU)
def test_flows_at_vanishing_scales_converge_in_as_many_steps_as_alpha_1e3():
    # Before the log-space predictor, alpha^2 (and sqrt(a b)) underflowed: alpha = 1e-100
    # and 1e-200 never left beta = 0 and ran out of steps.
    import jax.random as jr

    prob, _ = lf.problems.generators.sparse_regression(jr.PRNGKey(1), 10, 30, 3)
    X, y = np.asarray(prob.X), np.asarray(prob.Y)
    l1 = _min_l1_lp(X, y)
    steps = {}
    for alpha in [1e-3, 1e-60, 1e-100, 1e-200]:
        sol = lf.flow(lf.DiagonalNet.unbiased(30, alpha), prob)
        steps[alpha] = int(sol.stats["num_steps"])
        beta = np.asarray(sol.final_predictor)
        if alpha == 1e-3:
            # The reference against linflow's own solver where that one is accurate.
            q = np.asarray(lf.limits.hypentropy_minimiser(X, y, alpha))
            np.testing.assert_allclose(_q_alpha_reference(X, y, alpha), q, atol=1e-12)
            continue
        # The stop (relative excess 1e-10) leaves ~1e-10 in beta; measured <= 1.1e-10.
        np.testing.assert_allclose(beta, _q_alpha_reference(X, y, alpha), atol=1e-8)
        np.testing.assert_allclose(beta, l1, atol=1e-6)  # LP tolerance ~1e-9
        assert np.all(np.isfinite(np.asarray(jax.vmap(lambda m: m.predictor())(sol.models))))
        assert steps[alpha] <= 3 * steps[1e-3], steps


def test_log_space_predictor_is_exact_where_alpha_squared_underflows():
    # beta_i = 2 alpha^2 sinh(4 s_i) = sign(s) exp(2 log alpha + 4|s|) (1 - exp(-8|s|)):
    # closed form in log space, checked at alpha = 1e-200 (alpha^2 = 0 in float64).
    from linflow._reduced import DualFlowSystem

    X = np.eye(3)
    alpha = 1e-200
    system = DualFlowSystem(lf.DiagonalNet.unbiased(3, alpha), jnp.asarray(X))
    nu = jnp.array([0.0, 231.0, -232.0])
    beta = np.asarray(system.predictor(nu))
    s = np.asarray(nu)
    want = np.sign(s) * np.exp(2 * np.log(alpha) + 4 * np.abs(s)) * -np.expm1(-8 * np.abs(s))
    np.testing.assert_allclose(beta, want, rtol=1e-13)
    assert beta[1] > 1 and beta[2] < -1  # where alpha^2 = 0 gave beta = 0
    # The same under jit, and its derivative at s = 0 is 8 alpha^2 (underflows to 0 here;
    # at alpha = 1e-100 it is 8e-200, a float).
    jitted = jax.jit(lambda sys_, v: sys_.predictor(v))(system, nu)
    np.testing.assert_allclose(jitted, beta, rtol=1e-15)
    small = DualFlowSystem(lf.DiagonalNet.unbiased(3, 1e-100), jnp.asarray(X))
    J = jax.jacfwd(small.predictor)(jnp.zeros(3))
    np.testing.assert_allclose(np.diag(np.asarray(J)), 8e-200, rtol=1e-13)
