"""Yun et al. 2021 regression limits: Lemma 4's h_L, Thm 5 (Cor. 5-7), Thm 6, Thm 7."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
from tensor_flows import run

import linflow
from linflow.limits import (
    convolution_regression_limit,
    diagonal_regression_limit,
    sensing_regression_limit,
    tensor_H,
    tensor_h,
    tensor_h_inverse,
    tensor_h_radius,
    tensor_pq,
    tensor_Q,
    tensor_regression_limit,
    two_layer_single_point_limit,
)


X_TOY = jnp.array([[1.0, 2.0]])
Y_TOY = jnp.array([1.0])
ETA_TOY = jnp.array([1.0, 0.7])
# Even data in d = 4 ([x]_{j+2} = [x]_{d-j}): rows (a, b, c, b).
X_EVEN = jnp.array([[1.0, 0.5, -0.3, 0.5], [0.2, -1.0, 0.7, -1.0]])
Y_EVEN = jnp.array([1.0, -0.5])
ETA_EVEN = jnp.array([1.0, 0.6, 0.8, 0.6])


# ----------------------------------------------------------------------------- Lemma 4


@pytest.mark.parametrize("L", [2, 3, 4, 5, 6])
def test_closed_form_solves_lemma4_ode(L):
    # A second method: scipy's DOP853 on p' = p^{L-2} q, q' = p^{L-1} up to 95% of the
    # domain; the ODE solution there is O(1e2) with rtol 1e-13, so 1e-9 is safe.
    c = tensor_h_radius(L)
    T = min(0.95 * c, 2.5)
    ts = np.linspace(0.0, T, 15)
    ode = scipy.integrate.solve_ivp(
        lambda t, y: [y[0] ** (L - 2) * y[1], y[0] ** (L - 1)],
        (0.0, T),
        [1.0, 0.0],
        t_eval=ts,
        method="DOP853",
        rtol=1e-13,
        atol=1e-13,
    )
    p, q = tensor_pq(ts, L)
    np.testing.assert_allclose(p, ode.y[0], rtol=1e-9)
    np.testing.assert_allclose(q, ode.y[1], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(tensor_h(ts, L), ode.y[0] ** (L - 1) * ode.y[1], rtol=1e-9)
    # odd, and infinite at the ends of the maximal interval (-c, c)
    np.testing.assert_allclose(tensor_h(-ts, L), -tensor_h(ts, L), rtol=1e-15)
    if np.isfinite(c):
        assert float(tensor_h(c, L)) == np.inf and float(tensor_h(-c, L)) == -np.inf


def test_h_closed_forms_and_radii():
    t = jnp.linspace(-0.99, 0.99, 21)
    np.testing.assert_allclose(tensor_h(3 * t, 2), np.sinh(3 * t) * np.cosh(3 * t), rtol=1e-14)
    # L = 3: theta = t; L = 4: sin(theta) = t (module docstring), so
    np.testing.assert_allclose(tensor_h(1.5 * t, 3), np.sin(1.5 * t) / np.cos(1.5 * t) ** 3)
    np.testing.assert_allclose(tensor_h(t, 4), t / (1 - t**2) ** 2, rtol=1e-12)
    # c_L = int_0^{pi/2} cos^{L-3}: Wallis integrals.
    assert tensor_h_radius(2) == np.inf
    np.testing.assert_allclose(
        [tensor_h_radius(L) for L in (3, 4, 5, 6)], [np.pi / 2, 1.0, np.pi / 4, 2 / 3]
    )
    # derivative through the custom JVP against a central difference
    for L in (2, 3, 5):
        g = jax.grad(lambda s: tensor_h(s, L))(0.4)
        fd = (tensor_h(0.4 + 1e-6, L) - tensor_h(0.4 - 1e-6, L)) / 2e-6
        np.testing.assert_allclose(g, fd, rtol=1e-8)


@pytest.mark.parametrize("L", [2, 3, 4, 6])
def test_h_inverse_and_H_over_the_whole_range(L):
    c = tensor_h_radius(L)
    t = np.linspace(-1, 1, 41) * min(0.999 * c, 20.0)
    np.testing.assert_allclose(tensor_h_inverse(tensor_h(t, L), L), t, rtol=1e-13, atol=1e-15)
    y = np.concatenate([-np.logspace(-200, 250, 30), np.logspace(-200, 250, 30)])
    inv = tensor_h_inverse(y, L)
    # (for |y| > 1e50 the distance to the pole is below the resolution of c: <= c)
    assert np.all(np.isfinite(inv)) and np.all(np.abs(inv) <= c)
    np.testing.assert_allclose(tensor_h(inv[np.abs(y) < 1e8], L), y[np.abs(y) < 1e8], rtol=1e-9)
    # H_L = int_0^y h^{-1} by adaptive quadrature (a second method).
    for yy in (1e-4, 0.3, 7.0, 1e3):
        ref = scipy.integrate.quad(
            lambda u: float(tensor_h_inverse(u, L)), 0, yy, epsabs=0, epsrel=1e-12, limit=100
        )[0]
        np.testing.assert_allclose(tensor_H(yy, L), ref, rtol=1e-10)
        np.testing.assert_allclose(tensor_H(-yy, L), ref, rtol=1e-10)
    # Remark 4: quadratic near 0, like c_L |y| at infinity (L >= 3).
    np.testing.assert_allclose(tensor_H(1e-7, L), 0.5e-14, rtol=1e-6)
    H = tensor_H(np.array([1e100, 1e250]), L)
    assert np.all(np.isfinite(H))
    if L >= 3:
        np.testing.assert_allclose(H / (c * np.array([1e100, 1e250])), 1.0, rtol=1e-12)


# ----------------------------------------------------------------------------- Thm 5


@pytest.mark.parametrize("L", [2, 3])
def test_regression_limit_is_the_constrained_minimiser_of_Q(L, getkey):
    # Second method: SLSQP on Q(rho) s.t. X rho = y (Q built from H_L, checked above).
    X = np.asarray(jr.normal(getkey(), (2, 4)))
    y = np.array([0.8, -0.4])
    eta = np.array([1.0, 0.5, 0.8, 1.2])
    alpha = 0.8
    rho = np.asarray(tensor_regression_limit(X, y, alpha, eta, L))
    np.testing.assert_allclose(X @ rho, y, atol=1e-12)
    start = np.linalg.pinv(X) @ y
    Q = jax.jit(lambda r: tensor_Q(r, alpha, eta, L))
    dQ = jax.jit(jax.grad(lambda r: tensor_Q(r, alpha, eta, L)))
    res = scipy.optimize.minimize(
        lambda r: float(Q(r)),
        start,
        jac=lambda r: np.asarray(dQ(r)),
        constraints=[{"type": "eq", "fun": lambda r: X @ r - y, "jac": lambda r: X}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 500},
    )
    assert res.success
    # SLSQP stops at ftol 1e-15 on Q ~ 1: its minimiser is accurate to ~sqrt(1e-15).
    np.testing.assert_allclose(rho, res.x, atol=1e-6)
    assert float(tensor_Q(rho, alpha, eta, L)) <= res.fun + 1e-12


# Flow accuracy: Dopri8 at rtol 1e-12 and the default stop (relative residual 1e-10) leave
# an error of a few 1e-10 in beta (measured <= 5e-10); Thm 5's limit is solved to 1e-13.
# So 1e-7 (the target) holds with a wide margin.
@pytest.mark.parametrize("L", [2, 3, pytest.param(4, marks=pytest.mark.slow)])
def test_diagonal_flow_reaches_corollary5_limit(L):
    for alpha in (0.5, 1.0):
        model = linflow.TensorNet.from_eta("diagonal", ETA_TOY, L, alpha)
        sol = run(model, linflow.Regression(X_TOY, Y_TOY))
        assert sol.result == linflow.RESULTS.converged
        want = diagonal_regression_limit(X_TOY, Y_TOY, alpha, L, ETA_TOY)
        np.testing.assert_allclose(sol.final.predictor(), want, atol=1e-7)


@pytest.mark.parametrize("L", [2, 3, pytest.param(4, marks=pytest.mark.slow)])
def test_convolution_flow_reaches_corollary6_limit(L):
    # L = 2 on the paper's toy (d = 2: every vector is even); L = 3, 4 on even data in d = 4.
    X, y, eta = (X_TOY, Y_TOY, ETA_TOY) if L == 2 else (X_EVEN, Y_EVEN, ETA_EVEN)
    for alpha in (0.5, 1.0):
        model = linflow.TensorNet.from_eta("convolution", eta, L, alpha)
        sol = run(model, linflow.Regression(X, y))
        assert sol.result == linflow.RESULTS.converged
        want = convolution_regression_limit(X, y, alpha, L, eta)
        np.testing.assert_allclose(sol.final.predictor(), want, atol=1e-7)


@pytest.mark.parametrize("L", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_commuting_sensing_flow_reaches_corollary7_limit(L, getkey):
    d = 3
    U, _ = jnp.linalg.qr(jr.normal(getkey(), (d, d)))
    eigs = jnp.array([[1.0, 0.4, -0.6], [0.3, -1.0, 0.5]])
    A = jnp.einsum("ij,nj,kj->nik", U, eigs, U)
    y = jnp.array([1.0, 0.5])
    alpha = 0.6
    model = linflow.DeepLinear([alpha * jnp.eye(d)] * (L - 1) + [jnp.zeros((d, d))])
    sol = run(model, linflow.MatrixSensing(A, y))
    assert sol.result == linflow.RESULTS.converged
    want = sensing_regression_limit(A, y, alpha, L)
    np.testing.assert_allclose(sol.final.predictor(), want, atol=1e-7)


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_depth2_diagonal_limit_is_the_hypentropy_minimiser(alpha):
    # Change of scale: TensorNet diagonal (w_1 = alpha*eta, w_2 = 0) ends at
    # (alpha^2 eta^2 / 2) sinh(X^T nu); DiagonalNet.unbiased(alpha_W, w0) (beta = w+^2 - w-^2)
    # at 2 alpha_W^2 w0^2 sinh(X^T nu'). Equal families iff alpha_W w0 = alpha |eta| / 2.
    yun = diagonal_regression_limit(X_TOY, Y_TOY, alpha, 2, ETA_TOY)
    woodworth = linflow.DiagonalNet.unbiased(2, alpha / 2, w0=jnp.abs(ETA_TOY))
    sol = run(woodworth, linflow.Regression(X_TOY, Y_TOY))
    assert sol.result == linflow.RESULTS.converged
    np.testing.assert_allclose(sol.final.predictor(), yun, atol=1e-8)
    hyp = getattr(linflow.limits, "hypentropy_minimiser", None)
    if hyp is not None:
        np.testing.assert_allclose(
            hyp(X_TOY, Y_TOY, alpha / 2, depth=2, w0=jnp.abs(ETA_TOY)), yun, atol=1e-10
        )


# ----------------------------------------------------------------------------- Thm 6


def _thm6_model(kind, key, alpha):
    """Depth-2 networks on d = 2 with random directions satisfying Thm 6's hypothesis
    [U1^T v1]_j^2 > [U2^T v2]_j^2 (v2 = 0.3 * Gaussian; resampled until it holds)."""
    for _ in range(100):
        key, k1, k2 = jr.split(key, 3)
        if kind == "fully_connected":
            v1, v2 = jr.normal(k1, (2, 2)), 0.3 * jr.normal(k2, (2,))
        else:
            v1 = jr.normal(k1, (1 if kind == "convolution_k1" else 2,))
            v2 = 0.3 * jr.normal(k2, (2,))
        name = "convolution" if kind.startswith("convolution") else kind
        model = linflow.TensorNet.from_directions(name, (v1, v2), alpha)
        M = np.asarray(model.data_tensor(X_TOY[0]))
        U1, s, V2t = np.linalg.svd(M, full_matrices=False)
        e1, e2 = U1.T @ np.asarray(model.vectors()[0]), V2t @ np.asarray(v2)
        if np.all(e1**2 - (alpha * e2) ** 2 > 0.05 * alpha**2):
            return model
    raise AssertionError("no direction found")


@pytest.mark.parametrize("kind", ["diagonal", "convolution", "convolution_k1", "fully_connected"])
def test_two_layer_single_point_flow_matches_theorem6(kind, getkey):
    key = getkey()
    for alpha in (0.01, 0.5, 1.0):
        model = _thm6_model(kind, key, alpha)
        sol = run(model, linflow.Regression(X_TOY, Y_TOY))
        assert sol.result == linflow.RESULTS.converged
        limit = model.with_vectors(
            two_layer_single_point_limit(model.data_tensor(X_TOY[0]), *model.vectors(), 1.0)
        )
        # Flow error is a few 1e-10 (see above); Thm 6 is solved to rounding: 1e-8 holds.
        np.testing.assert_allclose(sol.final.predictor(), limit.predictor(), atol=1e-8)
        for v_flow, v_lim in zip(sol.final.layers, limit.layers):
            np.testing.assert_allclose(v_flow, v_lim, atol=1e-8)


def test_toy_limits_as_alpha_goes_to_zero():
    # The paper's toy (Sec. 6): min-l1 [0, 0.5] (diagonal), min DFT-l1 [1/3, 1/3]
    # (full-length convolution), min-l2 [0.2, 0.4] (fully connected).
    # (i) the analytic limits converge to them: in the transformed space with singular
    # values s_j (x = [1, 2]; DFT: Sx = [3, -1]), Cor. 5/6 give
    # rho_j = (alpha^2 eta_j^2 / 2) sinh(2 s_j nu) with e^{2 s_max nu} ~ alpha^-2, so the
    # small coordinate is O(alpha^{2 - 2 s_j / s_max}): alpha^1 (diagonal), alpha^{4/3}
    # (convolution). The log-log slopes must be those exponents;
    errs = {"diagonal": [], "convolution": []}
    truth = {"diagonal": [0.0, 0.5], "convolution": [1 / 3, 1 / 3]}
    rate = {"diagonal": 1.0, "convolution": 4 / 3}
    fn = {"diagonal": diagonal_regression_limit, "convolution": convolution_regression_limit}
    for alpha in (1e-4, 1e-5, 1e-6):
        for kind in errs:
            beta = fn[kind](X_TOY, Y_TOY, alpha, 2, ETA_TOY)
            errs[kind].append(float(jnp.max(jnp.abs(beta - jnp.array(truth[kind])))))
    for kind, e in errs.items():
        np.testing.assert_allclose(np.diff(np.log10(e)), -rate[kind], atol=0.01)
        assert e[-1] < 1e-6
    # (ii) the flows at alpha = 1e-3 end within alpha of the toy values (the diagonal's
    # deviation is sqrt(2) eta_1^2 alpha / (4 eta_2) = 0.51 alpha, the convolution's smaller).
    alpha = 1e-3
    for kind in ("diagonal", "convolution"):
        model = linflow.TensorNet.from_eta(kind, ETA_TOY, 2, alpha)
        sol = run(model, linflow.Regression(X_TOY, Y_TOY))
        assert sol.result == linflow.RESULTS.converged
        np.testing.assert_allclose(sol.final.predictor(), truth[kind], atol=alpha)
    # Fully connected from the zero-asymmetric init W1 = alpha I, w2 = 0 (Thm 7, Wu et al.):
    # w2 and the change of W1 stay in span(x), so beta = alpha w2 + x (a^T w2) is in span(x)
    # and the limit is exactly min-l2 at every alpha: only the flow's error (1e-10) remains.
    model = linflow.TensorNet.from_directions("fully_connected", (jnp.eye(2), jnp.zeros(2)), alpha)
    sol = run(model, linflow.Regression(X_TOY, Y_TOY))
    assert sol.result == linflow.RESULTS.converged
    np.testing.assert_allclose(sol.final.predictor(), [0.2, 0.4], atol=1e-9)


def test_deep_fully_connected_flow_tends_to_min_l2(getkey):
    # Thm 7: W_l^T W_l >= W_{l+1} W_{l+1}^T and W_{L-1}^T W_{L-1} - w_L w_L^T > 0; here
    # W1 = I + 0.3 G1, W2 = 0.5 (I + 0.3 G2), w3 = 0.1 g3 (checked below).
    k1, k2, k3 = jr.split(getkey(), 3)
    W1 = jnp.eye(2) + 0.3 * jr.normal(k1, (2, 2))
    W2 = 0.5 * (jnp.eye(2) + 0.3 * jr.normal(k2, (2, 2)))
    w3 = 0.1 * jr.normal(k3, (2,))
    assert np.linalg.eigvalsh(W1.T @ W1 - W2 @ W2.T).min() >= 0
    assert np.linalg.eigvalsh(W2.T @ W2 - jnp.outer(w3, w3)).min() > 0
    dist = []
    for alpha in (0.3, 0.03):
        model = linflow.TensorNet.from_directions("fully_connected", (W1, W2, w3), alpha)
        sol = run(model, linflow.Regression(X_TOY, Y_TOY))
        assert sol.result == linflow.RESULTS.converged
        dist.append(float(jnp.linalg.norm(sol.final.predictor() - jnp.array([0.2, 0.4]))))
    assert dist[1] < dist[0] / 5 and dist[1] < 1e-3, dist
