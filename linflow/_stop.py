import equinox as eqx
import jax.numpy as jnp


class Converged(eqx.Module):
    r"""The steady-state stop. A flow ends at the first time one of these holds (which one is
    reported in `FlowSolution.stopped_by`, a `linflow.STOPS`):

    - `optimum`: the problem's relative excess loss $\sqrt{(L-L^\star)/(L(0)-L^\star)}$ over
      the best loss $L^\star$ of any linear predictor falls below `rtol`;
    - `reachable_optimum`: where the model's own best predictor is known in closed form
      (`AbstractModel.reachable_optimum`: Eckart–Young for a `TwoLayer` narrower than the
      target's rank, the best rank-$k$ PSD approximation for `Symmetric`), the predictor is
      within `rtol` of it, relative to the problem's scale $\sqrt{2L_{\rm ref}}$;
    - `stationary` (on by default): the dimensionless stationarity
      $t\,|\dot L|/(L(0) - L(t))$ falls below `rtol`$^2$. This ends every flow at a steady
      state, fittable or not (a factorisation narrower than its target's rank, a symmetric
      model of an indefinite target, an overdetermined regression), with no tolerance in the
      problem's units; it cannot fire while the flow leaves a saddle (the gradient grows
      there, which keeps it above 1). See `linflow._steady_state` for the derivation;
    - `scaled_gradient` (off by default): $\|\nabla_\theta L\|\,\|\theta\| / (2 L_{\rm ref})$
      falls below `gtol` (near a small initialisation the gradient is tiny although the
      flow has not started: prefer the stationarity criterion).

    The stop is relative, so it is reachable whatever the scale of data and parameters. Where
    the predictor is a difference of large terms ($w_+^D - w_-^D$ at a large initialisation),
    rounding alone leaves a relative excess of order $u\|X\operatorname{diag}(m)\|_F/\|y\|$
    with $m = |w_+|^D + |w_-|^D$ ($u$ the unit roundoff; `AbstractModel.predictor_magnitude`,
    `AbstractProblem.excess_floor`): the tolerance used is the larger of `rtol` and that
    floor, so the stop is always reachable, and `FlowSolution.residual` reports what was
    achieved. (Measured: with the parameters as the state, at $\alpha = 100$ on a 10 x 25
    regression every solver stalls at a relative excess of 1.2e-10.) Exact reduced forms
    check the stop on a predictor formed without that cancellation
    (`FlowSolution.final_predictor`), whose floor is far below `rtol`.

    **Arguments:**

    - `rtol`: relative tolerance of the optimum criteria (default `1e-10`); the stationarity
      criterion uses `rtol**2`.
    - `gtol`: optional scaled-gradient tolerance.
    - `stationary`: whether the stationarity criterion may end the flow (default `True`).
    """

    rtol: float = 1e-10
    gtol: float | None = None
    stationary: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if not (self.rtol > 0):
            raise ValueError(f"`Converged(rtol=...)` must be > 0, got {self.rtol}.")
        if self.gtol is not None and not (self.gtol > 0):
            raise ValueError(f"`Converged(gtol=...)` must be > 0 or None, got {self.gtol}.")


def excess_tolerance(stop: Converged, problem, magnitude):
    """The relative-excess tolerance the stop uses for a predictor whose rounding scale is
    `magnitude` (`AbstractModel.predictor_magnitude`, or `None` for no floor): `stop.rtol`,
    or the rounding floor of that predictor on `problem` when that is larger."""
    if magnitude is None:
        return stop.rtol
    return jnp.maximum(stop.rtol, problem.excess_floor(magnitude))
