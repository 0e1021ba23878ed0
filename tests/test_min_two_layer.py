"""Two-layer regression 1/2||Y - X U V^T||^2 against Min et al. 2021 (eqs. (7)-(14), Prop. 1,
Thm 1 and the slides' margin bound, Thm 2's width law)."""

import diffrax
import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow
from linflow import limits


N, D, M, H = 5, 14, 2, 20
T_END = 20.0
# The flows here are not stiff (moderate initial scales). `linflow.Auto()` would choose
# Kvaerno5 for these 320 states, which measured 246 s for one run on a shared 2-core machine;
# Tsit5 takes ~1 s after compilation. One solver and one set of shapes: one compilation.
SOLVER = linflow.SolverChoice(diffrax.Tsit5(), rtol=1e-11, atol=1e-13)
TS = jnp.concatenate([jnp.zeros(1), jnp.logspace(-2, np.log10(T_END), 24)])


def _data(key, n=N, d=D, m=M):
    kx, ky = jr.split(key)
    X = jr.normal(kx, (n, d)) / np.sqrt(d) * 3.0
    Y = jr.normal(ky, (n, m))
    return X, Y


def _run(model, X, Y, ts=TS, t1=T_END):
    return linflow.flow(
        model,
        linflow.Regression(X, Y),
        saveat=linflow.SaveAt(ts=ts),
        t1=t1,
        stop=None,
        solver=SOLVER,
    )


def _converge(model, X, Y):
    # explicit solvers floor near 10-20 x rtol (DESIGN.md): stop at 1e-10
    return linflow.flow(model, linflow.Regression(X, Y), solver=SOLVER)


def _rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.fixture(scope="module")
def gaussian_run():
    key = jr.PRNGKey(0)
    kd, ki = jr.split(key)
    X, Y = _data(kd)
    model0 = linflow.gaussian_init(ki, D, M, H, 0.5, 0.3)
    sol = _run(model0, X, Y)
    final = _converge(model0, X, Y)
    return X, Y, model0, sol, final


def test_min_imbalance_and_null_space_weights_are_conserved(gaussian_run):
    X, Y, model0, sol, _ = gaussian_run
    svd = limits.data_svd(X)
    lam0 = limits.min_imbalance(model0.U, model0.V, X, svd)
    U2_0 = limits.split_weights(model0.U, X, svd)[1]
    for i in range(len(sol.ts)):
        model = linflow.TwoLayer(sol.models.U[i], sol.models.V[i])
        lam = limits.min_imbalance(model.U, model.V, X, svd)
        # conservation holds to the integrator's tolerance (rtol 1e-10): 1e-9 relative
        assert float(jnp.abs(lam - lam0).max() / jnp.abs(lam0).max()) <= 1e-9
        U2 = limits.split_weights(model.U, X, svd)[1]
        assert float(jnp.abs(U2 - U2_0).max() / jnp.abs(U2_0).max()) <= 1e-9


def test_loss_splits_into_error_and_optimal_loss(gaussian_run):
    # eq. (8): L = 1/2 ||E||^2 + L*, with X of full row rank so L* = 0 up to rounding. The
    # loss is formed from X Theta - Y: absolute rounding ~1e-16 ||Y|| on the residual.
    X, Y, _, sol, _ = gaussian_run
    svd = limits.data_svd(X)
    Lstar = limits.optimal_loss(X, Y, svd)
    for i in range(len(sol.ts)):
        model = linflow.TwoLayer(sol.models.U[i], sol.models.V[i])
        E = limits.min_error(model.U, model.V, X, Y, svd)
        np.testing.assert_allclose(
            sol.losses[i], 0.5 * jnp.sum(E**2) + Lstar, rtol=1e-12, atol=1e-12 * sol.losses[0]
        )


def test_rank_deficient_data_has_positive_optimal_loss(getkey):
    X, Y = _data(getkey(), n=6)
    X = X.at[5].set(X[0] + X[1])  # rank 5 < n: Y has a part outside the range of X
    svd = limits.data_svd(X)
    assert svd.rank == 5
    theta = limits.min_norm_solution(X, Y, svd)
    np.testing.assert_allclose(theta, np.linalg.pinv(np.asarray(X)) @ np.asarray(Y), atol=1e-12)
    np.testing.assert_allclose(
        limits.optimal_loss(X, Y, svd), 0.5 * np.sum((X @ theta - Y) ** 2), rtol=1e-12
    )


def test_general_init_limit_is_min_norm_plus_null_space_term(gaussian_run):
    # eq. (14): Theta(inf) = Theta_hat + Phi2 U2(0) V(inf)^T, and it is NOT Theta_hat.
    X, Y, model0, _, final = gaussian_run
    assert bool(final.converged)
    theta_inf = final.final.predictor()
    pred = limits.min_limit(X, Y, model0.U, final.final.V)
    assert _rel(theta_inf, pred) <= 1e-9
    assert _rel(theta_inf, limits.min_norm_solution(X, Y)) > 1e-2


