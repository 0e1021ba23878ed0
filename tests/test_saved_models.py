"""The saved trajectory: kept as the integrated states where that is the smaller record, and
read back as the same models, unbatched, vmapped and under jit."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import linflow as lf


# A wide two-layer net on fewer samples than inputs (Min et al.'s shape, smaller): its default
# form integrates a thin (n + m)-column factorisation in the row space of X.
D, N, M, H = 30, 6, 1, 40


def _problem(key):
    kx, kt = jr.split(key)
    X = jr.normal(kx, (N, D)) / np.sqrt(D)
    return lf.Regression(X, X @ jr.normal(kt, (D, M)))


def _model(key, scale=0.3):
    ku, kv = jr.split(key)
    return lf.TwoLayer(scale * jr.normal(ku, (D, H)), scale * jr.normal(kv, (M, H)))


def _sizes():
    # Array entries of the thin state (N_U: n x q, N_V: m x q), of the form that maps it back
    # (its start, the frame F (h x q), the basis Phi1 (D x n), X Phi1, the null-space part
    # U_perp of U (D x h) and U_perp F (D x q)), and of the model.
    q = N + M
    state = q * q
    form = q * q + H * q + D * N + N * N + D * H + D * q
    model = (D + M) * H
    return state, form, model


def test_wide_two_layer_keeps_the_thin_states_and_rebuilds_the_models(getkey):
    problem, model = _problem(getkey()), _model(getkey())
    state, form, params = _sizes()
    T = 64
    assert T * state + form < T * params  # so the states are the smaller record
    sol = lf.flow(model, problem)
    assert sol.form == "rowspace" and sol.saved.system is not None
    assert sol.saved.states.U.shape == (T, N, N + M) and sol.saved.states.V.shape == (T, M, N + M)
    assert sol.models.U.shape == (T, D, H) and sol.models.V.shape == (T, M, H)
    # One save: the form's data outweigh one model, so the model itself is kept.
    assert state + form > params
    one = lf.flow(model, problem, saveat=lf.SaveAt(num=1))
    assert one.saved.system is None and one.models.U.shape == (1, D, H)
    # The saved models against the parameters' own flow at the same times (truncation of two
    # different integrations, both at rtol 1e-12; 1e-9 of the scale leaves a wide margin).
    saveat = lf.SaveAt(ts=jnp.array([0.0, 0.1, 0.5, 2.0]))
    tight = lf.SolverChoice(diffrax.Dopri8(), rtol=1e-12, atol=1e-14)
    a = lf.flow(model, problem, saveat=saveat, stop=None, t1=2.0, solver=tight)
    b = lf.flow(model, problem, saveat=saveat, stop=None, t1=2.0, solver=tight, form="full")
    assert a.saved.system is not None and b.saved.system is None
    scale = float(jnp.abs(b.models.U).max())
    assert float(jnp.abs(b.models.U[-1] - b.models.U[0]).max()) > 0.1 * scale  # it moved
    for name in ("U", "V"):
        np.testing.assert_allclose(
            getattr(a.models, name), getattr(b.models, name), rtol=0, atol=1e-9 * scale
        )
    # Losses and predictors at each save are those of the saved models.
    P = jax.vmap(lambda m: m.predictor())(a.models)
    np.testing.assert_allclose(a.predictors, P, rtol=1e-12, atol=1e-14 * float(jnp.abs(P).max()))
    L = jax.vmap(lambda m: problem.loss(m.predictor()))(a.models)
    np.testing.assert_allclose(a.losses, L, rtol=1e-10)


def test_saved_models_of_a_vmapped_and_a_jitted_flow(getkey):
    problem = _problem(getkey())
    models = [_model(getkey(), scale) for scale in (0.2, 0.5)]
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *models)
    saveat = lf.SaveAt(num=8)
    sols = eqx.filter_vmap(lambda m: lf.flow(m, problem, saveat=saveat))(batch)
    assert sols.saved.system is not None
    assert sols.models.U.shape == (2, 8, D, H) and sols.predictors.shape == (2, 8, D, M)
    for i, model in enumerate(models):
        one = lf.flow(model, problem, saveat=saveat)
        # The same program per member up to vmap's batching of the reductions: rounding,
        # carried through the adaptive steps (1e-9 of each array's scale).
        for name in ("U", "V"):
            ref = getattr(one.models, name)
            np.testing.assert_allclose(
                getattr(sols.models, name)[i], ref, rtol=0, atol=1e-9 * float(jnp.abs(ref).max())
            )
        scale = float(jnp.abs(one.predictors).max())
        np.testing.assert_allclose(sols.predictors[i], one.predictors, rtol=0, atol=1e-9 * scale)

    @jax.jit
    def saved_U(U):
        return lf.flow(lf.TwoLayer(U, models[0].V), problem, saveat=saveat).models.U

    eager = lf.flow(models[0], problem, saveat=saveat).models.U
    np.testing.assert_allclose(
        saved_U(models[0].U), eager, rtol=1e-12, atol=1e-14 * float(jnp.abs(eager).max())
    )


def test_reduced_form_with_large_data_keeps_the_models(getkey):
    # A diagonal net's reduced form carries X (n x d): with more samples than saved numbers
    # per model it is cheaper to keep the models. Either way they are the model at each save.
    n, d = 50, 8
    X = jr.normal(getkey(), (n, d))
    problem = lf.Regression(X, X @ jr.normal(getkey(), (d,)))
    model = lf.DiagonalNet.unbiased(d, 0.1)
    few = lf.flow(model, problem, saveat=lf.SaveAt(num=4))
    assert few.form == "reduced" and few.saved.system is None
    assert few.models.w_plus.shape == (4, d)
    # Many saves of a small net with few samples: the N-vector states are kept.
    Xs = X[:4]
    small = lf.Regression(Xs, Xs @ jr.normal(getkey(), (d,)))
    many = lf.flow(model, small, saveat=lf.SaveAt(num=64))
    assert many.saved.system is not None and many.saved.states.shape == (64, 4)
    np.testing.assert_array_equal(many.models.w_plus[0], model.w_plus)
    # The predictor at each save solves the same dual relation beta = grad Phi*(X^T nu):
    # against the models' own w+^2 - w-^2 (no cancellation at alpha = 0.1).
    P = jax.vmap(lambda m: m.predictor())(many.models)
    np.testing.assert_allclose(many.predictors, P, rtol=1e-12, atol=1e-13 * float(jnp.abs(P).max()))


def test_gd_solution_holds_its_models(getkey):
    problem, model = _problem(getkey()), _model(getkey())
    sol = lf.gd(model, problem, learning_rate=0.05, steps=20, save_steps=np.array([0, 10, 20]))
    assert sol.saved.system is None and sol.models.U.shape == (3, D, H)
    np.testing.assert_array_equal(sol.models.U[0], model.U)
    # One GD step by hand: U - eta grad_U L.
    g = jax.grad(lambda m: problem.loss(m.predictor()))(model)
    sol1 = lf.gd(model, problem, learning_rate=0.05, steps=1, save_steps=np.array([0, 1]))
    np.testing.assert_allclose(sol1.models.U[1], model.U - 0.05 * g.U, rtol=1e-13, atol=1e-15)
