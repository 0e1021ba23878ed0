r"""Differences of exponentials whose prefactors are given by their logarithms.

The depth-2 diagonal and the Hadamard nets' reduced predictors are
$\beta = a e^{x} - b e^{-x}$ with $a, b = w_\pm(0)^2$ (or $(u_0 \pm v_0)^2$). At a small scale
$\alpha$, $a = b = \alpha^2$ underflows below $\alpha \approx 10^{-154}$, and the balanced
form $2\sqrt{ab}\sinh(\cdot)$ already loses $\sqrt{ab}$ to the underflow of $ab$ below
$\alpha \approx 10^{-77}$ (the predictor was identically 0 there and the flow never left
its initial plateau). Taking $\log a$, $\log b$ instead keeps the predictor exact for any
$\alpha > 0$ that is itself a float: the state never holds $\alpha^2$, only
$\log\alpha^2 \approx -921$ at $\alpha = 10^{-200}$.
"""

import jax.numpy as jnp


LOG_CAP = 230.0  # log(1e100): see `exp_difference`


def exp_difference(log_a, log_b, x):
    r"""$a e^{x} - b e^{-x}$ for $a, b \ge 0$ given as $\log a$, $\log b$ ($-\infty$ for 0).

    Where both are positive it is formed as $2e^{m}\sinh z$, $m = \frac12(\log a + \log b)$,
    $z = x + \frac12(\log a - \log b)$, as $\operatorname{sign}(z)e^{m + |z|}(1 - e^{-2|z|})$
    for $|z| \ge 1$ (no overflow of $\sinh$, no underflow of $e^m$ where the product is a
    float): full relative accuracy at a large balanced initialisation and at any small one.

    Each term is capped where it would pass $10^{100}$ ($\log = 230$, `LOG_CAP`): no flow
    gets there, but a rejected trial step of an explicit solver can (its stages evaluate
    the field far from the path), and an overflow there, harmless to the solve itself,
    turns backpropagation's gradient into NaN (zero cotangent times an infinite partial
    derivative; `benchmarks/differentiate.py` at $d = 10^5$, $\alpha = 1$)."""
    fa, fb = jnp.isfinite(log_a), jnp.isfinite(log_b)
    both = fa & fb
    la = jnp.where(fa, log_a, 0.0)
    lb = jnp.where(fb, log_b, 0.0)
    m = 0.5 * (la + lb)
    zmax = jnp.maximum(LOG_CAP - m, 0.0)
    z = jnp.clip(x + 0.5 * (la - lb), -zmax, zmax)
    small = jnp.abs(z) < 1
    zs = jnp.where(small, z, 0.0)
    near = 2 * jnp.exp(m) * jnp.sinh(zs)
    za = jnp.where(small, 1.0, jnp.abs(z))
    far = jnp.sign(z) * jnp.exp(m + za) * -jnp.expm1(-2 * za)
    shifted = jnp.where(small, near, far)
    plus = jnp.where(fa, jnp.exp(jnp.minimum(la + x, LOG_CAP)), 0.0)
    minus = jnp.where(fb, jnp.exp(jnp.minimum(lb - x, LOG_CAP)), 0.0)
    return jnp.where(both, shifted, plus - minus)


def log_square(w):
    r"""$\log w^2$ ($-\infty$ where $w = 0$), without forming $w^2$ (which underflows for
    $|w| < 10^{-154}$)."""
    aw = jnp.abs(w)
    return jnp.where(aw > 0, 2 * jnp.log(jnp.where(aw > 0, aw, 1.0)), -jnp.inf)


_TINY = 1e-70  # below this |w|, w^2 w'^2 can underflow (1e-280 > smallest normal 2.2e-308)


def square_exp_difference(w_plus, w_minus, x, plain):
    r"""$w_+^2 e^{x} - w_-^2 e^{-x}$: `plain(w_+^2, w_-^2, x)` (the reduced system's own
    form, `linflow._reduced._exp_difference`) where no nonzero $|w_\pm|$ is below
    $10^{-70}$, and `exp_difference` on $\log w_\pm^2$ where one is (there $w_\pm^2$ or
    $w_+^2 w_-^2$ underflows). Gradient-safe: each branch gets harmless inputs where it is
    not used."""
    tiny = ((w_plus != 0) & (jnp.abs(w_plus) < _TINY)) | (
        (w_minus != 0) & (jnp.abs(w_minus) < _TINY)
    )
    a = jnp.where(tiny, 1.0, w_plus**2)
    b = jnp.where(tiny, 1.0, w_minus**2)
    big = plain(a, b, x)
    small = exp_difference(log_square(w_plus), log_square(w_minus), x)
    return jnp.where(tiny, small, big)
