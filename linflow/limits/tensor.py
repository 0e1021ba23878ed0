r"""Limits of gradient flow on linear tensor networks (Yun, Krishnan, Mobahi, ICLR 2021).

**Lemma 4 in closed form.** The ODE $\dot p = p^{L-2}q$, $\dot q = p^{L-1}$, $p(0)=1$,
$q(0)=0$ has the first integral $\frac{d}{dt}(p^2-q^2) = 2p^{L-1}q - 2qp^{L-1} = 0$, so
$p^2 - q^2 = 1$. Writing $q = \tan\theta$, $p = \sec\theta$ with
$\theta\in(-\pi/2,\pi/2)$ gives $\dot\theta = \cos^{3-L}\theta$, hence

$$t(\theta) = I_{L-3}(\theta) := \int_0^\theta\cos^{L-3}\varphi\,d\varphi,\qquad
h_L = p^{L-1}q = \frac{\sin\theta}{\cos^L\theta},\qquad
c_L = I_{L-3}(\pi/2).$$

$I_n$ has the closed form of the reduction formula
$I_n = \cos^{n-1}\theta\sin\theta/n + \tfrac{n-1}{n}I_{n-2}$, $I_0 = \theta$,
$I_1 = \sin\theta$; for $L = 2$, $h_2(t) = \sinh t\cosh t$ and $c_2 = \infty$; $c_3 = \pi/2$,
$c_4 = 1$, $c_5 = \pi/4$. So $h_L$ is evaluated by inverting the monotone $I_{L-3}$ (explicit
for $L \le 4$, bisection for $L \ge 5$), $h_L^{-1}(y)$ by solving the monotone
$q(1+q^2)^{(L-1)/2} = |y|$ for $q$ (Newton in $\log q$, no overflow) and taking
$t = I_{L-3}(\arctan q)$, and since $\int_0^t h_L = \int_0^\theta \sin\varphi
\cos^{-3}\varphi\,d\varphi = q^2/2$, integration by parts gives

$$H_L(y) = \int_0^y h_L^{-1}(\tau)\,d\tau = |y|\,h_L^{-1}(|y|) - \tfrac12 q^2 .$$

No ODE solver or quadrature is involved: every function is exact to rounding on the whole
domain, vectorised and jit-able (the tests compare with a diffrax solve of Lemma 4's ODE).

**Theorem 5.** With $v_l(0) = \alpha U_l\eta$ ($l<L$), $v_L(0) = 0$, the flow's limit is
$\beta^\infty = S^\top\rho^\infty$ with $\rho^\infty$ the minimiser of
$Q_{L,\alpha,\eta}(\rho) = \alpha^2\sum_j\eta_j^2 H_L(\rho_j/(\alpha^L|\eta_j|^L))$ subject to
$XS^\top\rho = y$. Its dual (App. F.2.2) is
$\rho = \alpha^L|\eta|^L\odot h_L(\alpha^{L-2}|\eta|^{L-2}\odot SX^\top\nu)$; $\nu$ maximises
the concave $D(\nu) = \nu^\top y - \sum_j\alpha^2\eta_j^2\,G_L(\alpha^{L-2}|\eta_j|^{L-2}
[SX^\top\nu]_j)$ with $G_L(u) = \int_0^u h_L = q_L(u)^2/2$, solved by damped Newton.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, check_depth, check_finite, check_positive, is_concrete
from .._fourier import dft_matrix, is_even
from .dual import dual_minimise
from .potential import AbstractPotential


# --------------------------------------------------------------------------- Lemma 4


def tensor_h_radius(depth: int) -> float:
    r"""The half-width $c_L$ of the domain $(-c_L, c_L)$ of $h_L$ (Yun et al., Lemma 4):
    $c_L = \int_0^{\pi/2}\cos^{L-3}\varphi\,d\varphi$ ($\infty$ for $L=2$, $\pi/2$ for $L=3$,
    $1$ for $L=4$).

    **Arguments:**

    - `depth`: $L \ge 2$.

    **Returns:** $c_L$ as a Python float.
    """
    L = check_depth(depth)
    if L == 2:
        return float("inf")
    n = L - 3
    w = np.pi / 2 if n % 2 == 0 else 1.0
    for k in range(2 if n % 2 == 0 else 3, n + 1, 2):
        w *= (k - 1) / k
    return float(w)


def _wallis(theta, n: int):
    """$I_n(\\theta) = \\int_0^\\theta \\cos^n$, $n \\ge 0$, by the reduction formula."""
    s, c = jnp.sin(theta), jnp.cos(theta)
    out = theta if n % 2 == 0 else s
    for k in range(2 if n % 2 == 0 else 3, n + 1, 2):
        out = c ** (k - 1) * s / k + (k - 1) / k * out
    return out


def _theta_of_t(t, L: int):
    """$\\theta \\ge 0$ with $I_{L-3}(\\theta) = t$ for $0 \\le t < c_L$ ($L \\ge 3$)."""
    n = L - 3
    if n == 0:
        return t
    if n == 1:
        return jnp.arcsin(jnp.clip(t, 0.0, 1.0))

    def body(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        below = _wallis(mid, n) < t
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo = jnp.zeros_like(t)
    hi = jnp.full_like(t, jnp.pi / 2)
    lo, hi = jax.lax.fori_loop(0, 64, body, (lo, hi))
    # Bisection resolves theta to 1e-19 absolutely; Newton steps kept inside the bracket
    # restore full relative accuracy for tiny t (where I_n(theta) ~ theta).
    th = 0.5 * (lo + hi)
    for _ in range(3):
        slope = jnp.maximum(jnp.cos(th) ** n, jnp.finfo(th.dtype).tiny)
        th = jnp.clip(th - (_wallis(th, n) - t) / slope, lo, hi)
    return th


@functools.partial(jax.jit, static_argnums=1)
def _pq(t, L):
    if L == 2:
        return jnp.cosh(t), jnp.sinh(t)
    c = tensor_h_radius(L)
    a = jnp.abs(t)
    inside = a < c
    th = _theta_of_t(jnp.where(inside, a, 0.0), L)
    p = jnp.where(inside, 1.0 / jnp.cos(th), jnp.inf)
    q = jnp.where(inside, jnp.tan(th), jnp.inf)
    return p, jnp.sign(t) * q


def tensor_pq(t: Float[ArrayLike, "..."], depth: int) -> tuple[Array, Array]:
    r"""The solution $(p_L(t), q_L(t))$ of Lemma 4's ODE $\dot p = p^{L-2}q$,
    $\dot q = p^{L-1}$, $p(0)=1$, $q(0)=0$ (Yun et al. 2021), in closed form:
    $p = \sec\theta$, $q = \tan\theta$ with $I_{L-3}(\theta) = t$ (module docstring).
    Outside $(-c_L, c_L)$ the solution does not exist and $\pm\infty$ is returned.

    **Arguments:**

    - `t`: array of any shape.
    - `depth`: $L \ge 2$.

    **Returns:** `(p, q)`, each of the shape of `t`.
    """
    L = check_depth(depth)
    return _pq(jnp.asarray(t, jnp.result_type(float)), L)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _h(t, L):
    if L == 2:
        return 0.5 * jnp.sinh(2 * t)
    c = tensor_h_radius(L)
    a = jnp.abs(t)
    inside = a < c
    th = _theta_of_t(jnp.where(inside, a, 0.0), L)
    val = jnp.sin(th) / jnp.cos(th) ** L
    return jnp.sign(t) * jnp.where(inside, val, jnp.inf)


def _h_prime(t, L):
    """$h_L'(t) = (\\cos^2\\theta + L\\sin^2\\theta)/\\cos^{2L-2}\\theta$ ($\\cosh 2t$ for L=2)."""
    if L == 2:
        return jnp.cosh(2 * t)
    c = tensor_h_radius(L)
    a = jnp.abs(t)
    inside = a < c
    th = _theta_of_t(jnp.where(inside, a, 0.0), L)
    cs, sn = jnp.cos(th), jnp.sin(th)
    return jnp.where(inside, (cs**2 + L * sn**2) / cs ** (2 * L - 2), jnp.inf)


