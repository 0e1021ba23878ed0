"""float32 flows (the default precision of GPUs and TPUs) against float64 answers.

The suite enables x64; the float32 problems and models here are built from float64 ones with
`.astype(jnp.float32)`, which is also what a float32-only machine gives.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow as lf
from linflow._stop import precision_floor


F32_FLOOR = precision_floor(jnp.float32)  # 256 eps = 3.05e-5: the stop's floor in float32


def _f32(tree):
    def cast(x):
        if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(jnp.float32)
        return x

    return jax.tree.map(cast, tree)


def _error_bound(prob, beta_ref, tol):
    r"""How far a predictor at relative excess `tol` may be from the float64 limit: the
    excess bounds the fit error $\|X(\beta - \beta^*)\| \le$ tol $\|y\|$, so the part of
    $\beta - \beta^*$ in the row space of X is at most tol $\|y\| / \sigma_{\min}(X)$; the
    part in the null space is set by the path, which float32 rounding perturbs by the same
    order (a factor 4 for both, measured up to 2). Relative to $\|\beta^*\|$."""
    X = np.asarray(prob.X, np.float64)
    sigma_min = np.linalg.svd(X, compute_uv=False)[-1]
    y = np.linalg.norm(np.asarray(prob.Y, np.float64))
    return 4 * tol * y / (sigma_min * float(jnp.linalg.norm(beta_ref)))


@pytest.mark.parametrize("form", ["reduced", "full"])
def test_float32_diagonal_flow_converges_to_the_float64_limit(getkey, form):
    prob, _ = lf.sparse_regression(getkey(), 10, 25, 3)
    model = lf.DiagonalNet.unbiased(25, 0.1)
    ref = lf.flow(model, prob, form=form, saveat=lf.SaveAt(num=2)).final.predictor()
    sol = lf.flow(_f32(model), _f32(prob), form=form, saveat=lf.SaveAt(num=2))
    assert sol.converged and sol.form == form
    assert sol.final_predictor.dtype == jnp.float32 and sol.ts.dtype == jnp.float32
    # The default stop (rtol 1e-10) is below float32's floor: the floor is what it used.
    assert float(sol.residual) <= F32_FLOOR
    err = float(jnp.linalg.norm(sol.final.predictor() - ref) / jnp.linalg.norm(ref))
    assert err <= _error_bound(prob, ref, F32_FLOOR)
    # One step beside: the same flow in float64 goes ~5 orders further.
    assert err > 1e3 * 1e-10


def test_float32_two_layer_flow_converges_to_the_float64_limit(getkey):
    kx, ky, km = jr.split(getkey(), 3)
    X = jr.normal(kx, (4, 6)) / np.sqrt(6) * 3.0
    Y = jr.normal(ky, (4, 2))
    prob = lf.Regression(X, Y)
    model = lf.gaussian_init(km, 6, 2, 4, 0.5, 0.3)
    ref = lf.flow(model, prob, saveat=lf.SaveAt(num=2)).final.predictor()
    sol = lf.flow(_f32(model), _f32(prob), saveat=lf.SaveAt(num=2))
    assert sol.converged and sol.final_predictor.dtype == jnp.float32
    assert float(sol.residual) <= F32_FLOOR
    err = float(jnp.linalg.norm(sol.final.predictor() - ref) / jnp.linalg.norm(ref))
    assert err <= _error_bound(prob, ref, F32_FLOOR)


def test_float32_default_saves_follow_the_float64_path(getkey):
    # The default log-spaced saves reach 10^40 time scales past their start in float64,
    # beyond float32's largest number: in float32 the grid must stay finite and the saves
    # must still be the states at their times. Against the float64 flow saved at the same
    # times (its loss there, to float32 accuracy), with the float32 path moving between saves.
    prob, _ = lf.sparse_regression(getkey(), 10, 25, 3)
    model = lf.DiagonalNet.unbiased(25, 0.1)
    sol = lf.flow(_f32(model), _f32(prob))
    assert sol.converged and sol.ts.dtype == jnp.float32
    ts = np.asarray(sol.ts)
    assert np.all(np.isfinite(ts)) and np.all(np.diff(ts) > 0) and len(ts) == 64
    assert np.all(np.isfinite(np.asarray(sol.losses)))
    assert len(np.unique(np.asarray(sol.losses))) > 32  # the saves are distinct states
    ref = lf.flow(
        model, prob, saveat=lf.SaveAt(ts=jnp.asarray(ts, jnp.float64)), stop=None, t1=float(ts[-1])
    )
    L, L_ref = np.asarray(sol.losses, np.float64), np.asarray(ref.losses)
    # Relative to the start's loss: float32 rounding of the path, ~1e-6, with a 100x margin.
    np.testing.assert_allclose(L, L_ref, rtol=0, atol=1e-4 * L_ref[0])


def test_float32_stop_below_the_floor_uses_the_floor(getkey):
    # An explicit rtol below the floor is raised to it, not refused: the advice of the old
    # refusal (rtol=1e-5) and the default both converge.
    prob, _ = lf.sparse_regression(getkey(), 10, 25, 3)
    model = _f32(lf.DiagonalNet.unbiased(25, 0.1))
    for stop in (lf.Converged(rtol=1e-5), lf.Converged(rtol=1e-3)):
        sol = lf.flow(model, _f32(prob), stop=stop, saveat=lf.SaveAt(num=1))
        assert sol.converged
        assert float(sol.residual) <= max(stop.rtol, F32_FLOOR)


def test_mixed_precision_is_refused_naming_both():
    prob = lf.Regression(jnp.ones((3, 4)), jnp.ones(3))
    model = _f32(lf.DiagonalNet.unbiased(4, 1.0))
    with pytest.raises(TypeError, match="`model` holds float32.*`problem` float64"):
        lf.flow(model, prob)
    half = jax.tree.map(lambda x: x.astype(jnp.float16), model)
    with pytest.raises(TypeError, match="float16"):
        lf.flow(half, jax.tree.map(lambda x: x.astype(jnp.float16), _f32(prob)))
