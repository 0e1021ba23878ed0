"""Phase-diagram sweeps: grids of points evaluated in compiled, sharded, resumable chunks."""

from ._backend import AbstractBackend as AbstractBackend, Local as Local
from ._compile import clear_cache as clear_cache
from ._grid import Grid as Grid, Point as Point, UnknownAxisError as UnknownAxisError
from ._ray import Ray as Ray
from ._storage import SweepMismatchError as SweepMismatchError
from ._sweep import IncompleteSweepWarning as IncompleteSweepWarning, Sweep as Sweep
from ._table import SweepTable as SweepTable