@_h.defjvp
def _h_jvp(L, primals, tangents):
    (t,), (dt,) = primals, tangents
    return _h(t, L), _h_prime(t, L) * dt


_h_jit = jax.jit(_h, static_argnums=1)


def tensor_h(t: Float[ArrayLike, "..."], depth: int) -> Float[Array, "..."]:
    r"""$h_L(t) = p_L(t)^{L-1}q_L(t)$ of Yun et al. 2021, Lemma 4: odd, strictly increasing
    from $-\infty$ to $\infty$ on $(-c_L, c_L)$; $h_2(t) = \sinh t\cosh t$. Values outside
    the domain are $\pm\infty$. Differentiable ($h_L' = (\cos^2\theta + L\sin^2\theta)
    /\cos^{2L-2}\theta$).

    **Arguments:**

    - `t`: array of any shape.
    - `depth`: $L \ge 2$.

    **Returns:** $h_L(t)$, the shape of `t`.
    """
    L = check_depth(depth)
    return _h_jit(jnp.asarray(t, jnp.result_type(float)), L)


def _q_of_y(a, L: int):
    """$q \\ge 0$ with $q(1+q^2)^{(L-1)/2} = a$, $a \\ge 0$: Newton in $u = \\log q$ on the
    convex increasing $F(u) = u + \\frac{L-1}2\\log(1+e^{2u})$, started right of the root
    (monotone convergence)."""
    pos = a > 0
    la = jnp.log(jnp.where(pos, a, 1.0))
    u = jnp.minimum(la, la / L)

    def body(_, u):
        e2 = jnp.exp(2 * jnp.minimum(u, 300.0))
        F = u + 0.5 * (L - 1) * jnp.where(u > 300.0, 2 * u, jnp.log1p(e2))
        dF = 1.0 + (L - 1) * jnp.where(u > 300.0, 1.0, e2 / (1.0 + e2))
        return u - (F - la) / dF

    u = jax.lax.fori_loop(0, 60, body, u)
    return jnp.where(pos, jnp.exp(u), 0.0)


