"""Factorisations 1/2||Y - UU^T||^2 and 1/2||Y - UV^T||^2 against the closed forms of Tarmoun
et al. 2021 (Prop. 1 eq. (8), Cor. 1 eq. (9), Prop. 3 eqs. (17)/(22), Props. 4-5)."""

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow
from linflow import limits


T_END = 6.0
TS = jnp.concatenate([jnp.zeros(1), jnp.logspace(-2, np.log10(T_END), 24)])


def _max_rel(a, b):
    # relative to the largest entry over the whole trajectory, time by time
    err = jnp.abs(a - b).reshape(a.shape[0], -1).max(axis=1)
    scale = jnp.abs(b).reshape(b.shape[0], -1).max(axis=1)
    return float((err / scale).max())


# Explicit and tight: these small flows are not stiff, and one solver for all tests keeps
# compilations few.
SOLVER = linflow.SolverChoice(diffrax.Tsit5(), rtol=1e-11, atol=1e-13)


def _flow(model, Y, ts=TS, t1=T_END):
    return linflow.flow(
        model,
        linflow.Factorization(Y),
        saveat=linflow.SaveAt(ts=ts),
        t1=t1,
        stop=None,
        solver=SOLVER,
    )


def _sym_target(key, n, zero_eig=False):
    A = jr.normal(key, (n, n))
    Y = 0.5 * (A + A.T)
    if zero_eig:
        s, P = jnp.linalg.eigh(Y)
        Y = (P * s.at[0].set(0.0)[None, :]) @ P.T  # exactly singular: eq. (8) cannot invert it
    return Y


@pytest.mark.parametrize(
    "n,k,scale,zero_eig",
    [(4, 3, 0.5, False), (4, 6, 1e-3, True)],  # rank-deficient start; singular Y, tiny start
)
def test_symmetric_flow_matches_riccati_closed_form(getkey, n, k, scale, zero_eig):
    Y = _sym_target(getkey(), n, zero_eig)
    U0 = scale * jr.normal(getkey(), (n, k))
    ts = TS * (3.0 if scale < 0.01 else 1.0)  # a small start needs longer to leave the saddle
    sol = _flow(linflow.Symmetric(U0), Y, ts=ts, t1=float(ts[-1]))
    closed = limits.symmetric_riccati_solution(Y, U0, ts)
    # Kvaerno5 at rtol 1e-10 keeps the global error well below 1e-8
    assert _max_rel(sol.predictors, closed) <= 1e-8


def test_symmetric_closed_form_uses_only_the_symmetric_part_and_reaches_psd_projection(getkey):
    A = jr.normal(getkey(), (4, 4))
    U0 = 0.3 * jr.normal(getkey(), (4, 5))
    sol = _flow(linflow.Symmetric(U0), A)  # non-symmetric target: only (A + A^T)/2 acts
    closed = limits.symmetric_riccati_solution(A, U0, TS)
    assert _max_rel(sol.predictors, closed) <= 1e-8
    # Cor. 1 / Prop. 2: the limit is the projection of Y on the PSD cone; t = 1e8 must not
    # overflow (e^{4tY} is never formed).
    s, P = jnp.linalg.eigh(0.5 * (A + A.T))
    proj = (P * jnp.maximum(s, 0.0)[None, :]) @ P.T
    late = limits.symmetric_riccati_solution(A, U0, jnp.array([1e3, 1e8]))
    assert bool(jnp.all(jnp.isfinite(late)))
    np.testing.assert_allclose(late, jnp.stack([proj, proj]), atol=1e-12)


def test_closed_form_jits_with_closed_over_times(getkey):
    # The t >= 0 check must not call bool() on a jnp comparison a caller's jit has staged.
    A = jr.normal(getkey(), (4, 4))
    U0 = 0.3 * jr.normal(getkey(), (4, 5))
    ts = jnp.array([0.5, 2.0])
    eager = limits.symmetric_riccati_solution(A, U0, ts)
    jitted = jax.jit(lambda U: limits.symmetric_riccati_solution(A, U, ts))(U0)
    np.testing.assert_allclose(jitted, eager, rtol=1e-12)


