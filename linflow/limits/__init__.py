"""Analytic limits and closed forms: pure functions, each citing the result it implements."""

from .hypentropy import (
    hypentropy as hypentropy,
    hypentropy_kkt_residual as hypentropy_kkt_residual,
    hypentropy_minimiser as hypentropy_minimiser,
)
from .norms import max_margin as max_margin, min_l1 as min_l1, min_l2 as min_l2
