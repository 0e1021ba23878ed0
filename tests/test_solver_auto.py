"""The default solver rule (`linflow.Auto`) and `linflow.Fallback`, against analytic limits:
the Q^D_alpha minimiser (Woodworth et al. 2020, Thm 1 / Thm 3) and Min et al. 2021, Prop. 1."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow as lf


N, D = 40, 100


@pytest.fixture(scope="module")
def sparse():
    return lf.sparse_regression(jr.PRNGKey(0), N, D, 5)[0]


def _rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("alpha", [1e-3, 10.0])
def test_default_reaches_the_limit_at_both_ends_of_the_scale(sparse, depth, alpha):
    sol = lf.flow(lf.DiagonalNet.unbiased(D, alpha, depth), sparse)
    want = lf.limits.hypentropy_minimiser(sparse.X, sparse.Y, alpha, depth=depth)
    assert bool(sol.converged)
    # The stop leaves a relative excess <= 1e-10; with sigma_min(X) ~ 0.4 sqrt(d) and the
    # Q_alpha geometry that moves beta by <= ~1e-9 relative (measured 1e-10 .. 4e-9).
    assert _rel(sol.final.predictor(), want) <= 1e-8
    # Step budget: the explicit phase's 1,000 steps plus at most 3,000 implicit ones
    # (measured: 104-108 steps at alpha = 10, 1,212-2,764 at alpha = 1e-3).
    assert int(sol.stats["num_steps"]) <= 4_000
    assert sol.solver == "Dopri8 then Kvaerno5"
    if alpha == 10.0:  # the explicit phase finishes on its own
        assert int(sol.stats["fallback_steps"]) == 0


def test_default_on_a_two_layer_net_with_5000_parameters_reaches_the_min_norm_solution():
    # Min et al. 2021, Prop. 1: from an initialisation in the invariant set the flow of
    # 1/2 ||Y - X U V^T||^2 converges to the min-norm solution X^+ Y.
    kx, ky, ki = jr.split(jr.PRNGKey(1), 3)
    n, d, h = 20, 50, 100
    X = 3.0 * jr.normal(kx, (n, d)) / np.sqrt(d)
    Y = jr.normal(ky, (n, 1))
    model = lf.invariant_set_init(ki, X, 1, h, scale=0.5)
    assert sum(x.size for x in jax.tree.leaves(model)) >= 5_000
    want = lf.limits.min_norm_solution(X, Y)
    # The parameters (5,100 states, explicit Dopri8) and the default, the row-space form
    # ((n + m)^2 = 441 states) that `TwoLayer.flow_system` picks because it is smaller.
    for form, states in (("full", "full"), ("auto", "rowspace")):
        sol = lf.flow(model, lf.Regression(X, Y), form=form)
        assert bool(sol.converged) and sol.form == states and sol.solver == "Dopri8"
        assert _rel(sol.final.predictor(), want) <= 1e-8
        assert int(sol.stats["num_steps"]) <= 2_000


def test_fallback_continues_from_where_the_first_solver_stopped(sparse):
    # Tsit5 cannot finish a small-scale flow in 200 steps; Kvaerno5 continues from its last
    # state. The saved trajectory (first part from Tsit5, the rest from Kvaerno5) must be the
    # flow's: compare with one tight-tolerance Kvaerno5 run at the same times.
    model = lf.DiagonalNet.unbiased(D, 1e-2)
    tight = lf.SolverChoice(diffrax.Kvaerno5(), rtol=1e-11, atol=1e-13)
    fallback = lf.Fallback(
        lf.SolverChoice(diffrax.Tsit5(), rtol=1e-10, atol=1e-30),
        lf.SolverChoice(diffrax.Kvaerno5(), rtol=1e-10, atol=1e-12),
        budget=200,
    )
    saveat = lf.SaveAt(ts=jnp.logspace(-4, 1, 12))
    ref = lf.flow(model, sparse, saveat=saveat, solver=tight)
    sol = lf.flow(model, sparse, saveat=saveat, solver=fallback)
    assert bool(sol.converged) and sol.solver == "Tsit5 then Kvaerno5"
    assert int(sol.stats["fallback_steps"]) > 0
    assert int(sol.stats["num_steps"]) == 200 + int(sol.stats["fallback_steps"])
    # Both solves follow the same ODE at 1e-10..1e-11 tolerances: the trajectories agree to
    # ~1e-8 relative (error accumulated over ~1e3 steps), before and after the switch.
    # The switch time lies inside the saved range, so both parts are compared.
    P, Pr = sol.predictors, ref.predictors
    err = jnp.linalg.norm(P - Pr, axis=1) / jnp.linalg.norm(Pr, axis=1)
    assert float(err.max()) <= 1e-7
    assert _rel(sol.final.predictor(), ref.final.predictor()) <= 1e-8


def test_fallback_restarts_when_the_first_solver_diverges(sparse):
    # An explicit solver forced to huge steps blows up on this stiff flow (a gradient flow
    # itself cannot diverge); the fallback restarts from the initial state.
    reckless = lf.SolverChoice(
        diffrax.Tsit5(),
        controller=diffrax.PIDController(rtol=1e3, atol=1e3, dtmin=1.0, force_dtmin=True),
    )
    careful = lf.SolverChoice(diffrax.Kvaerno5(), rtol=1e-9, atol=1e-11)
    model = lf.DiagonalNet.unbiased(D, 1.0)
    alone = lf.flow(model, sparse, solver=reckless, throw=False)
    assert alone.result == lf.RESULTS.diverged
    sol = lf.flow(model, sparse, solver=lf.Fallback(reckless, careful, budget=100))
    want = lf.limits.hypentropy_minimiser(sparse.X, sparse.Y, 1.0)
    assert bool(sol.converged) and int(sol.stats["fallback_steps"]) > 0
    assert _rel(sol.final.predictor(), want) <= 1e-8


def test_fallback_under_vmap_matches_single_runs(sparse):
    # A batch whose members end in different phases: alpha = 1 finishes explicitly, alpha =
    # 1e-3 falls back. Each member's limit must equal its own unbatched run's.
    alphas = jnp.array([1e-3, 1.0])
    models = eqx.filter_vmap(lambda a: lf.DiagonalNet.unbiased(D, a))(alphas)

    @eqx.filter_jit
    def run(m):
        sol = lf.flow(m, sparse, throw=False, saveat=lf.SaveAt(num=4))
        return sol.final.predictor(), sol.converged, sol.stats["fallback_steps"]

    batch, ok, fallback = eqx.filter_vmap(run)(models)
    assert bool(jnp.all(ok))
    assert int(fallback[0]) > 0 and int(fallback[1]) == 0
    for i in range(2):
        single, single_ok, _ = run(lf.DiagonalNet.unbiased(D, alphas[i]))
        assert bool(single_ok)
        # Batched and single solves take different step sequences after the switch: they
        # agree to the stop tolerance (1e-10 relative excess), not bitwise.
        assert _rel(batch[i], single) <= 1e-8


def test_fallback_rejects_bad_arguments():
    good = lf.SolverChoice(diffrax.Tsit5())
    with pytest.raises(TypeError, match="SolverChoice"):
        lf.Fallback(diffrax.Tsit5(), good)
    with pytest.raises(ValueError, match="budget"):
        lf.Fallback(good, good, budget=0)


class _NaNFirstStep(diffrax.PIDController):
    """A controller whose first-step rule fails (as when its probe point y0 + h f(y0) leaves
    the model's domain and the field there is NaN)."""

    def init(self, terms, t0, t1, y0, dt0, *args):
        t, state = super().init(terms, t0, t1, y0, dt0, *args)
        return (t * jnp.nan if dt0 is None else t), state


def test_a_failed_first_step_rule_does_not_stall_the_flow(sparse):
    # A NaN first step size is rejected forever (every one of max_steps steps): the engine
    # starts from the problem's time scale instead, and the flow reaches the Q_alpha minimiser.
    choice = lf.SolverChoice(diffrax.Dopri8(), controller=_NaNFirstStep(rtol=1e-10, atol=1e-30))
    sol = lf.flow(lf.DiagonalNet.unbiased(D, 0.5), sparse, solver=choice, max_steps=5_000)
    want = lf.limits.hypentropy_minimiser(sparse.X, sparse.Y, 0.5)
    assert _rel(sol.final_predictor, want) <= 1e-8
