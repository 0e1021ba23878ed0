r"""One dual solver for every separable implicit-bias limit:
$\arg\min\Phi(\beta)$ s.t. $X\beta = y$ for a potential $\Phi$ (`AbstractPotential`).

**Method.** The minimiser is $\beta = \nabla\Phi^*(X^\top\nu)$ with $\nu$ minimising the convex
dual $F(\nu) = \sum_i\psi_i((X^\top\nu)_i) - y^\top\nu$, $\psi = \Phi^* - \Phi^*(0)$. $F$ is
minimised by damped Newton in log space (`_dual_newton`), continued in the potential's scale
from the kernel regime (`_dual_stages`); each Newton step solves
$X\operatorname{diag}(\psi'')X^\top\delta = -\nabla F$ by Cholesky for small problems and by
preconditioned conjugate gradients (`lineax.CG`) for $N \ge 256$, $d \ge 2N$
(`_dual_directions`); bounded potentials at tiny scales read $\beta$ on its support from the
constraint (`_dual_support`).

**Derivatives.** At the optimum $G(\nu, \theta) = X\nabla\Phi^*_\theta(X^\top\nu) - y = 0$ for
the data and the potential's parameters $\theta = (X, y, \text{potential})$; the implicit
function theorem gives $\dot\nu = -H^{-1}\partial_\theta G\,\dot\theta$ with
$H = X\operatorname{diag}(\psi'')X^\top$, and $\dot\beta = \partial_\nu\beta\,\dot\nu +
\partial_\theta\beta\,\dot\theta$. This is the solution's `jax.custom_jvp`: forward mode
directly, reverse mode by JAX's transposition of that linear map (no differentiation through
the Newton iterations), under `vmap` too.
"""

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, check_finite, is_concrete
from ._dual_directions import _precond_rank
from ._dual_stages import _continue
from ._dual_support import _answer
from .potential import AbstractPotential


class RESULTS(eqx.Enumeration):
    """Why a limit's solve ended. `RESULTS.successful` is the only success."""

    successful = ""
    inaccurate = (
        "The dual solver could not reach the requested accuracy `rtol` (see `stats` for the "
        "residual and the error estimate); call with `throw=False` to inspect the answer."
    )
    infeasible = (
        "The constraint X beta = y has no solution: y is not in the range of X (e.g. noisy "
        "data with more samples than features). The limit of the flow is then not an "
        "interpolating minimiser; fit a least-squares target X pinv(X) y instead."
    )


class LimitSolution(eqx.Module):
    r"""The answer of a limit's solve.

    **Fields:**

    - `value`: the minimiser $\beta$, shape `(d,)`.
    - `result`: a `RESULTS` item; `RESULTS.successful` when the error estimate is within `rtol`.
    - `stats`: `newton_steps`, `cg_steps` (conjugate-gradient iterations), `residual`
      ($\|X\beta - y\|/\|y\|$), `error_estimate` (relative error of $\beta$) and
      `support_solution` (whether $\beta$ on the support was read from the constraint).
    - `dual`: the dual point $\nu$, shape `(n,)` ($\beta = \nabla\Phi^*(X^\top\nu)$ off the
      support).
    """

    value: Float[Array, " d"]
    result: RESULTS
    stats: dict[str, Array]
    dual: Float[Array, " n"]


def _check_problem(X, y):
    X = as_float_array(X, "X", ndim=2)
    y = as_float_array(y, "y", ndim=1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"`X` has {X.shape[0]} rows (samples) but `y` has {y.shape[0]}: they must match."
        )
    return check_finite(X, "X"), check_finite(y, "y")


def _check_potential(potential, d):
    if not isinstance(potential, AbstractPotential):
        raise TypeError(
            f"`potential` must be a linflow.limits.AbstractPotential, got {type(potential)}."
        )
    for field in dataclasses.fields(potential):
        leaf = getattr(potential, field.name)
        if isinstance(leaf, jax.Array | np.ndarray) and leaf.ndim == 1 and leaf.shape != (d,):
            raise ValueError(
                f"`potential.{field.name}` has shape {tuple(leaf.shape)}, but `X` has {d} "
                f"columns: it must have shape ({d},)."
            )


def _minimise_one(potential, X, XT, y, rtol, precond_rank):
    # |X| for the rounding bounds: matrix-vector products (a fused |.| inside a reduction ran
    # 5-10x slower than a product with a stored |X|).
    absX = jnp.abs(X)
    nu, steps, cg_steps = _continue(X, XT, absX, y, potential, precond_rank)
    beta, residual, error, support = _answer(X, y, absX, potential, nu)
    ok = jnp.isfinite(error) & (error <= rtol) & jnp.all(jnp.isfinite(beta))

    def infeasible():
        # Only on failure: whether y has a component outside range(X) (one least-squares solve).
        fit = X @ jnp.linalg.lstsq(X, y)[0]
        return jnp.linalg.norm(fit - y) > jnp.maximum(rtol, 1e-8) * jnp.linalg.norm(y)

    bad = jax.lax.cond(ok, lambda: jnp.array(False), infeasible)
    stats = dict(
        newton_steps=steps,
        cg_steps=cg_steps,
        residual=residual,
        error_estimate=error,
        support_solution=support,
    )
    code = jnp.where(ok, 0, jnp.where(bad, 2, 1))
    return beta, nu, stats, code


@eqx.filter_jit
def _minimise(potential, X, XT, y, rtol, precond_rank):
    # Under `vmap` (over a scale, targets, ...) the batch is solved one member after another
    # (`lax.map`). Batched, every `lax.cond` of the solver runs both branches (exact and CG
    # steps, full and truncated Hessian products, every CG solve to the slowest member's
    # count) and every while loop runs to its slowest member: at N = 300, d = 3000, depth 3 a
    # vmap over two alphas had not finished in 10 minutes, where a loop over four takes 0.11 s.
    def one(potential, X, XT, y):
        return _minimise_one(potential, X, XT, y, rtol, precond_rank)

    return jax.custom_batching.sequential_vmap(one)(potential, X, XT, y)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5))
