"""Analytic limits and closed forms: pure functions, each citing the result it implements."""

from ._convex_solution import ConvexSolution as ConvexSolution
from .bounds import (
    imbalance_level as imbalance_level,
    margin_rate as margin_rate,
    margin_rate_bound as margin_rate_bound,
    min_rate_bound as min_rate_bound,
    min_width_bound as min_width_bound,
    width_law_exponent as width_law_exponent,
)
from .diagonal_paths import (
    DeepDiagonalPotential as DeepDiagonalPotential,
    ExponentialPotential as ExponentialPotential,
)
from .dual import (
    RESULTS as RESULTS,
    LimitSolution as LimitSolution,
    dual_minimise as dual_minimise,
)
from .hypentropy import (
    Hypentropy as Hypentropy,
    hypentropy as hypentropy,
    hypentropy_kkt_residual as hypentropy_kkt_residual,
    hypentropy_minimiser as hypentropy_minimiser,
)
from .margin import (
    max_margin_solution as max_margin_solution,
    tensor_margin_direction as tensor_margin_direction,
)
from .norms import max_margin as max_margin, min_l1 as min_l1, min_l2 as min_l2
from .nuclear import (
    min_nuclear_norm as min_nuclear_norm,
    min_nuclear_norm_solution as min_nuclear_norm_solution,
)
from .potential import AbstractPotential as AbstractPotential
from .regimes import (
    alpha_l1_threshold as alpha_l1_threshold,
    alpha_l2_threshold as alpha_l2_threshold,
    q_depth as q_depth,
    sparse_dense_ratio as sparse_dense_ratio,
)
from .riccati import (
    isotropic_imbalance_solution as isotropic_imbalance_solution,
    regularised_factorization_loss as regularised_factorization_loss,
    spectral_defect as spectral_defect,
    spectral_factorization_solution as spectral_factorization_solution,
    spectral_rate as spectral_rate,
    spectral_singular_values as spectral_singular_values,
    symmetric_riccati_solution as symmetric_riccati_solution,
    symmetric_spectral_solution as symmetric_spectral_solution,
)
from .saddle_to_saddle import (
    SaddleToSaddle as SaddleToSaddle,
    saddle_to_saddle as saddle_to_saddle,
)
from .schatten import (
    joint_eigenbasis as joint_eigenbasis,
    qmu_minimiser as qmu_minimiser,
    schatten_q as schatten_q,
    schatten_q_minimiser as schatten_q_minimiser,
)
from .single_point import two_layer_single_point_limit as two_layer_single_point_limit
from .tensor import (
    TensorPotential as TensorPotential,
    convolution_regression_limit as convolution_regression_limit,
    convolution_transform as convolution_transform,
    diagonal_regression_limit as diagonal_regression_limit,
    sensing_regression_limit as sensing_regression_limit,
    tensor_H as tensor_H,
    tensor_h as tensor_h,
    tensor_h_inverse as tensor_h_inverse,
    tensor_h_radius as tensor_h_radius,
    tensor_pq as tensor_pq,
    tensor_Q as tensor_Q,
    tensor_regression_limit as tensor_regression_limit,
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
