"""The default stop ends every flow at a steady state, fittable or not: the reachable optimum
where it is known (Eckart–Young, the PSD part), the dimensionless stationarity criterion
elsewhere, and the least-squares solution of an overdetermined regression. Truths: NumPy's
SVD, eigh and lstsq, and Tarmoun et al.'s closed form (Prop. 1, eq. (8)) on the way."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow as lf
from linflow import limits


def _best_psd(Y, k):
    lam, P = np.linalg.eigh(0.5 * (Y + Y.T))
    keep = (np.arange(len(lam)) >= len(lam) - k) & (lam > 0)
    return (P * np.where(keep, lam, 0.0)) @ P.T


def _eckart_young(Y, k):
    u, s, vt = np.linalg.svd(Y)
    return (u[:, :k] * s[:k]) @ vt[:k]


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


# The reachable-optimum stop holds at a distance rtol * ||Y||_F = 1e-10 ||Y||_F; relative to
# the optimum (norm ~ ||Y||_F here) that is ~1e-10: 1e-8 leaves the solver's own error room.
TOL = 1e-8


def test_symmetric_narrower_than_the_rank_stops_at_best_rank_k_and_follows_eq8(getkey):
    n, k = 8, 3
    A = jr.normal(getkey(), (n, 6))
    Y = A @ A.T  # PSD of rank 6 > k
    U0 = 0.5 * jr.normal(getkey(), (n, k))
    ts = jnp.concatenate([jnp.zeros(1), jnp.logspace(-2, 0, 12)])
    sol = lf.flow(lf.Symmetric(U0), lf.Factorization(Y), saveat=lf.SaveAt(ts=ts))
    assert sol.status == "converged"
    assert sol.stopped_by == lf.STOPS.reachable_optimum
    assert _rel(sol.final.predictor(), _best_psd(np.asarray(Y), k)) <= TOL
    # On the way the trajectory is Tarmoun's closed form (which holds for any width k);
    # Kvaerno5 at rtol 1e-10 keeps the global error far below 1e-7.
    closed = limits.symmetric_riccati_solution(Y, U0, ts)
    err = jnp.abs(sol.predictors - closed).max() / jnp.abs(closed).max()
    assert float(err) <= 1e-7


def test_symmetric_on_an_indefinite_target_stops_at_its_psd_part(getkey):
    B = jr.normal(getkey(), (5, 5))
    Y = np.asarray(0.5 * (B + B.T))
    assert np.linalg.eigvalsh(Y).min() < 0  # the target has negative eigenvalues
    sol = lf.flow(lf.Symmetric(0.3 * jr.normal(getkey(), (5, 5))), lf.Factorization(Y))
    assert sol.status == "converged"
    assert _rel(sol.final.predictor(), _best_psd(Y, 5)) <= TOL


def test_two_layer_narrower_than_the_rank_stops_at_eckart_young(getkey):
    Y = np.asarray(jr.normal(getkey(), (7, 5)) @ jr.normal(getkey(), (5, 6)))  # rank 5
    m0 = lf.TwoLayer(0.1 * jr.normal(getkey(), (7, 2)), 0.1 * jr.normal(getkey(), (6, 2)))
    sol = lf.flow(m0, lf.Factorization(Y))
    assert sol.status == "converged"
    assert sol.stopped_by == lf.STOPS.reachable_optimum
    assert _rel(sol.final.predictor(), _eckart_young(Y, 2)) <= TOL


@pytest.mark.parametrize("scale", [0.3, 1e-6])
def test_stationarity_stop_ends_a_flow_with_no_known_optimum_past_its_saddles(scale):
    # DeepLinear declares no reachable optimum: only the stationarity criterion can end this
    # width-2 factorisation of a full-rank target. From scale 1e-6 the flow sits near the
    # saddle at 0 with a gradient of order 1e-12 for t ~ log(1e6) / sigma_1; the criterion
    # must not fire there (the predictor would be ~1e-12, far from Eckart-Young).
    key = jr.PRNGKey(1)
    k1, k2, k3 = jr.split(key, 3)
    Y = np.asarray(jr.normal(k1, (6, 6)))
    W1 = scale * jr.normal(k2, (2, 6))
    W2 = scale * jr.normal(k3, (6, 2))
    sol = lf.flow(lf.DeepLinear([W1, W2]), lf.Factorization(Y))
    assert sol.status == "converged"
    assert sol.stopped_by == lf.STOPS.stationary
    # S <= rtol^2 bounds the squared relative excess over the steady state (module doc of
    # linflow._steady_state); the predictor's error is ~ that excess times ||Y|| / gap:
    # measured 1.3e-11.
    assert _rel(sol.final.predictor(), _eckart_young(Y, 2)) <= TOL


@pytest.mark.slow
def test_overdetermined_noisy_regression_converges_to_least_squares(getkey):
    X = jr.normal(getkey(), (30, 5))
    y = X @ jr.normal(getkey(), (5,)) + 0.3 * jr.normal(getkey(), (30,))
    Y = jnp.stack([y, -y + 0.1 * jr.normal(getkey(), (30,))], axis=1)
    lsq = np.linalg.lstsq(np.asarray(X), np.asarray(Y), rcond=None)[0]
    # A reduced (dual) form and a full parameter flow.
    sol_d = lf.flow(lf.DiagonalNet.unbiased(5, 0.1), lf.Regression(X, y))
    m0 = lf.TwoLayer(0.1 * jr.normal(getkey(), (5, 4)), 0.1 * jr.normal(getkey(), (2, 4)))
    sol_t = lf.flow(m0, lf.Regression(X, Y))
    for sol, want in ((sol_d, lsq[:, 0]), (sol_t, lsq)):
        assert sol.status == "converged"
        # relative excess 1e-10 in the projected residual; X is well conditioned here
        # (cond ~ 2), so the coefficients carry about the same relative error.
        assert _rel(sol.final_predictor, want) <= TOL


def test_stationarity_is_not_defined_before_the_loss_decreases(getkey):
    from linflow._steady_state import SteadyState
    from linflow._system import GradientFlowSystem

    Y = jr.normal(getkey(), (4, 4))
    model = lf.DeepLinear([1e-3 * jr.normal(getkey(), (2, 4)), 1e-3 * jr.normal(getkey(), (4, 2))])
    problem = lf.Factorization(Y)
    system = GradientFlowSystem(model)
    steady = SteadyState(system, problem, lf.Converged(), model)
    assert float(steady.stationarity(0.0, model)) == np.inf  # t = 0: nothing decreased
    # At a true stationary point (zero parameters: zero gradient, the loss never moves) it
    # holds, and it reports the time it took.
    zero = lf.DeepLinear([jnp.zeros((2, 4)), jnp.zeros((4, 2))])
    steady0 = SteadyState(GradientFlowSystem(zero), problem, lf.Converged(), zero)
    assert float(steady0.stationarity(1.0, zero)) == 0.0


def test_one_sided_diagonal_net_stops_at_nonnegative_least_squares(getkey):
    # w_minus = 0: beta = w_plus^2 >= 0, whose best loss is the non-negative least squares
    # (scipy's NNLS, an active-set method), above the best linear loss. The coordinates held at
    # 0 reach it only as their dual coordinate goes to -inf; the reduced form's drift guard
    # (`mirror_coordinates`) must leave them out for the stationarity criterion to end the flow.
    import scipy.optimize

    X = jr.normal(getkey(), (30, 5))
    y = X @ jnp.array([1.0, -1.0, 0.5, 2.0, -0.3]) + 0.1 * jr.normal(getkey(), (30,))
    sol = lf.flow(lf.DiagonalNet(jnp.full(5, 0.1), jnp.zeros(5)), lf.Regression(X, y))
    assert sol.status == "converged"
    assert sol.stopped_by == lf.STOPS.stationary
    nnls = scipy.optimize.nnls(np.asarray(X), np.asarray(y))[0]
    assert np.count_nonzero(nnls) < 5  # a constraint is active: not the linear optimum
    # S <= 1e-20 bounds the squared relative excess (cond(X) ~ 2 here); measured 6e-13.
    assert _rel(sol.final_predictor, nnls) <= TOL


def test_a_large_start_that_can_fit_is_not_stopped_short_by_stationarity():
    # At a large initialisation L(0) is many times L_ref, and a stationarity measured against
    # L(0) - L(t) alone held while the excess over the fit was still 4e-8 (rank-one 3 x 3
    # completion, 6 observed entries, width 4 at scale 50). Normalised by at most L_ref it
    # cannot: the flow goes on to the fit the model can reach, the optimum criterion's 1e-10.
    problem, _ = lf.matrix_completion(jr.PRNGKey(0), (3, 3), 1, 6)
    ku, kv = jr.split(jr.PRNGKey(1))
    model = lf.TwoLayer(50 * jr.normal(ku, (3, 4)), 50 * jr.normal(kv, (3, 4)))
    sol = lf.flow(model, problem)
    assert sol.status == "converged" and sol.stopped_by == lf.STOPS.optimum
    assert float(sol.residual) <= 1e-10


@pytest.mark.parametrize("depth", [2, 3])
def test_gated_stationarity_test_agrees_with_the_criterion_it_skips(getkey, depth):
    # `is_stationary` forms S only where the mirror drift already passes; the criterion is
    # max(S, drift^2), so the gated test must give the same answer as comparing
    # `stationarity` with the tolerance: for tolerances just below and above each part's
    # values on states from the start to past the steady state (each part decides
    # somewhere), one state at a time and under vmap (where both branches run).
    import jax

    from linflow._reduced import DualFlowSystem
    from linflow._steady_state import SteadyState

    problem, _ = lf.sparse_regression(getkey(), 10, 25, 3)
    model = lf.DiagonalNet.unbiased(25, 0.1, depth)
    system = DualFlowSystem(model, problem.X)
    steady = SteadyState(system, problem, lf.Converged(), system.initial_state())
    # The steady state nu* of the reduced flow: the dual point of the potential's minimiser
    # (s = X^T nu*, beta = grad Phi*(s) interpolates).
    final = lf.limits.dual_minimise(model.potential(), problem.X, problem.Y).dual
    # (Off the steady state itself, where both parts are rounding noise.) S grows like t
    # and the drift's square like t^2: on a grid of times each part is the larger somewhere.
    scales = jnp.asarray([0.0, 0.5, 1 - 1e-2, 1 - 1e-4, 1 - 1e-6, 1.01])
    times = jnp.concatenate([jnp.zeros(1), jnp.logspace(-3, 9, 7)])
    ts = jnp.repeat(times, len(scales))
    states = jnp.tile(scales[:, None] * final[None, :], (len(times), 1))
    values = np.asarray(jax.vmap(steady.stationarity)(ts, states))
    fields = jax.vmap(lambda t, y: system.vector_field(t, y, problem))(ts, states)
    parts = jax.vmap(lambda t, y, f: (steady._loss_stationarity(t, y, f), steady._drift(t, y, f)))
    loss_part, drift = (np.asarray(p) for p in parts(ts, states, fields))
    np.testing.assert_allclose(values, np.maximum(loss_part, drift**2), rtol=1e-12)
    finite = np.concatenate([loss_part, drift**2])
    finite = np.unique(finite[np.isfinite(finite) & (finite > 0)])
    # (Not at the values themselves: eager, jitted and batched evaluation round differently.)
    tols = np.concatenate([finite * (1 - 1e-6), finite * (1 + 1e-6)])
    # Some state where the drift passes and S alone decides against stopping.
    assert any(np.any((drift**2 <= tol) & (loss_part > tol)) for tol in tols)
    test = steady.is_stationary
    single = jax.jit(lambda t, y, tol: test(t, y, tol))  # the branch not taken is skipped
    batched = jax.jit(jax.vmap(lambda t, y, tol: test(t, y, tol), in_axes=(0, 0, None)))
    for tol in tols:
        want = list(values <= tol)
        assert [bool(single(t, y, tol)) for t, y in zip(ts, states)] == want
        assert list(np.asarray(batched(ts, states, tol))) == want
