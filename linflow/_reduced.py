r"""Exact reduced coordinates for diagonal-type networks.

For any loss of the outputs $z = X\beta$, $\nabla_\beta L = X^\top \rho$ with
$\rho = \nabla_z \ell(z)$. Define $\nu(t) = -\int_0^t \rho\,ds \in \mathbb R^N$ and
$s = X^\top\nu$, so that $\dot s = -\nabla_\beta L$. Each coordinate of every diagonal-type
network then follows an explicit function of $s$ (Woodworth et al. 2020, proof of Thm 1 and
its depth-$D$ analogue, Sec. 5):

- `DiagonalNet`, $D = 2$: $\dot w_\pm = \pm 2 w_\pm \dot s$, so
  $w_\pm(t) = w_\pm(0)\,e^{\pm 2 s}$.
- `DiagonalNet`, $D \ge 3$: $\frac{d}{dt}|w_\pm|^{2-D} = \mp D(D-2)\sigma_\pm^D\dot s$ with
  $\sigma_\pm = \operatorname{sign} w_\pm(0)$, so
  $w_\pm = \sigma_\pm\,(|w_\pm(0)|^{2-D} \mp D(D-2)\sigma_\pm^D s)^{-1/(D-2)}$.
- `HadamardNet`: $(u\pm v)^\cdot = \pm(u \pm v)\dot s$, so
  $u \pm v = (u_0 \pm v_0) e^{\pm s}$.

The whole flow is the $N$-dimensional ODE $\dot\nu = -\rho(X\beta(X^\top\nu))$, $\nu(0) = 0$:
memory $O(Nd)$, never $O(d^2)$, and (unlike the $2d$-dimensional parameter flow) not stiff
at large initialisation scales.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._log_scale import square_exp_difference
from ._system import AbstractFlowSystem
from .models.diagonal import DiagonalNet, HadamardNet
from .problems import AbstractProblem, Classification, Regression


def diagonal_params(model: DiagonalNet, s: Float[Array, " d"]) -> DiagonalNet:
    """The `DiagonalNet` on the flow's path at dual point $s = X^\\top\\nu$ (see module doc)."""
    D = model.depth
    wp0, wm0 = model.w_plus, model.w_minus
    if D == 2:
        return DiagonalNet(wp0 * jnp.exp(2 * s), wm0 * jnp.exp(-2 * s), 2)

    def branch(w0, sgn):
        sigma = jnp.sign(w0)
        sigma_d = sigma**D
        a0 = jnp.abs(jnp.where(w0 == 0, 1.0, w0)) ** (2 - D)
        base = a0 - sgn * D * (D - 2) * sigma_d * s
        w = sigma * base ** (-1.0 / (D - 2))
        return jnp.where(w0 == 0, 0.0, w)

    return DiagonalNet(branch(wp0, 1.0), branch(wm0, -1.0), D)


def hadamard_params(model: HadamardNet, s: Float[Array, " d"]) -> HadamardNet:
    """The `HadamardNet` on the flow's path at dual point $s = X^\\top\\nu$."""
    p = (model.u + model.v) * jnp.exp(s)
    m = (model.u - model.v) * jnp.exp(-s)
    return HadamardNet(0.5 * (p + m), 0.5 * (p - m))


_LOG_CAP = 230.0  # log(1e100): see `_exp_difference`


def _exp_difference(a, b, x):
    r"""$a e^{x} - b e^{-x}$ for $a, b \ge 0$, as $2\sqrt{ab}\,\sinh(x + \frac12\log(a/b))$
    when both are positive: accurate where $e^{\pm x}$ are close to 1 and $a = b$ is large
    (a large balanced initialisation), where the plain difference loses $\log_{10}(a/|\beta|)$
    digits.

    Each exponential is capped where its term would pass $10^{100}$ ($\log = 230$): no flow
    gets there, but a rejected trial step of an explicit solver can (its stages evaluate
    the field far from the path), and an overflow there, harmless to the solve itself,
    turned backpropagation's gradient into NaN (zero cotangent times an infinite partial
    derivative; `benchmarks/differentiate.py` at $d = 10^5$, $\alpha = 1$)."""
    both = (a > 0) & (b > 0)
    sa, sb = jnp.where(both, a, 1.0), jnp.where(both, b, 1.0)
    z = x + 0.5 * (jnp.log(sa) - jnp.log(sb))
    zmax = jnp.maximum(_LOG_CAP - 0.5 * (jnp.log(sa) + jnp.log(sb)), 0.0)
    shifted = 2 * jnp.sqrt(sa * sb) * jnp.sinh(jnp.clip(z, -zmax, zmax))
    la = jnp.log(jnp.where(a > 0, a, 1.0))
    lb = jnp.log(jnp.where(b > 0, b, 1.0))
    plain = a * jnp.exp(jnp.minimum(x, _LOG_CAP - la)) - b * jnp.exp(-jnp.maximum(x, lb - _LOG_CAP))
    return jnp.where(both, shifted, plain)


