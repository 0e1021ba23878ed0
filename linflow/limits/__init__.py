"""Analytic limits and closed forms: pure functions, each citing the result it implements."""

from .bounds import (
    imbalance_level as imbalance_level,
    margin_rate as margin_rate,
    margin_rate_bound as margin_rate_bound,
    min_rate_bound as min_rate_bound,
    min_width_bound as min_width_bound,
    width_law_exponent as width_law_exponent,
)
from .riccati import (
    isotropic_imbalance_solution as isotropic_imbalance_solution,
    regularised_factorization_loss as regularised_factorization_loss,
    spectral_factorization_solution as spectral_factorization_solution,
    spectral_rate as spectral_rate,
    spectral_singular_values as spectral_singular_values,
    symmetric_riccati_solution as symmetric_riccati_solution,
    symmetric_spectral_solution as symmetric_spectral_solution,
)
from .two_layer import (
    DataSVD as DataSVD,
    data_svd as data_svd,
    invariant_set_distance as invariant_set_distance,
    min_error as min_error,
    min_imbalance as min_imbalance,
    min_limit as min_limit,
    min_norm_solution as min_norm_solution,
    optimal_loss as optimal_loss,
    split_weights as split_weights,
)
