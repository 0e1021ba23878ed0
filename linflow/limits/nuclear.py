r"""The minimum-nuclear-norm completion: the conjectured small-initialisation limit of matrix
completion with factorised models (Gunasekar et al. 2017; Woodworth et al. 2020, Sec. 6).

$$M^\star = \arg\min\|M\|_* \quad\text{s.t.}\quad M_{ij} = v_{ij}\ \ ((i,j)\in\Omega),$$

solved as a semidefinite program through cvxpy (an optional dependency:
`pip install linflow[cvx]`), with Clarabel's interior-point method when it is installed.
"""

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .._checks import as_float_array
from .._results import RESULTS
from ._convex_solution import ConvexSolution


def _cvxpy():
    try:
        import cvxpy
    except ImportError as e:
        raise ImportError(
            "The min-nuclear-norm limit solves a semidefinite program with cvxpy, which is not "
            "installed: `pip install linflow[cvx]` (or `pip install cvxpy`)."
        ) from e
    return cvxpy


def _check_entries(rows, cols, values, shape):
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError as e:
        raise TypeError(f"`shape` must be a pair of ints (d1, d2), got {shape!r}.") from e
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"`shape` must be a pair of positive ints (d1, d2), got {shape}.")
    values = np.asarray(as_float_array(values, "values", ndim=1), dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("`values` contains NaN or inf; the observations must be finite.")
    idx = []
    for name, arr, size in (("rows", rows, shape[0]), ("cols", cols, shape[1])):
        a = np.asarray(arr)
        if a.shape != values.shape:
            raise ValueError(
                f"`{name}` must have shape {values.shape} (one index per value), got {a.shape}."
            )
        if a.size and not np.all(a == np.round(a)):
            raise ValueError(f"`{name}` must hold integer indices.")
        a = a.astype(np.int64)
        if a.size and (a.min() < 0 or a.max() >= size):
            raise ValueError(f"`{name}` holds indices outside [0, {size}) for `shape`={shape}.")
        idx.append(a)
    r, c = idx
    if np.unique(r * shape[1] + c).size != r.size:
        raise ValueError("`rows`, `cols` list an entry twice: each observed entry once.")
    return r, c, values, shape


def min_nuclear_norm_solution(
    rows: Int[ArrayLike, " _N"],
    cols: Int[ArrayLike, " _N"],
    values: Float[ArrayLike, " _N"],
    shape: tuple[int, int],
    *,
    throw: bool = True,
) -> ConvexSolution:
    r"""The minimum-nuclear-norm completion $\arg\min\|M\|_*$ s.t. $M_{ij} = v_{ij}$ on the
    observed entries (module docstring): the limit that Gunasekar et al. (2017) conjecture
    for gradient flow on $UV^\top$ (or $UU^\top$) from an initialisation of scale
    $\alpha\to0$, and that Woodworth et al. (2020, Sec. 6, Fig. 5) observe.

    Solved eagerly with cvxpy (`cp.normNuc`, an SDP). Where a rank-$r$ matrix is observed on
    enough entries (about $r(d_1 + d_2)\log d$, incoherent), this recovers it exactly
    (Candès & Recht 2009), to the solver's tolerance (~1e-8 relative with Clarabel).

    **Arguments:**

    - `rows`, `cols`: integer indices of the observed entries, shape `(N,)`, no repeats
      (a `linflow.MatrixCompletion` problem holds them as `.rows`, `.cols`).
    - `values`: the observed values, shape `(N,)`.
    - `shape`: `(d1, d2)`.
    - `throw`: raise `RuntimeError` if the solver does not report an optimal solution;
      with `throw=False` read `result`.

    **Returns:**

    A `ConvexSolution`: `value` is $M^\star$, shape `(d1, d2)`; `stats` holds `nuclear_norm`,
    `constraint_residual` ($\max|M_{ij} - v_{ij}|$ over $\Omega$) and `num_steps` (the
    solver's iterations).

    **Raises:**

    `ImportError` naming the `cvx` extra when cvxpy is not installed.
    """
    r, c, v, shape = _check_entries(rows, cols, values, shape)
    cp = _cvxpy()
    M = cp.Variable(shape)
    constraints = [M[r, c] == v] if r.size else []
    problem = cp.Problem(cp.Minimize(cp.normNuc(M)), constraints)
    solver = "CLARABEL" if "CLARABEL" in cp.installed_solvers() else None
    try:
        problem.solve(solver=solver)
        ok = problem.status == cp.OPTIMAL and M.value is not None
    except cp.error.SolverError:
        ok = False
    if not ok:
        if throw:
            raise RuntimeError(
                f"min_nuclear_norm_solution: {RESULTS[RESULTS.solver_failed]} "
                f"(cvxpy status: {problem.status})."
            )
        nan = jnp.asarray(np.nan)
        return ConvexSolution(
            value=jnp.full(shape, jnp.nan),
            result=RESULTS.solver_failed,
            stats={"nuclear_norm": nan, "constraint_residual": nan, "num_steps": jnp.asarray(-1)},
        )
    value = np.asarray(M.value)
    residual = float(np.max(np.abs(value[r, c] - v))) if r.size else 0.0
    steps = problem.solver_stats.num_iters
    stats = {
        "nuclear_norm": jnp.asarray(np.linalg.norm(value, "nuc")),
        "constraint_residual": jnp.asarray(residual),
        "num_steps": jnp.asarray(-1 if steps is None else int(steps)),
    }
    return ConvexSolution(value=jnp.asarray(value), result=RESULTS.converged, stats=stats)


def min_nuclear_norm(
    rows: Int[ArrayLike, " _N"],
    cols: Int[ArrayLike, " _N"],
    values: Float[ArrayLike, " _N"],
    shape: tuple[int, int],
) -> Float[Array, "d1 d2"]:
    r"""The minimum-nuclear-norm completion $\arg\min\|M\|_*$ s.t. $M_{ij} = v_{ij}$
    ($(i,j)\in\Omega$): `min_nuclear_norm_solution(rows, cols, values, shape).value`, the
    conjectured $\alpha\to0$ limit of matrix completion (Woodworth et al. 2020, Sec. 6).
    Needs cvxpy (`pip install linflow[cvx]`).

    **Arguments:**

    - `rows`, `cols`: integer indices of the observed entries, shape `(N,)`.
    - `values`: the observed values, shape `(N,)`.
    - `shape`: `(d1, d2)`.

    **Returns:** $M^\star$, shape `(d1, d2)`.
    """
    return min_nuclear_norm_solution(rows, cols, values, shape).value