def test_symmetric_spectral_eigenvalues_match_eq9_and_the_flow(getkey):
    n = 4
    Y = _sym_target(getkey(), n)
    s, Phi = jnp.linalg.eigh(Y)
    sigma0 = jnp.array([0.01, 0.2, 1.5, 0.05])
    U0 = Phi * jnp.sqrt(sigma0)[None, :]  # Def. 1: U0 = Phi Sigma0^{1/2}
    sol = _flow(linflow.Symmetric(U0), Y)
    eig_flow = jnp.einsum("ia,tij,ja->ta", Phi, sol.predictors, Phi)
    eq9 = limits.symmetric_spectral_solution(s, sigma0, TS)
    assert _max_rel(eig_flow, eq9) <= 1e-8
    # eq. (9) as printed (finite here), against the overflow-free form
    tt = TS[:, None]
    s2, s02 = s[None, :], sigma0[None, :]
    printed = s2 + s2 * (s02 - s2) / (s2 + s02 * (jnp.exp(4 * tt * s2) - 1))
    np.testing.assert_allclose(eq9, printed, rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_asymmetric_spectral_flow_matches_eq17(getkey):
    m, n, k = 3, 5, 7
    Y = jr.normal(getkey(), (m, n))
    x0 = jnp.array([0.05, -0.02, 0.3])  # one component starts with the wrong sign
    lambda0 = jnp.array([0.8, -0.6, 0.0])  # per-component imbalance, one balanced
    model0 = linflow.spectral_init(Y, k, x0, lambda0, key=getkey())
    sol = _flow(model0, Y)
    closed = limits.spectral_factorization_solution(Y, model0.U, model0.V, TS)
    assert _max_rel(sol.predictors, closed) <= 1e-8
    # the conserved imbalance U^T U - V^T V drifts by <= 1e-9 relative
    Q = sol.conserved["imbalance"]
    assert float(jnp.abs(Q - Q[:1]).max() / jnp.abs(Q[0]).max()) <= 1e-9


def test_spectral_component_converges_at_rate_sqrt_4sigma2_plus_lambda2():
    # a single component, read off the *flow* (not the closed form): log|x - sigma| ~ -omega t
    sigma, x0, lam = 0.7, 0.2, 1.1
    Y = jnp.array([[sigma]])
    model0 = linflow.spectral_init(Y, 1, x0, lam)
    ts = jnp.linspace(3.0, 9.0, 13)
    sol = _flow(model0, Y, ts=ts, t1=9.0)
    err = np.abs(np.asarray(sol.predictors[:, 0, 0]) - sigma)
    slope = np.polyfit(np.asarray(ts), np.log(err), 1)[0]
    assert slope == pytest.approx(-float(limits.spectral_rate(sigma, lam)), rel=1e-3)


def _isotropic_init(key, m, n, k, lam):
    # U^T U - V^T V = lam I_k needs k <= m: U = Q (lam I + V^T V)^{1/2}
    kq, kv = jr.split(key)
    V = 0.4 * jr.normal(kv, (n, k))
    s, P = jnp.linalg.eigh(lam * jnp.eye(k) + V.T @ V)
    Q, _ = jnp.linalg.qr(jr.normal(kq, (m, k)))
    return linflow.TwoLayer(Q @ (P * jnp.sqrt(s)[None, :]) @ P.T, V)


@pytest.mark.slow
def test_isotropic_imbalance_flow_matches_prop5(getkey):
    m, n, k, lam = 5, 4, 3, 0.7
    Y = jr.normal(getkey(), (m, n))
    model0 = _isotropic_init(getkey(), m, n, k, lam)
    np.testing.assert_allclose(model0.conserved()["imbalance"], lam * jnp.eye(k), atol=1e-12)
    sol = _flow(model0, Y)
    RR = limits.isotropic_imbalance_solution(Y, model0.U, model0.V, lam, TS)
    assert _max_rel(sol.predictors, RR[:, :m, m:]) <= 1e-8
    W = jnp.concatenate([sol.models.U, sol.models.V], axis=1)
    assert _max_rel(W @ jnp.swapaxes(W, 1, 2), RR) <= 1e-8


@pytest.mark.slow
def test_regularised_flow_from_any_init_matches_prop5(getkey):
    # Prop. 4: the flow of 1/2||Y - UV^T||^2 + 1/8||U^T U - V^T V - lam I||^2 is eq. (25),
    # solved by Prop. 5 from ANY init (here k = 9 > m + n, where lam I cannot be reached).
    m, n, k, lam = 2, 3, 9, -0.5
    Y = jr.normal(getkey(), (m, n))
    U0 = 0.3 * jr.normal(getkey(), (m, k))
    V0 = 0.3 * jr.normal(getkey(), (n, k))
    Q0 = lam * jnp.eye(k)
    grad = jax.grad(limits.regularised_factorization_loss, argnums=(0, 1))

    def field(t, y, args):
        gU, gV = grad(y[0], y[1], Y, Q0)
        return (-gU, -gV)

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Dopri8(),
        0.0,
        T_END,
        None,
        (U0, V0),
        saveat=diffrax.SaveAt(ts=TS),
        stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-14),
        max_steps=100_000,
    )
    U, V = sol.ys
    W = jnp.concatenate([U, V], axis=1)
    RR = limits.isotropic_imbalance_solution(Y, U0, V0, lam, TS)
    assert _max_rel(W @ jnp.swapaxes(W, 1, 2), RR) <= 1e-8


