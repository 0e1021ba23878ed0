"""Wide factorisations through the propagator of their factors, against their own
parameter flow (`form="full"`), conserved quantities and Eckart-Young limits."""

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow as lf


# Both flows at tight tolerances: they integrate different states (the q x q propagator vs
# the q x h factors), so they agree up to their truncation errors, ~1e-12 relative here;
# 1e-9 leaves a 1000x margin.
TIGHT = lf.SolverChoice(diffrax.Dopri8(), rtol=1e-12, atol=1e-14)
TS = jnp.array([0.0, 0.1, 0.5, 1.5, 4.0])
REL = 1e-9


def _twolayer(key, d1, d2, h, scale):
    ku, kv = jr.split(key)
    return lf.TwoLayer(scale * jr.normal(ku, (d1, h)), scale * jr.normal(kv, (d2, h)))


def _completion(key, d1, d2):
    rows, cols = np.meshgrid(np.arange(d1), np.arange(d2), indexing="ij")
    keep = np.asarray(jr.uniform(key, (d1 * d2,)) < 0.6)
    rows, cols = rows.ravel()[keep], cols.ravel()[keep]
    target = jr.normal(jr.fold_in(key, 1), (d1, 2)) @ jr.normal(jr.fold_in(key, 2), (2, d2))
    return lf.MatrixCompletion(rows, cols, target[rows, cols], (d1, d2))


def _problems(key):
    d1, d2 = 4, 3
    A = jr.normal(jr.fold_in(key, 1), (10, d1, d2)) / 3
    X = jr.normal(jr.fold_in(key, 2), (12, d1))  # n >= D: no row-space reduction applies
    return {
        "completion": _completion(jr.fold_in(key, 0), d1, d2),
        "sensing": lf.MatrixSensing(A, jr.normal(jr.fold_in(key, 3), (10,))),
        "regression n >= D": lf.Regression(X, X @ jr.normal(jr.fold_in(key, 4), (d1, d2))),
        "factorization": lf.Factorization(jr.normal(jr.fold_in(key, 5), (d1, d2))),
    }


def _assert_paths_agree(sol, ref, names):
    assert sol.form == "propagator" and ref.form == "full"
    for name in names:
        a, b = np.asarray(getattr(sol.models, name)), np.asarray(getattr(ref.models, name))
        scale = np.abs(b).max()
        # The path must move (else the comparison could not fail).
        assert np.abs(b[-1] - b[0]).max() > 0.1 * scale
        np.testing.assert_allclose(a, b, rtol=0, atol=REL * scale)
    np.testing.assert_allclose(sol.losses, ref.losses, rtol=REL, atol=1e-14)


@pytest.mark.parametrize("which", ["completion", "sensing", "regression n >= D", "factorization"])
def test_wide_twolayer_flows_through_the_propagator(getkey, which):
    # q = d1 + d2 = 7 < h = 20: the default integrates the 7 x 7 propagator and returns U(t),
    # V(t) at every save; rectangular (d1 != d2) so that the blocks cannot be swapped.
    problem = _problems(getkey())[which]
    model = _twolayer(getkey(), 4, 3, 20, scale=0.3)
    saveat = lf.SaveAt(ts=TS)
    kw = dict(saveat=saveat, stop=None, t1=4.0, solver=TIGHT)
    sol, ref = lf.flow(model, problem, **kw), lf.flow(model, problem, form="full", **kw)
    _assert_paths_agree(sol, ref, ("U", "V"))
    assert isinstance(sol.final, lf.TwoLayer) and sol.final.U.shape == (4, 20)
    # The imbalance U^T U - V^T V (h x h) is conserved: a check of the rebuilt factors that
    # does not use the reference flow.
    assert float(sol.conserved_drift()["imbalance"]) < 1e-9
    # The saves keep the 49 numbers of each M(t) (and Z(0) once), not the 140 of (U, V).
    assert sol.saved.system is not None


def test_wide_twolayer_reaches_the_parameter_flows_limit(getkey):
    # To the steady state with the default stop and solver: on an exact factorisation the
    # limit is the target's best rank-h approximation (here the target itself, h > rank).
    target = jr.normal(getkey(), (5, 2)) @ jr.normal(getkey(), (2, 4))
    problem = lf.Factorization(target)
    model = _twolayer(getkey(), 5, 4, 30, scale=0.05)
    sol, ref = lf.flow(model, problem), lf.flow(model, problem, form="full")
    assert sol.form == "propagator" and bool(sol.converged) and bool(ref.converged)
    np.testing.assert_allclose(sol.final_predictor, target, rtol=0, atol=1e-8)
    for name in ("U", "V"):
        a, b = getattr(sol.final, name), getattr(ref.final, name)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7 * np.abs(np.asarray(b)).max())


@pytest.mark.parametrize("h", [7, 5])  # h = q and h < q: the factors are no larger
def test_narrow_twolayer_keeps_its_parameters(getkey, h):
    problem = _problems(getkey())["completion"]
    sol = lf.flow(_twolayer(getkey(), 4, 3, h, scale=0.3), problem, stop=None, t1=1.0)
    assert sol.form == "full"


