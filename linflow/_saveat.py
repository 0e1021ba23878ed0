import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._checks import is_concrete


_GRID_PER_SAVE = 8  # candidate times per requested save on the default (open-ended) grid
_GRID_DECADES = 40  # how far past t_min the open-ended grid reaches: 10^40 tau


_BAD_TIMES = "`SaveAt(ts=...)` must be finite, >= 0 and non-decreasing."


def _bad_times(ts):
    xp = np if isinstance(ts, np.ndarray) else jnp
    return xp.any(ts < 0) | xp.any(xp.diff(ts) < 0) | ~xp.all(xp.isfinite(ts))


class SaveAt(eqx.Module):
    r"""Which times of the flow to save.

    Either explicit times `ts`, or `num` saves: $t = 0$, `num - 2` log-spaced times from
    `t_min`, and the final time of the flow (`FlowSolution.t_final`, where the stop held),
    whose saved model is `FlowSolution.final`. Gradient flows of small initialisations have
    plateaus at every time scale, so log-spacing is the default. With `num = 1` only the
    final time is saved, with `num = 2` also $t = 0$.

    The log-spaced times end where the flow does: the final time is not known before the
    solve (it is where the stop holds; depth-3 nets at $\alpha = 10^{-3}$ end near
    $t = 5\cdot10^9$), so the solver saves on a fixed grid of `8 * (num - 2)` log-spaced
    times from `t_min` to $10^{40}\tau$ (to `t1` when it is finite), and the `num - 2` grid
    times before the final time are picked from it, evenly in log-time (a gather: it works
    under `jit` and `vmap`, where each member keeps its own times). The saves are states of
    the flow at those times, never interpolated between saves. With an explicit `t_max`
    the `num - 2` times are exactly `num - 2` log-spaced times from `t_min` to `t_max`.

    Explicit times (or an explicit `t_max`) after the flow stopped at a steady state hold
    that steady state (the flow moved by less than the stop tolerance there); after a failure
    (`max_steps_reached`, `diverged`) they hold NaN, in the models and in the losses.

    When `t_min` is left as `None` it is $10^{-3}\tau$, with $\tau$ the problem's time scale
    (`AbstractProblem.time_scale`, $1/\|X\|_F^2$ for regression).

    **Arguments:**

    - `ts`: explicit save times, increasing, $\ge 0$.
    - `num`: number of saves (default 64), $t = 0$ and the final time included.
    - `t_min`, `t_max`: range of the log-spaced times (`t_max`: default the final time).
    """

    ts: Float[Array, " times"] | None = None
    num: int = eqx.field(static=True, default=64)
    t_min: float | None = eqx.field(static=True, default=None)
    t_max: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.ts is not None:
            if jnp.ndim(self.ts) != 1 or jnp.size(self.ts) == 0:
                raise ValueError("`SaveAt(ts=...)` must be a non-empty 1-D array of times.")
            # Values are checked here when known, and by `checked` when traced.
            if is_concrete(self.ts) and bool(_bad_times(np.asarray(self.ts))):
                raise ValueError(_BAD_TIMES)
        elif isinstance(self.num, bool) or not isinstance(self.num, (int, np.integer)):
            raise TypeError(f"`SaveAt(num=...)` must be an int, got {type(self.num).__name__}.")
        elif self.num < 1:
            raise ValueError(f"`SaveAt(num=...)` must be >= 1, got {self.num}.")
        for name in ("t_min", "t_max"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise ValueError(f"`SaveAt({name}=...)` must be finite and > 0, got {v}.")
        if self.t_min is not None and self.t_max is not None and not self.t_min < self.t_max:
            raise ValueError("`SaveAt` needs 0 < t_min < t_max.")

    def checked(self) -> "SaveAt":
        """`self`, with traced explicit times (built inside a caller's `jit`) checked at run
        time (`eqx.error_if`, in the caller's program: the flow's own stays callback-free);
        known times were checked when `self` was built."""
        if self.ts is None or is_concrete(self.ts):
            return self
        ts = eqx.error_if(self.ts, _bad_times(self.ts), _BAD_TIMES)
        return eqx.tree_at(lambda s: s.ts, self, ts)

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

    def times(self, time_scale, dtype, t1: float = np.inf) -> Float[Array, " grid"]:
        """The times the solver saves at for a problem of time scale `time_scale` and a flow
        that ends by `t1`: `ts`, or the grid the `num` saves are picked from (`select`)."""
        if self.ts is not None:
            return jnp.asarray(self.ts, dtype)
        lo = self.t_min if self.t_min is not None else 1e-3 * time_scale
        lo = jnp.asarray(lo, dtype)
        n_mid = self.num - 2
        if n_mid < 1:  # only 0 and the end: one dummy save keeps the solver's call uniform
            return jnp.reshape(lo, (1,))
        log_lo = jnp.log10(lo)
        if self.t_max is not None:
            log_hi, count = jnp.log10(jnp.asarray(self.t_max, dtype)), n_mid
        else:
            if np.isfinite(t1):
                log_hi = jnp.log10(jnp.asarray(t1, dtype))
            else:
                # In decades, below the dtype's largest number (float32: 10^38.5).
                top = np.log10(np.finfo(dtype).max) - 1
                log_hi = jnp.minimum(log_lo + _GRID_DECADES, jnp.asarray(top, dtype))
            count = _GRID_PER_SAVE * n_mid
        if count == 1:
            return jnp.reshape(lo, (1,))
        return jnp.logspace(log_lo, jnp.maximum(log_hi, log_lo), count, dtype=dtype)

    def select(self, grid, ys, y0, t_final, y_final):
        """The saved times and states: for explicit `ts`, the solver's saves; otherwise
        $t = 0$, the `num - 2` log-spaced saves (picked from the grid before `t_final` when
        `t_max` is open), and `t_final` with the final state.

        **Arguments:** `grid` (shape `(G,)`, from `times`), `ys` (the states there, leading
        axis `G`), `y0`, `t_final`, `y_final`.

        **Returns:** `(ts, ys)` with `num` entries (or those of `ts`)."""
        if self.ts is not None:
            return grid, ys
        n_mid = self.num - 2
        t_final = jnp.asarray(t_final, grid.dtype)
        parts_t, parts_y = [jnp.reshape(t_final, (1,))], [jax.tree.map(lambda x: x[None], y_final)]
        if n_mid >= 1:
            if self.t_max is not None:
                mid_t, mid_y = grid, ys
            else:
                # The grid times strictly before the end, evenly spaced in index (= log-time).
                k = jnp.sum(grid < t_final)
                idx = jnp.round(jnp.linspace(0.0, 1.0, n_mid) * (k - 1)).astype(jnp.int32)
                idx = jnp.clip(idx, 0, grid.shape[0] - 1)
                none = k == 0  # the flow ended before the grid began: repeat the end
                mid_t = jnp.where(none, t_final, grid[idx])
                mid_y = jax.tree.map(
                    lambda x, xf: jnp.where(jnp.reshape(none, (1,) * x.ndim), xf[None], x[idx]),
                    ys,
                    y_final,
                )
            parts_t.insert(0, mid_t)
            parts_y.insert(0, mid_y)
        if self.num >= 2:
            parts_t.insert(0, jnp.zeros((1,), grid.dtype))
            parts_y.insert(0, jax.tree.map(lambda x: x[None], y0))
        ts = jnp.concatenate(parts_t)
        ys = jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts_y)
        return ts, ys
