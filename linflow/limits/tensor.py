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

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, check_depth, check_finite, check_positive
from ..models.tensor import TensorNet, dft_matrix, is_even


# --------------------------------------------------------------------------- Lemma 4


def _check_depth(depth) -> int:
    return check_depth(depth)


def tensor_h_radius(depth: int) -> float:
    r"""The half-width $c_L$ of the domain $(-c_L, c_L)$ of $h_L$ (Yun et al., Lemma 4):
    $c_L = \int_0^{\pi/2}\cos^{L-3}\varphi\,d\varphi$ ($\infty$ for $L=2$, $\pi/2$ for $L=3$,
    $1$ for $L=4$).

    **Arguments:**

    - `depth`: $L \ge 2$.

    **Returns:** $c_L$ as a Python float.
    """
    L = _check_depth(depth)
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
    L = _check_depth(depth)
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
    L = _check_depth(depth)
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
    L = _check_depth(depth)
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
    L = _check_depth(depth)
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
    L = _check_depth(depth)
    rho = jnp.asarray(rho, jnp.result_type(float))
    eta = jnp.abs(jnp.asarray(eta, rho.dtype))
    return alpha**2 * jnp.sum(eta**2 * tensor_H(rho / (alpha**L * eta**L), L))


# --------------------------------------------------------------------------- Theorem 5


def _log_abs_h(u, L):
    """$\\log|h_L(u)|$ without overflow for $L = 2$."""
    if L == 2:
        a = jnp.abs(u)
        return 2 * a - jnp.log(4.0) + jnp.log1p(-jnp.exp(-4 * a))
    return jnp.log(jnp.abs(_h(u, L)))


def _log_h_prime(u, L):
    if L == 2:
        a = jnp.abs(u)
        return 2 * a - jnp.log(2.0) + jnp.log1p(jnp.exp(-4 * a))
    return jnp.log(_h_prime(u, L))


def _log_G2(u, L):
    """$\\log(2 G_L(u)) = \\log q_L(u)^2$."""
    if L == 2:
        a = jnp.abs(u)
        return 2 * (a - jnp.log(2.0) + jnp.log1p(-jnp.exp(-2 * a)))
    _, q = tensor_pq(u, L)
    return 2 * jnp.log(jnp.abs(q))


@functools.partial(jax.jit, static_argnums=(0,))
def _dual_pieces(L, nu, A, log_a, log_b, log_c, y):
    z = A @ nu
    u = jnp.exp(log_c) * z
    sgn = jnp.sign(u)
    nz = u != 0
    us = jnp.where(nz, u, 1.0)
    rho = jnp.where(nz, sgn * jnp.exp(log_b + _log_abs_h(us, L)), 0.0)
    w = jnp.exp(log_b + log_c + _log_h_prime(u, L))
    obj_terms = jnp.where(nz, 0.5 * jnp.exp(log_a + _log_G2(us, L)), 0.0)
    return rho, w, nu @ y - jnp.sum(obj_terms)


