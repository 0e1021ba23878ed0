"""linflow: the exact gradient flow of overparametrised linear networks and its implicit bias."""

import importlib.metadata

from . import lifted as lifted, limits as limits, losses as losses, problems as problems
from ._flow import flow as flow
from ._gd import gd as gd
from ._results import RESULTS as RESULTS
from ._saveat import SaveAt as SaveAt
from ._solution import FlowSolution as FlowSolution
from ._solver import Auto as Auto, SolverChoice as SolverChoice
from ._stop import Converged as Converged
from .lifted import LiftedSymmetric as LiftedSymmetric, LiftedTwoLayer as LiftedTwoLayer
from .models import (
    AbstractModel as AbstractModel,
    DeepLinear as DeepLinear,
    DiagonalNet as DiagonalNet,
    HadamardNet as HadamardNet,
    Symmetric as Symmetric,
    TwoLayer as TwoLayer,
)
from .problems import (
    AbstractProblem as AbstractProblem,
    Classification as Classification,
    Regression as Regression,
    sparse_regression as sparse_regression,
)


try:
    __version__ = importlib.metadata.version("linflow")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover
    __version__ = "0.0.0"
