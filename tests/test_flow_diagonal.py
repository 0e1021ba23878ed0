"""The exact flow of diagonal networks against truths independent of the engine."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.optimize

import linflow as lf


def _problem(key, n=10, d=25, sparsity=3):
    prob, _ = lf.sparse_regression(key, n, d, sparsity)
    return prob


def _stationarity_gap(X, beta, alpha, depth):
    """Distance of grad Q(beta) from range(X^T), relative to its size.

    Woodworth et al. 2020, Thm 1 (D = 2) and Thm 3 (D >= 3): the flow's limit satisfies
    grad Q(beta) = X^T nu. We compute grad Q coordinate-wise with scipy, independently of
    linflow: for D = 2 it is arcsinh(beta / (2 alpha^2)); for D >= 3 it is the s solving
    (a - s)^(-p) - (a + s)^(-p) = beta with a = alpha^(2-D), p = D/(D-2).
    """
    beta = np.asarray(beta)
    if depth == 2:
        g = np.arcsinh(beta / (2 * alpha**2))
    else:
        a, p = alpha ** (2 - depth), depth / (depth - 2)

        def solve(b):
            f = lambda s: (a - s) ** (-p) - (a + s) ** (-p) - b
            lo, hi = -a * (1 - 1e-15), a * (1 - 1e-15)
            return scipy.optimize.brentq(f, lo, hi, xtol=1e-300, rtol=1e-15, maxiter=500)

        g = np.array([solve(b) for b in beta])
    Xn = np.asarray(X)
    coef, *_ = np.linalg.lstsq(Xn.T, g, rcond=None)
    return np.linalg.norm(Xn.T @ coef - g) / np.linalg.norm(g)


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("alpha", [1e-2, 0.1, 1.0, 10.0])
def test_diagonal_flow_limit_satisfies_hypentropy_kkt(getkey, depth, alpha):
    prob = _problem(getkey())
    sol = lf.flow(lf.DiagonalNet.unbiased(25, alpha, depth), prob)
    beta = sol.final.predictor()
    assert sol.result == lf.RESULTS.converged
    # Feasibility: relative residual below the stop tolerance (1e-10).
    res = np.linalg.norm(prob.X @ beta - prob.Y) / np.linalg.norm(prob.Y)
    assert res <= 1e-10
    # Stationarity of Q^D_alpha. The gap is set by the residual the flow has left
    # (1e-10) times the conditioning of X; 1e-8 leaves a 100x margin.
    assert _stationarity_gap(prob.X, beta, alpha, depth) <= 1e-8


def _min_l1(X, y):
    n, d = X.shape
    res = scipy.optimize.linprog(
        np.ones(2 * d), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs"
    )
    return res.x[:d] - res.x[d:]


def test_small_alpha_tends_to_min_l1_and_large_alpha_to_min_l2(getkey):
    prob = _problem(getkey(), n=10, d=25, sparsity=2)
    X, y = np.asarray(prob.X), np.asarray(prob.Y)
    b_l1, b_l2 = _min_l1(X, y), np.linalg.pinv(X) @ y
    err_l1 = []
    for alpha in [1e-2, 1e-4, 1e-6]:
        beta = lf.flow(lf.DiagonalNet.unbiased(25, alpha), prob).final.predictor()
        err_l1.append(np.linalg.norm(beta - b_l1) / np.linalg.norm(b_l1))
    # Woodworth Thm 2: the distance to min-l1 decays like 1/log(1/alpha).
    assert err_l1[0] > err_l1[1] > err_l1[2]
    assert err_l1[2] < 0.15
    err_l2 = []
    for alpha in [1.0, 10.0, 100.0]:
        beta = lf.flow(lf.DiagonalNet.unbiased(25, alpha), prob).final.predictor()
        err_l2.append(np.linalg.norm(beta - b_l2) / np.linalg.norm(b_l2))
    # At large alpha the limit is min-l2 up to O(1/alpha^2) (Taylor expansion of Q_alpha).
    assert err_l2[0] > err_l2[1] > err_l2[2]
    assert err_l2[2] < 1e-3


@pytest.mark.parametrize("alpha", [1e3, 1e4])
def test_large_scale_descent_stops_at_the_rounding_floor_of_the_predictor(getkey, alpha):
    # With the parameters as the state (gradient descent here), beta = w+^2 - w-^2 with
    # w+- ~ alpha is known only to about u * ||w+^2 + w-^2||: the 1e-10 stop is below that
    # floor at these scales, so Converged must use the floor (else the step cap is reached),
    # and the limit must be the Q_alpha minimiser to that accuracy (kernel regime: GD at
    # eta = 1 / (8 alpha^2 lambda_max(XX^T)) ends where the flow does, up to O(1/alpha^2)).
    prob = _problem(getkey(), n=10, d=25, sparsity=2)
    model = lf.DiagonalNet.unbiased(25, alpha)
    lam = float(np.linalg.eigvalsh(np.asarray(prob.X @ prob.X.T)).max())
    sol = lf.gd(model, prob, 1 / (8 * alpha**2 * lam), steps=20_000, stop=lf.Converged())
    assert sol.converged and int(sol.stats["num_steps"]) < 20_000
    beta_q = lf.limits.hypentropy_minimiser(prob.X, prob.Y, alpha)
    m = sol.final.predictor_magnitude()
    magnitude = float(jnp.linalg.norm(m))
    tol = float(prob.excess_floor(m))
    assert tol > 1e-10  # the floor is what stopped it
    assert float(sol.residual) <= tol
    # Stopping at relative excess `tol` leaves beta within tol * ||y|| / sigma_min(X) of the
    # interpolating set (the kernel-regime path fixes the point on it); add the predictor's
    # rounding.
    sigma_min = np.linalg.svd(np.asarray(prob.X), compute_uv=False)[-1]
    bound = tol * float(jnp.linalg.norm(prob.Y)) / sigma_min + 20 * 2.3e-16 * magnitude
    err = float(jnp.linalg.norm(sol.final.predictor() - beta_q))
    assert err <= bound
    assert bound / float(jnp.linalg.norm(beta_q)) < 1e-4  # the check is not vacuous


@pytest.mark.parametrize("depth, alpha", [(2, 1e4), (3, 100.0), (4, 100.0), (5, 100.0)])
def test_reduced_flow_at_large_scale_reaches_the_limit_below_the_parameters_rounding(
    getkey, depth, alpha
):
    # The reduced form's predictor has no cancellation, so the stop holds the requested 1e-10
    # (no rounding floor: at depth 5, alpha = 100 the model's w+^5 - w-^5 ~ 1e10 - 1e10 floors
    # at a relative excess ~1e-4), and `final_predictor` reaches the Q^D_alpha minimiser
    # (Woodworth et al. 2020, Thm 1 / Thm 3) to the 1e-8.
    prob = _problem(getkey(), n=10, d=25, sparsity=2)
    model = lf.DiagonalNet.unbiased(25, alpha, depth=depth)
    sol = lf.flow(model, prob)
    assert sol.form == "reduced" and sol.converged
    assert float(sol.residual) <= 1e-10
    assert float(prob.excess_floor(model.predictor_magnitude())) > 1e-10  # the floor it avoids
    beta_q = lf.limits.hypentropy_minimiser(prob.X, prob.Y, alpha, depth=depth)
    err = jnp.linalg.norm(sol.final_predictor - beta_q) / jnp.linalg.norm(beta_q)
    assert float(err) <= 1e-8
    # The parameters themselves hold the limit up to the predictor's rounding.
    m = jnp.linalg.norm(sol.final.predictor_magnitude())
    bound = float(jnp.linalg.norm(sol.final_predictor - beta_q) + 20 * 2.3e-16 * m)
    assert float(jnp.linalg.norm(sol.final.predictor() - beta_q)) <= bound


@pytest.mark.parametrize("depth", [3, 4])
def test_reduced_predictor_keeps_full_accuracy_at_a_large_balanced_scale(depth):
    # On the depth-D path w_pm^D = (a -+ c s)^-p (a = alpha^(2-D), c = D(D-2), p = D/(D-2),
    # an integer for D = 3, 4), so beta is a rational function of (a, s): the exact value comes
    # from Python fractions. At alpha = 1e3 with beta ~ 1, w_pm^D ~ 1e9 and the plain
    # difference w_+^D - w_-^D loses 9 digits; the reduced form's predictor must not.
    from fractions import Fraction

    from linflow._reduced import DualFlowSystem

    alpha, d = 1e3, 9
    model = lf.DiagonalNet.unbiased(d, alpha, depth)
    a = float(model.w_plus[0] ** (2 - depth))
    c, p = depth * (depth - 2), depth // (depth - 2)
    s = np.linspace(-1.0, 1.0, d) * 1e-9 * a / c
    exact = np.array(
        [
            float((Fraction(a) - c * Fraction(x)) ** -p - (Fraction(a) + c * Fraction(x)) ** -p)
            for x in s
        ]
    )
    system = DualFlowSystem(model, jnp.eye(d))  # X = I: the dual point s is nu itself
    got = np.asarray(system.predictor(jnp.asarray(s)))
    plain = np.asarray(system.to_model(jnp.asarray(s)).predictor())
    scale = np.linalg.norm(exact)
    assert np.linalg.norm(got - exact) / scale <= 1e-14
    assert np.linalg.norm(plain - exact) / scale > 1e-10  # the check is not vacuous


@pytest.mark.parametrize("alpha", [1e3, 1e-2])
def test_depth5_reduced_predictor_is_accurate_across_its_domain(alpha):
    # Depth 5 (p = 5/3, not an integer): w_pm^5 = (a -+ 15 s)^(-5/3), a = alpha^-3, checked in
    # 60-digit decimal arithmetic over the whole domain |15 s| < a, from s = 0 (at alpha = 1e3
    # a large balanced scale, where the plain difference cancels) to next to the boundary
    # (u / v down to 1e-9: the support of a small-scale flow), and beyond it, where the
    # predictor must stay finite (the clamped wall). Near the boundary, forming u = a - 15 s
    # in floating point alone costs a relative error ~ p eps a / u in beta (the conditioning of
    # the path in s): the bound allows twice that. (The shifted form's loss on the support,
    # eps v / u, is of the same order, so it passes here too; what it broke, a flow meeting
    # its stop, is checked by test_deep_flow_across_its_boundary_region_reaches_minimiser.)
    from decimal import Decimal, getcontext

    from linflow._reduced import DualFlowSystem

    getcontext().prec = 60
    model = lf.DiagonalNet.unbiased(1, alpha, 5)
    a = float(model.w_plus[0] ** -3)
    frac = np.concatenate([-np.logspace(-9, -1, 9), np.logspace(-9, -1, 9)])
    s = np.concatenate([frac * 1e-6, np.sign(frac) * (1 - np.abs(frac))]) * a / 15
    third = Decimal(5) / Decimal(3)

    def power(x):
        return (-third * x.ln()).exp()

    exact = np.array(
        [
            float(power(Decimal(a) - 15 * Decimal(x)) - power(Decimal(a) + 15 * Decimal(x)))
            for x in s
        ]
    )
    u, v = a - 15 * s, a + 15 * s  # (their rounding is far below the bound below)
    eps = np.finfo(np.float64).eps
    bound = 8 * eps + 2 * eps * (5 / 3) * (a / u + a / v)
    system = DualFlowSystem(model, jnp.eye(1))
    got = np.asarray(jax.vmap(lambda x: system.predictor(x[None])[0])(jnp.asarray(s)))
    err = np.abs(got - exact) / np.abs(exact)
    assert np.all(err <= bound)
    assert np.all(bound[:18] < 1e-14)  # at the balanced scale: full accuracy
    outside = jnp.asarray([1.5, -1.5, 10.0]) * a / 15
    assert np.all(np.isfinite(np.asarray(jax.vmap(lambda x: system.predictor(x[None]))(outside))))


@pytest.mark.parametrize("depth", [2, 3])
def test_conserved_quantities_along_the_flow(getkey, depth):
    prob = _problem(getkey())
    model = lf.DiagonalNet(
        0.3 + jr.uniform(getkey(), (25,)), 0.3 + jr.uniform(getkey(), (25,)), depth
    )
    for form in ["full", "reduced"]:
        sol = lf.flow(model, prob, form=form)
        drift = sol.conserved_drift()
        assert len(drift) == 1
        assert max(float(v) for v in drift.values()) <= 1e-9


def test_conserved_quantities_of_a_vmapped_flow_are_each_members(getkey):
    # A batch of diagonal nets (reduced form) and of two-layer nets (full form): `conserved`
    # keeps the batch axis before the saved times, and `conserved_drift` gives one drift per
    # member, each equal to that member's own unbatched flow's and small (conservation).
    prob = _problem(getkey())
    Y = jr.normal(getkey(), (10, 2))
    batches = {
        "diagonal": (
            [
                lf.DiagonalNet(
                    0.3 + jr.uniform(getkey(), (25,)), 0.3 + jr.uniform(getkey(), (25,)), 2
                )
                for _ in range(3)
            ],
            prob,
        ),
        "two-layer": (
            [
                lf.TwoLayer(0.3 * jr.normal(getkey(), (25, 3)), 0.3 * jr.normal(getkey(), (2, 3)))
                for _ in range(3)
            ],
            lf.Regression(prob.X, Y),
        ),
    }
    for models, problem in batches.values():
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *models)
        sol = eqx.filter_vmap(lambda m: lf.flow(m, problem, throw=False))(stacked)
        drift, conserved = sol.conserved_drift(), sol.conserved
        for i, model in enumerate(models):
            own = lf.flow(model, problem)
            for name, value in own.conserved_drift().items():
                assert drift[name].shape == (3,)
                # Rounding noise of two runs of the same flow: far below the 1e-9 bound.
                assert abs(float(drift[name][i]) - float(value)) <= 1e-12
                assert float(drift[name][i]) <= 1e-9
            for name, value in own.conserved.items():
                np.testing.assert_allclose(conserved[name][i], value, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda k: lf.DiagonalNet.unbiased(25, 0.1, 2),
        lambda k: lf.DiagonalNet.unbiased(25, 0.5, 3),
        lambda k: lf.DiagonalNet(jr.normal(k, (25,)), jr.normal(jr.fold_in(k, 1), (25,)), 2),
        lambda k: lf.DiagonalNet(
            0.2 + jr.uniform(k, (25,)), 0.2 + jr.uniform(jr.fold_in(k, 1), (25,)), 3
        ),
        lambda k: lf.DiagonalNet(
            0.5 * jr.normal(k, (25,)), 0.5 * jr.normal(jr.fold_in(k, 1), (25,)), 3
        ),
        lambda k: lf.HadamardNet(jr.normal(k, (25,)), jr.normal(jr.fold_in(k, 1), (25,))),
    ],
)
def test_reduced_and_full_forms_agree_along_the_trajectory(getkey, make):
    prob = _problem(getkey())
    model = make(getkey())
    saveat = lf.SaveAt(ts=jnp.geomspace(1e-3, 20.0, 25))
    # Trajectory comparisons need tight tolerances in both forms (the default tolerances
    # target the limit, which the reduced form gets exactly from any point on its path).
    tight = lf.SolverChoice(diffrax.Dopri8(), rtol=1e-13, atol=1e-15)
    kw = dict(saveat=saveat, stop=None, t1=20.0, solver=tight)
    full = lf.flow(model, prob, form="full", **kw)
    red = lf.flow(model, prob, form="reduced", **kw)
    assert full.form == "full" and red.form == "reduced"
    a, b = full.predictors, red.predictors
    scale = jnp.linalg.norm(a, axis=1)
    assert float(jnp.max(jnp.linalg.norm(a - b, axis=1) / scale)) <= 1e-9


def test_hadamard_is_the_diagonal_net_at_half_speed(getkey):
    prob = _problem(getkey())
    ts = jnp.geomspace(1e-2, 20.0, 12)
    tight = lf.SolverChoice(diffrax.Dopri8(), rtol=1e-13, atol=1e-15)
    diag = lf.flow(
        lf.DiagonalNet.unbiased(25, 0.3), prob, saveat=lf.SaveAt(ts=ts), t1=20.0, solver=tight
    )
    had = lf.flow(
        lf.HadamardNet.unbiased(25, 0.3),
        prob,
        saveat=lf.SaveAt(ts=2 * ts),
        t1=40.0,
        solver=tight,
    )
    np.testing.assert_allclose(had.predictors, diag.predictors, atol=1e-9, rtol=1e-8)


def test_vmapped_flow_equals_per_init_flows(getkey):
    prob = _problem(getkey(), n=8, d=12)
    alphas = jnp.geomspace(0.05, 5.0, 256)
    models = eqx.filter_vmap(lambda a: lf.DiagonalNet.unbiased(12, a))(alphas)

    @eqx.filter_jit
    def one(m):
        sol = lf.flow(m, prob, throw=False, saveat=lf.SaveAt(num=4))
        return sol.final.predictor(), sol.result

    batched, results = eqx.filter_vmap(one)(models)
    assert bool(jnp.all(results == lf.RESULTS.converged))
    for i in [0, 77, 255]:
        single, _ = one(lf.DiagonalNet.unbiased(12, alphas[i]))
        # Batched and single solves take different step sequences (the batch runs until
        # its slowest member), so they agree to the stop tolerance, not bitwise.
        np.testing.assert_allclose(batched[i], single, rtol=1e-8, atol=1e-9)


def test_gd_tends_to_the_flow_linearly_in_the_step_size(getkey):
    prob = _problem(getkey())
    model = lf.DiagonalNet.unbiased(25, 0.5)
    T = 1.0
    ts = jnp.linspace(0.0, T, 11)
    exact = lf.flow(model, prob, saveat=lf.SaveAt(ts=ts), t1=T, stop=None).predictors
    errs = []
    etas = [2e-3, 1e-3, 5e-4]
    for eta in etas:
        k = int(round(T / eta))
        sol = lf.gd(model, prob, eta, steps=k, save_steps=np.arange(0, k + 1, k // 10))
        np.testing.assert_allclose(sol.ts, ts, rtol=1e-12)
        errs.append(float(jnp.max(jnp.abs(sol.predictors - exact))))
    slope = np.polyfit(np.log(etas), np.log(errs), 1)[0]
    # Forward Euler is first order: the error ratio per halving is 2 (slope 1).
    assert abs(slope - 1.0) < 0.1


def test_gd_reuses_its_compiled_loop_for_new_step_sizes_and_step_counts(getkey):
    import jax.monitoring

    prob = _problem(getkey())
    model = lf.DiagonalNet.unbiased(25, 0.5)
    compiles = []

    def listen(name, duration, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            compiles.append(name)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        lf.gd(model, prob, 1e-2, steps=100, save_steps=[0, 50, 100])
        before = len(compiles)
        sol = lf.gd(model, prob, 1e-3, steps=300, save_steps=[0, 150, 300])
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert before > 0  # the listener sees compilations at all
    assert len(compiles) == before
    assert int(sol.stats["num_steps"]) == 300


def test_gd_runs_with_any_optax_optimiser(getkey):
    import optax

    prob = _problem(getkey())
    sol = lf.gd(
        lf.DiagonalNet.unbiased(25, 0.5),
        prob,
        steps=3000,
        optimiser=optax.adam(1e-2),
        stop=lf.Converged(rtol=1e-6),
    )
    assert sol.result == lf.RESULTS.converged
    assert float(sol.residual) <= 1e-6


def test_max_steps_is_reported_and_raises(getkey):
    prob = _problem(getkey())
    model = lf.DiagonalNet.unbiased(25, 1e-3)
    sol = lf.flow(model, prob, max_steps=5, throw=False)
    assert sol.result == lf.RESULTS.max_steps_reached
    assert not bool(sol.converged)
    with pytest.raises(Exception, match="maximum number of solver steps"):
        lf.flow(model, prob, max_steps=5)


def test_divergence_is_reported(getkey):
    # Gradient ascent in disguise: a huge step of plain GD diverges; the record says so.
    prob = _problem(getkey())
    sol = lf.gd(lf.DiagonalNet.unbiased(25, 3.0), prob, 1.0, steps=200, throw=False)
    assert sol.result == lf.RESULTS.diverged
    with pytest.raises(Exception, match="diverged"):
        lf.gd(lf.DiagonalNet.unbiased(25, 3.0), prob, 1.0, steps=200)


def test_explicit_solver_choice_is_recorded(getkey):
    prob = _problem(getkey())
    model = lf.DiagonalNet.unbiased(25, 0.1)
    sol = lf.flow(model, prob, solver=diffrax.Dopri8(), form="full")
    assert sol.solver == "Dopri8"
    assert sol.result == lf.RESULTS.converged
    auto = lf.flow(model, prob)
    assert auto.form == "reduced" and auto.solver == "Dopri8 then Kvaerno5"


def test_flow_under_jit_and_grad(getkey):
    prob = _problem(getkey())

    @jax.jit
    def limit(alpha):
        return lf.flow(lf.DiagonalNet.unbiased(25, alpha), prob).final.predictor()

    a = 0.5
    g = jax.jacrev(limit)(a)
    h = 1e-5
    fd = (limit(a + h) - limit(a - h)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-6)


def test_reduced_predictor_has_finite_gradients_far_off_the_path():
    # An explicit solver's rejected trial step can evaluate the depth-2 field at a huge s;
    # an overflow there (inf, then inf - inf) reached backpropagation as 0 * inf = NaN
    # (differentiate benchmark, d = 1e5, alpha = 1). The exponentials are capped at 1e100.
    from linflow.limits.diagonal_paths import exp_difference

    a = jnp.array([1.0, 4.0, 0.0, 2.0])
    b = jnp.array([1.0, 0.0, 9.0, 0.5])

    def _exp_difference(a, b, x):
        return exp_difference(jnp.log(a), jnp.log(b), x)

    def masked(x):  # a rejected step: its value is discarded, its gradient must be 0
        return jnp.sum(jnp.where(False, _exp_difference(a, b, x), 0.0))

    for x in (1e3, -1e3, 1e6):
        xs = jnp.full(4, x)
        assert np.all(np.isfinite(_exp_difference(a, b, xs)))
        assert np.all(np.abs(_exp_difference(a, b, xs)) <= 1e101)
        np.testing.assert_array_equal(jax.grad(masked)(xs), 0.0)
    # On the path (|beta| << 1e100) the cap changes nothing: the closed form a e^x - b e^-x.
    xs = jnp.array([0.3, -2.0, 5.0, 40.0])
    want = np.asarray(a) * np.exp(np.asarray(xs)) - np.asarray(b) * np.exp(-np.asarray(xs))
    np.testing.assert_allclose(_exp_difference(a, b, xs), want, rtol=1e-14)


def test_reduced_predictor_tangent_at_the_balance_point():
    # Where a e^x = b e^-x (z = 0: every unbiased start, at t = 0) the tangent is
    # a e^x + b e^-x, in both autodiff modes; also at a vanishing scale, given in logs
    # (a = b = e^-600: their difference's slope 2 e^-600 is still a float).
    from linflow.limits.diagonal_paths import exp_difference

    log_a = jnp.array([0.0, jnp.log(4.0), -600.0])
    log_b = jnp.array([0.0, 0.0, -600.0])
    x = jnp.array([0.0, -jnp.log(2.0), 0.0])
    want = np.array([2.0, 4.0, 2 * np.exp(-600.0)])
    value = exp_difference(log_a, log_b, x)
    np.testing.assert_allclose(value, 0.0, atol=1e-15)
    _, tangent = jax.jvp(lambda x: exp_difference(log_a, log_b, x), (x,), (jnp.ones(3),))
    np.testing.assert_allclose(tangent, want, rtol=1e-14)
    grad = jax.vmap(jax.grad(lambda la, lb, xi: exp_difference(la, lb, xi), argnums=2))
    np.testing.assert_allclose(grad(log_a, log_b, x), want, rtol=1e-14)


def test_default_saves_end_at_the_final_time(getkey):
    # A depth-3 flow at alpha = 1e-3 runs for ~10 decades of time; the default saves
    # (t = 0, log-spaced times, the final time) must follow it to its end.
    prob = _problem(getkey())
    model = lf.DiagonalNet.unbiased(25, 1e-3, depth=3)
    sol = lf.flow(model, prob)
    assert sol.converged
    ts = np.asarray(sol.ts)
    assert ts.shape == (64,) and ts[0] == 0.0 and ts[-1] == float(sol.t_final)
    assert np.all(np.diff(ts) > 0)
    # Both ends are the states themselves: the initial model and `final` (the same state,
    # mapped by the same formula; 1e-13 covers the batched vs single evaluation).
    np.testing.assert_array_equal(sol.models.w_plus[0], model.w_plus)
    for field in ("w_plus", "w_minus"):
        np.testing.assert_allclose(
            getattr(sol.models, field)[-1], getattr(sol.final, field), rtol=1e-13
        )
    # Log-spaced in between: from 1e-3 tau to the final time, every ratio of consecutive
    # saves at most 2.5 times the even ratio (the saves are picked from an 8x finer grid).
    tau = float(prob.time_scale())
    assert ts[1] == pytest.approx(1e-3 * tau, rel=1e-12)
    even = (ts[-1] / ts[1]) ** (1 / 62)
    assert np.max(ts[2:] / ts[1:-1]) <= even**2.5
    # The last log-spaced save is close to the end: its loss is not yet the final loss
    # (the stop holds only at t_final), but it is past the last plateau (loss below 1e-6 of
    # the start's).
    assert float(sol.losses[-2]) < 1e-6 * float(sol.losses[0])


def test_explicit_saves_after_a_failure_hold_nan(getkey):
    prob = _problem(getkey())
    model = lf.DiagonalNet.unbiased(25, 1e-3)
    save = lf.SaveAt(ts=jnp.array([0.0, 1e6]))
    sol = lf.flow(model, prob, max_steps=5, throw=False, saveat=save)
    assert sol.result == lf.RESULTS.max_steps_reached and float(sol.t_final) < 1e6
    assert float(sol.losses[0]) == pytest.approx(float(prob.reference_loss()), rel=1e-14)
    assert np.isnan(float(sol.losses[1])) and np.all(np.isnan(sol.models.w_plus[1]))
    # And the end is saved when asked for: num=2 is t = 0 and the final time.
    two = lf.flow(model, prob, max_steps=5, throw=False, saveat=lf.SaveAt(num=2))
    assert np.asarray(two.ts).tolist() == [0.0, float(two.t_final)]
