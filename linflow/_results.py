import diffrax


class RESULTS(diffrax.RESULTS):  # pyright: ignore[reportGeneralTypeIssues]
    """Why a flow stopped. `RESULTS.converged` is the only success.

    Extends `diffrax.RESULTS` (`max_steps_reached`, `dt_min_reached`, ...) with the outcomes of
    a steady-state solve.
    """

    converged = ""
    diverged = (
        "The flow diverged: the loss became non-finite or grew by more than 1e12 times its "
        "reference value. Check the data scale or the initialisation."
    )
    not_converged = (
        "The integration ended before the stop criterion held (the flow reached `t1`). "
        "Increase `t1`, or loosen `stop`."
    )
    not_separable = (
        "The data are not linearly separable through the origin: no max-margin direction "
        "exists (the margin problem is infeasible)."
    )
    solver_failed = (
        "The convex solver of the limit did not return an optimal solution to the requested "
        "accuracy."
    )
