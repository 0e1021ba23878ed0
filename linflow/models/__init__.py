from ._base import AbstractModel as AbstractModel
from .diagonal import DiagonalNet as DiagonalNet, HadamardNet as HadamardNet
from .factorization import (
    DeepLinear as DeepLinear,
    Symmetric as Symmetric,
    TwoLayer as TwoLayer,
)
from .lifted_matrix import lifted_matrix as lifted_matrix
from .scaled_gaussian import scaled_gaussian as scaled_gaussian
from .tensor import TensorNet as TensorNet
