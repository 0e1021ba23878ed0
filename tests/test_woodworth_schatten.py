"""Woodworth et al. 2020, Thm 4: wide factorisations with commuting measurements minimise the
Schatten-Q_mu potential of the spectrum, mu^2 = alpha^2 k / 2."""

import diffrax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow
from linflow.limits import joint_eigenbasis, qmu_minimiser, schatten_q, schatten_q_minimiser


DOPRI8 = linflow.SolverChoice(diffrax.Dopri8(), rtol=1e-12, atol=1e-14)
STOP = linflow.Converged(1e-10)
D, N = 3, 2  # 3 eigen-coordinates, 2 measurements: a one-dimensional set of solutions


def _instance():
    prob, _, _ = linflow.commuting_sensing(jr.PRNGKey(11), D, N, 1)
    return prob


@pytest.mark.parametrize("mu", [0.1, 1.0])
def test_qmu_minimiser_matches_diagonal_flow(mu):
    # Second method: the reduced flow of the unbiased diagonal net at alpha = mu (Thm 1).
    prob = _instance()
    Q, a = joint_eigenbasis(prob.A)
    delta = qmu_minimiser(a, prob.y, mu)
    reg = linflow.Regression(a, prob.y)
    sol = linflow.flow(linflow.DiagonalNet.unbiased(D, mu), reg, solver=DOPRI8, stop=STOP)
    np.testing.assert_allclose(delta, sol.final.predictor(), atol=1e-8)
    M = schatten_q_minimiser(prob.A, prob.y, mu)
    assert prob.relative_excess(M) < 1e-10
    # Q_mu of the spectrum is smaller than at any other feasible point on the solution line.
    n = np.linalg.svd(np.asarray(a))[2][-1]
    for t in (-1e-3, 1e-3):
        M2 = M + t * (Q * n[None, :]) @ Q.T
        assert schatten_q(M2, mu) > schatten_q(M, mu)


@pytest.mark.parametrize("mu", [0.3, 1.0])
def test_lifted_identity_init_reaches_schatten_minimiser_exactly(mu):
    # App. G: any init with lifted matrix 2 mu^2 I gives exactly the Q_mu limit; the paper's
    # choice U(0) = [sqrt2 mu I, 0], V(0) = [0, sqrt2 mu I] (width k = 2d).
    prob = _instance()
    s = np.sqrt(2.0) * mu
    U0 = jnp.concatenate([s * jnp.eye(D), jnp.zeros((D, D))], axis=1)
    V0 = jnp.concatenate([jnp.zeros((D, D)), s * jnp.eye(D)], axis=1)
    np.testing.assert_allclose(
        linflow.lifted_matrix(linflow.TwoLayer(U0, V0)), 2 * mu**2 * np.eye(2 * D)
    )
    sol = linflow.flow(linflow.TwoLayer(U0, V0), prob, solver=DOPRI8, stop=STOP)
    M_star = schatten_q_minimiser(prob.A, prob.y, mu)
    # Error set by the stop (1e-10 relative excess) and the ODE tolerance.
    np.testing.assert_allclose(sol.final.predictor(), M_star, atol=1e-7)


@pytest.mark.slow
def test_wide_gaussian_init_approaches_schatten_minimiser():
    # N(0, alpha^2) entries with alpha^2 = 2 mu^2 / k. In the joint eigenbasis each coordinate
    # follows exactly (App. G) d/dt(Delta +- delta) = -+ 2 g (Delta +- delta), so the measured
    # part of the limit is the limit of a diagonal net with w_pm^2 = |u_i -+ v_i|^2 / 4 (rows of
    # Q^T U(0), Q^T V(0)): exact at any k. As k grows, w_pm^2 -> mu^2 and the limit -> Q_mu.
    prob = _instance()
    Q, a = joint_eigenbasis(prob.A)
    mu = 0.5
    M_star = np.asarray(schatten_q_minimiser(prob.A, prob.y, mu))
    errs = []
    for k in (16, 400):
        model = linflow.scaled_gaussian(jr.PRNGKey(k), (D, D), k, np.sqrt(2 * mu**2 / k))
        sol = linflow.flow(model, prob, solver=DOPRI8, stop=STOP)
        M = np.asarray(sol.final.predictor())
        Ut, Vt = Q.T @ model.U, Q.T @ model.V
        wp = jnp.linalg.norm(Ut + Vt, axis=1) / 2
        wm = jnp.linalg.norm(Ut - Vt, axis=1) / 2
        exact = linflow.flow(
            linflow.DiagonalNet(wp, wm, 2), linflow.Regression(a, prob.y), solver=DOPRI8, stop=STOP
        ).final.predictor()
        np.testing.assert_allclose(np.diag(Q.T @ M @ Q), exact, atol=1e-7)
        errs.append(np.linalg.norm(M - M_star) / np.linalg.norm(M_star))
    print("Q_mu relative errors at k = 16, 400:", errs)
    # Fluctuations of the lifted matrix around 2 mu^2 I are O(1/sqrt(k)).
    assert errs[1] < 3 / np.sqrt(400)
    assert errs[1] < errs[0]


@pytest.mark.parametrize("mu", [1.5, 2.0, 10.0])
def test_schatten_minimiser_satisfies_kkt_on_gaussian_eigen_coordinates(mu):
    # Commuting sensing with d = 15, N = 6 and Gaussian eigen-coordinates (where a separate
    # Newton loop used to stop after 200 steps). Truth: the KKT conditions of Thm 4's diagonal
    # problem, checked with NumPy: the constraint, and grad Q_mu(delta) = arcsinh(delta /
    # (2 mu^2)) in the row space of the eigen-coordinates (least-squares residual). Both are at
    # rounding level (1e-12 leaves a 1e3 margin over the solver's ~1e-15 residual).
    d, n = 15, 6
    rng = np.random.default_rng(int(mu * 10))
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    a = rng.standard_normal((n, d))
    A = np.einsum("ik,nk,jk->nij", Q, a, Q)
    y = rng.standard_normal(n)
    M = np.asarray(schatten_q_minimiser(A, y, mu))
    np.testing.assert_allclose(np.einsum("nij,ij->n", A, M), y, rtol=0, atol=1e-12)
    delta = np.diag(Q.T @ M @ Q)
    np.testing.assert_allclose(Q.T @ M @ Q, np.diag(delta), atol=1e-12)
    g = np.arcsinh(delta / (2 * mu**2))
    nu = np.linalg.lstsq(a.T, g, rcond=None)[0]
    assert np.linalg.norm(a.T @ nu - g) <= 1e-12 * np.linalg.norm(g)
