"""Width-independent lifted dynamics against the explicit factorised flows and theory."""

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow as lf
from linflow.lifted import LiftedSymmetric, LiftedTwoLayer, wishart


# Tight tolerances on both flows: the two integrate different states (G or a propagator vs
# (U, V)), so they agree only up to their own truncation errors, ~1e-12 relative at these
# settings; 1e-9 leaves a 1000x margin.
TIGHT = lf.SolverChoice(diffrax.Dopri8(), rtol=1e-12, atol=1e-14)
TS = jnp.array([0.0, 0.05, 0.3, 1.0, 2.5, 5.0])
REL = 1e-9


def _twolayer(key, D, m, h, scale=0.4):
    ku, kv = jr.split(key)
    return lf.TwoLayer(scale * jr.normal(ku, (D, h)), scale * jr.normal(kv, (m, h)))


def _assert_same_path(model, lifted, problem, form):
    saveat = lf.SaveAt(ts=TS)
    ref = lf.flow(model, problem, saveat=saveat, stop=None, t1=5.0, solver=TIGHT, form="full")
    sol = lf.flow(lifted, problem, saveat=saveat, stop=None, t1=5.0, solver=TIGHT)
    assert sol.form == form
    P, Q = np.asarray(ref.predictors), np.asarray(sol.predictors)
    # The path must move (else the test could not fail): the predictor changes by O(1).
    assert np.abs(P[-1] - P[0]).max() > 0.1 * np.abs(P[-1]).max()
    for t in range(len(TS)):
        err = np.abs(P[t] - Q[t]).max() / np.abs(P[t]).max()
        assert err <= REL, (float(TS[t]), err)
    np.testing.assert_allclose(sol.losses, ref.losses, rtol=REL, atol=1e-14)
    return ref, sol


@pytest.mark.parametrize(
    "D,n,m,h,rank,form",
    [
        # Min et al.'s shape n < D, with a rank-deficient X and a width below D + m.
        (8, 4, 2, 5, 3, "lifted-rowspace"),
        (3, 5, 2, 9, 3, "lifted"),  # n >= D: no null space, the full lifted form
    ],
)
def test_lifted_regression_matches_twolayer(getkey, D, n, m, h, rank, form):
    X = jr.normal(getkey(), (n, rank)) @ jr.normal(getkey(), (rank, D))
    Y = jr.normal(getkey(), (n, m))
    if rank < n:
        # Make Y reachable so the loss has a well-defined path to zero.
        Y = X @ jr.normal(getkey(), (D, m)) / np.sqrt(D)
    problem = lf.Regression(X / np.sqrt(D), Y)
    model = _twolayer(getkey(), D, m, h)
    ref, sol = _assert_same_path(model, LiftedTwoLayer.from_model(model), problem, form)
    # The whole Gram matrix, not only its U-V block: the row-space form maps its propagator
    # back through G1, the null-space coupling C and the constant U2 U2^T.
    W = np.concatenate([np.asarray(ref.models.U), np.asarray(ref.models.V)], axis=1)
    G_ref = np.einsum("tih,tjh->tij", W, W)
    scale = np.abs(G_ref).max()
    np.testing.assert_allclose(np.asarray(sol.models.G), G_ref, rtol=0, atol=REL * scale)
    # The nonzero imbalance spectrum of the explicit model is conserved by the lifted flow.
    assert float(sol.conserved_drift()["imbalance_spectrum"]) < 1e-9