@pytest.mark.slow
def test_invariant_set_init_converges_to_min_norm(getkey):
    X, Y = _data(getkey())
    model0 = linflow.invariant_set_init(getkey(), X, M, H, scale=0.5)
    assert float(limits.invariant_set_distance(model0.U, model0.V, X)) <= 1e-13
    assert float(limits.imbalance_level(model0.U, model0.V, X)) > 0
    sol = _converge(model0, X, Y)
    assert bool(sol.converged)
    assert _rel(sol.final.predictor(), limits.min_norm_solution(X, Y)) <= 1e-9
    assert float(limits.invariant_set_distance(sol.final.U, sol.final.V, X)) <= 1e-9


def _inits(key, X, Y):
    ka, kb = jr.split(key)
    imbalanced = linflow.gaussian_init(ka, D, M, H, 0.5, 0.3)
    theta_hat = limits.min_norm_solution(X, Y)
    near = theta_hat + 0.05 * jr.normal(kb, theta_hat.shape) / np.sqrt(D)
    return {
        "imbalanced": imbalanced,
        "balanced": linflow.balanced_init(imbalanced.predictor(), X, H, key=kb),
        "balanced_near_solution": linflow.balanced_init(near, X, H),
    }


@pytest.mark.parametrize("name", ["imbalanced", "balanced", "balanced_near_solution"])
def test_rate_bounds_hold_along_the_flow(getkey, name):
    X, Y = _data(getkey())
    model0 = _inits(getkey(), X, Y)[name]
    svd = limits.data_svd(X)
    c = float(limits.imbalance_level(model0.U, model0.V, X, svd))
    ctilde = float(limits.margin_rate(model0.U, model0.V, X, Y, svd))
    # slides, Cor. 1: the refined rate is at least twice Min's c
    assert ctilde >= 2 * c * (1 - 1e-12)
    if name == "imbalanced":
        assert c > 0.1
    else:
        assert abs(c) <= 1e-10  # balanced: Lambda = 0 exactly, up to rounding
    if name == "balanced_near_solution":
        assert ctilde > 0.1  # zero imbalance, but a positive margin
    sol = _run(model0, X, Y)
    excess = sol.losses - limits.optimal_loss(X, Y, svd)
    thm1 = limits.min_rate_bound(model0.U, model0.V, X, Y, sol.ts, svd)
    refined = limits.margin_rate_bound(model0.U, model0.V, X, Y, sol.ts, svd)
    # slack: the loss is computed to ~1e-10 relative by the integrator, plus rounding of L*
    slack = 1e-9 * excess[0] + 1e-14
    assert bool(jnp.all(excess <= thm1 + slack))
    assert bool(jnp.all(excess <= refined + slack))
    if name != "balanced":
        assert float(refined[-1]) < 1e-3 * float(refined[0])  # the bound is not vacuous


def test_thm1_rate_is_attained_by_a_scalar_network():
    # D = n = m = h = 1, X = 1, u^2 - v^2 = d > 0 and u v -> y: the local rate is
    # 2 sqrt(d^2 + 4 y^2) (slides, scalar dynamics) and Thm 1 gives exp(-2 d t).
    X = jnp.ones((1, 1))
    Y = jnp.full((1, 1), 0.3)
    model0 = linflow.TwoLayer(jnp.full((1, 1), 1.0), jnp.full((1, 1), 0.0))
    assert float(limits.imbalance_level(model0.U, model0.V, X)) == pytest.approx(1.0)
    ts = jnp.linspace(0.0, 8.0, 21)
    sol = _run(model0, X, Y, ts=ts, t1=8.0)
    bound = limits.min_rate_bound(model0.U, model0.V, X, Y, ts)
    assert bool(jnp.all(sol.losses <= bound * (1 + 1e-9)))
    # asymptotic rate: loss ~ exp(-2 sqrt(d^2 + 4 y^2) t)
    slope = np.polyfit(np.asarray(ts[10:]), np.log(np.asarray(sol.losses[10:])), 1)[0]
    assert slope == pytest.approx(-2 * np.sqrt(1 + 4 * 0.09), rel=2e-3)


