from ._base import AbstractModel as AbstractModel
from .diagonal import DiagonalNet as DiagonalNet, HadamardNet as HadamardNet