@pytest.mark.parametrize("rank", [4, 3])  # X of full row rank, and rank-deficient
def test_twolayer_default_flows_through_the_rowspace_form(getkey, rank):
    # n < D and (n + m)^2 < (D + m) h: the default integrates the thin row-space form, and returns
    # U(t), V(t) themselves; against the parameters' own flow (form="full"), at every save
    # and at the steady state.
    D, n, m, h = 9, 4, 2, 12
    X = jr.normal(getkey(), (n, rank)) @ jr.normal(getkey(), (rank, D)) / np.sqrt(D)
    Y = X @ jr.normal(getkey(), (D, m))
    problem = lf.Regression(X, Y)
    model = _twolayer(getkey(), D, m, h)
    saveat = lf.SaveAt(ts=TS)
    ref = lf.flow(model, problem, saveat=saveat, stop=None, t1=5.0, solver=TIGHT, form="full")
    sol = lf.flow(model, problem, saveat=saveat, stop=None, t1=5.0, solver=TIGHT)
    assert sol.form == "rowspace" and ref.form == "full"
    assert isinstance(sol.final, lf.TwoLayer)
    scale = np.abs(np.asarray(ref.models.U)).max()
    assert np.abs(np.asarray(ref.models.U[-1] - ref.models.U[0])).max() > 0.1 * scale
    for name in ("U", "V"):
        np.testing.assert_allclose(
            getattr(sol.models, name), getattr(ref.models, name), rtol=0, atol=REL * scale
        )
    # The conserved imbalance U^T U - V^T V (h x h), through the row-space form's U(t), V(t).
    assert float(sol.conserved_drift()["imbalance"]) < 1e-9
    # To the steady state with the default stop: the same limit as the parameters' flow.
    lim = lf.flow(model, problem)
    lim_ref = lf.flow(model, problem, form="full")
    assert lim.form == "rowspace" and bool(lim.converged)
    for name in ("U", "V"):
        a, b = getattr(lim.final, name), getattr(lim_ref.final, name)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7 * np.abs(np.asarray(b)).max())


def test_twolayer_keeps_parameters_when_they_are_the_smaller_state(getkey):
    # Width h = 2: (n + m)^2 = 36 states against (D + m) h = 22 parameters.
    D, n, m, h = 9, 4, 2, 2
    X = jr.normal(getkey(), (n, D)) / np.sqrt(D)
    problem = lf.Regression(X, X @ jr.normal(getkey(), (D, m)))
    sol = lf.flow(_twolayer(getkey(), D, m, h), problem, stop=None, t1=1.0)
    assert sol.form == "full"


def test_lifted_sensing_matches_twolayer(getkey):
    d1, d2, N, k = 4, 3, 8, 6
    problem = lf.MatrixSensing(jr.normal(getkey(), (N, d1, d2)) / 3, jr.normal(getkey(), (N,)))
    model = _twolayer(getkey(), d1, d2, k)
    _assert_same_path(model, LiftedTwoLayer.from_model(model), problem, "lifted")


def test_lifted_completion_matches_twolayer(getkey):
    d, k = 5, 4
    idx = np.array([(0, 0), (0, 3), (1, 1), (2, 4), (3, 2), (4, 0), (4, 4), (1, 3), (2, 2)])
    values = jr.normal(getkey(), (len(idx),))
    problem = lf.MatrixCompletion(idx[:, 0], idx[:, 1], values, (d, d))
    model = _twolayer(getkey(), d, d, k, scale=0.5)
    _assert_same_path(model, LiftedTwoLayer.from_model(model), problem, "lifted")


def test_lifted_symmetric_matches_symmetric(getkey):
    n, k = 4, 3
    B = jr.normal(getkey(), (n, n))
    problem = lf.Factorization(B @ B.T / n)
    model = lf.Symmetric(0.4 * jr.normal(getkey(), (n, k)))
    _assert_same_path(model, LiftedSymmetric.from_model(model), problem, "lifted")


def test_lifted_invariant_set_reaches_min_norm(getkey):
    # Min et al. 2021, Prop. 1: if U(0) lies in the row space of X (U2 = 0), the flow stays in
    # the invariant set and converges to the min-norm solution X^T (X X^T)^{-1} Y.
    D, n, m, h = 12, 4, 2, 9
    X = jr.normal(getkey(), (n, D)) / np.sqrt(D)
    Y = jr.normal(getkey(), (n, m))
    U = X.T @ jr.normal(getkey(), (n, h)) * 0.3
    model = lf.TwoLayer(U, 0.3 * jr.normal(getkey(), (m, h)))
    sol = lf.flow(LiftedTwoLayer.from_model(model), lf.Regression(X, Y), solver=TIGHT)
    assert bool(sol.converged)
    min_norm = np.linalg.pinv(np.asarray(X)) @ np.asarray(Y)
    # The stop is a relative residual of 1e-10; with cond(X) ~ 5 the predictor's error is of
    # the same order in the row space, and exactly 0 in the null space (U2 = 0).
    np.testing.assert_allclose(sol.final.predictor(), min_norm, rtol=0, atol=1e-8)