def _power_difference(model: DiagonalNet, s):
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
    D = model.depth
    c = D * (D - 2)
    # p = D / (D - 2) is an integer for D = 3, 4: integer powers and a polynomial identity
    # are several times cheaper than pow / expm1 / log1p.
    p = D // (D - 2) if D % (D - 2) == 0 else D / (D - 2)
    wp0, wm0 = model.w_plus, model.w_minus
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


def _dual_rounding(model: DiagonalNet, s):
    r"""$p\,c\,(u^{-p-1} + v^{-p-1})\,|s|$: see `DualFlowSystem.predictor_magnitude`
    (zero-initialised branches contribute nothing)."""
    D = model.depth
    c, p = D * (D - 2), D / (D - 2)
    eps = jnp.finfo(s.dtype).eps
    total = jnp.zeros_like(s)
    for w0, sign in ((model.w_plus, 1.0), (model.w_minus, -1.0)):
        a = jnp.abs(jnp.where(w0 == 0, 1.0, w0)) ** (2 - D)
        u = jnp.maximum(a - sign * c * jnp.sign(w0) ** D * s, eps * a)
        total = total + jnp.where(w0 == 0, 0.0, u ** (-p - 1))
    # / 8: `Regression.excess_floor` multiplies by 8 for the few roundings per term, but
    # u |s| already bounds the matvec's error in s; calibrated on depths 3-5, alpha 1e-3 ..
    # 100, two sizes: without it the stop rose above what the flow reaches (depth 4, alpha =
    # 1e-3: 6e-9 from the minimiser instead of 3.5e-10).
    return p * c * total * jnp.abs(s) / 8


