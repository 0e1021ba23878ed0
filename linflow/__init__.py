"""linflow: the exact gradient flow of overparametrised linear networks and its implicit bias."""

import importlib.metadata

from . import (
    kernel as kernel,
    lifted as lifted,
    limits as limits,
    losses as losses,
    plot as plot,
    problems as problems,
    sweep as sweep,
)
from ._adjoint import ImplicitAdjoint as ImplicitAdjoint
from ._cache import configure_compilation_cache as _configure_compilation_cache
from ._flow import flow as flow
from ._gd import gd as gd
from ._linear_solver import LU as LU, with_lu as with_lu
from ._log_time import LogTime as LogTime
from ._progress import Progress as Progress
from ._results import RESULTS as RESULTS
from ._saveat import SaveAt as SaveAt
from ._saved_models import SavedModels as SavedModels
from ._solution import FlowSolution as FlowSolution
from ._solver import Auto as Auto, Fallback as Fallback, SolverChoice as SolverChoice
from ._steady_state import STOPS as STOPS
from ._stop import Converged as Converged
from .lifted import LiftedSymmetric as LiftedSymmetric, LiftedTwoLayer as LiftedTwoLayer
from .models import (
    AbstractModel as AbstractModel,
    DeepLinear as DeepLinear,
    DiagonalNet as DiagonalNet,
    HadamardNet as HadamardNet,
    Symmetric as Symmetric,
    TensorNet as TensorNet,
    TwoLayer as TwoLayer,
    balanced_init as balanced_init,
    gaussian_init as gaussian_init,
    invariant_set_init as invariant_set_init,
    lifted_matrix as lifted_matrix,
    scaled_gaussian as scaled_gaussian,
    spectral_init as spectral_init,
    width_scaled_init as width_scaled_init,
)
from .problems import (
    AbstractProblem as AbstractProblem,
    Classification as Classification,
    Factorization as Factorization,
    MatrixCompletion as MatrixCompletion,
    MatrixSensing as MatrixSensing,
    Regression as Regression,
    commuting_sensing as commuting_sensing,
    gaussian_sensing as gaussian_sensing,
    low_rank_matrix as low_rank_matrix,
    matrix_completion as matrix_completion,
    sparse_regression as sparse_regression,
)
from .sweep import Sweep as Sweep, SweepTable as SweepTable


# JAX's persistent compilation cache in the user's cache folder, unless configured otherwise
# (`LINFLOW_CACHE_DIR`, `LINFLOW_CACHE=0`, or JAX's own settings): see `linflow._cache`.
_configure_compilation_cache()

try:
    __version__ = importlib.metadata.version("linflow")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover
    __version__ = "0.0.0"
