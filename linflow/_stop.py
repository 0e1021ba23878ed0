import equinox as eqx
import jax.numpy as jnp


class Converged(eqx.Module):
    r"""The steady-state stop: end the flow when the problem's relative excess loss
    $\sqrt{(L-L^\star)/(L(0)-L^\star)}$ falls below `rtol`, or when the scaled gradient
    $\|\nabla_\theta L\|\,\|\theta\| / (2 L_{\rm ref})$ falls below `gtol` (off by default:
    near a small initialisation the gradient is tiny although the flow has not started).

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

    - `rtol`: relative excess-loss tolerance (default `1e-10`).
    - `gtol`: optional scaled-gradient tolerance, for problems with no interpolating solution
      that the model can reach (e.g. a low-rank factorisation of a full-rank target).
    """

    rtol: float = 1e-10
    gtol: float | None = None

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
