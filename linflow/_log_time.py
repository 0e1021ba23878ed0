r"""Integrating a flow in log-time, $s = \log(1 + t/\tau)$.

Flows whose interesting part spans many decades of $t$ (the direction of a classifier, which
converges like $1/\log t$; saddle-to-saddle plateaus) take steps whose size grows with $t$.
In $s$ the same flow is $\frac{dy}{ds} = \tau e^{s} f(y)$: a step of fixed size in $s$ is a
fixed fraction of the elapsed time, and $t = 10^{100}$ is $s \approx 230$ (for
$\tau = 1$). diffrax integrates in $s$; the engine converts save times, `t1`, the stop and
`FlowSolution.t_final` back to $t$.
"""

import equinox as eqx
import jax.numpy as jnp

from ._system import AbstractFlowSystem, AbstractWrappedSystem


class LogTime(eqx.Module):
    r"""Integrate the flow in log-time $s = \log(1 + t/\tau)$ instead of $t$
    (`linflow.flow(..., clock=linflow.LogTime())`).

    The trajectory is the same; only the solver's independent variable changes, so that a
    flow can be followed to $t = 10^{100}$ and beyond (up to about $10^{300}$ in float64) in
    a few hundred steps: e.g. the direction of a classifier, which converges to the
    max-margin direction only like $1/\log t$, long after the loss has met any stop. Use
    it with a finite `t1` and `stop=None` to follow the direction to that time, or with
    the default stop.

    **Arguments:**

    - `scale`: $\tau$ (default: the problem's time scale, `problem.time_scale()`).
    """

    scale: float | None = None

    def __check_init__(self):
        if self.scale is not None and not (float(self.scale) > 0):
            raise ValueError(f"`LogTime(scale=...)` must be > 0, got {self.scale}.")

    def bind(self, problem) -> "BoundLogTime":
        tau = problem.time_scale() if self.scale is None else jnp.asarray(self.scale)
        return BoundLogTime(tau)


class BoundLogTime(eqx.Module):
    """A `LogTime` clock with its scale $\\tau$ resolved for one problem."""

    tau: object

    def to_solver(self, t):
        return jnp.log1p(jnp.asarray(t) / self.tau)

    def from_solver(self, s):
        return self.tau * jnp.expm1(s)

    def wrap(self, system):
        return LogTimeSystem(system, self.tau)


class RealTime(eqx.Module):
    """The default clock: the solver integrates in $t$ itself."""

    def bind(self, problem) -> "RealTime":
        del problem
        return self

    def to_solver(self, t):
        return t

    def from_solver(self, s):
        return s

    def wrap(self, system):
        return system


class LogTimeSystem(AbstractWrappedSystem):
    r"""`system` with $s = \log(1 + t/\tau)$ as independent variable:
    $\frac{dy}{ds} = \tau e^{s} f(\tau(e^s - 1), y)$."""

    system: AbstractFlowSystem
    tau: object

    def vector_field(self, s, y, problem):
        import jax

        t = self.tau * jnp.expm1(s)
        f = self.system.vector_field(t, y, problem)
        rate = self.tau * jnp.exp(s)
        return jax.tree.map(lambda v: (rate * v).astype(v.dtype), f)