@pytest.mark.parametrize("h", [1, 2, 5, 40])
def test_wishart_moments(getkey, h):
    # E G_ij = h s_i^2 delta_ij; Var G_ij = h s_i^2 s_j^2 (1 + delta_ij). Standard errors from
    # the fourth moments: Var(mean) = Var/N; for the sample variance, Var(var_hat) ~
    # (mu4 - var^2)/N with mu4 = 12h(h+4) s^8 (chi^2_h) on the diagonal and (3h^2 + 6h) s^8
    # off it. 5 standard errors: a false failure has probability < 1e-5 per entry.
    s = jnp.array([0.5, 1.0, 2.0])
    N = 20_000
    G = jax.vmap(lambda k: wishart(k, s, h))(jr.split(getkey(), N))
    G = np.asarray(G)
    s2 = np.asarray(s) ** 2
    outer = np.outer(s2, s2)
    eye = np.eye(3)
    mean, var = h * np.diag(s2), h * outer * (1 + eye)
    mu4 = np.where(eye > 0, 12 * h * (h + 4), 3 * h**2 + 6 * h) * outer**2
    np.testing.assert_array_less(np.abs(G.mean(0) - mean), 5 * np.sqrt(var / N))
    np.testing.assert_array_less(np.abs(G.var(0) - var), 5 * np.sqrt((mu4 - var**2) / N))
    assert np.linalg.matrix_rank(G[0]) == min(h, 3)


def test_wishart_huge_width_concentrates(getkey):
    # G / h -> diag(s^2) with entry-wise standard deviation s_i s_j sqrt((1 + delta_ij)/h).
    h, s = 10**8, jnp.array([0.3, 1.0, 1.5, 2.0])
    G = np.asarray(wishart(getkey(), s, h)) / h
    sd = np.outer(s, s) * np.sqrt((1 + np.eye(4)) / h)
    np.testing.assert_array_less(np.abs(G - np.diag(np.asarray(s) ** 2)), 6 * sd)


def test_gaussian_matches_explicit_sampling_scale(getkey):
    # LiftedTwoLayer.gaussian's blocks carry sigma_u^2 and sigma_v^2 (mean of G / h).
    D, m, h = 3, 2, 10**7
    lm = LiftedTwoLayer.gaussian(getkey(), D, m, h, sigma_u=0.2, sigma_v=3.0)
    expected = np.diag([0.04] * D + [9.0] * m)
    sd = np.sqrt(np.outer(np.diag(expected), np.diag(expected)) * (1 + np.eye(D + m)) / h)
    np.testing.assert_array_less(np.abs(np.asarray(lm.G) / h - expected), 6 * sd)


@pytest.mark.parametrize("h", [2, 11])
def test_imbalance_spectrum_is_nonzero_spectrum_of_twolayer_imbalance(getkey, h):
    D, m = 4, 2
    model = _twolayer(getkey(), D, m, h, scale=1.0)
    ev_h = np.linalg.eigvalsh(np.asarray(model.conserved()["imbalance"]))
    ev_p = np.asarray(LiftedTwoLayer.from_model(model).conserved()["imbalance_spectrum"])
    # Pad the shorter spectrum with the zeros the other one has (rank min(h, D + m)).
    pad = np.zeros(abs(h - (D + m)))
    a = np.sort(np.concatenate([ev_h, pad] if h < D + m else [ev_h]))
    b = np.sort(np.concatenate([ev_p, pad] if h > D + m else [ev_p]))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(a).max())


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        (dict(h=0), ValueError, "`h`"),
        (dict(h=-3), ValueError, "`h`"),
        (dict(h=2.5), TypeError, "'h'|`h`"),
        (dict(D=0), ValueError, "`D`"),
        (dict(m=-1), ValueError, "`m`"),
        (dict(sigma_u=0.0), ValueError, "`sigma_u`"),
        (dict(sigma_v=float("nan")), ValueError, "`sigma_v`"),
    ],
)
def test_gaussian_bad_input(kwargs, err, match):
    args = dict(D=3, m=2, h=10, sigma_u=0.1, sigma_v=0.1) | kwargs
    with pytest.raises(err, match=match):
        LiftedTwoLayer.gaussian(jr.PRNGKey(0), **args)


