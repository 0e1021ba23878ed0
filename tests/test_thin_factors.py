"""Wide factorisations as thin factorisations in their initial row space (and wide two-layer
regression in the row space of X), against their own parameter flow (`form="full"`),
central differences, conserved quantities and Eckart-Young limits."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow as lf


# Both flows at tight tolerances: they integrate different states (the thin q x q factors vs
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
    assert sol.form == "thin" and ref.form == "full"
    for name in names:
        a, b = np.asarray(getattr(sol.models, name)), np.asarray(getattr(ref.models, name))
        scale = np.abs(b).max()
        # The path must move (else the comparison could not fail).
        assert np.abs(b[-1] - b[0]).max() > 0.1 * scale
        np.testing.assert_allclose(a, b, rtol=0, atol=REL * scale)
    np.testing.assert_allclose(sol.losses, ref.losses, rtol=REL, atol=1e-14)


@pytest.mark.parametrize("which", ["completion", "sensing", "regression n >= D", "factorization"])
def test_wide_twolayer_flows_as_a_thin_factorisation(getkey, which):
    # q = d1 + d2 = 7 < h = 20: the default integrates the width-7 factors N = Z F and returns U(t),
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
    # The saves keep the 49 numbers of each N(t) (and the frame F once), not the 140 of (U, V).
    assert sol.saved.system is not None


def test_wide_twolayer_reaches_the_parameter_flows_limit(getkey):
    # To the steady state with the default stop and solver: on an exact factorisation the
    # limit is the target's best rank-h approximation (here the target itself, h > rank).
    target = jr.normal(getkey(), (5, 2)) @ jr.normal(getkey(), (2, 4))
    problem = lf.Factorization(target)
    model = _twolayer(getkey(), 5, 4, 30, scale=0.05)
    sol, ref = lf.flow(model, problem), lf.flow(model, problem, form="full")
    assert sol.form == "thin" and bool(sol.converged) and bool(ref.converged)
    np.testing.assert_allclose(sol.final_predictor, target, rtol=0, atol=1e-8)
    for name in ("U", "V"):
        a, b = getattr(sol.final, name), getattr(ref.final, name)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7 * np.abs(np.asarray(b)).max())


@pytest.mark.parametrize("h", [7, 5])  # h = q and h < q: the factors are no larger
def test_narrow_twolayer_keeps_its_parameters(getkey, h):
    problem = _problems(getkey())["completion"]
    sol = lf.flow(_twolayer(getkey(), 4, 3, h, scale=0.3), problem, stop=None, t1=1.0)
    assert sol.form == "full"


def test_wide_symmetric_flows_as_a_thin_factorisation(getkey):
    # n = 4 < k = 9: U F (4 x 4) in the row space of U; against U's own flow, and at the limit
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
    assert lim.form == "thin" and bool(lim.converged)
    w, P = np.linalg.eigh(np.asarray(target))
    best = (P * np.maximum(w, 0.0)) @ P.T
    np.testing.assert_allclose(lim.final_predictor, best, rtol=0, atol=1e-7)
    narrow = lf.flow(lf.Symmetric(0.2 * jr.normal(getkey(), (4, 4))), problem, stop=None, t1=1.0)
    assert narrow.form == "full"


def test_thin_form_batches_jits_and_differentiates_like_the_parameters(getkey):
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


def test_thin_form_in_float32(getkey):
    # The same flow in float32 (tolerances follow the dtype) ends at the float64 limit to
    # float32 accuracy.
    problem = _problems(getkey())["factorization"]
    model = _twolayer(getkey(), 4, 3, 20, scale=0.3)
    ref = lf.flow(model, problem)
    f32 = jax.tree.map(lambda x: x.astype(jnp.float32), (model, problem))
    sol = lf.flow(*f32)
    assert sol.form == "thin" and sol.final.U.dtype == jnp.float32
    assert bool(sol.converged)
    scale = float(jnp.abs(ref.final_predictor).max())
    np.testing.assert_allclose(sol.final_predictor, ref.final_predictor, atol=1e-4 * scale)


def test_implicit_adjoint_is_refused_naming_the_thin_form(getkey):
    # Any rotation of the factors' columns is another minimiser: no isolated steady state.
    problem = _problems(getkey())["factorization"]
    with pytest.raises(ValueError, match="isolated steady state.*'thin' form"):
        lf.flow(_twolayer(getkey(), 4, 3, 20, 0.3), problem, adjoint=lf.ImplicitAdjoint())


def _small_start_cases():
    k = jr.PRNGKey
    completion, _ = lf.matrix_completion(k(0), (4, 4), 1, 10)
    sensing7, _ = lf.gaussian_sensing(k(0), (3, 3), 8, 1)
    sensing12, _ = lf.gaussian_sensing(k(0), (3, 3), 12, 1)
    factorization = lf.Factorization(lf.low_rank_matrix(k(1), (4, 5), 2))
    B = lf.low_rank_matrix(k(5), (4, 4), 2)

    def two(d1, d2, h, scale, ku=k(3), kv=k(4)):
        return lf.TwoLayer(scale * jr.normal(ku, (d1, h)), scale * jr.normal(kv, (d2, h)))

    return {
        "factorization h=12 1e-3": (two(4, 5, 12, 1e-3, k(9), k(10)), factorization),
        "factorization h=12 1e-4": (two(4, 5, 12, 1e-4), factorization),
        "completion h=10 1e-4": (two(4, 4, 10, 1e-4), completion),
        "sensing h=7 1e-4": (two(3, 3, 7, 1e-4), sensing7),
        "sensing h=7 1e-3": (two(3, 3, 7, 1e-3, *jr.split(k(1))), sensing12),
        "symmetric k=8 1e-3": (
            lf.Symmetric(1e-3 * jr.normal(k(3), (4, 8))),
            lf.Factorization(B @ B.T),
        ),
    }


@pytest.mark.parametrize("which", list(_small_start_cases()))
def test_small_initialisation_reaches_the_parameter_flows_limit(which):
    # From a small start the flow is stiff near its end (slow directions against fast ones):
    # Dopri8 spends its budget there and Kvaerno5 finishes. The thin factors have the
    # parameters' conditioning: where the propagator of the factors ran to max_steps (every
    # case here but the first two), the thin form finishes in about the parameters' number of
    # steps. Against the parameters' own flow: predictors to 1e-8 (the stop's 1e-10
    # relative loss change, 100x margin); factors to 1e-5 of their scale (both flows stop on
    # the same slow manifold at slightly different times).
    model, problem = _small_start_cases()[which]
    sol, ref = lf.flow(model, problem), lf.flow(model, problem, form="full")
    assert sol.form == "thin" and bool(sol.converged) and bool(ref.converged)
    assert int(sol.stats["num_steps"]) < 2 * int(ref.stats["num_steps"])
    np.testing.assert_allclose(sol.final_predictor, ref.final_predictor, rtol=0, atol=1e-8)
    for a, b in zip(jax.tree.leaves(sol.final), jax.tree.leaves(ref.final)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(jnp.abs(b).max()))


def test_gradient_through_the_stiff_end_of_a_small_start():
    # The first case above, differentiated in the scale of the start: Dopri8 takes its 1,000
    # steps and Kvaerno5 finishes. Through the propagator of the factors (coordinates skewed
    # by the small start) the explicit phase's derivatives grew without error control: -1.50
    # against -1.39. Against the parameter flow's own gradient (a second integration that
    # stops at a slightly different time on the slow manifold: they differ by 2e-7; 1e-6)
    # and central differences (step 1% of the scale: truncation ~2e-6, and the values' own
    # error, ~1e-11 from the stop, over the step: ~1e-6; 1e-5).
    base, problem = _small_start_cases()["factorization h=12 1e-3"]
    base = jax.tree.map(lambda x: x / 1e-3, base)

    def scalar(scale, form="auto"):
        model = jax.tree.map(lambda x: scale * x, base)
        final = lf.flow(model, problem, stop=lf.Converged(rtol=1e-13), form=form).final
        return jnp.sum(final.U**2) - jnp.sum(final.V[:, :3])

    s, h = 1e-3, 1e-5
    g_full = jax.grad(lambda a: scalar(a, "full"))(s)
    central = (scalar(s + h) - scalar(s - h)) / (2 * h)
    for g in (jax.grad(scalar)(s), jax.jacfwd(scalar)(s)):
        np.testing.assert_allclose(g, g_full, rtol=1e-6)
        np.testing.assert_allclose(g, central, rtol=1e-5)


@pytest.mark.parametrize("which", ["rank-deficient", "zero rows"])
def test_thin_form_is_exact_from_any_start(getkey, which):
    # The frame F of a start of rank below q still contains its row space (Z = Z F F^T
    # exactly), and the flow keeps it there: the same path as the parameters.
    problem = _problems(getkey())["sensing"]
    model = _twolayer(getkey(), 4, 3, 20, scale=0.3)
    if which == "rank-deficient":  # rank 2 of q = 7
        model = jax.tree.map(lambda A: A[:, :2] @ jr.normal(getkey(), (2, 20)), model)
    else:
        model = eqx.tree_at(lambda m: m.V, model, jnp.zeros_like(model.V).at[0].set(model.V[0]))
    system = model.flow_system(problem)
    start = system.to_model(system.initial_state())
    for a, b in zip(jax.tree.leaves(start), jax.tree.leaves(model)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)
    kw = dict(saveat=lf.SaveAt(ts=TS), stop=None, t1=4.0, solver=TIGHT)
    sol, ref = lf.flow(model, problem, **kw), lf.flow(model, problem, form="full", **kw)
    _assert_paths_agree(sol, ref, ("U", "V"))


@pytest.mark.parametrize("which", ["thin", "rowspace"])
def test_gradient_in_any_direction_of_a_generic_start(getkey, which):
    # Not only along the start's own scale (which stays in its row space): a random
    # direction of (U, V), whose flow leaves the row space of the start. Against the
    # parameter flow's gradient and central differences (both modes), and the second
    # derivative against the parameter flow's (1e-7: two integrations' truncation).
    if which == "thin":
        problem = _problems(getkey())["sensing"]
        model = _twolayer(getkey(), 4, 3, 20, scale=0.3)
    else:
        X = jr.normal(getkey(), (5, 12)) / 2
        problem = lf.Regression(X, jr.normal(getkey(), (5, 2)))
        model = _twolayer(getkey(), 12, 2, 30, scale=0.3)
    direction = jax.tree.map(lambda x: jr.normal(getkey(), x.shape), model)
    probe = jax.tree.map(lambda x: jr.normal(getkey(), x.shape), model)

    def scalar(eps, form="auto"):
        start = jax.tree.map(lambda m, d: m + eps * d, model, direction)
        sol = lf.flow(start, problem, stop=None, t1=2.0, solver=TIGHT, form=form)
        assert sol.form == (which if form == "auto" else "full")
        return sum(
            jnp.sum(a * b) for a, b in zip(jax.tree.leaves(sol.final), jax.tree.leaves(probe))
        )

    g_full = jax.grad(lambda e: scalar(e, "full"))(0.0)
    h = 1e-4
    central = (scalar(h) - scalar(-h)) / (2 * h)
    np.testing.assert_allclose(central, g_full, rtol=1e-6)  # the reference itself
    for g in (jax.grad(scalar)(0.0), jax.jacfwd(scalar)(0.0)):
        np.testing.assert_allclose(g, g_full, rtol=1e-9)
    second = jax.hessian(lambda e: scalar(e, "full"))(0.0)
    assert abs(float(second)) > 1e-3
    np.testing.assert_allclose(jax.hessian(scalar)(0.0), second, rtol=1e-7)


def test_rank_deficient_start_gives_nan_derivatives_not_wrong_ones():
    # `spectral_init` has rank min(m, n) = 3 < q = 7: a perturbed start leaves the span the
    # thin state holds, so its derivatives in the start are not available there (NaN, never a
    # wrong number: the parameter flow's is 2.76 here). Derivatives in the data are, at any
    # start: d/dY of the final loss against the parameter flow's.
    Y = jr.normal(jr.PRNGKey(1), (4, 3))

    def final(x0, target, form="auto"):
        model = lf.spectral_init(Y, 12, x0, 0.5, key=jr.PRNGKey(3))
        problem = lf.Factorization(target)
        sol = lf.flow(model, problem, stop=None, t1=1.0, solver=TIGHT, form=form)
        assert sol.form == ("thin" if form == "auto" else "full")
        return jnp.sum(sol.final.U**2) + problem.loss(sol.final_predictor)

    g = jax.grad(final)(0.1, Y)
    assert np.isnan(float(g))
    assert np.isfinite(float(jax.grad(lambda x: final(x, Y, "full"))(0.1)))
    dY = jax.grad(final, argnums=1)(0.1, Y)
    dY_full = jax.grad(lambda y: final(0.1, y, "full"))(Y)
    np.testing.assert_allclose(dY, dY_full, rtol=1e-8, atol=1e-10)