def _inverse_and_q(y, L: int):
    a = jnp.abs(y)
    if L == 2:
        t = 0.5 * jnp.arcsinh(2 * a)
        q2 = a * (2 * a / (jnp.hypot(1.0, 2 * a) + 1))  # sinh^2 t, no cancellation/overflow
        return t, q2
    q = _q_of_y(a, L)
    return _wallis(jnp.arctan(q), L - 3), q**2


@functools.partial(jax.jit, static_argnums=1)
def _h_inverse(y, L):
    t, _ = _inverse_and_q(y, L)
    return jnp.sign(y) * t


@functools.partial(jax.jit, static_argnums=1)
def _H(y, L):
    t, q2 = _inverse_and_q(y, L)
    return jnp.abs(y) * t - 0.5 * q2


def tensor_h_inverse(y: Float[ArrayLike, "..."], depth: int) -> Float[Array, "..."]:
    r"""$h_L^{-1}(y)$ (Yun et al. 2021, Lemma 4; used by $H_L$ in Thm 5), defined for all
    real $y$, valued in $(-c_L, c_L)$; $h_2^{-1}(y) = \tfrac12\operatorname{asinh}(2y)$.

    **Arguments:**

    - `y`: array of any shape.
    - `depth`: $L \ge 2$.

    **Returns:** $h_L^{-1}(y)$, the shape of `y`.
    """
    L = check_depth(depth)
    return _h_inverse(jnp.asarray(y, jnp.result_type(float)), L)


def tensor_H(y: Float[ArrayLike, "..."], depth: int) -> Float[Array, "..."]:
    r"""$H_L(y) = \int_0^y h_L^{-1}(\tau)\,d\tau = |y|\,h_L^{-1}(|y|) - \tfrac12 q_L^2$
    where $q_L = q_L(h_L^{-1}(|y|))$ (Yun et al. 2021, Thm 5; integration by parts with
    $\int_0^t h_L = q_L(t)^2/2$). Even, convex, $H_L(y)\approx y^2/2$ near 0 and
    $\approx c_L|y|$ for large $|y|$ ($L \ge 3$).

    **Arguments:**

    - `y`: array of any shape.
    - `depth`: $L \ge 2$.

    **Returns:** $H_L(y)$, the shape of `y`.
    """
    L = check_depth(depth)
    return _H(jnp.asarray(y, jnp.result_type(float)), L)


def tensor_Q(
    rho: Float[ArrayLike, " m"], alpha, eta: Float[ArrayLike, " m"], depth: int
) -> Float[Array, ""]:
    r"""$Q_{L,\alpha,\eta}(\rho) = \alpha^2\sum_j\eta_j^2\,H_L\big(\rho_j/(\alpha^L|\eta_j|^L)\big)$
    (Yun et al. 2021, Thm 5), the norm-like function the regression limit minimises.

    **Arguments:**

    - `rho`: shape `(m,)`, coefficients in the transformed space.
    - `alpha`: initial scale $\alpha > 0$.
    - `eta`: shape `(m,)`, initial direction, all entries non-zero.
    - `depth`: $L \ge 2$.

    **Returns:** a scalar.
    """
    L = check_depth(depth)
    rho = jnp.asarray(rho, jnp.result_type(float))
    eta = jnp.abs(jnp.asarray(eta, rho.dtype))
    return alpha**2 * jnp.sum(eta**2 * tensor_H(rho / (alpha**L * eta**L), L))


