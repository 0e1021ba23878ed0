r"""A progress meter for single flows, on a log-time scale.

diffrax's progress meters report $(t - t_0)/(t_1 - t_0)$, which is 0 for the whole of a flow
to $t_1 = \infty$ and, for a finite $t_1$, sits near 0 while the flow does most of its work
(its plateaus are evenly spread in $\log t$). `Progress` shows
$\log(1 + t/\tau)/\log(1 + t_{\rm end}/\tau)$ instead, through diffrax's own
`TqdmProgressMeter`.
"""

import math

import diffrax
import equinox as eqx
import jax.numpy as jnp


class Progress(eqx.Module):
    r"""Show a progress bar while a flow runs (`linflow.flow(..., progress=linflow.Progress())`;
    off by default).

    The bar is diffrax's `TqdmProgressMeter` (needs `tqdm`), on the log-time scale
    $\log(1 + t/\tau)/\log(1 + t_{\rm end}/\tau)$ with $\tau$ the problem's time scale
    (`problem.time_scale()`) and $t_{\rm end}$ = `t1` when it is finite, else
    `decades` decades past $\tau$ ($10^{10}\tau$ by default): a flow to a steady state ends
    when its stop holds, wherever the bar is (most flows of the papers' settings stop within
    $10^{2\ldots 6}\tau$; a classifier's loss needs far longer). With a `linflow.Fallback`
    solver the second solver shows its own bar.

    **Arguments:**

    - `decades`: the log-time span shown for `t1 = inf` (default 10).
    - `refresh_steps`: update the bar every this many solver steps (default 20).
    """

    decades: float = 10.0
    refresh_steps: int = eqx.field(static=True, default=20)

    def __check_init__(self):
        if not (float(self.decades) > 0):
            raise ValueError(f"`Progress(decades=...)` must be > 0, got {self.decades}.")
        if not (isinstance(self.refresh_steps, int) and self.refresh_steps >= 1):
            raise ValueError(
                f"`Progress(refresh_steps=...)` must be a positive int, got {self.refresh_steps}."
            )

    def meter(self, clock, problem, t1: float, t1_solver, dtype):
        """The diffrax meter and the (finite) end of the solver's interval it needs: for
        `t1 = inf`, the solve runs to a finite surrogate end it never reaches first
        (`sqrt` of the largest float, $1.3\\times 10^{154}$ in float64), so that diffrax's
        linear progress carries $t$ to the meter."""
        tau = problem.time_scale()
        if math.isfinite(t1):
            end, run_end = jnp.asarray(t1, dtype), t1_solver
        else:
            end = tau * 10.0**self.decades
            run_end = clock.to_solver(jnp.asarray(jnp.finfo(dtype).max ** 0.5, dtype))
        inner = diffrax.TqdmProgressMeter(refresh_steps=self.refresh_steps)
        return _LogTimeMeter(inner, clock, run_end, tau, end), run_end


class _LogTimeMeter(diffrax.AbstractProgressMeter):
    """diffrax's meter fed the log-time fraction instead of the linear one."""

    inner: diffrax.AbstractProgressMeter
    clock: object
    run_end: object
    tau: object
    end: object

    def init(self):
        return self.inner.init()

    def step(self, state, progress):
        t = self.clock.from_solver(progress * self.run_end)
        frac = jnp.log1p(t / self.tau) / jnp.log1p(self.end / self.tau)
        return self.inner.step(state, jnp.clip(frac, 0.0, 1.0))

    def close(self, state):
        return self.inner.close(state)
