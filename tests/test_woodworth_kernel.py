"""Tangent-kernel flow: closed-form limit, the large-alpha limit, Woodworth et al. Thm 9."""

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import linflow
from linflow.kernel import (
    Linearised,
    grad_distance,
    kernel_change,
    linearisation_distance,
    tangent_features,
    tangent_kernel,
    tangent_kernel_limit,
)


# Explicit high order: these flows are not stiff and Dopri8 compiles in seconds, where the
# implicit default needs ~15 s per shape.
DOPRI8 = linflow.SolverChoice(diffrax.Dopri8(), rtol=1e-12, atol=1e-14)


def test_tangent_features_match_dense_jacobian(getkey):
    prob, _ = linflow.matrix_completion(getkey(), (4, 3), 1, 7)
    model = linflow.scaled_gaussian(getkey(), (4, 3), 2, 0.8)
    params, static = jax.tree.map(jnp.asarray, model), None
    flat, unravel = ravel_pytree(params)
    J = jax.jacfwd(lambda p: prob.observed(unravel(p).predictor()))(flat)
    np.testing.assert_allclose(tangent_features(model, prob), J, atol=1e-13)
    np.testing.assert_allclose(tangent_kernel(model, prob), J @ J.T, atol=1e-12)
    del static


def test_linearised_flow_reaches_closed_form_limit(getkey):
    prob, _ = linflow.matrix_completion(getkey(), (5, 5), 1, 12)
    m0 = linflow.scaled_gaussian(getkey(), (5, 5), 4, 0.5)
    sol = linflow.flow(Linearised(m0), prob, solver=DOPRI8)
    lim = tangent_kernel_limit(m0, prob)
    # The stop (relative excess 1e-10 of ||values|| ~ 5) bounds the error in the observed
    # outputs; the closed form fixes the rest exactly, so parameters agree to ~1e-9.
    np.testing.assert_allclose(sol.final.predictor(), lim.predictor(), atol=1e-8)
    np.testing.assert_allclose(sol.final.delta.U, lim.delta.U, atol=1e-8)
    np.testing.assert_allclose(sol.final.delta.V, lim.delta.V, atol=1e-8)
    # The parameters never moved away from model0 (they are frozen).
    np.testing.assert_array_equal(sol.final.model0.U, m0.U)


def _diag_problem(key):
    kx, ky = jr.split(key)
    return linflow.Regression(jr.normal(kx, (3, 6)), jr.normal(ky, (3,)))


def test_diagonal_kernel_limit_is_min_l2(getkey):
    # K(w0) = 8 alpha^2 X X^T (Sec. 4): the kernel-regime predictor is min-l2, at any alpha.
    prob = _diag_problem(getkey())
    beta_l2 = np.linalg.pinv(np.asarray(prob.X)) @ np.asarray(prob.Y)
    for alpha in (0.01, 1.0, 30.0):
        lim = tangent_kernel_limit(linflow.DiagonalNet.unbiased(6, alpha), prob)
        np.testing.assert_allclose(lim.predictor(), beta_l2, atol=1e-10)
        np.testing.assert_allclose(
            tangent_kernel(lim.model0, prob), 8 * alpha**2 * prob.X @ prob.X.T, rtol=1e-12
        )