def tensor_regression_limit(
    XS: Float[ArrayLike, "n m"],
    y: Float[ArrayLike, " n"],
    alpha,
    eta: Float[ArrayLike, " m"],
    depth: int,
    *,
    rtol: float = 1e-13,
    max_iter: int = 500,
) -> Float[Array, " m"]:
    r"""The regression limit of Yun et al. 2021, Thm 5, in the transformed space:
    $\rho^\infty = \arg\min Q_{L,\alpha,\eta}(\rho)$ s.t. $XS^\top\rho = y$.

    Solved in the dual (App. F.2.2): $\rho = \alpha^L|\eta|^L\odot
    h_L(\alpha^{L-2}|\eta|^{L-2}\odot SX^\top\nu)$, with $\nu$ maximising the concave
    $D(\nu)$ of the module docstring by Newton's method with backtracking (it stays inside
    the domain $|\alpha^{L-2}|\eta_j|^{L-2}[SX^\top\nu]_j| < c_L$ of $h_L$). For $L=2$
    all quantities are formed in log space, so $\alpha$ down to $10^{-100}$ is fine. For
    $L \ge 3$ the dual point approaches the pole of $h_L$ as $\alpha\to0$ (distance
    $\sim\alpha^{L-2}$), so the relative accuracy of $\rho$ is about
    $L\,\epsilon/\alpha^{L-2}$ ($\epsilon$: machine epsilon): $\alpha \ge 10^{-3}$ for
    $L = 4$ keeps it below $10^{-9}$; when the target `rtol` cannot be met a
    `RuntimeError` says so.

    **Arguments:**

    - `XS`: the transformed data $XS^\top$, shape `(n, m)`, full row rank.
    - `y`: targets, shape `(n,)`.
    - `alpha`: initial scale $\alpha > 0$.
    - `eta`: initial direction, shape `(m,)`, all $|\eta_j| > 0$.
    - `depth`: $L \ge 2$.
    - `rtol`: stop when $\|XS^\top\rho - y\| \le$ `rtol` $\|y\|$.
    - `max_iter`: Newton iterations; not converging raises `RuntimeError`.

    **Returns:** $\rho^\infty$, shape `(m,)`.
    """
    L = _check_depth(depth)
    XS = np.asarray(check_finite(as_float_array(XS, "XS", ndim=2), "XS"))
    y = np.asarray(check_finite(as_float_array(y, "y", ndim=1), "y"))
    eta = np.asarray(as_float_array(eta, "eta", ndim=1))
    n, m = XS.shape
    if y.shape != (n,):
        raise ValueError(f"`y` must have shape ({n},) to match `XS` {XS.shape}, got {y.shape}.")
    if eta.shape != (m,):
        raise ValueError(f"`eta` must have shape ({m},), got {eta.shape}.")
    if not np.all(np.abs(eta) > 0):
        raise ValueError("`eta` must have no zero entry (Thm 5 needs |eta_j| >= lambda > 0).")
    alpha = float(check_positive(alpha, "alpha"))
    if np.linalg.matrix_rank(XS) < n:
        raise ValueError(f"`XS` (shape {XS.shape}) must have full row rank n = {n}.")
    la = np.log(alpha)
    le = np.log(np.abs(eta))
    log_a = 2 * la + 2 * le
    log_c = (L - 2) * (la + le)
    log_b = L * (la + le)
    c_L = tensor_h_radius(L)
    A = XS.T
    args = (jnp.asarray(A), jnp.asarray(log_a), jnp.asarray(log_b), jnp.asarray(log_c))
    ynorm = max(np.linalg.norm(y), np.finfo(float).tiny)
    nu = np.zeros(n)

    def pieces(nu):
        rho, w, D = _dual_pieces(L, jnp.asarray(nu), *args, jnp.asarray(y))
        return np.asarray(rho), np.asarray(w), float(D)

    def inside(nu):
        return np.all(np.abs(np.exp(log_c) * (A @ nu)) < c_L)

    rho, w, D = pieces(nu)
    for _ in range(max_iter):
        res = y - XS @ rho
        if np.linalg.norm(res) <= rtol * ynorm:
            return jnp.asarray(rho)
        Hm = (XS * w[None, :]) @ XS.T
        try:
            step = np.linalg.solve(Hm, res)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(Hm, res, rcond=None)[0]
        s = 1.0
        accepted = False
        for _ in range(80):
            cand = nu + s * step
            if inside(cand):
                rho_c, w_c, D_c = pieces(cand)
                if np.isfinite(D_c) and D_c >= D + 1e-4 * s * (res @ step) - 1e-15 * abs(D):
                    accepted = True
                    break
            s *= 0.5
        if not accepted:
            break
        nu, rho, w, D = cand, rho_c, w_c, D_c
    res = np.linalg.norm(y - XS @ rho) / ynorm
    if res <= max(rtol, 1e2 * L * np.finfo(float).eps / alpha ** (L - 2)):
        return jnp.asarray(rho)
    raise RuntimeError(
        f"tensor_regression_limit: Newton's method stopped at relative residual {res:.3e} "
        f"(alpha={alpha:g}, depth={L}); the limit could not be computed to rtol={rtol:g}."
    )


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
    L = _check_depth(depth)
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


# --------------------------------------------------------------------------- Theorem 6


