r"""Where the rich and kernel regimes start (Woodworth et al. 2020, Thm 2 and Thm 3 / Fig. 3).

- Thm 2 (depth 2, $w_0 = \mathbf 1$): explicit scales $\alpha$ below which the flow's limit is
  $\varepsilon$-close to min-$\ell_1$ in $\ell_1$ norm, and above which it is $\varepsilon$-close
  to min-$\ell_2$ in squared $\ell_2$ norm.
- Thm 3 (depth $D\ge3$): the limit minimises $Q^D_\alpha(\beta) = \alpha^D\sum_i
  q_D(\beta_i/\alpha^D)$
  with $q_D = \int h_D^{-1}$, $h_D(z) = (1-z)^{-D/(D-2)} - (1+z)^{-D/(D-2)}$; `q_depth` evaluates
  $q_D$ (and the depth-2 $q$), `sparse_dense_ratio` the Fig. 3(b) ratio.
"""

import numpy as np
from jaxtyping import ArrayLike, Float


def _eps(eps):
    eps = float(eps)
    if not eps > 0:
        raise ValueError(f"`eps` must be > 0, got {eps}.")
    return eps


def alpha_l1_threshold(l1_norm: float, d: int, eps: float) -> float:
    r"""The Thm 2 scale for the rich limit: if
    $\alpha \le
    \min\{(2(1+\varepsilon)\|\beta^\star_{\ell_1}\|_1)^{-(2+\varepsilon)/(2\varepsilon)},
    \exp(-d/(\varepsilon\|\beta^\star_{\ell_1}\|_1))\}$ then
    $\|\beta^\infty_{\alpha}\|_1 \le (1+\varepsilon)\|\beta^\star_{\ell_1}\|_1$
    (Woodworth et al. 2020, Thm 2; $0<\varepsilon<d$).

    **Arguments:** `l1_norm` $=\|\beta^\star_{\ell_1}\|_1 > 0$; `d` the dimension; `eps`.

    **Returns:** the largest $\alpha$ the theorem covers (a float; may underflow to 0 for tiny
    $\varepsilon$, in which case no positive float is small enough).
    """
    eps = _eps(eps)
    if not (eps < d):
        raise ValueError(f"Thm 2 needs 0 < eps < d = {d}, got eps = {eps}.")
    b = float(l1_norm)
    if not b > 0:
        raise ValueError(f"`l1_norm` must be > 0, got {l1_norm}.")
    log_a = min(-(2 + eps) / (2 * eps) * np.log(2 * (1 + eps) * b), -d / (eps * b))
    return float(np.exp(log_a))


def alpha_l2_threshold(l2_norm: float, eps: float) -> float:
    r"""The Thm 2 scale for the kernel regime: if
    $\alpha \ge \sqrt{2(1+\varepsilon)(1+2/\varepsilon)\|\beta^\star_{\ell_2}\|_2}$ then
    $\|\beta^\infty_\alpha\|_2^2 \le (1+\varepsilon)\|\beta^\star_{\ell_2}\|_2^2$
    (Woodworth et al. 2020, Thm 2)."""
    eps = _eps(eps)
    b = float(l2_norm)
    if not b >= 0:
        raise ValueError(f"`l2_norm` must be >= 0, got {l2_norm}.")
    return float(np.sqrt(2 * (1 + eps) * (1 + 2 / eps) * b))


def _bisect(f, lo, hi, iters=200):
    """The root of an increasing `f` in [lo, hi] (elementwise)."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            above = f(mid) > 0
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return 0.5 * (lo + hi)


def _q_depth_pos(u, D):
    r"""$q_D(u)$ for $u \ge 0$, in three ranges so that no digits are lost:
    $u < 10^{-6}$: Taylor $u^2/(4p)$ (relative error $O(u^2)$); $u \le 1$: bisection for
    $z = h_D^{-1}(u)$ and $H_D$ through `expm1`/`log1p`; $u > 1$: bisection for $\log(1 - z)$,
    which keeps $1 - z$ accurate down to $10^{-300}$."""
    p = D / (D - 2)
    out = np.zeros_like(u)
    small = u < 1e-6
    out[small] = u[small] ** 2 / (4 * p)
    mid = (u >= 1e-6) & (u <= 1)
    if np.any(mid):
        um = u[mid]

        def f(z):
            return np.exp(-p * np.log1p(-z)) - np.exp(-p * np.log1p(z)) - um

        z = _bisect(f, np.zeros_like(um), np.full_like(um, 0.5))  # h_D(0.5) > 1
        H = (np.expm1((1 - p) * np.log1p(-z)) + np.expm1((1 - p) * np.log1p(z))) / (p - 1)
        out[mid] = um * z - H
    big = u > 1
    if np.any(big):
        ub = u[big]

        def g(logt):  # h_D(1 - t) is decreasing in t, so -h is increasing in log t
            t = np.exp(logt)
            return ub - (t ** (-p) - (2 - t) ** (-p))

        logt = _bisect(g, np.full_like(ub, np.log(1e-300)), np.zeros_like(ub))
        t = np.exp(logt)
        H = (t ** (1 - p) + (2 - t) ** (1 - p) - 2) / (p - 1)
        out[big] = ub * (1 - t) - H
    return out


def q_depth(z: ArrayLike, depth: int) -> Float[np.ndarray, "..."] | float:
    r"""The coordinate potential $q_D$ (Woodworth et al. 2020, Thm 1 for $D=2$, Thm 3 for $D\ge3$).

    - $D = 2$: $q(z) = 2 - \sqrt{4+z^2} + z\operatorname{arcsinh}(z/2)$.
    - $D \ge 3$: $q_D(u) = \int_0^u h_D^{-1} = u\,h_D^{-1}(u) - H_D(h_D^{-1}(u))$ with
      $H_D(z) = \int_0^z h_D = \frac{(1-z)^{1-p} + (1+z)^{1-p} - 2}{p-1}$, $p = D/(D-2)$
      (integration by parts).

    **Arguments:** `z`: any shape; `depth` $D\ge2$.

    **Returns:** $q_D(z)$, same shape (numpy float64).
    """
    D = int(depth)
    if D != depth or D < 2:
        raise ValueError(f"`depth` must be an integer >= 2, got {depth!r}.")
    z = np.asarray(z, np.float64)
    if D == 2:
        # 2 - sqrt(4 + z^2) written without cancellation at small z.
        return z * np.arcsinh(z / 2) - z**2 / (2 + np.sqrt(4 + z**2))
    u = np.abs(z)
    return _q_depth_pos(np.atleast_1d(u), D).reshape(u.shape)


def sparse_dense_ratio(alpha: ArrayLike, d: int, depth: int) -> Float[np.ndarray, "..."] | float:
    r"""$Q^D_\alpha(e_1) / Q^D_\alpha(\mathbf 1_d/\sqrt d)$ (Woodworth et al. 2020, Fig. 3(b)):
    1 in the kernel regime ($\ell_2$), $1/\sqrt d$ in the rich limit ($\ell_1$).

    $Q^D_\alpha(\beta) = \alpha^D\sum_i q_D(\beta_i/\alpha^D)$, so the ratio is
    $q_D(1/\alpha^D) / (d\,q_D(1/(\sqrt d\,\alpha^D)))$.
    """
    a = np.asarray(alpha, np.float64) ** int(depth)
    return q_depth(1 / a, depth) / (d * q_depth(1 / (np.sqrt(d) * a), depth))
