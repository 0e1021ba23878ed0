"""`linflow.TensorNet` (Yun et al. 2021): definitions, data tensors, conservation laws, errors."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from tensor_flows import run

import linflow
from linflow.models.tensor import dft_matrix


def _star(a, b):
    """Yun et al. eq. (12): [a * b]_i = sum_{j=1}^k a_{(i+j-1) mod d} b_j (1-based)."""
    d, k = len(a), len(b)
    return np.array([sum(a[(i + j) % d] * b[j] for j in range(k)) for i in range(d)])


def _f_definition(model, x):
    """f(x; Theta) written out from eqs. (10)-(12) with numpy loops."""
    layers = [np.asarray(v) for v in model.layers]
    x = np.asarray(x)
    if model.kind == "diagonal":
        h = x
        for w in layers[:-1]:
            h = h * w
        return h @ layers[-1]
    if model.kind == "convolution":
        h = x
        for w in layers[:-1]:
            h = _star(h, w)
        return h @ layers[-1]
    h = x
    for W in layers[:-1]:
        h = h @ W
    return h @ layers[-1]


MODELS = [
    ("diagonal", 4, 2, None),
    ("diagonal", 3, 4, None),
    ("convolution", 5, 2, None),
    ("convolution", 5, 3, None),
    ("convolution", 5, 3, (2, 3)),
    ("convolution", 4, 2, (1,)),
    ("convolution", 70, 2, (3,)),  # d > 64: the FFT path of `predictor()`
    ("fully_connected", 3, 2, None),
    ("fully_connected", 3, 3, None),
]


def _make(kind, d, depth, filters, key, alpha=0.7):
    if kind == "convolution":
        return linflow.TensorNet.convolution(key, d, depth, alpha, filters, zero_last=False)
    return getattr(linflow.TensorNet, kind)(key, d, depth, alpha, zero_last=False)


@pytest.mark.parametrize("kind,d,depth,filters", MODELS)
def test_predictor_and_data_tensor_match_the_definitions(kind, d, depth, filters, getkey):
    model = _make(kind, d, depth, filters, getkey())
    x = jr.normal(getkey(), (d,))
    f = _f_definition(model, x)
    # beta from FFT / products / matrix chain against the layer-by-layer definition.
    np.testing.assert_allclose(float(x @ model.predictor()), f, rtol=1e-12, atol=1e-13)
    # M(x) o (v_1, ..., v_L) = f(x) (eq. (6)).
    M = model.data_tensor(x)
    val = M
    for v in model.vectors():
        val = jnp.tensordot(v, val, axes=(0, 0))
    np.testing.assert_allclose(float(val), f, rtol=1e-12, atol=1e-13)
    # The data tensors written in Sec. 3: diagonal [M]_{j..j} = x_j, convolution
    # [M]_{j_1..j_L} = x_{(sum_l j_l - L + 1) mod d} (1-based).
    if kind == "diagonal":
        want = np.zeros((d,) * depth)
        for j in range(d):
            want[(j,) * depth] = x[j]
        np.testing.assert_array_equal(np.asarray(M), want)
    if kind == "convolution":
        idx = np.indices(M.shape).sum(axis=0) % d
        np.testing.assert_array_equal(np.asarray(M), np.asarray(x)[idx])


def test_full_length_convolution_is_diagonal_in_the_dft_basis(getkey):
    # Assumption 1 for convolutions (App. D.3): M(x) = sum_j [Sx]_j u_j (x) u_j with
    # S = d^{(L-1)/2} F, U = F^* (here L = 2: M(x) = F^* diag(Sx) F^*^T).
    d = 5
    model = linflow.TensorNet.convolution(getkey(), d, 2, 1.0)
    x = jr.normal(getkey(), (d,))
    F = np.asarray(dft_matrix(d))
    M = np.asarray(model.data_tensor(x))
    rebuilt = np.conj(F) @ np.diag(np.sqrt(d) * F @ np.asarray(x)) @ np.conj(F).T
    np.testing.assert_allclose(rebuilt.imag, 0, atol=1e-12)
    np.testing.assert_allclose(rebuilt.real, M, atol=1e-12)


@pytest.mark.parametrize(
    "kind,d,depth,filters",
    [("diagonal", 2, 3, None), ("convolution", 4, 3, None), ("convolution", 2, 2, (1,))]
    + [("fully_connected", 2, 3, None)],
)
def test_flow_conserves_the_layer_imbalances(kind, d, depth, filters, getkey):
    # App. F.2.1 / H: d/dt [U_l^T v_l]_j^2 is the same for every layer l (and for fully
    # connected layers d/dt W_l^T W_l = d/dt W_{l+1} W_{l+1}^T), so the differences are
    # constant. The flow moves the parameters by O(1); the drift must be at the level of the
    # solver tolerance (1e-12) times the O(1) parameter scale: 1e-9 leaves a wide margin.
    model = _make(kind, d, depth, filters, getkey(), alpha=1.0)
    # Same data shapes as test_tensor_limits.py (one compilation per structure).
    X = jr.normal(getkey(), (1 if d == 2 else 2, d))
    y = jnp.array([1.0, -0.5])[: X.shape[0]]
    sol = run(model, linflow.Regression(X, y))
    assert sol.result == linflow.RESULTS.converged
    scale = max(float(jnp.max(jnp.abs(v))) ** 2 for v in sol.final.layers)
    for name, c in sol.conserved.items():
        drift = float(jnp.max(jnp.abs(c - c[:1])))
        assert drift <= 1e-9 * scale, (name, drift)
    if kind == "convolution" and filters is None:
        assert "dft_imbalance_1" in sol.conserved
    # and the flow really moved (the law is not trivially satisfied)
    assert float(jnp.max(jnp.abs(sol.final.layers[-1] - model.layers[-1]))) > 1e-2


def test_bad_inputs_raise_clear_errors(getkey):
    key = getkey()
    with pytest.raises(ValueError, match="filter_sizes"):
        linflow.TensorNet.convolution(key, 3, 2, 1.0, filter_sizes=(4,))
    with pytest.raises(ValueError, match="k_l <= d"):
        linflow.TensorNet((jnp.ones(4), jnp.ones(3)), "convolution")
    with pytest.raises(ValueError, match="depth"):
        linflow.TensorNet.diagonal(key, 3, 1, 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        linflow.TensorNet((jnp.ones(3),), "diagonal")
    with pytest.raises(ValueError, match="kind"):
        linflow.TensorNet((jnp.ones(3), jnp.ones(3)), "recurrent")
    with pytest.raises(ValueError, match="alpha"):
        linflow.TensorNet.fully_connected(key, 3, 2, 0.0)
    with pytest.raises(ValueError, match="compose"):
        linflow.TensorNet((jnp.ones((3, 2)), jnp.ones(3)), "fully_connected")
    with pytest.raises(ValueError, match="even"):
        linflow.TensorNet.from_eta("convolution", jnp.array([1.0, 2.0, 3.0]), 2, 1.0)
    with pytest.raises(ValueError, match="fully connected"):
        linflow.TensorNet.from_eta("fully_connected", jnp.ones(3), 2, 1.0)
    with pytest.raises(ValueError, match="labels"):
        linflow.Classification(jnp.ones((2, 3)), jnp.array([1.0, 0.0]))
    model = linflow.TensorNet.diagonal(key, 3, 2, 1.0)
    with pytest.raises(ValueError, match="shape"):
        linflow.flow(model, linflow.Regression(jnp.ones((2, 4)), jnp.ones(2)))