@pytest.mark.slow
def test_width_law_slope():
    # Thm 2 with a = 1/2: ||Theta(inf) - Theta_hat|| ~ h^{-1/2}. Averaged over 4 seeds and
    # fitted over widths 16, 128, 1024 (D = 10, n = 4, m = 1) the measured slope is within
    # 0.15 of -1/2: the seed-to-seed spread of log-distance is ~0.3, so the slope's standard
    # error over 3 widths x 4 seeds (a factor 64 in h) is ~0.05; the O(.) hides lower-order
    # terms that bias small widths.
    kx, ky = jr.split(jr.PRNGKey(1))
    d, n, seeds = 10, 4, 4
    X = jr.normal(kx, (n, d)) / np.sqrt(d)
    Y = X @ (jr.normal(ky, (d, 1)) / np.sqrt(d))
    svd = limits.data_svd(X)
    theta_hat = limits.min_norm_solution(X, Y, svd)
    problem = linflow.Regression(X, Y)
    widths = [16, 128, 1024]
    logs = []
    for h in widths:
        keys = jr.split(jr.PRNGKey(100 + h), seeds)
        models = eqx.filter_vmap(lambda k: linflow.width_scaled_init(k, d, 1, h, a=0.5))(keys)
        cmin = min(
            float(limits.imbalance_level(models.U[i], models.V[i], X, svd)) for i in range(seeds)
        )
        assert cmin > 0
        # run to the time at which Thm 1 guarantees L - L* <= 1e-20 (L(0) - L*): the limit
        # is reached, and no steady-state stop can stall (one compilation per width)
        T = float(np.log(1e20) / (2 * svd.sigma[-1] * cmin))
        sols = eqx.filter_vmap(
            lambda mdl: linflow.flow(
                mdl,
                problem,
                saveat=linflow.SaveAt(ts=jnp.array([T])),
                t1=T,
                stop=None,
                solver=SOLVER,
                throw=False,
            )
        )(models)
        assert bool(jnp.all(sols.residual <= 1e-8))
        dists = jnp.linalg.norm(
            sols.final.U @ jnp.swapaxes(sols.final.V, 1, 2) - theta_hat[None], axis=(1, 2)
        )
        logs.append(float(jnp.mean(jnp.log(dists))))
    slope = np.polyfit(np.log(widths), logs, 1)[0]
    assert slope == pytest.approx(limits.width_law_exponent(0.5), abs=0.15)


def test_bad_input_is_rejected(getkey):
    X, Y = _data(getkey())
    good = linflow.gaussian_init(getkey(), D, M, H, 0.1, 0.1)
    # jaxtyping's runtime shape check (active in the test suite) raises a TypeError naming the
    # argument before our ValueError; without it the ValueError names it.
    bad = (ValueError, TypeError)
    with pytest.raises((ValueError, TypeError)):
        linflow.TwoLayer(jnp.ones((D, 3)), jnp.ones((M, 4)))
    with pytest.raises((ValueError, TypeError)):
        linflow.TwoLayer(jnp.ones((D, 0)), jnp.ones((M, 0)))
    with pytest.raises(ValueError, match="positive integer"):
        linflow.gaussian_init(getkey(), D, M, 0, 0.1, 0.1)
    with pytest.raises(ValueError, match="predictor of shape"):
        linflow.flow(
            linflow.gaussian_init(getkey(), D + 1, M, 4, 0.1, 0.1), linflow.Regression(X, Y)
        )
    with pytest.raises(bad, match="Y"):
        limits.min_error(good.U, good.V, X, Y[:-1])
    with pytest.raises(bad, match="V"):
        wide = linflow.gaussian_init(getkey(), D, M + 1, 4, 0.1, 0.1)
        limits.min_error(wide.U, wide.V, X, Y)
    with pytest.raises(bad, match="U"):
        short = linflow.gaussian_init(getkey(), D - 1, M, 4, 0.1, 0.1)
        limits.min_imbalance(short.U, short.V, X)
    with pytest.raises(bad, match="V_inf"):
        limits.min_limit(X, Y, good.U, jnp.ones((M, 5)))
    for a in (0.25, 0.1, 0.6):
        with pytest.raises(ValueError, match="1/4 < a <= 1/2"):
            linflow.width_scaled_init(getkey(), D, M, 10, a=a)
        with pytest.raises(ValueError, match="1/4 < a <= 1/2"):
            limits.width_law_exponent(a)
    with pytest.raises(ValueError, match="h"):
        linflow.balanced_init(good.predictor(), X, M - 1)
    with pytest.raises(ValueError, match="rank deficient"):
        linflow.balanced_init(limits.data_svd(X).Phi2[:, :M], X, 5)
    with pytest.raises(ValueError, match="zero"):
        limits.data_svd(jnp.zeros((3, 4)))


def test_conserved_drift_of_a_balanced_start_is_relative_to_its_terms():
    # A balanced start (V^T V = U^T U): the imbalance is 0 up to rounding (~1e-17), and the flow
    # conserves it exactly (Du et al. 2018; Min et al. 2021, eq. (8)). Its drift is measured
    # against |U^T U| + |V^T V|, so it reports the integrator's tolerance instead of
    # (rounding noise) / (rounding noise).
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 6))
    Y = X @ (rng.standard_normal((6, 3)) @ rng.standard_normal((3, 4)))
    U = 0.1 * rng.standard_normal((6, 3))
    w, Q = np.linalg.eigh(U.T @ U)
    orth, _ = np.linalg.qr(rng.standard_normal((4, 3)))
    V = orth @ Q @ np.diag(np.sqrt(w)) @ Q.T
    model = linflow.TwoLayer(jnp.asarray(U), jnp.asarray(V))
    scale = model.conserved_scale()["imbalance"]
    np.testing.assert_allclose(scale, np.abs(U.T @ U) + np.abs(V.T @ V), rtol=1e-14)
    assert float(jnp.abs(model.conserved()["imbalance"]).max()) <= 1e-15
    sol = linflow.flow(model, linflow.Regression(jnp.asarray(X), jnp.asarray(Y)))
    assert bool(sol.converged)
    # the flow's error control (rtol 1e-10 on the state) bounds the drift
    assert float(sol.conserved_drift()["imbalance"]) <= 1e-8
