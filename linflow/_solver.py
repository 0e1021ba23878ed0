import diffrax
import equinox as eqx


class SolverChoice(eqx.Module):
    """A diffrax solver with the step-size controller and tolerances the flow runs it with.

    **Arguments:**

    - `solver`: any diffrax ODE solver.
    - `rtol`, `atol`: tolerances of the default PID controller.
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
        return None  # diffrax picks the first step from the local error estimate.


class Auto(eqx.Module):
    """The default solver rule: choose by the integrated state's form and size.

    Measured on a 2-core CPU in float64 (see `benchmarks/solvers.py` and the docs):

    - on the exact reduced forms (diagonal and Hadamard nets; $N$ states) Kvaerno5 reaches the
      steady state at every scale in at most a few thousand steps, where explicit methods stall
      at small scales;
    - the full parameter flow at large initialisation scale is stiff, and only implicit
      solvers finish; implicit solvers factor a dense Jacobian of size (state)^2, so above
      `implicit_max_size` parameters an explicit high-order solver is used instead.
    """

    implicit_max_size: int = 256

    def choose(self, system, problem) -> SolverChoice:
        del problem
        if hasattr(system, "solver_choice"):
            return system.solver_choice()  # forms that know their own best solver (lifted)
        size = system.state_size()
        if size <= self.implicit_max_size:
            if system.name != "full":
                # Measured: on the reduced form Kvaerno5 at 1e-9/1e-11 reaches a 1e-10 stop at
                # every alpha in 1e-3..10 and depth 2-3; explicit methods stall or need >3e4
                # steps at small alpha.
                return SolverChoice(
                    diffrax.Kvaerno5(),
                    rtol=1e-9,
                    atol=1e-11,
                    reason=f"exact reduced form with {size} states: implicit",
                )
            return SolverChoice(
                diffrax.Kvaerno5(),
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