def two_layer_single_point_limit(model: TensorNet, x: Float[ArrayLike, " d"], y) -> TensorNet:
    r"""The limit of the gradient flow of a 2-layer linear tensor network on one data point
    $(x, y)$, in closed form (Yun et al. 2021, Thm 6):

    $$v_1^\infty = U_1(\eta_1\odot\cosh(\nu^\star s) + \eta_2\odot\sinh(\nu^\star s))
    + (I - U_1U_1^\top)v_1(0),$$

    and symmetrically for $v_2$, where $\mathcal M(x) = U_1\operatorname{diag}(s)U_2^\top$ is
    the compact SVD, $\eta_l = U_l^\top v_l(0)$, and $\nu^\star$ is the root of the
    increasing $g(\nu) = \sum_j s_j\big(\tfrac{\eta_{1j}^2+\eta_{2j}^2}2\sinh(2s_j\nu)
    + \eta_{1j}\eta_{2j}\cosh(2s_j\nu)\big) = y$ (Brent's method). Holds for any 2-layer
    architecture, small convolution filters included.

    **Arguments:**

    - `model`: a depth-2 `TensorNet` at its initialisation $v_l(0) = \alpha\bar v_l$ with
      $\eta_{1j}^2 > \eta_{2j}^2$ for every $j$ (Thm 6's hypothesis).
    - `x`: the data point, shape `(d,)`; `y`: its target.

    **Returns:** the limit `TensorNet` ($\beta^\infty$ = its `predictor()`).
    """
    if not isinstance(model, TensorNet) or model.depth != 2:
        raise ValueError("`model` must be a depth-2 `linflow.TensorNet` (Thm 6).")
    x = as_float_array(x, "x", ndim=1)
    if x.shape != (model.d,):
        raise ValueError(f"`x` must have shape ({model.d},), got {tuple(x.shape)}.")
    y = float(y)
    M = np.asarray(model.data_tensor(x))
    U1, s, V2t = np.linalg.svd(M, full_matrices=False)
    keep = s > s.max() * max(M.shape) * np.finfo(float).eps if s.size and s.max() > 0 else s > 0
    if not np.any(keep):
        raise ValueError("The data tensor M(x) is zero: `x` must be non-zero.")
    U1, s, U2 = U1[:, keep], s[keep], V2t[keep].T
    v1, v2 = (np.asarray(v) for v in model.vectors())
    e1, e2 = U1.T @ v1, U2.T @ v2
    gap = e1**2 - e2**2
    if not np.all(gap > 0):
        raise ValueError(
            "Thm 6 needs [U1^T v1(0)]_j^2 > [U2^T v2(0)]_j^2 for every singular direction j; "
            f"got min gap {gap.min():.3e}."
        )
    half_sum, prod = 0.5 * (e1**2 + e2**2), e1 * e2

    def g(nu):
        return np.sum(s * (half_sum * np.sinh(2 * s * nu) + prod * np.cosh(2 * s * nu))) - y

    lo, hi = -1.0, 1.0
    while g(lo) > 0:
        lo *= 2
    while g(hi) < 0:
        hi *= 2
    nu = scipy.optimize.brentq(g, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    c, sh = np.cosh(nu * s), np.sinh(nu * s)
    w1 = U1 @ (e1 * c + e2 * sh) + v1 - U1 @ e1
    w2 = U2 @ (e1 * sh + e2 * c) + v2 - U2 @ e2
    return model.with_vectors((jnp.asarray(w1), jnp.asarray(w2)))


# --------------------------------------------------------------------------- classification


def tensor_margin_direction(
    kind: str,
    X: Float[ArrayLike, "n d"],
    labels: Float[ArrayLike, " n"],
    depth: int = 2,
) -> Float[Array, " d"]:
    r"""The limit direction $\beta^\infty/\|\beta^\infty\|$ of the exponential-loss flow on
    separable data (Yun et al. 2021, Cor. 1-3; Thm 2): a KKT point of
    $\min\|S^{-\top}z\|_{2/L}$ s.t. $y_ix_i^\top z \ge 1$.

    - `"fully_connected"`, any depth (Cor. 1): the $\ell_2$ max-margin direction (QP).
    - `"diagonal"`, depth 2 (Cor. 2): the $\ell_1$ max-margin direction (LP,
      `scipy.optimize.linprog`).
    - `"convolution"`, full length, depth 2 (Cor. 3): the DFT-domain $\ell_1$ max-margin
      direction $\min\|Fz\|_1$. It is an LP when $F$ is real on the data's span: $d \le 2$ or
      even data (then an even optimum exists, on which $F$ is real).

    For depth $L \ge 3$ the $\ell_{2/L}$ problem is non-convex and the flow picks *a*
    stationary point, depending on the initialisation: not implemented (raises).

    **Arguments:**

    - `kind`: architecture; `X`: shape `(n, d)`; `labels`: shape `(n,)`, entries $\pm1$.
    - `depth`: $L$.

    **Returns:** the unit direction, shape `(d,)`. Raises `ValueError` if the data are not
    linearly separable.
    """
    L = _check_depth(depth)
    if kind not in ("diagonal", "convolution", "fully_connected"):
        raise ValueError("`kind` must be 'diagonal', 'convolution' or 'fully_connected'.")
    X = np.asarray(check_finite(as_float_array(X, "X", ndim=2), "X"))
    labels = np.asarray(as_float_array(labels, "labels", ndim=1))
    if labels.shape != (X.shape[0],):
        raise ValueError(f"`labels` must have shape ({X.shape[0]},), got {labels.shape}.")
    if not np.all(np.abs(labels) == 1):
        raise ValueError("`labels` must contain only +1 and -1.")
    G = labels[:, None] * X
    n, d = G.shape
    if kind == "fully_connected":
        z = _max_margin_l2(G)
    else:
        if L != 2:
            raise NotImplementedError(
                f"The {kind} limit direction for depth {L} >= 3 is a stationary point of a "
                "non-convex l_(2/L) problem that depends on the initialisation."
            )
        if kind == "diagonal":
            T = np.eye(d)
        else:
            if not (d <= 2 or all(is_even(r) for r in X)):
                raise NotImplementedError(
                    "The DFT-domain l1 max margin is a second-order cone program unless d <= 2 "
                    "or the data are even; only those cases are implemented."
                )
            T = np.real(np.asarray(dft_matrix(d)))
        z = _max_margin_l1(G, T)
    return jnp.asarray(z / np.linalg.norm(z))


def _max_margin_l1(G, T):
    """$\\min\\|Tz\\|_1$ s.t. $Gz \\ge 1$ as an LP in $(z, s)$: $-s \\le Tz \\le s$."""
    n, d = G.shape
    m = T.shape[0]
    cost = np.concatenate([np.zeros(d), np.ones(m)])
    A_ub = np.block([[T, -np.eye(m)], [-T, -np.eye(m)], [-G, np.zeros((n, m))]])
    b_ub = np.concatenate([np.zeros(2 * m), -np.ones(n)])
    bounds = [(None, None)] * d + [(0, None)] * m
    res = scipy.optimize.linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status == 2:
        raise ValueError("The data are not linearly separable: no max-margin direction.")
    if not res.success:
        raise RuntimeError(f"linprog failed: {res.message}")
    return res.x[:d]


def _max_margin_l2(G):
    """$\\min\\tfrac12\\|z\\|^2$ s.t. $Gz \\ge 1$ (SLSQP), after an LP feasibility check."""
    n, d = G.shape
    feas = scipy.optimize.linprog(
        np.zeros(d), A_ub=-G, b_ub=-np.ones(n), bounds=[(None, None)] * d, method="highs"
    )
    if feas.status == 2:
        raise ValueError("The data are not linearly separable: no max-margin direction.")
    res = scipy.optimize.minimize(
        lambda z: 0.5 * z @ z,
        feas.x,
        jac=lambda z: z,
        constraints=[{"type": "ineq", "fun": lambda z: G @ z - 1.0, "jac": lambda z: G}],
        method="SLSQP",
        options={"ftol": 1e-16, "maxiter": 1000},
    )
    if not res.success:
        raise RuntimeError(f"The l2 max-margin QP failed: {res.message}")
    return res.x
