import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float


class SaveAt(eqx.Module):
    r"""Which times of the flow to save.

    Either explicit times `ts`, or `num` log-spaced times between `t_min` and `t_max`
    (gradient flows of small initialisations have plateaus at every time scale, so
    log-spacing is the default). The state at the stop time is always returned separately
    as `FlowSolution.final`.

    When `t_min`/`t_max` are left as `None` they are chosen from the problem's time scale
    $\tau = 1/\|X\|_2^2$: from $10^{-3}\tau$ to $10^{7}\tau$.

    Saves requested after the flow stopped at a steady state hold that steady state (the flow
    moved by less than the stop tolerance there); after a failure they hold `inf`.

    **Arguments:**

    - `ts`: explicit save times, increasing, $\ge 0$.
    - `num`: number of log-spaced times (default 64).
    - `t_min`, `t_max`: range of the log-spaced times.
    """

    ts: Float[Array, " times"] | None = None
    num: int = eqx.field(static=True, default=64)
    t_min: float | None = eqx.field(static=True, default=None)
    t_max: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.ts is not None:
            ts = np.asarray(self.ts)
            if ts.ndim != 1 or ts.size == 0:
                raise ValueError("`SaveAt(ts=...)` must be a non-empty 1-D array of times.")
            if np.any(ts < 0) or np.any(np.diff(ts) < 0) or not np.all(np.isfinite(ts)):
                raise ValueError("`SaveAt(ts=...)` must be finite, >= 0 and non-decreasing.")
        elif self.num < 1:
            raise ValueError(f"`SaveAt(num=...)` must be >= 1, got {self.num}.")
        if self.t_min is not None and self.t_max is not None and not 0 < self.t_min < self.t_max:
            raise ValueError("`SaveAt` needs 0 < t_min < t_max.")

    @classmethod
    def rescaled(cls, taus: Float[ArrayLike, " times"], alpha: float) -> "SaveAt":
        r"""Save at rescaled times $\tau = t/\log(1/\alpha)$: the clock of the
        $\alpha\to0$ limit of a depth-2 diagonal net from scale $\alpha$, on which its
        plateaus and jumps stay put whatever $\alpha$ is (`linflow.limits.saddle_to_saddle`).
        The flow's `ts` are the unscaled times $t = \tau\log(1/\alpha)$.

        **Arguments:**

        - `taus`: rescaled save times, increasing, $\ge 0$, shape `(times,)`.
        - `alpha`: the initialisation scale, $0 < \alpha < 1$.
        """
        alpha = float(alpha)
        if not 0 < alpha < 1:
            raise ValueError(f"`alpha` must be in (0, 1) for rescaled time, got {alpha}.")
        taus = np.asarray(taus, dtype=np.float64)
        return cls(ts=jnp.asarray(taus * -np.log(alpha)))

    def times(self, time_scale: float | Float[Array, ""], dtype) -> Float[Array, " times"]:
        """The save times for a problem whose natural time scale is `time_scale`."""
        if self.ts is not None:
            return jnp.asarray(self.ts, dtype)
        lo = self.t_min if self.t_min is not None else 1e-3 * time_scale
        hi = self.t_max if self.t_max is not None else 1e7 * time_scale
        if self.num == 1:  # t_min, as logspace gives, without its division by num - 1 = 0
            return jnp.reshape(jnp.asarray(lo, dtype), (1,))
        lo, hi = jnp.log10(jnp.asarray(lo, dtype)), jnp.log10(jnp.asarray(hi, dtype))
        return jnp.logspace(lo, hi, self.num, dtype=dtype)
