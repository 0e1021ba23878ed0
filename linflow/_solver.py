import diffrax
import equinox as eqx

from ._linear_solver import with_lu


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
      solvers finish; implicit solvers factor a dense Jacobian of size (state)^2, so above
      `implicit_max_size` parameters an explicit high-order solver is used instead.

    Its implicit solvers factor with `linflow.LU`, so they also run inside a sweep sharded
    over several devices.
    """

    implicit_max_size: int = 256
    reduced_implicit_max_size: int = 1024
    explicit_budget: int = 1_000

    def choose(self, system, problem) -> "SolverChoice | Fallback":
        del problem
        own = system.solver_choice()  # forms that know their own best solver (lifted)
        if own is not None:
            return own
        size = system.state_size()
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
        if size <= self.implicit_max_size:
            return SolverChoice(
                with_lu(diffrax.Kvaerno5()),
                rtol=1e-10,
                atol=1e-12,
                reason=f"full form with {size} <= {self.implicit_max_size} states: implicit",
            )
        return SolverChoice(
            diffrax.Dopri8(),
            rtol=1e-12,
            atol=1e-14,
            reason=f"{size} > {self.implicit_max_size} states: explicit (dense Jacobian too big)",
        )
