r"""Convergence-rate bounds for two-layer regression (Min et al. 2021 and its slides).

The loss is $L = \tfrac12\|Y - XUV^\top\|_F^2$ summed over samples, which is the loss of
the paper's analysis (eq. (8)): the theorems apply with their printed constants. For the
averaged loss $\tilde L = \|Y - XUV^\top\|_F^2/n$ used in the paper's experiments, read every
time $t$ below as $2\eta k/n$ after $k$ GD steps of size $\eta$.

Eigenvalues are numbered from the largest: $\lambda_k(A)$ is the $k$-th largest, and is taken
as $0$ when $k$ exceeds the size of $A$ (Min et al. 2021, before Thm 1).
"""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array
from .two_layer import DataSVD, _check_factors, _svd, min_error, min_imbalance


def _kth_largest(evals_desc, k):
    """$\\lambda_k$ of a spectrum sorted decreasingly; 0 when k exceeds its length."""
    if k < 1 or k > evals_desc.shape[0]:
        return jnp.asarray(0.0, evals_desc.dtype)
    return evals_desc[k - 1]


def _kth_singular(A, k):
    s = jnp.linalg.svd(A, compute_uv=False)
    return _kth_largest(s, k)


def imbalance_level(
    U: Float[ArrayLike, "D h"],
    V: Float[ArrayLike, "m h"],
    X: Float[ArrayLike, "n D"],
    svd: DataSVD | None = None,
) -> Float[Array, ""]:
    r"""The level of imbalance $c = [\lambda_r(\Lambda)]_+ + [\lambda_m(-\Lambda)]_+$ of Min et al.
    2021, Thm 1, with $\Lambda = U_1^\top U_1 - V^\top V$ and $r = \mathrm{rank}(X)$.

    **Arguments:**

    - `U`, `V`: the layers of $\Theta = UV^\top$, shapes `(D, h)` and `(m, h)`.
    - `X`: data, shape `(n, D)`; `svd`: `data_svd(X)`, computed when not given.

    **Returns:** a scalar $\ge 0$.
    """
    X, U, V, _ = _check_factors(X, U, V)
    svd = _svd(X, svd)
    Lam = min_imbalance(U, V, X, svd)
    ev = jnp.linalg.eigvalsh(Lam)[::-1]
    m = V.shape[0]
    lam_r = _kth_largest(ev, svd.rank)
    lam_m_neg = _kth_largest(-ev[::-1], m)
    return jnp.maximum(lam_r, 0.0) + jnp.maximum(lam_m_neg, 0.0)


def _excess0(U, V, X, Y, svd):
    E = min_error(U, V, X, Y, svd)
    return 0.5 * jnp.sum(E**2)


def min_rate_bound(
    U0: Float[ArrayLike, "D h"],
    V0: Float[ArrayLike, "m h"],
    X: Float[ArrayLike, "n D"],
    Y: Float[ArrayLike, "n m"],
    t: Float[ArrayLike, "*T"],
    svd: DataSVD | None = None,
) -> Float[Array, "*T"]:
    r"""Min et al. 2021, Thm 1, eq. (10): along the gradient flow,

    $$L(t) - L^\star \le e^{-2\lambda_r(\Sigma_x)\,c\,t}\,(L(0) - L^\star),$$

    with $c$ from `imbalance_level`. Derivation for our loss: $\tfrac{d}{dt}\tfrac12\|E\|^2 =
    -\|\Sigma_x^{1/2}EV\|_F^2 - \|U_1^\top\Sigma_x^{1/2}E\|_F^2 \le -2\lambda_r(\Sigma_x)
    (\lambda_r(U_1U_1^\top) + \lambda_m(VV^\top))\tfrac12\|E\|^2$, and
    $\lambda_r(U_1U_1^\top) + \lambda_m(VV^\top) \ge c$ for all $t$.

    **Arguments:**

    - `U0`, `V0`: the initialisation, shapes `(D, h)` and `(m, h)`.
    - `X`, `Y`: data, shapes `(n, D)`, `(n, m)`.
    - `t`: times, any shape.
    - `svd`: `data_svd(X)`, computed when not given.

    **Returns:** the bound on $L(t) - L^\star$, same shape as `t`.
    """
    X, U0, V0, Y = _check_factors(X, U0, V0, Y, names=("U0", "V0"))
    svd = _svd(X, svd)
    t = jnp.asarray(t, X.dtype)
    c = imbalance_level(U0, V0, X, svd)
    return jnp.exp(-2.0 * svd.sigma[-1] * c * t) * _excess0(U0, V0, X, Y, svd)