def test_lifted_bad_input():
    # Under the test suite's jaxtyping checks a shape error is reported (as a TypeError) before
    # `__check_init__` runs; without them it is the ValueError. Both name the argument.
    with pytest.raises((ValueError, TypeError), match="`G`|'G'"):
        LiftedTwoLayer(jnp.ones((3, 4)), 2)
    with pytest.raises(ValueError, match="`D`"):
        LiftedTwoLayer(jnp.eye(3), 3)
    with pytest.raises(ValueError, match="symmetric"):
        LiftedTwoLayer(jnp.array([[1.0, 2.0], [0.0, 1.0]]), 1)
    with pytest.raises(TypeError, match="TwoLayer"):
        LiftedTwoLayer.from_model(lf.Symmetric(jnp.ones((2, 2))))
    with pytest.raises(ValueError, match="`h`"):
        LiftedSymmetric.gaussian(jr.PRNGKey(0), 3, 0, 0.1)
    with pytest.raises((ValueError, TypeError), match="`scales`|'scales'"):
        wishart(jr.PRNGKey(0), jnp.ones((2, 2)), 3)


def test_lifted_refuses_full_form_and_gd(getkey):
    problem = lf.Regression(jr.normal(getkey(), (3, 5)), jr.normal(getkey(), (3, 2)))
    lm = LiftedTwoLayer.gaussian(getkey(), 5, 2, 10, 0.1, 0.1)
    with pytest.raises(ValueError, match="form='full'"):
        lf.flow(lm, problem, form="full")
    with pytest.raises(TypeError, match="lifted"):
        lf.gd(lm, problem, 1e-3, steps=3)
    with pytest.raises(ValueError, match="predictor of shape"):
        lf.flow(LiftedTwoLayer.gaussian(getkey(), 4, 2, 10, 0.1, 0.1), problem)


def test_a_restarted_rowspace_propagator_continues_the_same_flow(getkey):
    # The lifted row-space form integrates a propagator M; continuing it from state B in new
    # coordinates (`restarted`: M(t) = M'(t) B, M' = I at the restart) is the same flow: the
    # rebased form's predictor, model and field at M' equal the original's at M'B, and its
    # field maps by the same product (d(M'B)/dt = (dM'/dt) B). Exact identities, to rounding.
    X, Y = jr.normal(getkey(), (5, 20)), jr.normal(getkey(), (5, 2))
    model = LiftedTwoLayer.from_model(_twolayer(getkey(), 20, 2, 30, 0.3))
    problem = lf.Regression(X, Y)
    system = model.flow_system(problem)
    assert system.name == "lifted-rowspace"
    q = system.initial_state().shape[0]
    B = jnp.eye(q) + 0.3 * jr.normal(getkey(), (q, q))
    rebased, start = system.restarted(B)
    np.testing.assert_array_equal(start, jnp.eye(q))
    M = jnp.eye(q) + 0.2 * jr.normal(getkey(), (q, q))
    np.testing.assert_allclose(system.from_restarted(B, M), M @ B, rtol=1e-14)

    def close(a, b):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-12 * (1 + float(jnp.abs(y).max())))

    close(rebased.predictor(M), system.predictor(M @ B))
    close(rebased.to_model(M), system.to_model(M @ B))
    close(rebased.vector_field(0.0, M, problem) @ B, system.vector_field(0.0, M @ B, problem))


def test_gradient_through_the_rowspace_form_from_a_small_start(getkey):
    # A rank-one teacher from scale 1e-4: the flow's end is stiff (Dopri8 spends its budget,
    # Kvaerno5 finishes). Differentiated in the scale, in both modes, against the parameter
    # flow's own gradient: two integrations that stop at slightly different times on the
    # slow manifold of minimisers (the parameters' gradient itself moves by 5e-5 relative
    # when the stop's rtol goes from 1e-13 to 1e-14, and central differences scatter as
    # much: 1e-4). Through the row-space propagator this flow ran out of steps.
    k = jr.PRNGKey
    X = jr.normal(k(1), (3, 6))
    problem = lf.Regression(X, X @ (jr.normal(k(2), (6, 1)) @ jr.normal(k(3), (1, 3))))
    base = lf.TwoLayer(jr.normal(k(9), (6, 12)), jr.normal(k(10), (3, 12)))

    def scalar(scale, form="auto"):
        model = jax.tree.map(lambda x: scale * x, base)
        sol = lf.flow(model, problem, stop=lf.Converged(rtol=1e-13), form=form)
        assert sol.form == {"auto": "rowspace"}.get(form, form)
        return jnp.sum(sol.final.U**2) - jnp.sum(sol.final.V[:, :2])

    g_full = jax.grad(lambda a: scalar(a, "full"))(1e-4)
    assert abs(float(g_full)) > 0.1
    for g in (jax.grad(scalar)(1e-4), jax.jacfwd(scalar)(1e-4)):
        np.testing.assert_allclose(g, g_full, rtol=1e-4)
