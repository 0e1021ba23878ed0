"""The answer of a limit computed by an eager convex program (LP, QP, SDP)."""

import equinox as eqx
from jaxtyping import Array

from .._results import RESULTS


class ConvexSolution(eqx.Module):
    r"""The answer of a limit solved as a convex program (`max_margin_solution`,
    `min_nuclear_norm_solution`): the same three fields as every solver of the library.

    **Fields:**

    - `value`: the limit (a direction, a matrix, ...); NaN where `result` is not
      `RESULTS.converged`.
    - `result`: a `linflow.RESULTS`: `converged`, or why not (`not_separable`,
      `solver_failed`).
    - `stats`: scalar arrays describing the solve (see each solver: e.g. `num_steps`, the
      constraint residual).
    """

    value: Array
    result: RESULTS
    stats: dict[str, Array]

    @property
    def converged(self) -> bool:
        """Whether the solve succeeded (only for an unbatched solution)."""
        return bool(self.result == RESULTS.converged)