def _solve(potential, X, XT, y, rtol, precond_rank):
    return _minimise(potential, X, XT, y, rtol, precond_rank)


def _zero_tangent(x):
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return np.zeros(x.shape, jax.dtypes.float0)


@_solve.defjvp
def _solve_jvp(rtol, precond_rank, primals, tangents):
    potential, X, XT, y = primals
    dpot, dX, _, dy = tangents
    out = _solve(potential, X, XT, y, rtol, precond_rank)
    beta, nu, stats, code = out
    curv = potential.curvature(nu @ X)
    hess = (X * curv[None, :]) @ X.T
    # Jacobi-scaled Cholesky with a ridge of N u (the condition number can exceed 1/u at tiny
    # scales; see `_direction_cholesky`).
    n = hess.shape[0]
    dscale = jnp.sqrt(jnp.diagonal(hess))
    dscale = jnp.where(dscale > 0, dscale, 1.0)
    scaled = hess / dscale[:, None] / dscale[None, :]
    scaled = scaled + n * jnp.finfo(hess.dtype).eps * jnp.eye(n, dtype=hess.dtype)
    factor = jax.scipy.linalg.cho_factor(scaled)

    def residual(potential, X, y):
        return X @ potential.primal(nu @ X) - y

    def primal(potential, X, nu):
        return potential.primal(nu @ X)

    _, dres = jax.jvp(residual, (potential, X, y), (dpot, dX, dy))
    dnu = -jax.scipy.linalg.cho_solve(factor, dres / dscale) / dscale
    _, dbeta = jax.jvp(primal, (potential, X, nu), (dpot, dX, dnu))
    zeros = jax.tree.map(_zero_tangent, (stats, code))
    return out, (dbeta, dnu, *zeros)


def dual_minimise(
    potential: AbstractPotential,
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, " n"],
    *,
    rtol: float = 1e-8,
    newton_solve: str = "auto",
    throw: bool = True,
) -> LimitSolution:
    r"""$\arg\min\Phi(\beta)$ s.t. $X\beta = y$ for a separable potential $\Phi$ (module doc):
    the limit of the gradient flow of the parametrisation whose mirror map is $\Phi$
    (e.g. Woodworth et al. 2020, Thm 1 and 3; Yun et al. 2021, Thm 5).

    `jit`-, `vmap`- and differentiable (forward and reverse mode, by the implicit function
    theorem at the dual optimum) in `X`, `y` and the potential's arrays. Under `vmap` the batch
    is solved one member after another (a `lax.map`), so it costs what a loop costs; pass
    `throw=False` there.

    **Arguments:**

    - `potential`: an `AbstractPotential` (e.g. `Hypentropy(alpha, depth, w0)`); its
      per-coordinate arrays must have shape `(d,)` (or be scalars).
    - `X`: design matrix, shape `(n, d)`.
    - `y`: targets, shape `(n,)`, in the range of `X`.
    - `rtol`: the accepted relative error estimate of $\beta$ (the relative residual
      $\|X\beta - y\|/\|y\|$, or for bounded potentials at tiny scales the rounding estimate
      of `_dual_support`).
    - `newton_solve`: `"cholesky"` (exact steps, $O(N^2d)$), `"cg"` (preconditioned conjugate
      gradients, $O(Nd)$ per iteration) or `"auto"` (`"cg"` when $N \ge 256$ and $d \ge 2N$).
    - `throw`: raise (through `eqx.error_if`, so also under `jit`) unless
      `result == RESULTS.successful`.

    **Returns:**

    A `LimitSolution` (`value`, `result`, `stats`, `dual`).
    """
    X, y = _check_problem(X, y)
    _check_potential(potential, X.shape[1])
    return _dual_minimise(potential, X, y, rtol, newton_solve, throw)


def _dual_minimise(potential, X, y, rtol, newton_solve, throw):
    """`dual_minimise` on checked arguments (the wrappers check their own)."""
    rank = _precond_rank(newton_solve, *X.shape)
    if is_concrete(y) and not np.any(np.asarray(y)):
        zero = jnp.array(0)
        stats = dict(
            newton_steps=zero,
            cg_steps=zero,
            residual=jnp.array(0.0, X.dtype),
            error_estimate=jnp.array(0.0, X.dtype),
            support_solution=jnp.array(False),
        )
        beta, nu = jnp.zeros(X.shape[1], X.dtype), jnp.zeros(X.shape[0], X.dtype)
        return LimitSolution(beta, RESULTS.successful, stats, nu)
    # X^T as its own (row-major) array, formed outside the solver's program: reductions over
    # the columns of X and gathers of columns then read contiguous rows (on a row-major X each
    # is a strided pass: 20-40 ms at N = 1000, d = 1e4, against 2 ms).
    XT = jnp.transpose(X)
    return _report(potential, X, XT, y, float(rtol), rank, bool(throw))


@eqx.filter_jit
def _report(potential, X, XT, y, rtol, rank, throw):
    # One program with the solve, the result and the check (eager, each was a dispatch).
    beta, nu, stats, code = _solve(potential, X, XT, y, rtol, rank)
    failure = RESULTS.where(code == 2, RESULTS.infeasible, RESULTS.inaccurate)
    result = RESULTS.where(code == 0, RESULTS.successful, failure)
    if throw:
        beta = result.error_if(beta, result != RESULTS.successful)
    return LimitSolution(beta, result, stats, nu)
