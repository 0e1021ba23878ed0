import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from ._linear_solver import with_lu
from ._system import tree_size


class SolverChoice(eqx.Module):
    """A diffrax solver with the step-size controller and tolerances the flow runs it with.

    **Arguments:**

    - `solver`: any diffrax ODE solver.
    - `rtol`, `atol`: tolerances of the default PID controller. (For an implicit solver on a
      state whose rounding level is known, `AbstractFlowSystem.state_scale`, the flow raises
      `atol` to at least `1e-3 * rtol * state_scale`: the dual state of a depth >= 3 diagonal
      net at small scales.)
    - `controller`: a diffrax step-size controller, overriding `rtol`/`atol`.
    - `reason`: why this choice was made (filled in by `linflow.Auto`).
    """

    solver: diffrax.AbstractSolver
    rtol: float = 1e-10
    atol: float = 1e-12
    controller: diffrax.AbstractStepSizeController | None = None
    reason: str = eqx.field(static=True, default="given by the user")

    def __check_init__(self):
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise TypeError(f"`solver` must be a diffrax solver, got {type(self.solver)}.")
        if not (self.rtol > 0 and self.atol > 0):
            raise ValueError("`rtol` and `atol` must be > 0.")

    @property
    def name(self) -> str:
        return type(self.solver).__name__

    @property
    def stepsize_controller(self) -> diffrax.AbstractStepSizeController:
        if self.controller is not None:
            return self.controller
        if isinstance(self.solver, diffrax.AbstractImplicitSolver):
            # Damped PID coefficients: fewer rejected steps on stiff, slowly varying flows.
            return diffrax.PIDController(rtol=self.rtol, atol=self.atol, pcoeff=0.3, icoeff=0.4)
        return diffrax.PIDController(rtol=self.rtol, atol=self.atol)

    def dt0(self, problem):
        del problem
        return None  # the flow applies diffrax's first-step rule (PID controllers)


class Fallback(eqx.Module):
    """Run `first` for at most `budget` steps; if the stop has not held by then, continue
    from where it ended with `then`.

    This is how `linflow.Auto` handles exact reduced forms: an explicit solver is cheap per
    step and finishes most flows in a few hundred steps, but stalls where the flow is stiff
    (small initialisation scales with few features per sample); an implicit solver finishes
    those, at several times the cost per step. The budget bounds what a wrong first guess
    costs.

    **Arguments:**

    - `first`: the `SolverChoice` tried first.
    - `then`: the `SolverChoice` that continues if `first` used up its budget.
    - `budget`: the number of steps `first` may take (at most half of the flow's `max_steps`
      is used, so that `then` always gets the other half).
    - `reason`: why this choice was made (filled in by `linflow.Auto`).

    `then` continues the form restarted at that state (`AbstractFlowSystem.restarted`: a
    propagator is re-based there, the same flow in better-conditioned coordinates; other
    forms continue their own state).

    `FlowSolution.solver` reads `"<first> then <then>"`; `FlowSolution.stats["fallback_steps"]`
    counts the steps taken by `then` (0 when `first` finished).
    """

    first: SolverChoice
    then: SolverChoice
    budget: int = eqx.field(static=True, default=1_000)
    reason: str = eqx.field(static=True, default="given by the user")

    def __check_init__(self):
        if not (isinstance(self.first, SolverChoice) and isinstance(self.then, SolverChoice)):
            raise TypeError("`Fallback(first, then)` takes two `linflow.SolverChoice`s.")
        if not (isinstance(self.budget, int) and self.budget >= 1):
            raise ValueError(f"`budget` must be a positive integer, got {self.budget!r}.")

    @property
    def name(self) -> str:
        return f"{self.first.name} then {self.then.name}"


