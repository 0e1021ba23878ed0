"""The potentials of the limits layer: the flow of a model and `dual_minimise` of the model's
potential are two methods for one limit (an ODE integrated to its steady state against a dual
Newton solve), and each potential's formulas are checked against the parametrisation's own
predictor and against finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import linflow
from linflow.limits import (
    DeepDiagonalPotential,
    ExponentialPotential,
    Hypentropy,
    TensorPotential,
    dual_minimise,
    hypentropy_minimiser,
)


def _data(seed, n=6, d=15):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, rng.standard_normal(n), rng


# The default stop ends the flow at a relative excess loss of 1e-10: its predictor is then
# within ~1e-9 (relative) of the limit; 1e-7 leaves a margin for the conditioning of X.
_FLOW_RTOL = 1e-7


def test_hadamard_flow_started_anywhere_reaches_its_potentials_minimiser():
    # u0 v0 != 0: beta(0) = u0 v0 is not zero, so no unbiased hypentropy applies.
    X, y, rng = _data(0)
    u0, v0 = (jnp.asarray(0.3 * rng.standard_normal(15)) for _ in range(2))
    model = linflow.HadamardNet(u0, v0)
    sol = linflow.flow(model, linflow.Regression(X, y))
    beta_flow = np.asarray(sol.final.predictor())
    beta_dual = np.asarray(dual_minimise(model.potential(), X, y).value)
    np.testing.assert_allclose(beta_flow, beta_dual, atol=_FLOW_RTOL * np.abs(beta_dual).max())
    # And it is not the unbiased minimiser at the comparable scale.
    alpha = float(np.sqrt(np.mean(np.abs(np.asarray(model.u * model.v)))))
    assert np.abs(hypentropy_minimiser(X, y, alpha) - beta_dual).max() > 1e-3


@pytest.mark.parametrize("depth", [2, 3])
def test_diagonal_flow_with_a_biased_start_reaches_its_potentials_minimiser(depth):
    X, y, rng = _data(1)
    wp = 0.2 + 0.3 * rng.random(15)
    wm = 0.2 + 0.3 * rng.random(15)
    model = linflow.DiagonalNet(jnp.asarray(wp), jnp.asarray(wm), depth)
    beta_flow = np.asarray(linflow.flow(model, linflow.Regression(X, y)).final.predictor())
    beta_dual = np.asarray(dual_minimise(model.potential(), X, y).value)
    np.testing.assert_allclose(beta_flow, beta_dual, atol=_FLOW_RTOL * np.abs(beta_dual).max())


@pytest.mark.parametrize("depth, alpha", [(2, 0.05), (3, 0.3), (4, 1.0)])
def test_unbiased_diagonal_potential_has_the_hypentropy_minimiser(depth, alpha):
    # Two normalisations of one potential (flow units against Woodworth et al.'s): the same
    # minimiser to the solvers' accuracy (~1e-14 relative; 1e-10 for the conditioning).
    X, y, rng = _data(2)
    w0 = 0.5 + rng.random(15)
    model = linflow.DiagonalNet.unbiased(15, alpha, depth, w0)
    beta = np.asarray(dual_minimise(model.potential(), X, y).value)
    ref = np.asarray(hypentropy_minimiser(X, y, alpha, depth=depth, w0=w0))
    np.testing.assert_allclose(beta, ref, rtol=0, atol=1e-10 * np.abs(ref).max())


@pytest.mark.parametrize(
    "model",
    [
        linflow.HadamardNet(jnp.array([0.5, -0.2, 0.0, 1.0]), jnp.array([0.3, 0.4, 0.7, -1.0])),
        linflow.DiagonalNet(jnp.array([0.5, 0.2, 0.0, 1.0]), jnp.array([0.3, 0.4, 0.7, 0.0]), 2),
        linflow.DiagonalNet(jnp.array([0.5, -0.2, 0.0, 1.0]), jnp.array([0.3, 0.4, 0.7, 0.0]), 3),
        linflow.DiagonalNet(jnp.array([0.5, -0.2, 0.9, 1.0]), jnp.array([0.3, 0.4, 0.7, 0.1]), 4),
    ],
)
def test_potential_is_the_models_path_and_its_curvature_and_conjugate_agree(model):
    # beta = grad Phi*(s) is the predictor of the model on its closed-form path (the a_i, b_i
    # derived from the start), psi' = beta and psi'' = d beta / ds (central differences, error
    # ~ h^2 ~ 1e-12 relative to the terms' size).
    potential = model.potential()
    s = jnp.array([0.02, -0.03, 0.01, 0.015])
    np.testing.assert_allclose(
        potential.primal(s), model.at_dual_point(s).predictor(), rtol=1e-12, atol=1e-14
    )
    beta, psi, curv = potential.dual_terms(s, jnp.zeros(()))
    h = 1e-6
    _, psi_p, _ = potential.dual_terms(s + h, jnp.zeros(()))
    _, psi_m, _ = potential.dual_terms(s - h, jnp.zeros(()))
    np.testing.assert_allclose((psi_p - psi_m) / (2 * h), beta, rtol=1e-8, atol=1e-10)
    dbeta = jax.vmap(jax.grad(lambda si, i: potential.primal(s.at[i].set(si))[i]))(s, jnp.arange(4))
    np.testing.assert_allclose(curv, dbeta, rtol=1e-10, atol=1e-12)
    assert np.all(np.asarray(curv) >= 0)


def test_exponential_potential_value_is_the_legendre_transform():
    # grad Phi(beta) = s at beta = grad Phi*(s) (the conjugate pair), by autodiff of `value`.
    potential = ExponentialPotential(jnp.array([0.3, 0.5, 0.0]), jnp.array([0.2, 0.0, 0.4]), 2)
    s = jnp.array([0.3, -0.2, 0.1])
    beta = potential.primal(s)
    np.testing.assert_allclose(jax.grad(potential.value)(beta), s, rtol=1e-12)


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_hypentropy_value_gradient_is_the_dual_point(depth):
    potential = Hypentropy(0.7, depth, jnp.array([1.0, 0.5, 2.0]))
    s = jnp.array([0.3, -0.2, 0.01])
    beta = potential.primal(s)
    np.testing.assert_allclose(jax.grad(potential.value)(beta), s, rtol=1e-9)


def test_hypentropy_is_finite_from_alpha_1e_minus_300():
    beta = jnp.array([1.0, -2.0, 0.0])
    for depth in (2, 3, 5):
        potential = Hypentropy(1e-300, depth)
        assert np.isfinite(float(potential.value(beta)))
        b, psi, curv = potential.dual_terms(jnp.array([0.5, -0.2, 0.0]) / (depth - 1), -690.0)
        assert np.all(np.isfinite(b)) and np.all(np.isfinite(psi)) and np.all(np.isfinite(curv))


@pytest.mark.parametrize("depth", [2, 3])
def test_tensor_potential_value_gradient_is_the_dual_point(depth):
    potential = TensorPotential(0.8, jnp.array([1.0, 0.5, 1.2]), depth)
    s = jnp.array([0.3, -0.2, 0.05])
    beta = potential.primal(s)
    np.testing.assert_allclose(jax.grad(potential.value)(beta), s, rtol=1e-9)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ExponentialPotential(-jnp.ones(3), jnp.ones(3)), "`a`"),
        (lambda: ExponentialPotential(jnp.ones(3), jnp.ones(2)), "same shape"),
        (lambda: ExponentialPotential(jnp.ones(3), jnp.full(3, jnp.nan)), "`b`"),
        (lambda: DeepDiagonalPotential(jnp.ones(3), jnp.ones(3), 2), "depth"),
        (lambda: TensorPotential(0.5, jnp.array([1.0, 0.0]), 3), "eta"),
        (lambda: TensorPotential(-0.5, jnp.array([1.0, 2.0]), 3), "alpha"),
    ],
)
def test_bad_potentials_raise_value_error_naming_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_deep_potential_rounding_scale_is_its_formula(depth):
    # `DeepDiagonalPotential.rounding`: p c (u^(-p-1) + v^(-p-1)) |s| / 8 with
    # u = a - c s, v = b + c s (a, b = |w_pm(0)|^(2 - D), c = D(D - 2), p = D / (D - 2)),
    # formed with integer powers where p is an integer (D = 3, 4): against the float powers
    # of NumPy, on both sides of 0 and up to near the boundary u, v -> 0.
    rng = np.random.default_rng(depth)
    wp, wm = 0.1 + rng.random(8), 0.1 + rng.random(8)
    potential = DeepDiagonalPotential(jnp.asarray(wp), jnp.asarray(wm), depth)
    c, p = depth * (depth - 2), depth / (depth - 2)
    a, b = wp ** (2.0 - depth), wm ** (2.0 - depth)
    reach = np.minimum(a, b) / c  # |s| below which u, v > 0
    for frac in (-0.999, -0.5, -1e-3, 0.0, 1e-3, 0.5, 0.999):
        s = frac * reach * rng.random(8)
        u, v = a - c * s, b + c * s
        want = p * c * (u ** (-p - 1) + v ** (-p - 1)) * np.abs(s) / 8
        np.testing.assert_allclose(np.asarray(potential.rounding(jnp.asarray(s))), want, rtol=1e-13)