def _half_rate(a, b, mu):
    r"""$-a + b + \sqrt{(a+b)^2 + 4\mu^2}$ written without cancellation."""
    s = a + b
    root = jnp.sqrt(s**2 + 4.0 * mu**2)
    den = root + s
    return 2.0 * b + jnp.where(den > 0, 4.0 * mu**2 / jnp.where(den > 0, den, 1.0), 0.0)


def margin_rate(
    U0: Float[ArrayLike, "D h"],
    V0: Float[ArrayLike, "m h"],
    X: Float[ArrayLike, "n D"],
    Y: Float[ArrayLike, "n m"],
    svd: DataSVD | None = None,
) -> Float[Array, ""]:
    r"""The rate of the margin-refined bound (Min et al. 2021, slides, Thm 1 and Cor. 1-2).

    With $\bar\lambda_\pm = [\lambda_1(\pm\Lambda)]_+$,
    $\underline\lambda_+ = [\lambda_r(\Lambda)]_+$,
    $\underline\lambda_- = [\lambda_m(-\Lambda)]_+$ and margins $\mu_k = [\sigma_k(Z^\star) -
    \|E(0)\|_F/\lambda_r(\Sigma_x)^{1/2}]_+$ where
    $Z^\star = \Sigma_x^{-1/2}W^\top Y = U_1V^\top(\infty)$,

    $$\tilde c = -\bar\lambda_+ + \underline\lambda_-
    + \sqrt{(\bar\lambda_+ + \underline\lambda_-)^2
    + 4\mu_m^2} \;-\; \bar\lambda_- + \underline\lambda_+ + \sqrt{(\bar\lambda_- +
    \underline\lambda_+)^2 + 4\mu_r^2},$$

    and $L(t) - L^\star \le e^{-\lambda_r(\Sigma_x)\tilde c t}(L(0) - L^\star)$. The slides state it
    for $\Sigma_x = I$, $W = I$, where $\mu_k = [\sigma_k(Y) - \|Y - U_1V^\top\|_F]_+$. Our
    extension to general $X$: the instantaneous rate is at least $\lambda_r(\Sigma_x)
    \cdot 2(\lambda_r(U_1U_1^\top) + \lambda_m(VV^\top))$, the slides' Prop. 1 bounds the
    bracket by $\tilde c$ evaluated at $\sigma_k(U_1V^\top)$, and
    $\sigma_k(U_1V^\top) \ge \sigma_k(Z^\star) - \|\Sigma_x^{-1/2}E\|_2 \ge \sigma_k(Z^\star) -
    \|E(0)\|_F/\lambda_r(\Sigma_x)^{1/2}$ because $\|E(t)\|_F$ decreases. $\tilde c \ge 2c$ with
    $c$ of Thm 1 (slides, Cor. 1).

    **Arguments:**

    - `U0`, `V0`: the initialisation, shapes `(D, h)` and `(m, h)`.
    - `X`, `Y`: data, shapes `(n, D)`, `(n, m)`; `svd`: `data_svd(X)`, computed when not given.

    **Returns:** $\tilde c$, a scalar.
    """
    X, U0, V0, Y = _check_factors(X, U0, V0, Y, names=("U0", "V0"))
    svd = _svd(X, svd)
    m = V0.shape[0]
    r = svd.rank
    ev = jnp.linalg.eigvalsh(min_imbalance(U0, V0, X, svd))[::-1]
    neg = -ev[::-1]
    lbar_p = jnp.maximum(_kth_largest(ev, 1), 0.0)
    lbar_m = jnp.maximum(_kth_largest(neg, 1), 0.0)
    llow_p = jnp.maximum(_kth_largest(ev, r), 0.0)
    llow_m = jnp.maximum(_kth_largest(neg, m), 0.0)
    Zstar = (svd.W.T @ Y) / jnp.sqrt(svd.sigma)[:, None]
    e0 = jnp.sqrt(jnp.sum(min_error(U0, V0, X, Y, svd) ** 2)) / jnp.sqrt(svd.sigma[-1])
    mu_m = jnp.maximum(_kth_singular(Zstar, m) - e0, 0.0)
    mu_r = jnp.maximum(_kth_singular(Zstar, r) - e0, 0.0)
    return _half_rate(lbar_p, llow_m, mu_m) + _half_rate(lbar_m, llow_p, mu_r)


