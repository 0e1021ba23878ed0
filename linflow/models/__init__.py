from ._base import AbstractModel as AbstractModel
from .diagonal import DiagonalNet as DiagonalNet, HadamardNet as HadamardNet
from .factorization import (
    DeepLinear as DeepLinear,
    Symmetric as Symmetric,
    TwoLayer as TwoLayer,
)
from .tensor import TensorNet as TensorNet