def test_regularised_gradient_equals_plain_gradient_on_the_conserved_set(getkey):
    m, n, k, lam = 5, 4, 3, 0.7
    Y = jr.normal(getkey(), (m, n))
    model0 = _isotropic_init(getkey(), m, n, k, lam)
    g_reg = jax.grad(limits.regularised_factorization_loss, argnums=(0, 1))(
        model0.U, model0.V, Y, lam * jnp.eye(k)
    )
    problem = linflow.Factorization(Y)
    g = jax.grad(lambda U, V: problem.loss(U @ V.T), argnums=(0, 1))(model0.U, model0.V)
    np.testing.assert_allclose(g_reg[0], g[0], atol=1e-12)
    np.testing.assert_allclose(g_reg[1], g[1], atol=1e-12)


def test_factorization_problem_basics(getkey):
    Y = jr.normal(getkey(), (3, 4))
    p = linflow.Factorization(Y)
    assert p.predictor_shape() == (3, 4)
    np.testing.assert_allclose(p.loss(jnp.zeros((3, 4))), 0.5 * jnp.sum(Y**2))
    np.testing.assert_allclose(p.relative_excess(0.5 * Y), 0.5, rtol=1e-14)
    np.testing.assert_allclose(p.time_scale(), 1 / jnp.linalg.norm(Y))