def margin_rate_bound(
    U0: Float[ArrayLike, "D h"],
    V0: Float[ArrayLike, "m h"],
    X: Float[ArrayLike, "n D"],
    Y: Float[ArrayLike, "n m"],
    t: Float[ArrayLike, "*T"],
    svd: DataSVD | None = None,
) -> Float[Array, "*T"]:
    r"""$L(t) - L^\star \le e^{-\lambda_r(\Sigma_x)\tilde c\,t}(L(0) - L^\star)$ with
    $\tilde c$ from `margin_rate` (Min et al. 2021, slides, Thm 1; positive when the
    imbalance or the margin
    $\sigma_{\min}(Y) - \|Y - U_1V^\top\|$ is).

    **Arguments:**

    - `U0`, `V0`: the initialisation, shapes `(D, h)` and `(m, h)`.
    - `X`, `Y`: data, shapes `(n, D)`, `(n, m)`; `t`: times, any shape; `svd`: `data_svd(X)`,
      computed when not given.

    **Returns:** the bound on $L(t) - L^\star$, same shape as `t`.
    """
    X, U0, V0, Y = _check_factors(X, U0, V0, Y, names=("U0", "V0"))
    svd = _svd(X, svd)
    t = jnp.asarray(t, X.dtype)
    rate = margin_rate(U0, V0, X, Y, svd)
    return jnp.exp(-svd.sigma[-1] * rate * t) * _excess0(U0, V0, X, Y, svd)


def _check_exponent(a):
    a = float(a)
    if not 0.25 < a <= 0.5:
        raise ValueError(
            f"`a` must satisfy 1/4 < a <= 1/2 (Min et al. 2021, Lemma 1 and Thm 2), got {a}: for "
            "a <= 1/4 the initialisation does not vanish fast enough for the distance to the "
            "min-norm solution to shrink with the width."
        )
    return a


def width_law_exponent(a: float) -> float:
    r"""The exponent of $\|\Theta(\infty) - \hat\Theta\| = O(h^{-(2a - 1/2)})$ under the
    initialisation $\mathcal N(0, h^{-2a})$, $1/4 < a \le 1/2$ (Min et al. 2021, Thm 2).

    **Returns:** $-(2a - 1/2)$.
    """
    return -(2.0 * _check_exponent(a) - 0.5)


def min_width_bound(
    X: Float[ArrayLike, "n D"],
    Y: Float[ArrayLike, "n m"],
    h: int,
    a: float = 0.5,
    delta: float = 0.1,
    svd: DataSVD | None = None,
) -> Float[Array, ""]:
    r"""The right side of Min et al. 2021, Thm 2, eq. (20):

    $$\|U(\infty)V(\infty)^\top - \hat\Theta\| \le 2C^{1/h^{1-2a}}\sqrt{m + r}\;
    \frac{\sqrt{m + D} + \tfrac12\log(2/\delta)}{h^{2a - 1/2}},\qquad
    C = \exp\!\Big(1 + \frac{\lambda_1(\Sigma_x)^{1/2}}{\lambda_r(\Sigma_x)}\|Y\|_F\Big),$$

    which holds with probability $1 - \delta$ for $h$ above an unspecified polynomial
    threshold. The constant is loose; the exponent of $h$ is what experiments check.

    **Returns:** a scalar.
    """
    a = _check_exponent(a)
    if int(h) < 1:
        raise ValueError(f"`h` (the width) must be >= 1, got {h}.")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"`delta` must be in (0, 1), got {delta}.")
    X = as_float_array(X, "X", ndim=2)
    Y = as_float_array(Y, "Y", ndim=2)
    svd = _svd(X, svd)
    n_out, D, r = Y.shape[1], X.shape[1], svd.rank
    logC = 1.0 + jnp.sqrt(svd.sigma[0]) / svd.sigma[-1] * jnp.sqrt(jnp.sum(Y**2))
    h = float(h)
    return (
        2.0
        * jnp.exp(logC / h ** (1.0 - 2.0 * a))
        * jnp.sqrt(n_out + r)
        * (jnp.sqrt(n_out + D) + 0.5 * jnp.log(2.0 / delta))
        / h ** (2.0 * a - 0.5)
    )