class Auto(eqx.Module):
    """The default solver rule: choose by the integrated state's form and size.

    Measured on a 2-core CPU in float64 (`benchmarks/solver_matrix.py`, `benchmarks/solvers.py`
    and the docs' *flow engine* page):

    - exact reduced forms (diagonal and Hadamard nets; $N$ states): Dopri8 at rtol 1e-10
      (pure relative error control) reaches the steady state in 30-400 steps whenever the
      features outnumber the samples by much (e.g. $N = 50$: 362 steps at $d = 10^4$,
      $\\alpha = 10^{-4}$, where Kvaerno5 needs 1,880 steps at 6x the cost each) and at every
      scale $\\alpha \\ge 0.1$; with few features per sample and a small scale the dual flow is
      stiff (about 20% of explicit steps rejected at any tolerance) and only an implicit solver
      finishes. So: `Fallback(Dopri8, Kvaerno5, budget=explicit_budget)`, with a budget of
      1,000 steps (`benchmarks/fallback_budget.py`: 8.1 s on 18 reduced flows against 14.5 s
      with 10,000 and 45.7 s for Kvaerno5 alone);
    - the full parameter flow at large initialisation scale is stiff, and only implicit
      solvers finish it; elsewhere an explicit step is far cheaper. Up to
      `implicit_max_size` parameters: `Fallback(Dopri8, Kvaerno5, budget=explicit_budget)`
      (`benchmarks/solver_matrix.py`, the depth-2 net's 200-parameter full form: 7-120x
      faster than Kvaerno5 alone at alpha <= 1, and 1.70x at alpha = 10, where every
      explicit solver fails). Implicit solvers factor a dense Jacobian of size (state)^2, so
      above that size an explicit high-order solver is used alone.

    Its implicit solvers factor with `linflow.LU`, so they also run inside a sweep sharded
    over several devices.

    The tolerances above are for float64. For a state of lower precision (float32: GPUs and
    TPUs default to it) each `rtol` is raised to at least `SOLVER_FLOOR_EPS` $= 64$ machine
    epsilons ($7.6 \times 10^{-6}$ in float32), and `atol` with it: to `rtol` for implicit
    solvers and for full and lifted states (of the order of the parameters), in the same
    ratio for the explicit solver of a reduced form (whose dual state shrinks at large
    scales; measured, depth 3, alpha = 0.1, float32 reduced form: Kvaerno5 at atol 1e-7
    stalls at residual 0.07, at atol = rtol = 1e-5 it converges in 335 steps). Error
    control below the rounding of the state rejects steps without end (measured, depth-2
    diagonal net at alpha = 1 on a 10 x 25 regression in float32, full form, Kvaerno5:
    rtol 1e-10 rejects every step; rtol 7.6e-6 with atol 7.6e-8 runs out of 5,000 steps at
    residual 0.05; rtol = atol = 1e-5 converges in 21 steps). The steady-state stop has its
    own floor (`linflow.Converged`, `precision_floor`).
    """

    implicit_max_size: int = 256
    reduced_implicit_max_size: int = 1024
    explicit_budget: int = 1_000

    def choose(self, system, problem) -> "SolverChoice | Fallback":
        shape = system.state_shape()
        choice = self._choose_float64(system, tree_size(shape))
        eps = max(float(jnp.finfo(x.dtype).eps) for x in jax.tree.leaves(shape))
        # A full or lifted state is of order its parameters (not the shrinking dual state of
        # a reduced form): there the absolute tolerance rises to the relative one (and for
        # implicit solvers in any form, see `_tolerances_for`).
        absolute = system.name != "reduced"
        return _tolerances_for(choice, SOLVER_FLOOR_EPS * eps, absolute)

    def _choose_float64(self, system, size: int) -> "SolverChoice | Fallback":
        own = system.solver_choice()  # forms that know their own best solver (lifted)
        if own is not None:
            return own
        if system.is_reduced:
            # Pure relative error control: the dual state's scale shrinks like alpha^-D, and
            # an absolute floor stalls the explicit solver above the stop at large alpha.
            explicit = dict(solver=diffrax.Dopri8(), rtol=1e-10, atol=1e-30)
            if size > self.reduced_implicit_max_size:
                return SolverChoice(
                    **explicit,
                    reason=f"exact reduced form with {size} > "
                    f"{self.reduced_implicit_max_size} states: explicit",
                )
            return Fallback(
                SolverChoice(**explicit),
                SolverChoice(with_lu(diffrax.Kvaerno5()), rtol=1e-9, atol=1e-11),
                budget=self.explicit_budget,
                reason=f"exact reduced form with {size} states: explicit, implicit if stiff",
            )
        explicit = dict(solver=diffrax.Dopri8(), rtol=1e-12, atol=1e-14)
        if size <= self.implicit_max_size:
            return Fallback(
                SolverChoice(**explicit),
                SolverChoice(with_lu(diffrax.Kvaerno5()), rtol=1e-10, atol=1e-12),
                budget=self.explicit_budget,
                reason=f"{system.name} form with {size} <= {self.implicit_max_size} states: "
                "explicit, implicit if stiff",
            )
        return SolverChoice(
            **explicit,
            reason=f"{size} > {self.implicit_max_size} states: explicit (dense Jacobian too big)",
        )


SOLVER_FLOOR_EPS = 64
"""`linflow.Auto`'s smallest solver `rtol`, in machine epsilons of the state's dtype."""


def _tolerances_for(choice, rtol_floor: float, absolute: bool):
    """`choice` with every `rtol` below `rtol_floor` raised to it, and `atol` in proportion
    (or, with `absolute`, to `rtol_floor`); choices with their own step-size controller are
    kept."""
    if isinstance(choice, Fallback):
        first = _tolerances_for(choice.first, rtol_floor, absolute)
        then = _tolerances_for(choice.then, rtol_floor, absolute)
        return eqx.tree_at(lambda f: (f.first, f.then), choice, (first, then))
    if choice.controller is not None or choice.rtol >= rtol_floor:
        return choice
    # An implicit solver's Newton iteration needs an absolute tolerance above the rounding of
    # the state in any form.
    if absolute or isinstance(choice.solver, diffrax.AbstractImplicitSolver):
        atol = rtol_floor
    else:
        atol = choice.atol * rtol_floor / choice.rtol
    return eqx.tree_at(lambda c: (c.rtol, c.atol), choice, (rtol_floor, atol))
