"""Matrix sensing / completion problems, their random instances and bad inputs."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import linflow


def test_sensing_loss_and_relative_excess_on_noninterpolable_data(getkey):
    # N = 12 > d1*d2 = 6 Gaussian measurements with noise: no M fits, L* > 0.
    A = jr.normal(getkey(), (12, 2, 3))
    y = jr.normal(getkey(), (12,))
    prob = linflow.MatrixSensing(A, y)
    M = jr.normal(getkey(), (2, 3))
    Amat = np.asarray(A).reshape(12, 6)
    z = Amat @ np.asarray(M).reshape(-1)
    np.testing.assert_allclose(prob.loss(M), 0.5 * np.sum((z - y) ** 2), rtol=1e-13)
    # Truth from least squares: L* and sqrt((L - L*)/(L(0) - L*)).
    m_star = np.linalg.lstsq(Amat, np.asarray(y), rcond=None)[0]
    L_star = 0.5 * np.sum((Amat @ m_star - y) ** 2)
    want = np.sqrt((prob.loss(M) - L_star) / (0.5 * np.sum(np.asarray(y) ** 2) - L_star))
    np.testing.assert_allclose(prob.relative_excess(M), want, rtol=1e-10)
    assert prob.relative_excess(jnp.asarray(m_star).reshape(2, 3)) < 1e-12


def test_completion_matches_sensing_with_indicator_measurements(getkey):
    prob, Y = linflow.matrix_completion(getkey(), (4, 5), 2, 9)
    M = jr.normal(getkey(), (4, 5))
    sens = prob.as_sensing()
    np.testing.assert_allclose(prob.loss(M), sens.loss(M), rtol=1e-13)
    np.testing.assert_allclose(prob.relative_excess(M), sens.relative_excess(M), rtol=1e-12)
    assert prob.loss(Y) == 0.0
    assert float(prob.mask().sum()) == 9
    assert np.linalg.matrix_rank(np.asarray(Y)) == 2


def test_completion_instance_has_distinct_entries(getkey):
    # 24 of 25 entries: a draw with replacement would almost surely repeat one.
    prob, _ = linflow.matrix_completion(getkey(), (5, 5), 1, 24)
    flat = np.asarray(prob.rows) * 5 + np.asarray(prob.cols)
    assert len(np.unique(flat)) == 24


def test_commuting_sensing_instance(getkey):
    prob, M, Q = linflow.commuting_sensing(getkey(), 4, 3, 2)
    A = np.asarray(prob.A)
    for i in range(3):
        np.testing.assert_allclose(A[i], A[i].T, atol=1e-14)
        for j in range(3):
            np.testing.assert_allclose(A[i] @ A[j], A[j] @ A[i], atol=1e-12)
    assert prob.loss(M) < 1e-25
    assert np.linalg.matrix_rank(np.asarray(M)) == 2


def test_lifted_matrix_blocks(getkey):
    model = linflow.scaled_gaussian(getkey(), (3, 2), 5, 0.7)
    Mb = linflow.lifted_matrix(model)
    U, V = model.U, model.V
    np.testing.assert_allclose(Mb[:3, 3:], U @ V.T, atol=1e-14)
    np.testing.assert_allclose(Mb[:3, :3], U @ U.T, atol=1e-14)
    np.testing.assert_allclose(Mb[3:, 3:], V @ V.T, atol=1e-14)
    # Sec. 6: N(0, alpha^2) entries give a lifted matrix ~ alpha^2 k I for large k.
    big = linflow.scaled_gaussian(getkey(), (2, 2), 20000, 0.1)
    np.testing.assert_allclose(
        linflow.lifted_matrix(big) / (0.01 * 20000), np.eye(4), atol=0.05
    )  # entries fluctuate by ~ 1/sqrt(k) = 0.007 relative; 0.05 is > 6 sd


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(rows=[0, 5], cols=[0, 1], values=[1.0, 2.0], shape=(3, 3)), "rows"),
        (dict(rows=[0, 1], cols=[-1, 1], values=[1.0, 2.0], shape=(3, 3)), "cols"),
        (dict(rows=[0, 0], cols=[1, 1], values=[1.0, 2.0], shape=(3, 3)), "rows`/`cols"),
        (dict(rows=[0, 1], cols=[1, 1], values=[1.0], shape=(3, 3)), "values"),
        (dict(rows=[0, 1], cols=[1, 1], values=[1.0, 2.0], shape=(3, 0)), "shape"),
    ],
)
def test_completion_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        linflow.MatrixCompletion(**kwargs)


def test_sensing_bad_input():
    with pytest.raises(ValueError, match="`A`"):
        linflow.MatrixSensing(jnp.ones((3, 4)), jnp.ones(3))
    with pytest.raises(ValueError, match="`y`"):
        linflow.MatrixSensing(jnp.ones((3, 2, 2)), jnp.ones((3, 1)))
    with pytest.raises(ValueError, match="`A`"):
        linflow.MatrixSensing(jnp.ones((3, 2, 2)), jnp.ones(4))


def test_width_zero_and_bad_generators(getkey):
    with pytest.raises(ValueError, match="`width`"):
        linflow.scaled_gaussian(getkey(), (3, 3), 0, 0.1)
    with pytest.raises(ValueError, match="width"):
        linflow.TwoLayer(jnp.ones((3, 0)), jnp.ones((3, 0)))
    with pytest.raises(ValueError, match="`n_observed`"):
        linflow.matrix_completion(getkey(), (2, 2), 1, 5)
    with pytest.raises(ValueError, match="`rank`"):
        linflow.matrix_completion(getkey(), (2, 2), 3, 2)
    with pytest.raises(ValueError, match="commut"):
        linflow.limits.schatten_q_minimiser(
            jr.normal(getkey(), (2, 3, 3)) * 0
            + jnp.stack([jnp.diag(jnp.arange(3.0)), jnp.ones((3, 3)) - jnp.eye(3)]),
            jnp.ones(2),
            1.0,
        )
