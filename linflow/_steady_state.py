r"""The steady-state criteria of `linflow.Converged`, and which of them ended a flow.

Three criteria, any of which ends a flow (`STOPS` names the one that held, in this order):

1. `optimum`: the problem's relative excess over the best loss of *any linear* predictor,
   $\sqrt{(L - L^\star)/(L_{\rm ref} - L^\star)}$, is at most `rtol`
   (`AbstractProblem.relative_excess`). Only reachable when the model can represent that
   predictor.
2. `reachable_optimum`: the model's own best predictor on the problem is known in closed
   form (`AbstractModel.reachable_optimum`: Eckart–Young for a width-$k$ `TwoLayer`, the best
   rank-$k$ PSD approximation for `Symmetric`) and the predictor is within
   `rtol`$\cdot\sqrt{2L_{\rm ref}}$ of it (Frobenius norm).
3. `stationary`: the dimensionless stationarity
   $$S(t) = \frac{t\,|\dot L(t)|}{\min(L(0) - L(t),\ L_{\rm ref})} \le \mathrm{rtol}^2,$$
   with $\dot L = -\|\nabla_\theta L\|^2$ along the gradient flow (computed by a forward
   derivative of $L(\text{predictor}(y))$ along the integrated field, so it holds for every
   integrated form). It measures the loss still to come if the flow kept its present speed
   for as long again as it has run, against the decrease so far, but never against more
   than the problem's scale $L_{\rm ref}$ (from a large start, where $L(0) \gg L_{\rm ref}$,
   the decrease alone would let a flow stop with its excess far above `rtol`): time, loss
   and parameter scales cancel. The cap only raises $S$, so nothing below stops earlier
   because of it. Near a minimum with curvature $\mu$ (in the direction still moving),
   $L - L_\infty \approx \|\nabla L\|^2/(2\mu)$, so
   $S \ge 2\mu t\,(L - L_\infty)/(L(0) - L(t))$: it bounds the squared relative excess over
   the steady state once $2\mu t \ge 1$, which any flow that got there has passed. For a
   power-law approach $L - L_\infty \propto t^{-p}$ it is $p$ times that excess.

Saddles: while the flow leaves a small initialisation the gradient grows, so
$L(0) - L(t) = \int_0^t\|\nabla L\|^2 \le t\|\nabla L(t)\|^2$ and $S \ge 1$: the criterion
cannot fire on the way out of a saddle however small the start (it is undefined, and does
not hold, at $t = 0$ and wherever the loss has not decreased). On a plateau between two
saddles $S$ falls only to about $t\|\nabla L\|^2/\Delta L$ with a gradient of the order of
the initial scale; a start of scale below $\mathrm{rtol}$ could stop there. Exact reduced
forms guard against that (`AbstractFlowSystem.mirror_coordinates`): the dual point
$s = X^\top\nu$ of a diagonal net drifts at a constant rate across every plateau (its
coordinates off the support are the log-ratios still escaping) and settles only at a steady
state, so their criterion also asks $(t\|\dot s\|/\|s - s(0)\|)^2 \le \mathrm{rtol}^2$,
which stays near 1 on a plateau whatever $\alpha$ (flows from $\alpha = 10^{-200}$ pass all
their saddles). That drift is formed first, and $S$ only on the steps where it passes
(`SteadyState.is_stationary`). Parameter (full) forms have no such guard: from a start below
$\mathrm{rtol}$ use a reduced form or `Converged(stationary=False)`. A start exactly at a
stationary point (the model stands still, `AbstractFlowSystem.is_still`, and the loss never
moves) stops at once: it is a steady state (from zero factors a propagator's own field does
not vanish, and the test reads the predictor's speed instead).
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from ._stop import excess_tolerance, precision_floor
from ._system import tree_norm


class STOPS(eqx.Enumeration):
    """Which steady-state criterion ended a flow (`FlowSolution.stopped_by`); see
    `linflow.Converged`."""

    none = "The flow did not stop at a steady state."
    optimum = "The relative excess over the best loss of any linear predictor fell below `rtol`."
    reachable_optimum = (
        "The predictor reached the model's own best predictor, known in closed form "
        "(Eckart-Young for a width-k factorisation, the best rank-k PSD approximation for a "
        "symmetric one), to `rtol`."
    )
    stationary = (
        "The dimensionless stationarity t |dL/dt| / min(L(0) - L(t), L_ref) fell below "
        "`rtol**2`: a steady state the model cannot leave, above the best linear loss."
    )
    scaled_gradient = "The scaled gradient fell below `Converged(gtol=...)`."


class SteadyState(eqx.Module):
    """The criteria of a `Converged` stop, bound to one flow (its system, problem and start).

    Built once outside the solve (the reachable optimum and the initial loss are computed
    there) and evaluated at each step by the flow's event.
    """

    system: object
    problem: object
    stop: object
    loss0: jax.Array
    mirror0: jax.Array | None
    target: jax.Array | None
    ref: jax.Array

    def __init__(self, system, problem, stop, y0):
        self.system = system
        self.problem = problem
        self.stop = stop
        self.loss0 = problem.loss(system.predictor(y0))
        self.mirror0 = system.mirror_coordinates(y0)
        self.target = system.to_model(y0).reachable_optimum(problem)
        self.ref = problem.reference_loss()

    def _excess_tolerance(self, y, pred):
        return excess_tolerance(
            self.stop, self.problem, self.system.predictor_magnitude(y, pred), pred.dtype
        )

    def _rtol(self, dtype):
        # `rtol`, but never below the precision floor of the state's dtype (float32).
        return max(self.stop.rtol, precision_floor(dtype))

    def stationarity(self, t, y):
        r"""$S(t) = t|\dot L| / \min(L(0) - L(t), L_{\rm ref})$ (`inf` where the loss has not
        decreased), with $\dot L$ the loss's derivative along the integrated field; for forms
        with mirror coordinates $z$, the larger of $S$ and $(t\|\dot z\| / \|z - z(0)\|)^2$."""
        f = self.system.vector_field(t, y, self.problem)
        s = self._loss_stationarity(t, y, f)
        if self.mirror0 is None:
            return s
        return jnp.maximum(s, self._drift(t, y, f) ** 2)

    def is_stationary(self, t, y, tol):
        """Whether `stationarity(t, y) <= tol`. For forms with mirror coordinates the
        drift is formed first (one product with the data), and $S$ (a forward derivative of
        the loss through the predictor, as costly as a solver stage) only where the drift
        already passes: on every step but the last few of a flow it does not, and outside
        `vmap` the derivative is then skipped."""
        f = self.system.vector_field(t, y, self.problem)
        if self.mirror0 is None:
            return self._loss_stationarity(t, y, f) <= tol
        settled = self._drift(t, y, f) ** 2 <= tol
        return jax.lax.cond(
            settled, lambda: self._loss_stationarity(t, y, f) <= tol, lambda: jnp.asarray(False)
        )

    def _loss_stationarity(self, t, y, f):
        pred, dpred = jax.jvp(self.system.predictor, (y,), (f,))
        loss, rate = jax.jvp(self.problem.loss, (pred,), (dpred,))
        drop = self.loss0 - loss
        t = jnp.asarray(t, drop.dtype)
        # The decrease so far, but at most the problem's scale L_ref: from a large start
        # L(0) is many times L_ref, and the excess still to go would be measured against a
        # drop that dwarfs it, and the flow would stop short of a fit it can reach
        # (`test_a_large_start_that_can_fit_is_not_stopped_short_by_stationarity`).
        scale = jnp.where(self.ref > 0, jnp.minimum(drop, self.ref), drop)
        s = t * jnp.abs(rate) / jnp.where(drop > 0, scale, 1.0)
        s = jnp.where(drop > 0, s, jnp.inf)
        # A start exactly at a stationary point: the parameters do not move and the loss
        # never changes.
        # (Not where only the loss's rate underflows, as on the first plateau of a vanishing
        # initialisation; nor where the loss grew: a solver thrown off the path can land
        # where the field saturates, e.g. the capped exponentials of the reduced forms.)
        still = self.system.is_still(f, dpred) & (t > 0) & (drop == 0)
        return jnp.where(still, 0.0, s)

    def _drift(self, t, y, f):
        # Forms with mirror coordinates (`AbstractFlowSystem.mirror_coordinates`):
        # t |dz/dt| / |z - z(0)|, which stays near 1 while z drifts across a plateau (where
        # the loss is flat to rounding from a vanishing start) and decays like the distance
        # to a steady state. Its square is compared with `S`'s tolerance.
        z, dz = jax.jvp(self.system.mirror_coordinates, (y,), (f,))
        moved = jnp.sqrt(jnp.sum((z - self.mirror0) ** 2))
        speed = jnp.sqrt(jnp.sum(dz**2))
        t = jnp.asarray(t, moved.dtype)
        drift = jnp.where(speed == 0, 0.0, t * speed / jnp.where(moved > 0, moved, 1.0))
        return jnp.where((speed > 0) & (moved == 0), jnp.inf, drift)

    def criteria(self, t, y, pred=None):
        """The booleans `(optimum, reachable_optimum, stationary, scaled_gradient)` at state
        `y` (`pred`: the system's predictor there, if already formed)."""
        stop = self.stop
        if pred is None:
            pred = self.system.predictor(y)
        optimum = self.problem.relative_excess(pred) <= self._excess_tolerance(y, pred)
        if self.target is None:
            reachable = jnp.asarray(False)
        else:
            dist = jnp.sqrt(jnp.sum((pred - self.target) ** 2))
            reachable = dist <= self._rtol(pred.dtype) * jnp.sqrt(2 * self.ref)
        if stop.stationary:
            stationary = self.is_stationary(t, y, self._rtol(pred.dtype) ** 2)
        else:
            stationary = jnp.asarray(False)
        if stop.gtol is not None:
            g = self.system.vector_field(0.0, y, self.problem)
            gnorm = tree_norm(g)
            pnorm = tree_norm(eqx.filter(self.system.to_model(y), eqx.is_array))
            scaled = gnorm * pnorm <= stop.gtol * 2 * self.ref
        else:
            scaled = jnp.asarray(False)
        return optimum, reachable, stationary, scaled

    def holds(self, t, y, pred=None):
        optimum, reachable, stationary, scaled = self.criteria(t, y, pred)
        return optimum | reachable | stationary | scaled

    def which(self, t, y, converged):
        """The `STOPS` member naming the first criterion that holds at `(t, y)` (`none` where
        `converged` is False)."""
        optimum, reachable, stationary, scaled = self.criteria(t, y)
        out = STOPS.where(scaled, STOPS.scaled_gradient, STOPS.none)
        out = STOPS.where(stationary, STOPS.stationary, out)
        out = STOPS.where(reachable, STOPS.reachable_optimum, out)
        out = STOPS.where(optimum, STOPS.optimum, out)
        return STOPS.where(converged, out, STOPS.none)


def direction_rate(system, problem, t, y):
    r"""How fast the predictor's direction still turns, per unit of log-time:
    $t\,\|(I - \hat\beta\hat\beta^\top)\dot\beta\| / \|\beta\|$ with
    $\hat\beta = \beta/\|\beta\|$ (Frobenius norms for a matrix predictor). For a
    classifier on separable data the loss goes to 0 while the direction converges to a
    max-margin direction only like $1/\log t$: this is the rate that remains."""
    f = system.vector_field(t, y, problem)
    beta, dbeta = jax.jvp(system.predictor, (y,), (f,))
    beta, dbeta = beta.reshape(-1), dbeta.reshape(-1)
    norm = jnp.sqrt(jnp.sum(beta**2))
    unit = beta / jnp.where(norm > 0, norm, 1.0)
    perp = dbeta - jnp.dot(unit, dbeta) * unit
    t = jnp.asarray(t, norm.dtype)
    return jnp.where(norm > 0, t * jnp.sqrt(jnp.sum(perp**2)) / jnp.where(norm > 0, norm, 1.0), 0.0)