def test_wide_symmetric_flows_through_the_propagator(getkey):
    # n = 4 < k = 9: the 4 x 4 propagator of U; against U's own flow, and at the limit
    # against the best PSD rank-k approximation of the target's symmetric part (Eckart-Young
    # on the positive eigenpairs: an indefinite target, so the limit drops a direction).
    B = jr.normal(getkey(), (4, 4))
    target = B @ jnp.diag(jnp.array([3.0, 1.0, 0.5, -1.0])) @ B.T / 4
    problem = lf.Factorization(target)
    model = lf.Symmetric(0.2 * jr.normal(getkey(), (4, 9)))
    kw = dict(saveat=lf.SaveAt(ts=TS), stop=None, t1=4.0, solver=TIGHT)
    sol, ref = lf.flow(model, problem, **kw), lf.flow(model, problem, form="full", **kw)
    _assert_paths_agree(sol, ref, ("U",))
    assert isinstance(sol.final, lf.Symmetric) and sol.final.U.shape == (4, 9)
    lim = lf.flow(model, problem)
    assert lim.form == "propagator" and bool(lim.converged)
    w, P = np.linalg.eigh(np.asarray(target))
    best = (P * np.maximum(w, 0.0)) @ P.T
    np.testing.assert_allclose(lim.final_predictor, best, rtol=0, atol=1e-7)
    narrow = lf.flow(lf.Symmetric(0.2 * jr.normal(getkey(), (4, 4))), problem, stop=None, t1=1.0)
    assert narrow.form == "full"


def test_propagator_batches_jits_and_differentiates_like_the_parameters(getkey):
    # vmap over scales against single flows; a jitted call against eager; the gradient of
    # the final loss in alpha, in both autodiff modes, against the parameter flow's.
    problem = _problems(getkey())["sensing"]
    base = _twolayer(getkey(), 4, 3, 20, scale=1.0)

    def run(alpha, form="auto"):
        model = jax.tree.map(lambda x: alpha * x, base)
        return lf.flow(model, problem, stop=None, t1=2.0, solver=TIGHT, form=form)

    alphas = jnp.array([0.1, 0.3])
    batch = jax.vmap(run)(alphas)
    for i, a in enumerate(alphas):
        one = run(a)
        np.testing.assert_allclose(batch.final.U[i], one.final.U, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jax.jit(run)(0.3).final.V, run(0.3).final.V, rtol=1e-12)

    def loss(alpha, form="auto"):
        return problem.loss(run(alpha, form).final_predictor)

    g_ref = jax.grad(lambda a: loss(a, "full"))(0.3)
    assert abs(float(g_ref)) > 1e-3
    np.testing.assert_allclose(jax.grad(loss)(0.3), g_ref, rtol=1e-7)
    np.testing.assert_allclose(jax.jacfwd(loss)(0.3), g_ref, rtol=1e-7)


def test_propagator_in_float32(getkey):
    # The same flow in float32 (tolerances follow the dtype) ends at the float64 limit to
    # float32 accuracy.
    problem = _problems(getkey())["factorization"]
    model = _twolayer(getkey(), 4, 3, 20, scale=0.3)
    ref = lf.flow(model, problem)
    f32 = jax.tree.map(lambda x: x.astype(jnp.float32), (model, problem))
    sol = lf.flow(*f32)
    assert sol.form == "propagator" and sol.final.U.dtype == jnp.float32
    assert bool(sol.converged)
    scale = float(jnp.abs(ref.final_predictor).max())
    np.testing.assert_allclose(sol.final_predictor, ref.final_predictor, atol=1e-4 * scale)


def test_implicit_adjoint_is_refused_naming_the_propagator_form(getkey):
    # Any rotation of the factors' columns is another minimiser: no isolated steady state.
    problem = _problems(getkey())["factorization"]
    with pytest.raises(ValueError, match="isolated steady state.*'propagator' form"):
        lf.flow(_twolayer(getkey(), 4, 3, 20, 0.3), problem, adjoint=lf.ImplicitAdjoint())


def test_small_initialisation_propagator_finishes_implicitly_if_stiff():
    # From alpha = 1e-3 the propagator's flow is stiff near its end: Dopri8 alone ran out of
    # 100,000 steps on this rank-one 3 x 3 sensing problem (width 7 > q = 6). `Auto` chooses
    # the propagator's solver by size, as for the parameters: explicit first, Kvaerno5 if
    # stiff. Against the parameters' own flow (the same path) and the rank-one target, which
    # 12 generic measurements of 9 entries determine (exact recovery): both to the stop's
    # 1e-10 with a 100x margin.
    problem, target = lf.gaussian_sensing(jr.PRNGKey(0), (3, 3), 12, 1)
    ku, kv = jr.split(jr.PRNGKey(1))
    model = lf.TwoLayer(1e-3 * jr.normal(ku, (3, 7)), 1e-3 * jr.normal(kv, (3, 7)))
    sol, ref = lf.flow(model, problem), lf.flow(model, problem, form="full")
    assert sol.form == "propagator" and bool(sol.converged)
    assert int(sol.stats["fallback_steps"]) > 0
    np.testing.assert_allclose(sol.final_predictor, ref.final_predictor, rtol=0, atol=1e-8)
    np.testing.assert_allclose(sol.final_predictor, target, rtol=0, atol=1e-8)


