"""Phase-diagram sweeps: grids of points evaluated in compiled, sharded, resumable chunks."""

from ._compile import clear_cache as clear_cache
from ._grid import Grid as Grid, Point as Point, UnknownAxisError as UnknownAxisError
from ._sweep import Sweep as Sweep
from ._table import SweepTable as SweepTable
