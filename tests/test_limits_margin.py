"""The one max-margin solver (`max_margin_solution`) behind `max_margin` and
`tensor_margin_direction`, against an independent interior-point QP/LP (cvxpy + Clarabel) and
against the KKT conditions of the margin problem."""

import jax.numpy as jnp
import numpy as np
import pytest

import linflow
from linflow.limits import max_margin, max_margin_solution, tensor_margin_direction
from linflow.limits.tensor import convolution_transform


def _separable(seed, n, d):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, np.sign(X @ rng.standard_normal(d))


def _cvxpy_direction(X, labels, norm, T=None):
    """min ||w|| (or ||Tw||_1) s.t. diag(labels) X w >= 1 by Clarabel (interior point)."""
    cp = pytest.importorskip("cvxpy")
    Z = labels[:, None] * X
    w = cp.Variable(X.shape[1])
    obj = cp.sum_squares(w) if norm == "l2" else cp.norm1(w if T is None else T @ w)
    cp.Problem(cp.Minimize(obj), [Z @ w >= 1]).solve(solver=cp.CLARABEL)
    return w.value


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 5, 6])
@pytest.mark.parametrize("n, d", [(8, 5), (30, 6)])
def test_fully_connected_margin_direction_matches_an_independent_qp(depth, seed, n, d):
    # Yun et al. 2021, Cor. 1: at every depth the direction is the l2 max margin. (8, 5) is the
    # size on which an SLSQP solve failed with "Positive directional derivative"; (30, 6) has
    # more points than dimensions. Clarabel's default tolerances (1e-8) bound its error on the
    # direction to ~1e-7; the library's answer is exact to rounding (checked by the KKT test).
    X, labels = _separable(seed, n, d)
    ref = _cvxpy_direction(X, labels, "l2")
    got = np.asarray(tensor_margin_direction("fully_connected", X, labels, depth=depth))
    np.testing.assert_allclose(got, ref / np.linalg.norm(ref), atol=1e-6)


@pytest.mark.parametrize("seed", [0, 4])
def test_l2_margin_satisfies_kkt_to_rounding(seed):
    # KKT of min |w|^2/2 s.t. Zw >= 1: w = Z_A^T lam with lam >= 0 and Z_A w = 1 on the active
    # set A. After the polish both hold to rounding (1e-12), not to a solver tolerance.
    X, labels = _separable(seed, 20, 7)
    sol = max_margin_solution(X, labels, "l2")
    assert sol.result == linflow.RESULTS.converged
    w = np.asarray(sol.value) / float(sol.stats["margin"])  # the primal optimum, margins >= 1
    Z = labels[:, None] * X
    m = Z @ w
    assert m.min() >= 1 - 1e-12
    active = m <= 1 + 1e-9
    assert active.sum() == int(sol.stats["support_vectors"])
    np.testing.assert_allclose(m[active], 1.0, atol=1e-12)
    lam, *_ = np.linalg.lstsq(Z[active].T, w, rcond=None)
    np.testing.assert_allclose(Z[active].T @ lam, w, atol=1e-12 * np.linalg.norm(w))
    assert np.all(lam > 0)
    np.testing.assert_allclose(float(sol.stats["margin"]), (Z @ sol.value).min(), rtol=1e-12)


def test_convolution_margin_direction_matches_an_independent_lp():
    # Cor. 3 on even data: min ||Re(F) z||_1 s.t. margins >= 1, against Clarabel.
    rng = np.random.default_rng(3)
    d = 6
    X = rng.standard_normal((5, d))
    X = 0.5 * (X + np.roll(X[:, ::-1], 1, axis=1))  # even rows: x_(d-i) mod d = x_i
    labels = np.sign(X @ rng.standard_normal(d))
    T = np.asarray(convolution_transform(d, 2)) / d**0.5  # Re(F)
    ref = _cvxpy_direction(X, labels, "l1", T)
    got = np.asarray(tensor_margin_direction("convolution", X, labels))
    # The optimum of an l1 problem can be a face; compare the objective and the margin, which
    # are unique, and the direction when the face is a vertex (measured: it is here).
    np.testing.assert_allclose(got, ref / np.linalg.norm(ref), atol=1e-6)


@pytest.mark.parametrize("norm", ["l2", "l1"])
@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_margin_direction_is_scale_invariant(norm, scale):
    # The direction of the max margin does not depend on the data scale; the margin scales.
    X, labels = _separable(7, 10, 4)
    ref = max_margin_solution(X, labels, norm)
    sol = max_margin_solution(scale * X, labels, norm)
    np.testing.assert_allclose(sol.value, ref.value, atol=1e-12)
    np.testing.assert_allclose(sol.stats["margin"], scale * ref.stats["margin"], rtol=1e-12)


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_non_separable_data_give_a_clear_error_or_a_result(norm):
    X, labels = _separable(2, 12, 3)
    X = np.vstack([X, X[:1]])  # the same point with the opposite label
    labels = np.concatenate([labels, -labels[:1]])
    with pytest.raises(ValueError, match="not linearly separable"):
        max_margin_solution(X, labels, norm)
    with pytest.raises(ValueError, match="not linearly separable"):
        max_margin(X, labels, norm)
    sol = max_margin_solution(X, labels, norm, throw=False)
    assert sol.result == linflow.RESULTS.not_separable
    assert not sol.converged
    assert np.all(np.isnan(np.asarray(sol.value)))


def test_max_margin_is_the_solution_value():
    X, labels = _separable(11, 9, 5)
    for norm in ("l2", "l1"):
        np.testing.assert_array_equal(
            max_margin(X, labels, norm), max_margin_solution(X, labels, norm).value
        )


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: max_margin_solution(np.ones((0, 3)), np.ones(0)), "X"),
        (lambda: max_margin_solution(np.full((2, 3), np.inf), np.ones(2)), "X"),
        (lambda: max_margin_solution(np.zeros((2, 3)), np.ones(2)), "X"),
        (lambda: max_margin_solution(np.ones((2, 3)), np.ones(3)), "labels"),
        (
            lambda: max_margin_solution(np.ones((2, 3)), np.ones(2), transform=np.eye(3)),
            "transform",
        ),
        (
            lambda: max_margin_solution(np.ones((2, 3)), np.ones(2), "l1", transform=np.eye(2)),
            "transform",
        ),
        (lambda: tensor_margin_direction("dense", np.ones((2, 3)), np.ones(2)), "kind"),
        (lambda: tensor_margin_direction("diagonal", np.ones((2, 3)), np.ones(2), 1), "depth"),
    ],
)
def test_bad_margin_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_direction_is_a_jax_array_of_the_data_dimension():
    X, labels = _separable(1, 6, 3)
    out = tensor_margin_direction("diagonal", jnp.asarray(X), jnp.asarray(labels))
    assert isinstance(out, jnp.ndarray) and out.shape == (3,)
    np.testing.assert_allclose(jnp.linalg.norm(out), 1.0, rtol=1e-14)