# --------------------------------------------------------------------------- Theorem 5


class TensorPotential(AbstractPotential):
    r"""Yun et al.'s $Q_{L,\alpha,\eta}$ (2021, Thm 5) as a potential on the transformed
    coefficients $\rho$, in the dual coordinates $s' = \alpha^{L-2}SX^\top\nu$:

    $$\rho_j = \alpha^L|\eta_j|^L\,h_L(|\eta_j|^{L-2}s'_j),\qquad
    \psi_j(s') = \alpha^L\eta_j^2\,G_L(|\eta_j|^{L-2}s'_j),\quad G_L = \int_0^\cdot h_L
    = q_L^2/2,$$

    so the scale $\alpha$ is a prefactor only (power $L$) and, for $L \ge 3$, the domain is
    $|\eta_j|^{L-2}|s'_j| < c_L$ (`tensor_h_radius`). `value` is $\alpha^{L-2}Q_{L,\alpha,\eta}$
    (whose gradient is $s'$; the same minimiser). All in log space.

    **Arguments:** `alpha` $> 0$; `eta` shape `(m,)`, no zero entry; `depth` $L \ge 2$.
    """

    alpha: Float[Array, ""]
    eta: Float[Array, " m"]
    depth: int = eqx.field(static=True)

    def __init__(self, alpha, eta, depth: int):
        self.depth = check_depth(depth)
        alpha = as_float_array(alpha, "alpha", ndim=0)
        self.alpha = check_positive(check_finite(alpha, "alpha"), "alpha")
        eta = check_finite(as_float_array(eta, "eta", ndim=1), "eta")
        if is_concrete(eta) and not np.all(np.abs(np.asarray(eta)) > 0):
            raise ValueError("`eta` must have no zero entry (Thm 5 needs |eta_j| >= lambda > 0).")
        self.eta = eta

    @property
    def power(self) -> int:
        return self.depth

    @property
    def gap_power(self) -> int:
        return self.depth - 2

    def log_scale(self):
        return jnp.log(self.alpha)

    def log_amplitude(self):
        return self.depth * jnp.log(jnp.abs(self.eta))

    def dual_terms(self, s, log_scale):
        L = self.depth
        le = jnp.log(jnp.abs(self.eta))
        if L == 2:
            # rho = alpha^2 eta^2 sinh(2s) / 2, psi = alpha^2 eta^2 sinh(s)^2 / 2,
            # psi'' = alpha^2 eta^2 cosh(2s): e^{2|s|} factored out (no overflow).
            a = jnp.abs(s)
            e = jnp.exp(jnp.minimum(2 * (log_scale + le) + 2 * a, 800.0))
            beta = jnp.sign(s) * e * (-jnp.expm1(-4 * a)) / 4
            psi = e * jnp.expm1(-2 * a) ** 2 / 8
            curv = e * (1 + jnp.exp(-4 * a)) / 2
            return beta, psi, curv
        c = tensor_h_radius(L)
        u = jnp.exp((L - 2) * le) * s
        a = jnp.abs(u)
        # The same few-ulp margin as the hypentropy: iterates whose s rounds to the pole stay out.
        inside = a < c * (1 - 8 * jnp.finfo(s.dtype).eps)
        th = _theta_of_t(jnp.where(inside, a, 0.0), L)
        lcos, lsin = jnp.log(jnp.cos(th)), jnp.log(jnp.sin(th))
        lamp = L * (log_scale + le)
        beta = jnp.sign(u) * jnp.exp(lamp + lsin - L * lcos)
        beta = jnp.where(u == 0, 0.0, beta)
        psi = jnp.exp(lamp + (2 - L) * le + 2 * (lsin - lcos) - jnp.log(2.0))
        psi = jnp.where(u == 0, 0.0, psi)
        lh1 = jnp.log(jnp.cos(th) ** 2 + L * jnp.sin(th) ** 2) - (2 * L - 2) * lcos
        curv = jnp.exp(lamp + (L - 2) * le + lh1)
        return jnp.where(inside, beta, jnp.nan), jnp.where(inside, psi, jnp.inf), curv

    def gap(self, s):
        L = self.depth
        return 1 - jnp.abs(jnp.abs(self.eta) ** (L - 2) * s) / tensor_h_radius(L)

    def gap_rate(self, s):
        L = self.depth
        return jnp.broadcast_to(jnp.abs(self.eta) ** (L - 2) / tensor_h_radius(L), s.shape)

    def value(self, beta):
        L = self.depth
        return self.alpha ** (L - 2) * tensor_Q(beta, self.alpha, self.eta, L)


