r"""Problems: data together with a loss on the effective linear predictor.

A problem sees only the model's predictor (a vector $\beta$ or a matrix $\Theta$); the
parametrisation is the model's business. This keeps every model usable with every problem
whose predictor shape matches.
"""

from ._base import AbstractProblem as AbstractProblem
from .classification import Classification as Classification
from .completion import MatrixCompletion as MatrixCompletion
from .factorization import Factorization as Factorization
from .generators import sparse_regression as sparse_regression
from .matrix_instances import (
    commuting_sensing as commuting_sensing,
    gaussian_sensing as gaussian_sensing,
    low_rank_matrix as low_rank_matrix,
    matrix_completion as matrix_completion,
)
from .regression import Regression as Regression
from .sensing import MatrixSensing as MatrixSensing
