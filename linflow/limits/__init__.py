"""Analytic limits and closed forms: pure functions, each citing the result it implements."""

from .tensor import (
    convolution_regression_limit as convolution_regression_limit,
    convolution_transform as convolution_transform,
    diagonal_regression_limit as diagonal_regression_limit,
    sensing_regression_limit as sensing_regression_limit,
    tensor_H as tensor_H,
    tensor_h as tensor_h,
    tensor_h_inverse as tensor_h_inverse,
    tensor_h_radius as tensor_h_radius,
    tensor_margin_direction as tensor_margin_direction,
    tensor_pq as tensor_pq,
    tensor_Q as tensor_Q,
    tensor_regression_limit as tensor_regression_limit,
    two_layer_single_point_limit as two_layer_single_point_limit,
)