def tensor_regression_limit(
    XS: Float[ArrayLike, "n m"],
    y: Float[ArrayLike, " n"],
    alpha,
    eta: Float[ArrayLike, " m"],
    depth: int,
    *,
    rtol: float = 1e-8,
    throw: bool = True,
) -> Float[Array, " m"]:
    r"""The regression limit of Yun et al. 2021, Thm 5, in the transformed space:
    $\rho^\infty = \arg\min Q_{L,\alpha,\eta}(\rho)$ s.t. $XS^\top\rho = y$.

    `dual_minimise(TensorPotential(alpha, eta, depth), XS, y)`: the dual of App. F.2.2,
    $\rho = \alpha^L|\eta|^L\odot h_L(\alpha^{L-2}|\eta|^{L-2}\odot SX^\top\nu)$, solved by the
    limits layer's damped Newton method in log space with continuation in $\alpha$; for
    $L \ge 3$ at small $\alpha$ (dual points within rounding of the pole of $h_L$) $\rho$ on
    its support is read from the constraint (`dual_minimise`). `jit`-, `vmap`- and
    differentiable.

    **Arguments:**

    - `XS`: the transformed data $XS^\top$, shape `(n, m)`.
    - `y`: targets, shape `(n,)`, in the range of `XS`.
    - `alpha`: initial scale $\alpha > 0$.
    - `eta`: initial direction, shape `(m,)`, all $|\eta_j| > 0$.
    - `depth`: $L \ge 2$.
    - `rtol`, `throw`: as for `dual_minimise` (an infeasible system or an estimate above
      `rtol` raises).

    **Returns:** $\rho^\infty$, shape `(m,)`.
    """
    XS = as_float_array(XS, "XS", ndim=2)
    potential = TensorPotential(alpha, eta, depth)
    if potential.eta.shape != (XS.shape[1],):
        raise ValueError(f"`eta` must have shape ({XS.shape[1]},), got {potential.eta.shape}.")
    return dual_minimise(potential, XS, y, rtol=rtol, throw=throw).value


def diagonal_regression_limit(
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, " n"],
    alpha,
    depth: int,
    eta: Float[ArrayLike, " d"] | None = None,
) -> Float[Array, " d"]:
    r"""Limit of a depth-$L$ diagonal network (eq. (11)) started at $w_l(0) = \alpha\eta$
    ($l<L$), $w_L(0) = 0$ (`TensorNet.from_eta("diagonal", eta, L, alpha)`): the minimiser
    of $Q_{L,\alpha,\eta}(z)$ s.t. $Xz = y$ (Yun et al. 2021, Cor. 5; $S = U_l = I$).

    For $L = 2$ this is the hypentropy minimiser of `DiagonalNet.unbiased(d, alpha/2,
    w0=|eta|)` (Woodworth et al. 2020, Thm 1): both limits are $c\odot\sinh(X^\top\nu)$
    with $c = \alpha^2\eta^2/2$ here and $2\alpha_W^2 w_0^2$ there.

    **Arguments:**

    - `X`: shape `(n, d)`; `y`: shape `(n,)`; `alpha` > 0; `depth` $\ge 2$.
    - `eta`: shape `(d,)`, default all ones.

    **Returns:** $\beta^\infty$, shape `(d,)`.
    """
    X = as_float_array(X, "X", ndim=2)
    eta = jnp.ones(X.shape[1], X.dtype) if eta is None else eta
    return tensor_regression_limit(X, y, alpha, eta, depth)


def convolution_transform(d: int, depth: int) -> Float[Array, "d d"]:
    r"""The real $\tilde S = d^{(L-1)/2}\operatorname{Re}F$ that acts on even vectors as
    Assumption 1's $S = d^{(L-1)/2}F$ for full-length circular convolutions (Yun et al.,
    App. D.3, F.4): $\mathcal M_{\rm conv}(x) = \sum_j [Sx]_j\,u_j^{\otimes L}$ with
    $u_j$ the columns of $F^*$."""
    L = check_depth(depth)
    return d ** ((L - 1) / 2) * jnp.real(dft_matrix(d))


