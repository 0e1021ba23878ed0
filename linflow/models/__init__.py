from ._base import AbstractModel as AbstractModel
from .diagonal import DiagonalNet as DiagonalNet, HadamardNet as HadamardNet
from .factorization import (
    DeepLinear as DeepLinear,
    Symmetric as Symmetric,
    TwoLayer as TwoLayer,
)
from .inits import (
    balanced_init as balanced_init,
    gaussian_init as gaussian_init,
    invariant_set_init as invariant_set_init,
    spectral_init as spectral_init,
    width_scaled_init as width_scaled_init,
)
from .lifted_matrix import lifted_matrix as lifted_matrix
from .scaled_gaussian import scaled_gaussian as scaled_gaussian
from .tensor import TensorNet as TensorNet
