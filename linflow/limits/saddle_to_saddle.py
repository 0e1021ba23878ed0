r"""The $\alpha\to0$ limit process of diagonal networks on square-loss regression: a staircase
of saddles (Pesme & Flammarion 2023, "Saddle-to-saddle dynamics in diagonal linear networks",
Thm 2 and Algorithm 1; the small-initialisation picture of Woodworth et al. 2020 and
Gissin et al. 2020).

**Derivation (library normalisation).** The loss is $L(\beta) = \frac12\|X\beta - y\|^2$ (a
sum, `linflow.Regression`). On the flow of `DiagonalNet.unbiased(d, alpha)` (depth 2,
$w_\pm(0) = \alpha$), $w_\pm = \alpha e^{\pm2s}$ with $s(t) = -\int_0^t\nabla L(\beta)\,du$
(`linflow._reduced`), so $\beta_i = 2\alpha^2\sinh(4s_i)$. In rescaled time and dual
$\tau = t/\log(1/\alpha)$, $\tilde s = s/\log(1/\alpha)$,

$$\frac{d\tilde s}{d\tau} = -\nabla L(\beta), \qquad
|\beta_i| \approx \alpha^{2 - 4|\tilde s_i|}.$$

As $\alpha\to0$: a coordinate with $|\tilde s_i| < \frac12$ has $\beta_i = 0$, and
$|\tilde s_i|$ cannot pass $\frac12$ (there $\beta_i$ would be infinite). The limit
$(\tilde s, \beta)$ is piecewise: on a plateau $\beta$ is constant, $\tilde s$ moves on a
straight line with velocity $g = X^\top(y - X\beta)$; the plateau ends at the first $\tau$
where a coordinate with $|\tilde s_i| < \frac12$ reaches $\tilde s_i = \pm\frac12$ (the jump
time); the next saddle is the sign-constrained least-squares minimiser

$$\beta^{(k)} = \arg\min L(\beta) \text{ s.t. } \beta_i = 0 \text{ where } |\tilde s_i| < \tfrac12,
\quad \operatorname{sign}(\tilde s_i)\,\beta_i \ge 0 \text{ where } |\tilde s_i| = \tfrac12 .$$

Its KKT conditions make $g_i = 0$ where $\beta_i \ne 0$ (those duals stay on the boundary)
and $\operatorname{sign}(\tilde s_i)g_i \le 0$ where a boundary coordinate has
$\beta_i = 0$: that coordinate leaves the boundary (and the support: its $\beta_i$ crossed
zero). With these constants the first jump time is $\tau_1 = 1/(2\|X^\top y\|_\infty)$ and the
first saddle is the one-coordinate least squares $\beta_{i^\star} = x_{i^\star}^\top y /
\|x_{i^\star}\|^2$ on $i^\star = \arg\max_i|x_i^\top y|$. The process ends when $g = 0$: then
$X^\top\nu = \tilde s$ with $\|\tilde s\|_\infty\le\frac12$ is a dual certificate and the last
saddle is a minimum-$\ell_1$ least-squares solution (the minimum-$\ell_1$ interpolator when
$X\beta = y$ is solvable; `linflow.limits.min_l1`).

**Other parametrisations.** At depth $D\ge3$ (`DiagonalNet.unbiased(d, alpha, D)`),
$\beta_i = \alpha^D[(1 - \tilde s_i)^{-p} - (1 + \tilde s_i)^{-p}]$ with
$\tilde s = D(D-2)\alpha^{D-2}s$, $p = D/(D-2)$, which vanishes in the open box
$|\tilde s_i| < 1$ and is unbounded at its faces: the same process with radius 1 in
$\tau = D(D-2)\alpha^{D-2}t$, i.e. the same saddles at jump times $2\tau_k$ (pass `depth`).
`HadamardNet.unbiased(d, alpha)` ($u = 2\alpha$, $v = 0$) has
$\beta_i = 2\alpha^2\sinh(2s_i)$: radius 1 in $\tau = t/\log(1/\alpha)$, the depth-2 process
at twice the rescaled time (it is the depth-2 flow run at twice the speed). Non-uniform
shapes $w_0$, biased initialisations and classification losses are not covered.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jaxtyping import Array, ArrayLike, Float

from .._results import RESULTS
from .norms import _check_xy


class SaddleToSaddle(eqx.Module):
    r"""The $\alpha\to0$ limit process returned by `saddle_to_saddle`.

    Plateau $k$ lasts for $\tau\in[\tau_k, \tau_{k+1})$ (the last one for ever) and the flow's
    predictor sits there on `saddles[k]`; before $\tau_0$ it is $0$.

    **Fields:**

    - `times`: rescaled jump times $\tau_k$, increasing, shape `(K,)`.
    - `saddles`: the predictor on the plateau after each jump, shape `(K, d)`.
    - `duals`: the rescaled dual $\tilde s$ at each jump, shape `(K, d)` (in the box
      $\|\tilde s\|_\infty \le$ `radius`).
    - `radius`: the box radius ($\frac12$ at depth 2, 1 at depth $\ge3$).
    - `result`: `RESULTS.converged` if the process reached $\nabla L = 0$, else
      `RESULTS.max_steps_reached`.
    - `stats`: `{"num_jumps": K, "final_gradient": max|∇L| on the last plateau}`.
    """

    times: Float[Array, " K"]
    saddles: Float[Array, "K d"]
    duals: Float[Array, "K d"]
    radius: float = eqx.field(static=True)
    result: RESULTS
    stats: dict

    def predictor(self, tau: Float[ArrayLike, "..."]) -> Float[Array, "... d"]:
        r"""The limit predictor $\beta(\tau)$ at rescaled times `tau` (any shape): 0 before
        the first jump, `saddles[k]` on plateau $k$ (right-continuous at the jumps)."""
        tau = np.asarray(tau, dtype=np.float64)
        k = np.searchsorted(np.asarray(self.times), tau, side="right")
        saddles = np.asarray(self.saddles)
        padded = np.concatenate([np.zeros((1,) + saddles.shape[1:]), saddles])
        return jnp.asarray(padded[k])


def saddle_to_saddle(
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "..."],
    *,
    depth: int = 2,
    max_jumps: int | None = None,
    rtol: float = 1e-9,
    throw: bool = True,
) -> SaddleToSaddle:
    r"""The $\alpha\to0$ limit of the gradient flow of `DiagonalNet.unbiased(d, alpha, depth)`
    on `Regression(X, y)` in rescaled time: a sequence of saddles and jump times (Pesme &
    Flammarion 2023, Algorithm 1; derivation and constants in the module doc).

    Rescaled time is $\tau = t/\log(1/\alpha)$ at depth 2 (see `linflow.SaveAt.rescaled`) and
    $\tau = D(D-2)\alpha^{D-2}t$ at depth $D\ge3$; the box radius is $\frac12$ and 1. Each
    saddle is a sign-constrained least squares on the boundary coordinates (SciPy's NNLS on
    the columns $\operatorname{sign}(\tilde s_i)x_i$), each jump time the first time a dual
    coordinate moving on its straight line reaches the boundary. Runs eagerly (NumPy), not
    under `jit`.

    **Tie rule.** Coordinates whose arrival times agree to `rtol` (relative) join the
    boundary together at the earliest of them, and the next saddle is computed with all of
    them. A plateau whose boundary columns are linearly dependent (e.g. duplicated features,
    which arrive together) has a constrained minimiser that its constraints do not determine:
    `ValueError`, never a NaN or an arbitrary pick.

    **Arguments:**

    - `X`: design matrix, shape `(n, d)`.
    - `y`: targets, shape `(n,)`.
    - `depth`: the network's depth $D\ge2$ (sets the radius and the time unit only: the
      saddles do not depend on it).
    - `max_jumps`: the most jumps followed (default $4d + 16$).
    - `rtol`: relative tolerance for $\nabla L = 0$ (against $\|X^\top y\|_\infty$) and for
      simultaneous arrivals.
    - `throw`: raise `RuntimeError` if the process did not end within `max_jumps`.

    **Returns:** a `SaddleToSaddle` with `times` (shape `(K,)`) and `saddles` (shape
    `(K, d)`); the last saddle is the minimum-$\ell_1$ interpolator when $X\beta = y$ is
    solvable.

    **Raises:** `ValueError` for bad input, zero targets ($X^\top y = 0$: the flow never
    leaves 0) or a degenerate plateau (see the tie rule).
    """
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 2:
        raise ValueError(f"`depth` must be an integer >= 2, got {depth!r}.")
    if not (0 < rtol < 1e-2):
        raise ValueError(f"`rtol` must be in (0, 1e-2), got {rtol}.")
    X, y = _check_xy(X, y, y_ndim=1)
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    n, d = X.shape
    if max_jumps is None:
        max_jumps = 4 * d + 16
    if not (isinstance(max_jumps, int) and max_jumps >= 1):
        raise ValueError(f"`max_jumps` must be a positive integer, got {max_jumps!r}.")
    radius = 0.5 if depth == 2 else 1.0
    g0 = X.T @ y
    gscale = np.max(np.abs(g0)) if d else 0.0
    if not gscale > 0:
        raise ValueError(
            "`X.T @ y` is zero: the flow from a vanishing initialisation never leaves 0 "
            "(no saddle to jump to)."
        )
    gtol = rtol * gscale
    s = np.zeros(d)
    beta = np.zeros(d)
    tau = 0.0
    times, saddles, duals = [], [], []
    converged = False
    g = g0
    for _ in range(max_jumps):
        g = X.T @ (y - X @ beta)
        if np.max(np.abs(g)) <= gtol:
            converged = True
            break
        on_boundary = np.abs(s) >= radius
        sigma = np.sign(s)
        # Candidates: interior duals, and boundary duals with beta = 0 pushed inward (they
        # cross the box to the opposite face). Duals of the support have g = 0 (KKT).
        inward = on_boundary & (beta == 0) & (sigma * g < -gtol)
        moving = (~on_boundary | inward) & (np.abs(g) > gtol)
        if not np.any(moving):
            break  # pragma: no cover (g != 0 only on the support contradicts the KKT)
        gm = np.where(moving, g, 1.0)
        dist = np.where(moving, (np.sign(gm) * radius - s) / gm, np.inf)
        step = np.min(dist)
        arrive = moving & (dist <= step + rtol * max(step, tau, 1e-300))
        tau = tau + step
        s = s + step * g
        # Boundary duals that are not moving stay on the boundary (their g is 0 only to
        # rounding); arrivals are put on it exactly.
        stay = on_boundary & ~inward
        s[stay] = sigma[stay] * radius
        s[arrive] = np.sign(g[arrive]) * radius
        s = np.clip(s, -radius, radius)
        beta = _constrained_least_squares(X, y, s, radius)
        times.append(tau)
        saddles.append(beta)
        duals.append(s.copy())
    else:
        g = X.T @ (y - X @ beta)
        converged = bool(np.max(np.abs(g)) <= gtol)
    result = RESULTS.converged if converged else RESULTS.max_steps_reached
    if throw and not converged:
        raise RuntimeError(
            f"`saddle_to_saddle` did not reach a stationary saddle in max_jumps={max_jumps} "
            "jumps; increase `max_jumps`."
        )
    return SaddleToSaddle(
        times=jnp.asarray(np.asarray(times, np.float64)),
        saddles=jnp.asarray(np.asarray(saddles, np.float64).reshape(len(times), d)),
        duals=jnp.asarray(np.asarray(duals, np.float64).reshape(len(times), d)),
        radius=radius,
        result=result,
        stats={"num_jumps": len(times), "final_gradient": float(np.max(np.abs(g)))},
    )


def _constrained_least_squares(X, y, s, radius):
    r"""$\arg\min\frac12\|X\beta - y\|^2$ with $\beta_i = 0$ off the boundary
    $|s_i| = $ `radius` and $\operatorname{sign}(s_i)\beta_i \ge 0$ on it (NNLS in
    $u_i = \operatorname{sign}(s_i)\beta_i$); `ValueError` if the minimiser is not unique."""
    active = np.flatnonzero(np.abs(s) >= radius)
    sigma = np.sign(s[active])
    A = X[:, active] * sigma
    _check_unique(A, active)
    # NNLS on the scaled columns (an active-set method: exact on its final support).
    norms = np.linalg.norm(A, axis=0)
    u, _ = scipy.optimize.nnls(A / norms, y, maxiter=50 * max(len(active), 1))
    # Entries whose contribution |u_j| ||A_j|| is at rounding level are zero (NNLS leaves
    # some at 1e-16 instead of exactly 0).
    u = np.where(u > 1e-12 * np.max(u, initial=0.0), u, 0.0) / norms
    support = u > 0
    if np.any(support):
        # Polish on the support by plain least squares (the NNLS answer is exact only to its
        # own tolerance).
        us, *_ = np.linalg.lstsq(A[:, support], y, rcond=None)
        if np.all(us > 0):
            u = np.zeros_like(u)
            u[support] = us
    return _place(X.shape[1], active, sigma * u)


def _check_unique(A, active):
    """`ValueError` if the boundary columns are linearly dependent: then the constrained
    minimiser (and the flow's limit, which depends on how the tied features share the
    weight) is not determined by the saddle's constraints."""
    sv = np.linalg.svd(A, compute_uv=False)
    if A.shape[1] > A.shape[0] or sv[-1] <= max(A.shape) * np.finfo(float).eps * sv[0] * 1e3:
        raise ValueError(
            "degenerate plateau: the columns of `X` on the boundary "
            f"{active.tolist()} are linearly dependent, so the limit saddle is not unique "
            "(ties between identical or dependent features)."
        )


def _place(d, idx, values):
    beta = np.zeros(d)
    beta[idx] = values
    return beta


__all__ = ["SaddleToSaddle", "saddle_to_saddle"]