def test_bad_input_is_rejected(getkey):
    Y = jr.normal(getkey(), (3, 4))
    with pytest.raises(ValueError, match="square target"):
        linflow.flow(linflow.Symmetric(jnp.ones((3, 2))), linflow.Factorization(Y))
    with pytest.raises((ValueError, TypeError), match="Y"):
        limits.symmetric_riccati_solution(Y, jnp.ones((3, 2)), 1.0)
    bad = (ValueError, TypeError)  # jaxtyping's shape check may answer first (TypeError)
    with pytest.raises(bad, match="U0"):
        limits.symmetric_riccati_solution(jnp.eye(3), jnp.ones((4, 2)), 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        limits.symmetric_riccati_solution(jnp.eye(3), jnp.ones((3, 2)), -1.0)
    with pytest.raises(bad, match="U0"):
        limits.isotropic_imbalance_solution(Y, jnp.ones((4, 2)), jnp.ones((4, 2)), 0.1, 1.0)
    with pytest.raises(bad, match="Q0"):
        limits.regularised_factorization_loss(jnp.ones((3, 2)), jnp.ones((4, 2)), Y, jnp.eye(3))
    with pytest.raises(ValueError, match="k"):
        linflow.spectral_init(Y, 2, 0.1, 0.0)
    with pytest.raises(bad, match="x0"):
        limits.spectral_singular_values(jnp.ones(2), jnp.ones(3), jnp.ones(2), 1.0)
    with pytest.raises(ValueError, match="predictor of shape"):
        linflow.flow(linflow.TwoLayer(jnp.ones((4, 2)), jnp.ones((3, 2))), linflow.Factorization(Y))
    with pytest.raises(ValueError, match="`Y`"):
        linflow.Factorization(jnp.ones(3))


def test_spectral_closed_form_starts_along_the_flow_and_refuses_other_starts(getkey):
    # Truth independent of the closed form: at t = 0 it must equal U0 V0^T and move along the
    # flow's vector field (Y - UV^T) V V^T + U U^T (Y - UV^T). A one-sided second-order
    # difference with h = 1e-4 has truncation ~h^2 |X'''| ~ 1e-8 and rounding ~eps/h ~ 1e-12.
    m, n, k = 3, 4, 5
    Y = jr.normal(getkey(), (m, n))
    spec = linflow.spectral_init(Y, k, jnp.array([0.1, -0.05, 0.4]), 0.7, key=getkey())
    U0, V0 = spec.U, spec.V
    h = 1e-4
    X = limits.spectral_factorization_solution(Y, U0, V0, jnp.array([0.0, h, 2 * h]))
    np.testing.assert_allclose(X[0], U0 @ V0.T, atol=1e-14)
    R = Y - U0 @ V0.T
    field = R @ V0 @ V0.T + U0 @ U0.T @ R
    slope = (-3 * X[0] + 4 * X[1] - X[2]) / (2 * h)
    np.testing.assert_allclose(slope, field, atol=1e-6 * float(jnp.abs(field).max()))
    assert float(limits.spectral_defect(Y, U0, V0)) < 1e-14
    # Not spectral: a Gaussian start (where the closed form was 0.9 off at t = 0.01), and the
    # spectral start with one entry moved by 1e-4. Refused before tracing, and under jit.
    G = (0.3 * jr.normal(getkey(), (m, k)), 0.3 * jr.normal(getkey(), (n, k)))
    near = (U0.at[0, 0].add(1e-4), V0)
    for U, V in (G, near):
        with pytest.raises(ValueError, match="not a spectral initialisation"):
            limits.spectral_factorization_solution(Y, U, V, jnp.array([0.01]))
    jitted = jax.jit(lambda U, V: limits.spectral_factorization_solution(Y, U, V, 0.01))
    np.testing.assert_allclose(
        jitted(U0, V0), limits.spectral_factorization_solution(Y, U0, V0, 0.01), rtol=1e-13
    )
    with pytest.raises(Exception, match="not a spectral initialisation"):
        jax.block_until_ready(jitted(*G))


def test_closed_forms_reject_bad_values():
    Y = jnp.eye(2)
    with pytest.raises(ValueError, match="sigma0"):
        limits.symmetric_spectral_solution(jnp.ones(2), jnp.array([1.0, -0.5]), 1.0)
    with pytest.raises(ValueError, match="U0"):
        limits.symmetric_riccati_solution(Y, jnp.array([[jnp.nan], [1.0]]), 1.0)
    with pytest.raises(ValueError, match="`t`"):
        limits.spectral_singular_values(jnp.ones(1), jnp.ones(1), jnp.ones(1), jnp.nan)
    with pytest.raises(ValueError, match="V0"):
        limits.spectral_factorization_solution(Y, jnp.eye(2), jnp.full((2, 2), jnp.inf), 1.0)


def test_spectral_init_differentiates_in_its_scale_and_imbalance():
    # Against central differences (step 1e-5: truncation ~1e-10, rounding ~1e-11), at an
    # imbalance > 0, where the other branch of V's formula (sqrt(-lambda0)) is not taken
    # and must not turn the derivative into NaN.
    Y = jr.normal(jr.PRNGKey(1), (4, 3))

    def f(x0, lam):
        model = linflow.spectral_init(Y, 5, x0, lam)
        return jnp.sum(model.V) + jnp.sum(model.U**2)

    h = 1e-5
    for argnum, (x0, lam) in ((1, (0.1, 0.5)), (0, (0.1, 0.5)), (1, (0.1, -0.5))):
        g = jax.grad(f, argnums=argnum)(x0, lam)
        step = [0.0, 0.0]
        step[argnum] = h
        central = (f(x0 + step[0], lam + step[1]) - f(x0 - step[0], lam - step[1])) / (2 * h)
        assert np.isfinite(float(g))
        np.testing.assert_allclose(g, central, rtol=1e-6)