def test_diagonal_flow_tends_to_kernel_limit_at_rate_alpha_minus_4(getkey):
    # Q_alpha(b) = b^2/(4 alpha^2) - b^4/(192 alpha^6) + O(alpha^-10) (Taylor of q, Thm 1), so
    # its constrained minimiser is beta_l2 + P_null(beta_l2^3) / (24 alpha^4) + O(alpha^-8).
    prob = _diag_problem(getkey())
    X, y = np.asarray(prob.X), np.asarray(prob.Y)
    beta_l2 = np.linalg.pinv(X) @ y
    P_null = np.eye(6) - np.linalg.pinv(X) @ X
    lead = P_null @ beta_l2**3 / 24
    dists = []
    for alpha in (4.0, 8.0, 16.0):
        sol = linflow.flow(
            linflow.DiagonalNet.unbiased(6, alpha),
            prob,
            solver=DOPRI8,
            stop=linflow.Converged(1e-10),
        )
        diff = np.asarray(sol.final.predictor()) - beta_l2
        dists.append(np.linalg.norm(diff))
        # relative size of the next term: ~ |beta|^2 / alpha^4 <~ 3e-2 at alpha = 4
        np.testing.assert_allclose(
            diff, lead / alpha**4, atol=0.05 * np.linalg.norm(lead) / alpha**4
        )
    slope = np.polyfit(np.log([4.0, 8.0, 16.0]), np.log(dists), 1)[0]
    assert -4.2 < slope < -3.8
    # And the kernel barely moves: K(t)/K(0) = diag(cosh 4s), cosh = sqrt(1 + (beta/2a^2)^2).
    alpha = 16.0
    m0 = linflow.DiagonalNet.unbiased(6, alpha)
    sol = linflow.flow(m0, prob, solver=DOPRI8, stop=linflow.Converged(1e-10))
    b = np.asarray(sol.final.predictor())
    K1 = 8 * alpha**2 * (X * np.sqrt(1 + (b / (2 * alpha**2)) ** 2)) @ X.T
    want = np.linalg.norm(K1 - 8 * alpha**2 * X @ X.T) / np.linalg.norm(8 * alpha**2 * X @ X.T)
    np.testing.assert_allclose(kernel_change(m0, sol.final, prob), want, rtol=1e-6)
    assert grad_distance(m0, sol.final, prob) < 1e-6
    assert grad_distance(m0, m0, prob) < 1e-14


@pytest.mark.slow
def test_thm9_bound_for_symmetric_sensing(getkey):
    # Woodworth et al. App. H, Thm 9 with gamma = 0: W(0) = sqrt(mu) I (W W^T = mu I),
    # traceless symmetric measurements so that y(0) = 0 and ||y(0) - y*|| = ||y||.
    d, N = 3, 3
    B = jr.normal(getkey(), (N, d, d))
    A = B + jnp.swapaxes(B, 1, 2)
    A = A - jnp.trace(A, axis1=1, axis2=2)[:, None, None] * jnp.eye(d)[None] / d
    y = jr.normal(getkey(), (N,))
    prob = linflow.MatrixSensing(A, y)
    Xm = np.asarray(A).reshape(N, -1)
    ev = np.linalg.eigvalsh(Xm @ Xm.T)
    lam, Lam = ev[0], ev[-1]
    r0 = np.linalg.norm(y)
    mu_min = r0 * np.sqrt(Lam) / (lam * (1 - np.sqrt(1 / (1 + lam / (4 * Lam)))))
    sups, bounds = [], []
    for mu in (2 * mu_min, 20 * mu_min):
        m0 = linflow.Symmetric(np.sqrt(mu) * jnp.eye(d))
        ts = jnp.logspace(-4, 2, 60) / (mu * lam)
        save = linflow.SaveAt(ts=ts)
        full = linflow.flow(m0, prob, solver=DOPRI8, saveat=save)
        lin = linflow.flow(Linearised(m0), prob, solver=DOPRI8, saveat=save)
        gap = jnp.linalg.norm(full.models.U - (m0.U[None] + lin.models.delta.U), axis=(1, 2))
        sups.append(float(gap.max()))
        bounds.append(
            Lam * np.sqrt(1 + lam / (4 * Lam)) * r0**2 / (lam**2 * mu**1.5)
            + 2 * np.sqrt(Lam) * r0 / (lam * np.sqrt(mu))
        )
        _, dparam = linearisation_distance(full.final, tangent_kernel_limit(m0, prob))
        assert dparam <= bounds[-1]
    print("thm9 sup gaps", sups, "bounds", bounds)
    assert all(s <= b for s, b in zip(sups, bounds))
    # The bound's rate in mu is mu^{-1/2}; the measured gap shrinks at least that fast.
    assert sups[1] / sups[0] <= 10**-0.5
