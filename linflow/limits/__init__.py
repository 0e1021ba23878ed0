"""Analytic limits and closed forms: pure functions, each citing the result it implements."""

from .regimes import (
    alpha_l1_threshold as alpha_l1_threshold,
    alpha_l2_threshold as alpha_l2_threshold,
    q_depth as q_depth,
    sparse_dense_ratio as sparse_dense_ratio,
)
from .schatten import (
    joint_eigenbasis as joint_eigenbasis,
    qmu_minimiser as qmu_minimiser,
    schatten_q as schatten_q,
    schatten_q_minimiser as schatten_q_minimiser,
)
