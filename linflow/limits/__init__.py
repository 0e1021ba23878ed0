"""Analytic limits and closed forms: pure functions, each citing the result it implements."""

from .hypentropy import (
    hypentropy as hypentropy,
    hypentropy_kkt_residual as hypentropy_kkt_residual,
    hypentropy_minimiser as hypentropy_minimiser,
)
from .norms import max_margin as max_margin, min_l1 as min_l1, min_l2 as min_l2
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
