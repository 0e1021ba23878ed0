"""`LU`: the dense linear solver of linflow's implicit steps, safe to shard and to vmap on CPUs."""

import itertools
import math
from typing import Any

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import jax.scipy as jsp
import lineax as lx
from jax.custom_batching import sequential_vmap


def _factor(matrix):
    return jsp.linalg.lu_factor(matrix)


def _solver(trans: int):
    def solve(lu, piv, vector):
        return jsp.linalg.lu_solve((lu, piv), vector, trans=trans)

    return solve


# On a CPU, a vmapped solve runs its batch one matrix after another: jaxlib's batched LAPACK
# kernels split a batch over the CPU client's intra-op thread pool and block that pool's
# thread while they wait, and two devices doing so at once (a chunk sharded over host
# devices with at least as many devices as cores) wait on each other forever. The loop
# costs nothing measurable on small systems (`benchmarks/sweep_throughput.py`). Elsewhere
# the batched kernel is kept: on accelerators one batched factorisation is one launch.
_sequential_factor = sequential_vmap(_factor)
_sequential_solve = {trans: sequential_vmap(_solver(trans)) for trans in (0, 1)}


def _lu_factor(matrix):
    return jax.lax.platform_dependent(matrix, cpu=_sequential_factor, default=_factor)


def _lu_solve(lu, piv, vector, trans: int):
    return jax.lax.platform_dependent(
        lu, piv, vector, cpu=_sequential_solve[trans], default=_solver(trans)
    )


class LU(lx.AbstractLinearSolver):
    """Dense LU factorisation for the Newton steps of implicit diffrax solvers.

    Solves $A x = b$ for a square nonsingular operator $A$ by partial-pivoting LU, as
    `lineax.LU` does, with two differences that let implicit flows run inside a sweep
    sharded over devices (`linflow.Sweep`):

    - it flattens the right-hand side without lineax's structure comparison, which rejects
      the abstract values of a `jax.shard_map` body (their types carry the manual mesh;
      lineax issue #185);
    - on a CPU, a vmapped factorisation or solve loops over the batch instead of calling
      the batched LAPACK kernel, which deadlocks when several host devices run it at once.

    `linflow.Auto` uses it in every implicit solver it picks; `linflow.with_lu(solver)`
    puts it into a diffrax solver of your own.
    """

    def init(self, operator: lx.AbstractLinearOperator, options: dict[str, Any]):
        del options
        if operator.in_size() != operator.out_size():
            raise ValueError("`linflow.LU` solves square systems only.")
        in_leaves, in_tree = jax.tree.flatten(operator.in_structure())
        out_leaves, out_tree = jax.tree.flatten(operator.out_structure())
        structures = (
            (in_tree, tuple(x.shape for x in in_leaves)),
            (out_tree, tuple(x.shape for x in out_leaves)),
        )
        return _lu_factor(operator.as_matrix()), eqxi.Static(structures), eqxi.Static(False)

    def compute(self, state, vector, options: dict[str, Any]):
        del options
        (lu, piv), structures, transpose = state
        # The unknown lives in the operator's input space (`transpose` swaps the two).
        tree, shapes = structures.value[0]
        leaves = jax.tree.leaves(vector)
        flat = jnp.concatenate([jnp.ravel(x).astype(lu.dtype) for x in leaves])
        solution = _lu_solve(lu, piv, flat, 1 if transpose.value else 0)
        splits = list(itertools.accumulate(math.prod(s) for s in shapes))[:-1]
        pieces = jnp.split(solution, splits)
        solution = jax.tree.unflatten(tree, [p.reshape(s) for p, s in zip(pieces, shapes)])
        return solution, lx.RESULTS.successful, {}

    def transpose(self, state, options: dict[str, Any]):
        lu_piv, structures, transpose = state
        inp, out = structures.value
        return (lu_piv, eqxi.Static((out, inp)), eqxi.Static(not transpose.value)), {}

    def conj(self, state, options: dict[str, Any]):
        (lu, piv), structures, transpose = state
        return ((lu.conj(), piv), structures, transpose), {}

    def assume_full_rank(self) -> bool:
        return True


def with_lu(solver: diffrax.AbstractImplicitSolver) -> diffrax.AbstractImplicitSolver:
    """`solver` with `linflow.LU` as the linear solver of its root finder.

    For implicit diffrax solvers (`Kvaerno5`, `ImplicitEuler`, ...) run inside a
    multi-device `linflow.Sweep`: see `linflow.LU`. The root finder keeps its type and
    tolerances (by default `VeryChord` with the step-size controller's tolerances).

    **Arguments:**

    - `solver`: a diffrax implicit solver whose root finder has a `linear_solver` field.

    **Returns:** a copy of `solver`.
    """
    if not isinstance(solver, diffrax.AbstractImplicitSolver):
        raise TypeError(f"`solver` must be a diffrax implicit solver, got {type(solver)}.")
    if not hasattr(solver.root_finder, "linear_solver"):
        raise TypeError(
            f"the root finder of `solver` ({type(solver.root_finder).__name__}) has no "
            "`linear_solver` to replace."
        )
    return eqx.tree_at(lambda s: s.root_finder.linear_solver, solver, LU())
