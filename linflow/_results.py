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
