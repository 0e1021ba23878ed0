r"""Potentials of diagonal networks started anywhere: the closed-form paths of their gradient
flows in the dual coordinates $s = X^\top\nu$ ($\dot s = -\nabla_\beta L$; Woodworth et al.
2020, proof of Thm 1 and its depth-$D$ analogue, Sec. 5), which are the reduced flows'
predictors (`linflow.DiagonalNet.potential`, `linflow.HadamardNet.potential`) and whose
`dual_minimise` is the flows' regression limit.

- `ExponentialPotential(a, b, rate)`: $\beta = a e^{ks} - b e^{-ks}$, $a, b \ge 0$. The
  Hadamard product $u\odot v$ started at $(u_0, v_0)$ has $(u \pm v)^\cdot = \pm(u\pm v)\dot s$,
  so $u\pm v = (u_0\pm v_0)e^{\pm s}$ and $\beta = uv = a e^{2s} - b e^{-2s}$ with
  $a = (u_0+v_0)^2/4$, $b = (u_0-v_0)^2/4$ ($k = 2$); the depth-2 diagonal net
  $w_+^2 - w_-^2$ has $w_\pm = w_\pm(0)e^{\pm2s}$, so $a = w_+(0)^2$, $b = w_-(0)^2$, $k = 4$.
  Its conjugate is $\psi(s) = (a\operatorname{expm1}(ks) + b\operatorname{expm1}(-ks))/k$.
- `DeepDiagonalPotential(w_plus, w_minus, depth)`: $\beta = \sigma_+^D u^{-p} - \sigma_-^D v^{-p}$,
  $u = a - c\sigma_+^D s$, $v = b + c\sigma_-^D s$ with $a, b = |w_\pm(0)|^{2-D}$,
  $c = D(D-2)$, $p = D/(D-2)$, $\sigma_\pm = \operatorname{sign}w_\pm(0)$; the domain is
  $u, v > 0$ and $\psi(s) = (u^{1-p} - a^{1-p} + v^{1-p} - b^{1-p})/(2D)$,
  $\psi'' = pc(u^{-p-1} + v^{-p-1})$ (zero-initialised branches contribute nothing).

Both are taken at the initialisation's own scale (`log_scale` 0); `dual_terms` at another
scale multiplies $\beta$, $\psi$ and $\psi''$ by $e^{P\,\text{log\_scale}}$, which at a fixed
$\beta$ moves the dual point like a change of the initialisation's scale (the family the dual
solver continues in).
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import as_float_array, check_finite, is_concrete
from .potential import AbstractPotential


_LOG_CAP = 230.0  # log(1e100): see `exp_difference`


def log_square(w):
    r"""$\log w^2$ ($-\infty$ where $w = 0$), without forming $w^2$ (which underflows for
    $|w| < 10^{-154}$)."""
    aw = jnp.abs(w)
    return jnp.where(aw > 0, 2 * jnp.log(jnp.where(aw > 0, aw, 1.0)), -jnp.inf)


def exp_difference(log_a, log_b, x):
    r"""$a e^{x} - b e^{-x}$ for $a, b \ge 0$ given as $\log a$, $\log b$ ($-\infty$ for 0).

    Where both are positive it is $2e^{m}\sinh z$, $m = \frac12(\log a + \log b)$,
    $z = x + \frac12(\log a - \log b)$, formed as $\operatorname{sign}(z)e^{m + |z|}
    (1 - e^{-2|z|})$ with an `expm1`: full relative accuracy at a large balanced
    initialisation (where the plain difference loses $\log_{10}(a/|\beta|)$ digits) and at
    any small one. At $\alpha = 10^{-200}$, $a = b = \alpha^2$ is 0 in float64 and
    $\sqrt{ab}$ already underflows below $\alpha \approx 10^{-77}$; their logarithms are
    ordinary numbers, so the predictor stays exact for any $\alpha > 0$ that is a float.

    Each term is capped where it would pass $10^{100}$ ($\log = 230$): no flow gets there,
    but a rejected trial step of an explicit solver can (its stages evaluate the field far
    from the path), and an overflow there, harmless to the solve itself, turns
    backpropagation's gradient into NaN (zero cotangent times an infinite partial
    derivative; `benchmarks/differentiate.py` at $d = 10^5$, $\alpha = 1$)."""
    fa, fb = jnp.isfinite(log_a), jnp.isfinite(log_b)
    both = fa & fb
    la = jnp.where(fa, log_a, 0.0)
    lb = jnp.where(fb, log_b, 0.0)
    m = 0.5 * (la + lb)
    zmax = jnp.maximum(_LOG_CAP - m, 0.0)
    z = jnp.clip(x + 0.5 * (la - lb), -zmax, zmax)
    # Both terms: sign(z) e^{m + |z|} (1 - e^{-2|z|}) = 2 e^m sinh z, written with the sign
    # held constant on each side of 0 so that the tangent is carried by the expm1 and is
    # exact at z = 0 (one exp and one expm1 per entry). One term: +a e^x or -b e^{-x}.
    side = jnp.where(both, jnp.where(z >= 0, 1.0, -1.0), jnp.where(fa, 1.0, -1.0))
    one = jnp.where(fa, la + x, lb - x)
    exponent = jnp.minimum(jnp.where(both, m + side * z, one), _LOG_CAP)
    factor = jnp.where(both, -jnp.expm1(-2 * side * z), 1.0)
    return jnp.where(fa | fb, side * jnp.exp(exponent) * factor, 0.0)


def _power_difference(wp0, wm0, D, s):
    r"""$\beta = w_+^D - w_-^D$ on the depth-$D \ge 3$ path at dual point $s$, without the
    cancellation.

    With $u = a - c\sigma_+^D s$, $v = b + c\sigma_-^D s$ ($a, b = |w_\pm(0)|^{2-D}$,
    $c = D(D-2)$, $p = D/(D-2)$), $w_\pm^D = \sigma_\pm^D u^{-p}, \sigma_\pm^D v^{-p}$. Where
    $\sigma_+^D = \sigma_-^D$ the difference is formed as
    $\sigma^D (v - u)\,u^{-1}v^{-1}\sum_{k<p} u^{-k}v^{-(p-1-k)}$ when $p$ is an integer
    ($D = 3, 4$) and $\sigma^D v^{-p}\operatorname{expm1}(-p\operatorname{log1p}((u - v)/v))$
    otherwise (where $u > v/2$; below that the plain difference has no cancellation to
    avoid and the shifted form would lose $\log_{10}(v/u)$ digits), with
    $u - v = (a - b) - c(\sigma_+^D + \sigma_-^D)s$ formed without cancellation: at a large
    balanced initialisation ($a = b$) $\beta$ keeps full relative accuracy where the plain
    difference of two numbers of size $\alpha^D$ does not."""
    c = D * (D - 2)
    # p = D / (D - 2) is an integer for D = 3, 4: integer powers and a polynomial identity
    # are several times cheaper than pow / expm1 / log1p.
    p = D // (D - 2) if D % (D - 2) == 0 else D / (D - 2)
    sp, sm = jnp.sign(wp0) ** D, jnp.sign(wm0) ** D
    a = jnp.abs(jnp.where(wp0 == 0, 1.0, wp0)) ** (2 - D)
    b = jnp.abs(jnp.where(wm0 == 0, 1.0, wm0)) ** (2 - D)
    u, v = a - c * sp * s, b + c * sm * s
    # The path exists only while u, v > 0; u, v are resolved only to ~ eps * a, eps * b.
    # Beyond that, use the value at the rounding floor (a wall of size (eps a)^-p): finite,
    # so an implicit solver's Newton iterate that strays out is pushed back, and no root of
    # a stage equation lies outside (the even-power formula's mirror image had such roots).
    eps = jnp.finfo(s.dtype).eps
    clamped = (u < eps * a) | (v < eps * b)
    u = jnp.maximum(u, eps * a)
    v = jnp.maximum(v, eps * b)
    same = (wp0 != 0) & (wm0 != 0) & (sp == sm)
    # u - v without cancellation where a = b; at the wall, the clamped values' own difference
    # (the unclamped one would put (u - v) / v below -1, a NaN in log1p at depth >= 5).
    u_minus_v = jnp.where(clamped, u - v, (a - b) - c * (sp + sm) * s)
    if isinstance(p, int):
        iu, iv = 1 / u, 1 / v
        plain = jnp.where(wp0 == 0, 0.0, sp * iu**p) - jnp.where(wm0 == 0, 0.0, sm * iv**p)
        # u^-p - v^-p = (v - u) (u^-1 v^-1) sum_k u^-k v^-(p-1-k)
        series = sum(iu**k * iv ** (p - 1 - k) for k in range(p))
        shifted = sp * (-u_minus_v) * iu * iv * series
        return jnp.where(same, shifted, plain)
    plain = jnp.where(wp0 == 0, 0.0, sp * u**-p) - jnp.where(wm0 == 0, 0.0, sm * v**-p)
    # The shifted form only where u > v / 2: for u << v, 1 + (u - v) / v = u / v is resolved
    # only to eps v / u (a relative error 2e-10 in beta on the support at depth 5, alpha =
    # 1e-2, where u / v ~ 1e-6; at the wall it rounds to 0), while the plain difference loses
    # at most a factor 1 / (1 - 2^-p) there.
    use = same & ~clamped & (2 * u > v)
    v_safe = jnp.where(use, v, 1.0)
    ratio = jnp.where(use, u_minus_v / v_safe, 0.0)
    shifted = sp * v_safe**-p * jnp.expm1(-p * jnp.log1p(ratio))
    return jnp.where(use, shifted, plain)


def _dual_rounding(wp0, wm0, D, s):
    r"""$p\,c\,(u^{-p-1} + v^{-p-1})\,|s|$: see `DeepDiagonalPotential.rounding`
    (zero-initialised branches contribute nothing)."""
    c = D * (D - 2)
    # Integer powers where p = D / (D - 2) is an integer (D = 3, 4), as in
    # `_power_difference`: the stop evaluates this at every step, where a float pow is
    # several times dearer (the depth-3 row of the solver matrix, docs/benchmarks.md).
    p = D // (D - 2) if D % (D - 2) == 0 else D / (D - 2)
    eps = jnp.finfo(s.dtype).eps
    total = jnp.zeros_like(s)
    for w0, sign in ((wp0, 1.0), (wm0, -1.0)):
        a = jnp.abs(jnp.where(w0 == 0, 1.0, w0)) ** (2 - D)
        u = jnp.maximum(a - sign * c * jnp.sign(w0) ** D * s, eps * a)
        total = total + jnp.where(w0 == 0, 0.0, (1 / u) ** (p + 1))
    # / 8: `Regression.excess_floor` multiplies by 8 for the few roundings per term, but
    # u |s| already bounds the matvec's error in s; calibrated on depths 3-5, alpha 1e-3 ..
    # 100, two sizes: without it the stop rose above what the flow reaches (depth 4, alpha =
    # 1e-3: 6e-9 from the minimiser instead of 3.5e-10).
    return p * c * total * jnp.abs(s) / 8


def _check_pair(x, y, xname, yname):
    # Finiteness only where the values are known: these are built inside the reduced flow's
    # vector field from the model's (already checked) arrays, where a run-time check per
    # evaluation would cost more than it guards.
    x = as_float_array(x, xname, ndim=1)
    y = as_float_array(y, yname, ndim=1)
    if is_concrete(x) and is_concrete(y):
        check_finite(x, xname), check_finite(y, yname)
    if x.shape != y.shape:
        raise ValueError(
            f"`{xname}` and `{yname}` must have the same shape, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}."
        )
    return x, y


class ExponentialPotential(AbstractPotential):
    r"""$\beta = a e^{ks} - b e^{-ks}$ (module doc): the potential of a Hadamard product or a
    depth-2 diagonal network started anywhere ($u_0 v_0 \ne 0$ included).

    The prefactors are held as $\log a$, $\log b$ ($-\infty$ for 0), so a vanishing scale
    ($a = \alpha^2$ below the smallest float) keeps its predictor exact.

    **Arguments:** `a`, `b`: shape `(d,)`, $\ge 0$; `rate`: $k > 0$ (static). Or, keyword
    only, `log_a`, `log_b` in place of `a`, `b` (`log_square(w)` gives $\log w^2$ without
    forming $w^2$).
    """

    log_a: Float[Array, " d"]
    log_b: Float[Array, " d"]
    rate: int = eqx.field(static=True)

    def __init__(self, a=None, b=None, rate: int = 2, *, log_a=None, log_b=None):
        if (a is None) == (log_a is None) or (b is None) == (log_b is None):
            raise TypeError("Give `a` and `b`, or `log_a` and `log_b`.")
        if a is not None:
            a, b = _check_pair(a, b, "a", "b")
            if is_concrete(a) and not (np.all(np.asarray(a) >= 0) and np.all(np.asarray(b) >= 0)):
                raise ValueError("`a` and `b` must be >= 0.")
            log_a = jnp.where(a > 0, jnp.log(jnp.where(a > 0, a, 1.0)), -jnp.inf)
            log_b = jnp.where(b > 0, jnp.log(jnp.where(b > 0, b, 1.0)), -jnp.inf)
        else:
            log_a = as_float_array(log_a, "log_a", ndim=1)
            log_b = as_float_array(log_b, "log_b", ndim=1)
            if log_a.shape != log_b.shape:
                raise ValueError(
                    f"`log_a` and `log_b` must have the same shape, got {tuple(log_a.shape)} "
                    f"and {tuple(log_b.shape)}."
                )
            if is_concrete(log_a) and is_concrete(log_b):
                if np.any(np.isnan(np.asarray(log_a))) or np.any(np.isnan(np.asarray(log_b))):
                    raise ValueError("`log_a` and `log_b` must not be NaN.")
                if np.any(np.asarray(log_a) == np.inf) or np.any(np.asarray(log_b) == np.inf):
                    raise ValueError("`log_a` and `log_b` must be < +inf.")
        self.log_a, self.log_b = log_a, log_b
        if not isinstance(rate, int) or rate <= 0:
            raise ValueError(f"`rate` must be a positive integer, got {rate!r}.")
        self.rate = rate

    @property
    def a(self) -> Float[Array, " d"]:
        return jnp.exp(self.log_a)

    @property
    def b(self) -> Float[Array, " d"]:
        return jnp.exp(self.log_b)

    @property
    def power(self) -> int:
        return 2

    @property
    def gap_power(self) -> int:
        return 0

    def two_sided(self):
        r"""Both prefactors nonzero: $\beta_i \to \pm\infty$ as $s_i \to \pm\infty$."""
        return jnp.isfinite(self.log_a) & jnp.isfinite(self.log_b)

    def log_scale(self):
        return jnp.zeros((), self.log_a.dtype)

    def log_amplitude(self):
        total = jnp.logaddexp(self.log_a, self.log_b)
        return jnp.where(jnp.isfinite(total), total, jnp.inf)

    def dual_terms(self, s, log_scale):
        k = self.rate
        la, lb = self.log_a + 2 * log_scale, self.log_b + 2 * log_scale
        beta = exp_difference(la, lb, k * s)
        fa, fb = jnp.isfinite(la), jnp.isfinite(lb)
        la0, lb0 = jnp.where(fa, la, 0.0), jnp.where(fb, lb, 0.0)
        ep = jnp.where(fa, jnp.exp(jnp.minimum(k * s + la0, 800.0)), 0.0)
        em = jnp.where(fb, jnp.exp(jnp.minimum(-k * s + lb0, 800.0)), 0.0)
        a, b = jnp.where(fa, jnp.exp(la0), 0.0), jnp.where(fb, jnp.exp(lb0), 0.0)
        psi = (
            a * jnp.expm1(jnp.minimum(k * s, 800.0)) + b * jnp.expm1(jnp.minimum(-k * s, 800.0))
        ) / k
        return beta, psi, k * (ep + em)

    def value(self, beta):
        # s with a e^{ks} - b e^{-ks} = beta: ks = arcsinh(beta / (2 sqrt(ab))) - log(a/b) / 2,
        # the arcsinh in log space where beta / sqrt(ab) would overflow.
        k, la, lb = self.rate, self.log_a, self.log_b
        fa, fb = jnp.isfinite(la), jnp.isfinite(lb)
        both = fa & fb
        la0, lb0 = jnp.where(fa, la, 0.0), jnp.where(fb, lb, 0.0)
        m = 0.5 * (la0 + lb0)
        absb = jnp.abs(beta)
        lx = jnp.log(jnp.where(absb > 0, absb, 1.0)) - m - jnp.log(2.0)
        big = (absb > 0) & (lx > 20)
        asinh = jnp.where(
            big,
            jnp.sign(beta) * (jnp.where(big, lx, 0.0) + jnp.log(2.0)),
            jnp.arcsinh(jnp.sign(beta) * jnp.exp(jnp.minimum(lx, 20.0))) * (absb > 0),
        )
        ks_both = asinh - 0.5 * (la0 - lb0)
        ks_a = jnp.log(jnp.where(beta > 0, beta, 1.0)) - la0
        ks_b = -(jnp.log(jnp.where(beta < 0, -beta, 1.0)) - lb0)
        ks = jnp.where(both, ks_both, jnp.where(fa, ks_a, ks_b))
        ks = jnp.where(fa | fb, ks, 0.0)
        _, psi, _ = self.dual_terms(ks / k, jnp.zeros((), beta.dtype))
        return jnp.sum(beta * ks / k - psi)


class DeepDiagonalPotential(AbstractPotential):
    r"""$\beta = \sigma_+^D u^{-p} - \sigma_-^D v^{-p}$ (module doc): the potential of a depth
    $D \ge 3$ diagonal network started anywhere.

    **Arguments:** `w_plus`, `w_minus`: the initialisation, shape `(d,)`; `depth`: $D \ge 3$.
    """

    w_plus: Float[Array, " d"]
    w_minus: Float[Array, " d"]
    depth: int = eqx.field(static=True)

    def __init__(self, w_plus, w_minus, depth: int):
        self.w_plus, self.w_minus = _check_pair(w_plus, w_minus, "w_plus", "w_minus")
        if not isinstance(depth, int) or depth < 3:
            raise ValueError(f"`depth` must be an integer >= 3, got {depth!r}.")
        self.depth = depth

    @property
    def power(self) -> int:
        return self.depth

    @property
    def gap_power(self) -> int:
        return self.depth - 2

    def two_sided(self):
        r"""Both weights nonzero with $\sigma_+^D = \sigma_-^D$: the poles of $u^{-p}$ (at $s$
        of sign $\sigma_+^D$) and of $v^{-p}$ (sign $-\sigma_-^D$) then bound the domain on both
        sides; otherwise one end of the domain is $\pm\infty$, where $\beta_i \to 0$."""
        D = self.depth
        same = jnp.sign(self.w_plus) ** D == jnp.sign(self.w_minus) ** D
        return (self.w_plus != 0) & (self.w_minus != 0) & same

    def log_scale(self):
        return jnp.zeros((), self.w_plus.dtype)

    def log_amplitude(self):
        D = self.depth
        total = jnp.abs(self.w_plus) ** D + jnp.abs(self.w_minus) ** D
        return jnp.where(total > 0, jnp.log(jnp.where(total > 0, total, 1.0)), jnp.inf)

    def _branches(self, s):
        """$(a, u, \\sigma_+^D)$ and $(b, v, \\sigma_-^D)$ with a 1 in place of a missing branch's
        $a$ (and its $u$ left at $+\\infty$)."""
        D, c = self.depth, self.depth * (self.depth - 2)
        out = []
        for w0, sign in ((self.w_plus, 1.0), (self.w_minus, -1.0)):
            sd = jnp.sign(w0) ** D
            a = jnp.abs(jnp.where(w0 == 0, 1.0, w0)) ** (2 - D)
            u = jnp.where(w0 == 0, jnp.inf, a - sign * c * sd * s)
            out.append((a, u, sd))
        return out

    def dual_terms(self, s, log_scale):
        D = self.depth
        p = D / (D - 2)
        f = jnp.exp(D * log_scale)
        (a, u, _), (b, v, _) = self._branches(s)
        eps = jnp.finfo(s.dtype).eps
        inside = (u > 8 * eps * a) & (v > 8 * eps * b)
        beta = f * _power_difference(self.w_plus, self.w_minus, D, s)
        us, vs = jnp.where(inside, u, a), jnp.where(inside, v, b)
        psi = jnp.where(jnp.isfinite(us), us ** (1 - p) - a ** (1 - p), 0.0)
        psi = psi + jnp.where(jnp.isfinite(vs), vs ** (1 - p) - b ** (1 - p), 0.0)
        curv = p * D * (D - 2) * (us ** (-p - 1) + vs ** (-p - 1))
        return (
            jnp.where(inside, beta, jnp.nan),
            jnp.where(inside, f * psi / (2 * D), jnp.inf),
            f * curv,
        )

    def primal(self, s):
        """$\\beta(s)$ as the reduced flow uses it: beyond the domain's boundary the value at
        the rounding floor of $u, v$ (a finite wall, so that an implicit solver's Newton
        iterate that strays out is pushed back); `dual_terms` marks those points NaN instead
        (off the dual's domain)."""
        return _power_difference(self.w_plus, self.w_minus, self.depth, s)

    def gap(self, s):
        (a, u, _), (b, v, _) = self._branches(s)
        return jnp.clip(jnp.minimum(u / a, v / b), 0.0, 1.0)

    def gap_rate(self, s):
        c = self.depth * (self.depth - 2)
        (a, u, _), (b, v, _) = self._branches(s)
        return jnp.where(u / a <= v / b, c / a, c / b)

    def side(self, s):
        (a, u, sp), (b, v, sm) = self._branches(s)
        return jnp.where(u / a <= v / b, sp, -sm)

    def room(self, s, ds):
        c = self.depth * (self.depth - 2)
        (a, u, sp), (b, v, sm) = self._branches(s)
        # The distance (in s) to the boundary each branch sets in the direction of ds.
        dist = jnp.minimum(
            jnp.where(ds * sp > 0, u / c, jnp.inf), jnp.where(ds * sm < 0, v / c, jnp.inf)
        )
        return self.gap_rate(s) * dist

    def value(self, beta):
        raise NotImplementedError(
            "DeepDiagonalPotential.value: the primal potential has no closed form away from "
            "the unbiased start; use `Hypentropy` for `DiagonalNet.unbiased`."
        )

    def rounding(self, s):
        """The rounding magnitude of $\\beta$ the state $s$ carries (`DualFlowSystem`)."""
        return _dual_rounding(self.w_plus, self.w_minus, self.depth, s)

    def boundary_scale(self, X):
        r"""The typical size $\nu_b$ of $\nu$ where a coordinate reaches its boundary: the median
        over coordinates of $\min_\pm |w_{\pm,i}(0)|^{2-D} / (D(D-2)\|X_{:,i}\|)$
        (`DualFlowSystem.state_scale`)."""
        D = self.depth

        def boundary(w):
            return jnp.where(w == 0, jnp.inf, jnp.abs(jnp.where(w == 0, 1.0, w)) ** (2 - D))

        per = jnp.minimum(boundary(self.w_plus), boundary(self.w_minus)) / (D * (D - 2))
        col = jnp.linalg.norm(X, axis=0)
        valid = (col > 0) & jnp.isfinite(per)
        ratio = jnp.where(valid, per / jnp.where(col > 0, col, 1.0), jnp.nan)
        scale = jnp.nanmedian(ratio)
        return jnp.where(jnp.isfinite(scale), scale, 0.0)