def convolution_regression_limit(
    X: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, " n"],
    alpha,
    depth: int,
    eta: Float[ArrayLike, " d"] | None = None,
) -> Float[Array, " d"]:
    r"""Limit of a depth-$L$ full-length circular convolutional network (eq. (12)) on even
    data, started at $w_l(0) = \alpha F^*\eta$ ($l<L$), $w_L(0)=0$
    (`TensorNet.from_eta("convolution", eta, L, alpha)`): $\beta^\infty = \tilde S^\top\rho$
    with $\rho$ minimising $Q_{L,\alpha,\eta}(\rho)$ s.t. $X\tilde S^\top\rho = y$
    (Yun et al. 2021, Cor. 6, in the DFT domain).

    **Arguments:**

    - `X`: shape `(n, d)`, every row even ($x_{j+2} = x_{d-j}$).
    - `y`: shape `(n,)`; `alpha` > 0; `depth` $\ge 2$.
    - `eta`: DFT-domain direction, shape `(d,)`, even, no zero entry (default all ones).

    **Returns:** $\beta^\infty$, shape `(d,)`.
    """
    X = as_float_array(X, "X", ndim=2)
    d = X.shape[1]
    for i, row in enumerate(np.asarray(X)):
        if not is_even(row):
            raise ValueError(
                f"Row {i} of `X` is not even (x[j+1] == x[d-1-j]): Cor. 6 needs even data."
            )
    eta = jnp.ones(d, X.dtype) if eta is None else as_float_array(eta, "eta", ndim=1)
    if not is_even(eta):
        raise ValueError("`eta` must be even (Cor. 6).")
    S = convolution_transform(d, depth)
    rho = tensor_regression_limit(X @ S.T, y, alpha, eta, depth)
    return S.T @ rho


def sensing_regression_limit(
    A: Float[ArrayLike, "n d d"], y: Float[ArrayLike, " n"], alpha, depth: int
) -> Float[Array, "d d"]:
    r"""Limit of deep matrix sensing $W_L\cdots W_1$ with commuting symmetric sensors,
    started at $W_l(0) = \alpha I$ ($l<L$), $W_L(0) = 0$ (Yun et al. 2021, Cor. 7; eq. (13)):
    $M^\infty = U\operatorname{diag}(\rho)U^\top$ with $U$ the common eigenbasis and $\rho$
    minimising $\alpha^2\sum_j H_L(\rho_j/\alpha^L)$ s.t. $\langle\operatorname{eig}(A_i),
    \rho\rangle = y_i$ (a diagonal network on the eigenvalues, $\eta = \mathbf 1$).

    **Arguments:**

    - `A`: sensors, shape `(n, d, d)`, symmetric, pairwise commuting, linearly independent.
    - `y`: shape `(n,)`; `alpha` > 0; `depth` $\ge 2$.

    **Returns:** $M^\infty$, shape `(d, d)`.
    """
    A = np.asarray(as_float_array(A, "A", ndim=3))
    n, d, d2 = A.shape
    if d != d2:
        raise ValueError(f"`A` must hold square sensors, got shape {A.shape}.")
    scale = max(np.abs(A).max(), np.finfo(float).tiny)
    if not np.allclose(A, np.swapaxes(A, 1, 2), atol=1e-12 * scale):
        raise ValueError("The sensors `A[i]` must be symmetric (Cor. 7).")
    for i in range(n):
        for j in range(i + 1, n):
            if not np.allclose(A[i] @ A[j], A[j] @ A[i], atol=1e-10 * scale**2):
                raise ValueError(f"Sensors A[{i}] and A[{j}] do not commute (Cor. 7 needs it).")
    # A generic combination has simple eigenvalues, and its eigenvectors diagonalise all A_i.
    rng = np.random.default_rng(0)
    _, U = np.linalg.eigh(np.tensordot(rng.standard_normal(n), A, axes=1))
    E = np.einsum("ji,njk,ki->ni", U, A, U)
    off = np.einsum("ji,njk,kl->nil", U, A, U) - np.einsum("ni,il->nil", E, np.eye(d))
    if np.abs(off).max() > 1e-8 * scale:
        raise ValueError("Could not find a common eigenbasis of the sensors `A`.")
    rho = tensor_regression_limit(E, y, alpha, np.ones(d), depth)
    return jnp.asarray(U) @ jnp.diag(rho) @ jnp.asarray(U).T
