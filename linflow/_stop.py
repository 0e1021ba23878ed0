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
      $t\,|\dot L|/\min(L(0) - L(t), L_{\rm ref})$ falls below `rtol`$^2$. This ends every
      flow at a steady state, fittable or not (a factorisation narrower than its target's
      rank, a symmetric model of an indefinite target, an overdetermined regression), with
      no tolerance in the problem's units; it cannot fire while the flow leaves a saddle
      (the gradient grows there, which keeps it above 1). See `linflow._steady_state` for
      the derivation;
    - `scaled_gradient` (off by default): $\|\nabla_\theta L\|\,\|\theta\| / (2 L_{\rm ref})$
      falls below `gtol` (near a small initialisation the gradient is tiny although the
      flow has not started: prefer the stationarity criterion).

    The stop is relative, so it is reachable whatever the scale of data and parameters. Where
    the predictor is a difference of large terms ($w_+^D - w_-^D$ at a large initialisation),
    rounding alone leaves a relative excess of order $u\|X\operatorname{diag}(m)\|_F/\|y\|$
    with $m = |w_+|^D + |w_-|^D$ ($u$ the unit roundoff; `AbstractModel.predictor_magnitude`,
    `AbstractProblem.excess_floor`): the tolerance used is the larger of `rtol` and that
    floor, so the stop is always reachable, and `FlowSolution.residual` reports what was
    achieved. The tolerance is also at least the precision floor of the arrays' dtype,
    $256\,u$ (`precision_floor`: $3 \times 10^{-5}$ in float32, $6 \times 10^{-14}$ in
    float64). (Measured: with the parameters as the state, at $\alpha = 100$ on a 10 x 25
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


PRECISION_FLOOR_EPS = 256
"""The stop's precision floor in units of the dtype's machine epsilon: see `precision_floor`."""


def precision_floor(dtype) -> float:
    r"""The smallest relative excess loss the stop asks for in `dtype`:
    $256\,\epsilon$ (`PRECISION_FLOOR_EPS`), with $\epsilon$ the machine epsilon.

    float64: $5.7\cdot10^{-14}$, below every tolerance the library uses (the default `rtol`
    is $10^{-10}$), so nothing changes there. float32 ($\epsilon = 1.2\cdot10^{-7}$):
    $3.05\cdot10^{-5}$. The residual $X\beta - y$ of a float32 predictor carries rounding of
    a few $\epsilon\,\|X\|\|\beta\|/\|y\|$, and the solver's own error control (rtol
    $64\epsilon$, `linflow.Auto`) adds to it; measured on diagonal and two-layer nets
    (`benchmarks/float32.py`), float32 flows reach this floor in about as many steps as
    float64 flows reach $10^{-10}$, while asking for $10^{-6}$ made the full form's implicit
    solver stall."""
    return PRECISION_FLOOR_EPS * float(jnp.finfo(dtype).eps)


def excess_tolerance(stop: Converged, problem, magnitude, dtype=None):
    """The relative-excess tolerance the stop uses for a predictor whose rounding scale is
    `magnitude` (`AbstractModel.predictor_magnitude`, or `None` for no floor) and whose
    dtype is `dtype` (`None`: no precision floor): the largest of `stop.rtol`, the
    precision floor of `dtype` (`precision_floor`) and the rounding floor of that predictor
    on `problem`."""
    rtol = stop.rtol if dtype is None else max(stop.rtol, precision_floor(dtype))
    if magnitude is None:
        return rtol
    return jnp.maximum(rtol, problem.excess_floor(magnitude))