@pytest.mark.parametrize("which", ["completion", "regression", "symmetric"])
def test_zero_start_is_a_steady_state_on_every_propagator(getkey, which):
    # From zero factors the gradient g V, g^T U (or (g + g^T) U) vanishes: nothing moves,
    # although the propagator's own field -S(g) M does not vanish. Every propagator (factor:
    # completion and Symmetric; row space: regression with n < D) must stop at once, as the
    # parameter flow does, with the factors still zero.
    if which == "completion":
        model, problem = (
            lf.TwoLayer(jnp.zeros((4, 10)), jnp.zeros((3, 10))),
            _completion(getkey(), 4, 3),
        )
    elif which == "regression":
        X, Y = jr.normal(getkey(), (5, 20)), jr.normal(getkey(), (5, 2))
        model, problem = lf.TwoLayer(jnp.zeros((20, 30)), jnp.zeros((2, 30))), lf.Regression(X, Y)
    else:
        model, problem = lf.Symmetric(jnp.zeros((4, 9))), lf.Factorization(jnp.eye(4))
    expected_form = {"regression": "rowspace"}.get(which, "propagator")
    for form in ("auto", "full"):
        sol = lf.flow(model, problem, form=form, max_steps=100)
        assert sol.form == (expected_form if form == "auto" else "full")
        assert sol.stopped_by == lf.STOPS.stationary
        assert int(sol.stats["num_steps"]) <= 2
        for leaf in jax.tree.leaves(sol.final):
            assert float(jnp.abs(leaf).max()) == 0.0


@pytest.mark.parametrize("which", ["twolayer", "symmetric", "rowspace", "lifted-rowspace"])
def test_a_restarted_propagator_continues_the_same_flow(getkey, which):
    # Continuing a propagator from state B in new coordinates (`restarted`: M(t) = M'(t) B,
    # M' = I at the restart) is the same flow: the rebased form's predictor, model and field
    # at M' equal the original's at M'B, and its field maps by the same product
    # (d(M'B)/dt = (dM'/dt) B). Exact identities, to rounding.
    if which in ("twolayer", "symmetric"):
        problem = _problems(getkey())["completion"]
        model = _twolayer(getkey(), 4, 3, 20, 0.5)
        if which == "symmetric":
            model, problem = lf.Symmetric(model.U), lf.Factorization(jr.normal(getkey(), (4, 4)))
    else:
        X, Y = jr.normal(getkey(), (5, 20)), jr.normal(getkey(), (5, 2))
        model, problem = _twolayer(getkey(), 20, 2, 30, 0.3), lf.Regression(X, Y)
        if which == "lifted-rowspace":
            model = lf.lifted.LiftedTwoLayer.from_model(model)
    system = model.flow_system(problem)
    assert system.name == {"twolayer": "propagator", "symmetric": "propagator"}.get(which, which)
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


def test_implicit_phase_restarts_a_grown_propagator():
    # A width-12 factorisation of a rank-2 4 x 5 target from scale 1e-3: Dopri8 uses its
    # 1,000-step budget, and Kvaerno5 continuing the propagator M(t) grown over that phase
    # stalled (100,000 steps, residual 3e-6), while from the factors at the same point it
    # finishes in ~170 steps. The fallback restarts the propagator there. Against the target
    # (width > rank: the limit fits it exactly) and the parameters' own flow.
    problem = lf.Factorization(lf.low_rank_matrix(jr.PRNGKey(1), (4, 5), 2))
    model = lf.TwoLayer(
        1e-3 * jr.normal(jr.PRNGKey(9), (4, 12)), 1e-3 * jr.normal(jr.PRNGKey(10), (5, 12))
    )
    sol, ref = lf.flow(model, problem), lf.flow(model, problem, form="full")
    assert sol.form == "propagator" and bool(sol.converged) and bool(ref.converged)
    assert 0 < int(sol.stats["fallback_steps"]) < 1_000
    np.testing.assert_allclose(sol.final_predictor, problem.Y, rtol=0, atol=1e-8)
    for name in ("U", "V"):
        a, b = getattr(sol.final, name), getattr(ref.final, name)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7 * np.abs(np.asarray(b)).max())
    # The saves after the restart are mapped back: each saved model's loss is the saved loss.
    losses = jax.vmap(lambda m: problem.loss(m.predictor()))(sol.models)
    np.testing.assert_allclose(losses, sol.losses, rtol=1e-9, atol=1e-20)