class DualFlowSystem(AbstractFlowSystem):
    r"""The reduced flow $\dot\nu = -\nabla_z\ell(X\beta(X^\top\nu))$, $\nu \in \mathbb R^N$."""

    model: DiagonalNet | HadamardNet
    X: Float[Array, "n d"]
    name = "reduced"

    def initial_state(self):
        return jnp.zeros(self.X.shape[0], self.X.dtype)

    def state_scale(self):
        r"""For a depth $D \ge 3$ `DiagonalNet`: the typical size $\nu_b$ of $\nu$ where a
        coordinate reaches its boundary $u_i = |w_{\pm,i}(0)|^{2-D} - D(D-2)|s_i| \to 0$ (the
        median over coordinates of $\min_\pm |w_{\pm,i}(0)|^{2-D} / (D(D-2)\|X_{:,i}\|)$);
        `None` otherwise.

        At small scales $u_i$ is the difference of two numbers of size $\alpha^{2-D}$, so
        near the boundary (every coordinate of the support, from its escape on) $\nu$ is
        resolved only to about $u\,\nu_b$ in absolute terms: a purely componentwise relative
        tolerance on its smaller components then asks for more than the arithmetic carries,
        and the solver stalls (depth 4, $\alpha = 10^{-3}$: 10^5 steps, half rejected,
        stuck after the first escape). The engine floors the absolute tolerance at
        $10^{-3}\,\mathrm{rtol}\,\nu_b$."""
        m = self.model
        if not (isinstance(m, DiagonalNet) and m.depth > 2):
            return None
        D = m.depth

        def boundary(w):
            return jnp.where(w == 0, jnp.inf, jnp.abs(jnp.where(w == 0, 1.0, w)) ** (2 - D))

        per = jnp.minimum(boundary(m.w_plus), boundary(m.w_minus)) / (D * (D - 2))
        col = jnp.linalg.norm(self.X, axis=0)
        valid = (col > 0) & jnp.isfinite(per)
        ratio = jnp.where(valid, per / jnp.where(col > 0, col, 1.0), jnp.nan)
        scale = jnp.nanmedian(ratio)
        return jnp.where(jnp.isfinite(scale), scale, 0.0)

    def to_model(self, y):
        s = y @ self.X  # (faster than X.T @ y on CPU for a row-major X)
        if isinstance(self.model, DiagonalNet):
            return diagonal_params(self.model, s)
        return hadamard_params(self.model, s)

    def predictor(self, y):
        r"""$\beta$ at state $\nu$, without the cancellation of $w_+^2 - w_-^2$ where possible."""
        s = y @ self.X
        if isinstance(self.model, DiagonalNet) and self.model.depth == 2:
            # w_pm = w_pm(0) e^{pm 2s}: beta = a e^{4s} - b e^{-4s}, a, b = w_pm(0)^2 (in log
            # space where a b underflows: `linflow._log_scale`).
            return square_exp_difference(
                self.model.w_plus, self.model.w_minus, 4 * s, _exp_difference
            )
        if isinstance(self.model, DiagonalNet):
            return _power_difference(self.model, s)
        if isinstance(self.model, HadamardNet):
            # u pm v = (u0 pm v0) e^{pm s}: beta = uv = (p e^{2s} - m e^{-2s}) / 4.
            u0, v0 = self.model.u, self.model.v
            return 0.25 * square_exp_difference(u0 + v0, u0 - v0, 2 * s, _exp_difference)
        return self.to_model(y).predictor()  # pragma: no cover

    def predictor_magnitude(self, y, predictor):
        r"""The scale $m$ of $\beta$'s rounding error ($|\delta\beta_i| \approx u\,m_i$).

        `predictor` forms $\beta$ without cancellation (the difference of $w_\pm$ terms
        only where they have opposite signs or as a shifted sum), so its own rounding is
        relative to $|\beta|$, not to $|w_+|^D + |w_-|^D$. At depth $D \ge 3$ the state
        itself limits the accuracy: $w_+^D = \sigma_+^D u^{-p}$ with
        $u = a - c\sigma_+^D s$ ($a = |w_+(0)|^{2-D}$, $c = D(D-2)$, $p = D/(D-2)$), and
        $s = X^\top\nu$ is known to about $u\,|s|$, so $\beta_i$ to about
        $u\,p\,c\,(u^{-p-1} + v^{-p-1})|s_i|$ ($v$ the same for $w_-$; the magnitude adds
        1/8 of that, see `_dual_rounding`). Where a
        coordinate has escaped from a small initialisation, $c|s_i| \approx a \sim
        \alpha^{2-D}$ while $u = O(1)$: at depth 5 and $\alpha = 10^{-3}$ that is
        $\approx 10^{-7}$ on an entry of size 1, and the stop's tolerance rises to that
        floor (`linflow.Converged`) instead of asking for digits the state does not hold.
        Elsewhere (e.g. large scales, where $u \approx a$) the term is of order
        $|\beta_i|$."""
        magnitude = jnp.abs(predictor)
        m = self.model
        if not (isinstance(m, DiagonalNet) and m.depth > 2):
            return magnitude
        return magnitude + _dual_rounding(m, y @ self.X)

    def vector_field(self, t, y, problem):
        beta = self.predictor(y)
        rho = jax.grad(problem.output_loss)(self.X @ beta)
        return -rho


def reduced_system(model, problem: AbstractProblem) -> AbstractFlowSystem | None:
    """The exact reduced form of `model`'s flow on `problem`, or `None` if none is known."""
    if not isinstance(model, (DiagonalNet, HadamardNet)):
        return None
    if isinstance(problem, Regression) and problem.Y.ndim == 1:
        return DualFlowSystem(model, problem.X)
    if isinstance(problem, Classification):
        return DualFlowSystem(model, problem.X)
    return None


__all__ = ["DualFlowSystem", "reduced_system", "diagonal_params", "hadamard_params"]
del eqx
