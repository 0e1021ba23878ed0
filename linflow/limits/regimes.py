r"""Where the rich and kernel regimes start (Woodworth et al. 2020, Thm 2 and Thm 3 / Fig. 3).

- Thm 2 (depth 2, $w_0 = \mathbf 1$): explicit scales $\alpha$ below which the flow's limit is
  $\varepsilon$-close to min-$\ell_1$ in $\ell_1$ norm, and above which it is $\varepsilon$-close
  to min-$\ell_2$ in squared $\ell_2$ norm.
- Thm 3 (depth $D\ge3$): the limit minimises $Q^D_\alpha(\beta) = \alpha^D\sum_i
  q_D(\beta_i/\alpha^D)$
  with $q_D = \int h_D^{-1}$, $h_D(z) = (1-z)^{-D/(D-2)} - (1+z)^{-D/(D-2)}$; `q_depth` evaluates
  $q_D$ (and the depth-2 $q$), `sparse_dense_ratio` the Fig. 3(b) ratio.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from .hypentropy import _q2, _scaled_qd


_scaled_qd_jit = jax.jit(_scaled_qd, static_argnums=2)


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


def q_depth(z: ArrayLike, depth: int) -> Float[np.ndarray, "..."] | float:
    r"""The coordinate potential $q_D$ (Woodworth et al. 2020, Thm 1 for $D=2$, Thm 3 for $D\ge3$).

    - $D = 2$: $q(z) = 2 - \sqrt{4+z^2} + z\operatorname{arcsinh}(z/2)$.
    - $D \ge 3$: $q_D(u) = \int_0^u h_D^{-1} = u\,h_D^{-1}(u) - H_D(h_D^{-1}(u))$ with
      $H_D(z) = \int_0^z h_D = \frac{(1-z)^{1-p} + (1+z)^{1-p} - 2}{p-1}$, $p = D/(D-2)$
      (integration by parts).

    The potential's own evaluation (`hypentropy`, `Hypentropy.value`), in three ranges so that
    no digits are lost: a Taylor term for $|u| < 10^{-6}$, $z = h_D^{-1}(u)$ up to 1, and
    $\log(1 - z)$ beyond, which keeps $1 - z$ accurate far below $10^{-300}$.

    **Arguments:** `z`: any shape; `depth` $D\ge2$.

    **Returns:** $q_D(z)$, same shape (numpy float64).
    """
    D = int(depth)
    if D != depth or D < 2:
        raise ValueError(f"`depth` must be an integer >= 2, got {depth!r}.")
    z = jnp.asarray(np.asarray(z, np.float64))
    if D == 2:
        return np.asarray(_q2(z))
    return np.asarray(_scaled_qd_jit(z, jnp.zeros(()), D))


def sparse_dense_ratio(alpha: ArrayLike, d: int, depth: int) -> Float[np.ndarray, "..."] | float:
    r"""$Q^D_\alpha(e_1) / Q^D_\alpha(\mathbf 1_d/\sqrt d)$ (Woodworth et al. 2020, Fig. 3(b)):
    1 in the kernel regime ($\ell_2$), $1/\sqrt d$ in the rich limit ($\ell_1$).

    $Q^D_\alpha(\beta) = \alpha^D\sum_i q_D(\beta_i/\alpha^D)$, so the ratio is
    $q_D(1/\alpha^D) / (d\,q_D(1/(\sqrt d\,\alpha^D)))$.
    """
    a = np.asarray(alpha, np.float64) ** int(depth)
    return q_depth(1 / a, depth) / (d * q_depth(1 / (np.sqrt(d) * a), depth))
