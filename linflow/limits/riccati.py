r"""Closed forms of Tarmoun, França, Haeffele & Vidal 2021 for $\tfrac12\|Y - UU^\top\|_F^2$ and
$\tfrac12\|Y - UV^\top\|_F^2$.

Our loss is the paper's ($\tfrac12\|\cdot\|_F^2$ summed), so the flows are the paper's:
$\dot U = 2(Y - UU^\top)U$ (symmetric $Y$) and eq. (12), and all time constants are as
printed: the symmetric component $i$ relaxes at rate $4|\sigma_i|$, the asymmetric spectral
component at rate $\sqrt{4\sigma_i^2 + \lambda_{0,i}^2}$. For a non-symmetric square $Y$ the
symmetric flow only sees $\tfrac12(Y + Y^\top)$, which is used throughout.

Every function takes a time grid `t` of any shape and returns the solution at each time;
exponentials are never formed where they could overflow, and $Y$ is never inverted.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, is_concrete
from ..models.factorization import TwoLayer


# Row scales above e^{_LOG_CAP} change the closed form by a relative e^{-2 _LOG_CAP}
# (the dependence on a large row scale h_i is through 1/h_i^2): capping avoids overflow.
_LOG_CAP = 150.0


def _times(t, dtype):
    t = jnp.asarray(t, dtype)
    if is_concrete(t) and np.any(np.asarray(t) < 0):
        raise ValueError("`t` must be >= 0.")
    return t


def _log_riccati_weights(sigma, t):
    r"""$\log g$ and $\log f$ for $g = (1 - e^{-4t\sigma})/\sigma$, $f = (e^{4t\sigma} - 1)/\sigma$
    (both $4t$ at $\sigma = 0$), for $t > 0$, without overflow."""
    a = 4.0 * t * sigma
    abs_a = jnp.abs(a)
    abs_s = jnp.abs(sigma)
    zero = abs_s == 0
    core = jnp.log(-jnp.expm1(-jnp.where(zero, 1.0, abs_a))) - jnp.log(jnp.where(zero, 1.0, abs_s))
    core = jnp.where(zero, jnp.log(4.0 * t), core)
    return jnp.maximum(-a, 0.0) + core, jnp.maximum(a, 0.0) + core


def _riccati_one_time(sigma, Ut, X0, t):
    """The symmetric Riccati solution in the eigenbasis of Y at one time t >= 0."""
    t_pos = jnp.where(t > 0, t, 1.0)
    log_g, log_f = _log_riccati_weights(sigma, t_pos)
    n, k = Ut.shape
    R = jnp.exp(jnp.minimum(0.5 * log_f, _LOG_CAP))[:, None] * Ut
    M = jnp.concatenate([R, jnp.eye(k, dtype=Ut.dtype)], axis=0)
    # Householder QR is row-wise stable when rows are sorted by decreasing norm
    # (Cox & Higham 1998); the row scales here span many orders of magnitude.
    perm = jnp.argsort(-jnp.sum(M**2, axis=1))
    Q, _ = jnp.linalg.qr(M[perm])
    Q = Q[jnp.argsort(perm)]
    Q1 = Q[:n]
    s = jnp.exp(-0.5 * log_g)
    Xt = s[:, None] * (Q1 @ Q1.T) * s[None, :]
    return jnp.where(t > 0, Xt, X0)


def symmetric_riccati_solution(
    Y: Float[Array, "n n"], U0: Float[Array, "n k"], t: Float[ArrayLike, "*T"]
) -> Float[Array, "*T n n"]:
    r"""$X(t) = U(t)U(t)^\top$ along the flow of $\tfrac12\|Y - UU^\top\|_F^2$
    (Tarmoun et al. 2021, Prop. 1, eq. (8)):

    $$X(t) = e^{2tY}X_0\big[I + Y^{-1}(e^{4tY} - I)X_0\big]^{-1}e^{2tY},\qquad X_0 = U_0U_0^\top.$$

    Computed without inverting $Y$ or forming $e^{4tY}$: in the eigenbasis $Y = \Phi\,
    \mathrm{diag}(\sigma)\Phi^\top$, with $\tilde U_0 = \Phi^\top U_0$,
    $f_i = (e^{4t\sigma_i}-1)/\sigma_i$
    and $g_i = (1 - e^{-4t\sigma_i})/\sigma_i$ (both $4t$ at $\sigma_i = 0$, so a singular $Y$ is
    fine), $R = \mathrm{diag}(f^{1/2})\tilde U_0$ and
    $\Phi^\top X(t)\Phi =
    \mathrm{diag}(g^{-1/2})\,R(I + R^\top R)^{-1}R^\top\,\mathrm{diag}(g^{-1/2})$
    (push-through identity; $I + R^\top R$ is positive definite for every $t$, so the solution
    exists for all $t \ge 0$). $R(I + R^\top R)^{-1}R^\top = Q_1Q_1^\top$ from the QR factorisation
    of $[R; I]$.

    **Arguments:**

    - `Y`: square target, shape `(n, n)` (only its symmetric part matters).
    - `U0`: initial factor, shape `(n, k)`.
    - `t`: times $\ge 0$, any shape.

    **Returns:** $X(t)$, shape `t.shape + (n, n)`.
    """
    Y = as_float_array(Y, "Y", ndim=2)
    U0 = as_float_array(U0, "U0", ndim=2)
    if Y.shape[0] != Y.shape[1]:
        raise ValueError(
            f"`Y` must be square for the symmetric factorisation UU^T, got shape {tuple(Y.shape)}."
        )
    if U0.shape[0] != Y.shape[0]:
        raise ValueError(f"`U0` must have {Y.shape[0]} rows (as `Y`), got shape {U0.shape}.")
    t = _times(t, Y.dtype)
    sigma, Phi = jnp.linalg.eigh(0.5 * (Y + Y.T))
    Ut = Phi.T @ U0
    X0t = Ut @ Ut.T
    flat = t.reshape(-1)
    Xt = jax.vmap(lambda s: _riccati_one_time(sigma, Ut, X0t, s))(flat)
    X = Phi[None] @ Xt @ Phi.T[None]
    return X.reshape(t.shape + Y.shape)


def symmetric_spectral_solution(
    sigma: Float[Array, " n"], sigma0: Float[Array, " n"], t: Float[ArrayLike, "*T"]
) -> Float[Array, "*T n"]:
    r"""The eigenvalues of $X(t)$ under a spectral initialisation (Tarmoun et al. 2021,
    Cor. 1, eq. (9)):

    $$\sigma_i(t) = \sigma_i + \frac{\sigma_i(\sigma_{0,i} - \sigma_i)}{\sigma_i + \sigma_{0,i}
    (e^{4t\sigma_i} - 1)} = \frac{\sigma_{0,i}}{e^{-4t\sigma_i} + \sigma_{0,i}g_i}
    = \frac{\sigma_{0,i}e^{4t\sigma_i}}{1 + \sigma_{0,i}f_i},$$

    with $f, g$ as in `symmetric_riccati_solution`; the second form is used for
    $\sigma_i \ge 0$ and the third for $\sigma_i < 0$ (no overflow, no division by $\sigma_i$).

    **Arguments:**

    - `sigma`: eigenvalues of $Y$, shape `(n,)`.
    - `sigma0`: eigenvalues of $X_0$ in the same eigenbasis, $\ge 0$, shape `(n,)`.
    - `t`: times, any shape.

    **Returns:** shape `t.shape + (n,)`.
    """
    sigma = as_float_array(sigma, "sigma", ndim=1)
    sigma0 = as_float_array(sigma0, "sigma0", ndim=1)
    if sigma0.shape != sigma.shape:
        raise ValueError(f"`sigma0` must have shape {sigma.shape}, got {sigma0.shape}.")
    t = _times(t, sigma.dtype)
    tt = t.reshape(-1, 1)
    sig, sig0 = sigma[None, :], sigma0[None, :]
    a = 4.0 * tt * sig
    small = jnp.abs(sig) == 0
    s_safe = jnp.where(small, 1.0, sig)
    g = jnp.where(small, 4.0 * tt, -jnp.expm1(-a) / s_safe)
    f = jnp.where(small, 4.0 * tt, jnp.expm1(a) / s_safe)
    pos = sig >= 0
    out = jnp.where(
        pos,
        sig0 / (jnp.exp(-jnp.where(pos, a, 0.0)) + sig0 * g),
        sig0 * jnp.exp(jnp.where(pos, 0.0, a)) / (1.0 + sig0 * f),
    )
    return out.reshape(t.shape + sigma.shape)


def spectral_rate(sigma, lambda0):
    r"""$\sqrt{4\sigma^2 + \lambda_0^2}$: the rate at which an asymmetric spectral component
    converges (Tarmoun et al. 2021, Prop. 3 and eq. (23))."""
    return jnp.sqrt(4.0 * jnp.asarray(sigma) ** 2 + jnp.asarray(lambda0) ** 2)


def _scalar_by_riccati(sigma, x0, lambda0, t):
    """The scalar system (19) as a 2x2 instance of Prop. 5 (exact, any sign)."""
    u2 = 0.5 * (lambda0 + jnp.sqrt(lambda0**2 + 4.0 * x0**2))
    u = jnp.sqrt(u2)
    v = jnp.where(u > 0, x0 / jnp.where(u > 0, u, 1.0), jnp.sqrt(jnp.maximum(-lambda0, 0.0)))
    S = jnp.array([[0.25 * lambda0, 0.5 * sigma], [0.5 * sigma, -0.25 * lambda0]])
    W0 = 0.5 * jnp.stack([u, v])[:, None]
    P = 4.0 * _riccati_eig(S, W0, t)
    return P[..., 0, 1]


def _riccati_eig(S, W0, t):
    sig, Phi = jnp.linalg.eigh(S)
    Ut = Phi.T @ W0
    X0t = Ut @ Ut.T
    flat = t.reshape(-1)
    Xt = jax.vmap(lambda s: _riccati_one_time(sig, Ut, X0t, s))(flat)
    X = Phi[None] @ Xt @ Phi.T[None]
    return X.reshape(t.shape + S.shape)


def spectral_singular_values(
    sigma: Float[Array, " p"],
    x0: Float[Array, " p"],
    lambda0: Float[Array, " p"],
    t: Float[ArrayLike, "*T"],
) -> Float[Array, "*T p"]:
    r"""The singular values $x_i(t)$ of $UV^\top$ under a spectral initialisation (Tarmoun et al.
    2021, Prop. 3, eqs. (17) and (22)): $x = \bar u\bar v$ with $\bar u^2 - \bar v^2 = \lambda_0$
    obeys $\dot x = 2(\sigma - x)\sqrt{x^2 + \lambda_0^2/4}$ (eq. (21)) and, with
    $\omega = \sqrt{4\sigma^2 + \lambda_0^2}$ and $e = e^{-\omega t}$,

    $$x(t) = \frac{\sigma - 2C\lambda_0^2 e - 4\sigma\lambda_0^2C^2e^2}
    {1 + 8\sigma C e - 4\lambda_0^2C^2e^2},\qquad
    C = \frac{\sqrt{\Delta} - b}{4\lambda_0^2(\sigma - x_0)}
    = \frac{\sigma - x_0}{\sqrt\Delta + b},$$

    $b = 4\sigma x_0 + \lambda_0^2$, $\Delta = b^2 + 4\lambda_0^2(\sigma - x_0)^2$ (eq. (17) divided
    by $e^{2\omega t}$ so it never overflows; the second form of $C$ is eq. (22) rationalised,
    exact at $\lambda_0 = 0$). Where $b \le 0$ (a component started with the wrong sign and
    small imbalance, where eq. (22) degenerates) the value comes from the same scalar system
    solved as a $2\times2$ instance of Prop. 5.

    **Arguments:**

    - `sigma`: singular values of $Y$, shape `(p,)`.
    - `x0`: initial values $\bar u_i\bar v_i$, shape `(p,)`.
    - `lambda0`: imbalances $\bar u_i^2 - \bar v_i^2$, shape `(p,)`.
    - `t`: times, any shape.

    **Returns:** shape `t.shape + (p,)`.
    """
    sigma = as_float_array(sigma, "sigma", ndim=1)
    x0 = as_float_array(x0, "x0", ndim=1)
    lambda0 = as_float_array(lambda0, "lambda0", ndim=1)
    if not (sigma.shape == x0.shape == lambda0.shape):
        raise ValueError(
            f"`sigma`, `x0`, `lambda0` must have the same shape, got {sigma.shape}, "
            f"{x0.shape}, {lambda0.shape}."
        )
    t = _times(t, sigma.dtype)
    tt = t.reshape(-1, 1)
    b = 4.0 * sigma * x0 + lambda0**2
    root = jnp.sqrt(b**2 + 4.0 * lambda0**2 * (sigma - x0) ** 2)
    good = b > 0
    C = (sigma - x0) / jnp.where(good, root + b, 1.0)
    e = jnp.exp(-spectral_rate(sigma, lambda0)[None, :] * tt)
    sg, Cg, lg = sigma[None, :], C[None, :], lambda0[None, :] ** 2
    num = sg - 2.0 * Cg * lg * e - 4.0 * sg * lg * Cg**2 * e**2
    den = 1.0 + 8.0 * sg * Cg * e - 4.0 * lg * Cg**2 * e**2
    closed = num / den
    fallback = jax.vmap(lambda s, a, lam: _scalar_by_riccati(s, a, lam, tt[:, 0]), out_axes=-1)(
        sigma, x0, lambda0
    )
    return jnp.where(good[None, :], closed, fallback).reshape(t.shape + sigma.shape)


def _check_factorization_model(Y, U0, V0):
    Y = as_float_array(Y, "Y", ndim=2)
    U0 = as_float_array(U0, "U0", ndim=2)
    V0 = as_float_array(V0, "V0", ndim=2)
    if U0.shape[0] != Y.shape[0] or V0.shape[0] != Y.shape[1] or U0.shape[1] != V0.shape[1]:
        raise ValueError(
            f"For `Y` of shape {tuple(Y.shape)}, `U0` must be ({Y.shape[0]}, k) and `V0` "
            f"({Y.shape[1]}, k); got {tuple(U0.shape)} and {tuple(V0.shape)}."
        )
    return Y, U0, V0


def spectral_factorization_solution(
    Y: Float[Array, "m n"], model0: TwoLayer, t: Float[ArrayLike, "*T"]
) -> Float[Array, "*T m n"]:
    r"""$U(t)V(t)^\top$ from a spectral initialisation (Tarmoun et al. 2021, Def. 3 and
    Prop. 3): with $Y = \Phi\Sigma\Psi^\top$, $U_0 = \Phi\bar U_0G^\top$,
    $V_0 = \Psi\bar V_0G^\top$,
    $X(t) = \Phi\,\mathrm{diag}(x_i(t))\Psi^\top$ with $x_i$ from `spectral_singular_values`,
    $x_{0,i} = [\Phi^\top U_0V_0^\top\Psi]_{ii}$ and $\lambda_{0,i} = \|[\Phi^\top U_0]_{i,:}\|^2 -
    \|[\Psi^\top V_0]_{i,:}\|^2$. The initialisation must be spectral
    (`linflow.models.spectral_init`); this is not checked.

    **Returns:** shape `t.shape + (m, n)`.
    """
    if not isinstance(model0, TwoLayer):
        raise TypeError(f"`model0` must be a `linflow.TwoLayer`, got {type(model0).__name__}.")
    Y, U0, V0 = _check_factorization_model(Y, model0.U, model0.V)
    Phi, s, PsiT = jnp.linalg.svd(Y, full_matrices=False)
    Ub = Phi.T @ U0
    Vb = PsiT @ V0
    x0 = jnp.sum(Ub * Vb, axis=1)
    lam0 = jnp.sum(Ub**2, axis=1) - jnp.sum(Vb**2, axis=1)
    x = spectral_singular_values(s, x0, lam0, t)
    return jnp.einsum("ip,...p,pj->...ij", Phi, x, PsiT)


def isotropic_imbalance_solution(
    Y: Float[Array, "m n"],
    U0: Float[Array, "m k"],
    V0: Float[Array, "n k"],
    lambda0: float,
    t: Float[ArrayLike, "*T"],
) -> Float[Array, "*T m+n m+n"]:
    r"""$R(t)R(t)^\top$ with $R = [U; V]$ for the Riccati equation $\dot R = \tilde SR -
    \tfrac12RR^\top R$ (Tarmoun et al. 2021, Prop. 5, eqs. (29)-(30)),
    $\tilde S = \begin{bmatrix}\tfrac{\lambda_0}2I_m & Y\\
    Y^\top & -\tfrac{\lambda_0}2I_n\end{bmatrix}$:

    $$R(t)R(t)^\top = e^{t\tilde S}R_0R_0^\top\big(I + \tfrac12\tilde S^{-1}(e^{2t\tilde S} - I)
    R_0R_0^\top\big)^{-1}e^{t\tilde S}.$$

    This is the gradient flow of $\tfrac12\|Y - UV^\top\|_F^2$ when $U_0^\top U_0 - V_0^\top V_0
    = \lambda_0I_k$ (possible only for $k \le m + n$), and for *any* $(U_0, V_0)$ the gradient
    flow of the regularised loss of Prop. 4 with $\mathcal Q_0 = \lambda_0 I_k$
    (`regularised_factorization_loss`). $P = RR^\top/4$ solves the symmetric Riccati equation
    of `symmetric_riccati_solution` with target $\tilde S/2$, which is how it is computed (no
    inverse of $\tilde S$). The predictor $U(t)V(t)^\top$ is the block `[..., :m, m:]`.

    **Returns:** shape `t.shape + (m + n, m + n)`.
    """
    Y, U0, V0 = _check_factorization_model(Y, U0, V0)
    m, n = Y.shape
    lam = jnp.asarray(lambda0, Y.dtype)
    S = jnp.block(
        [[0.5 * lam * jnp.eye(m, dtype=Y.dtype), Y], [Y.T, -0.5 * lam * jnp.eye(n, dtype=Y.dtype)]]
    )
    R0 = jnp.concatenate([U0, V0], axis=0)
    return 4.0 * symmetric_riccati_solution(0.5 * S, 0.5 * R0, t)


def regularised_factorization_loss(
    U: Float[Array, "m k"], V: Float[Array, "n k"], Y: Float[Array, "m n"], Q0: Float[Array, "k k"]
) -> Float[Array, ""]:
    r"""$\tfrac12\|Y - UV^\top\|_F^2 + \tfrac18\|U^\top U - V^\top V - \mathcal Q_0\|_F^2$
    (Tarmoun et al. 2021, Prop. 4, eq. (28)). Its gradient flow is the Riccati-like equation
    (25) $\dot R = SR - \tfrac12RR^\top R + \tfrac12JR\mathcal Q_0$ ($J = \mathrm{diag}(I_m, -I_n)$)
    from any initialisation, and equals the unregularised flow when
    $U_0^\top U_0 - V_0^\top V_0 = \mathcal Q_0$ (then the penalty stays zero).

    **Returns:** a scalar.
    """
    Y, U, V = _check_factorization_model(Y, U, V)
    Q0 = as_float_array(Q0, "Q0", ndim=2)
    k = U.shape[1]
    if Q0.shape != (k, k):
        raise ValueError(f"`Q0` must have shape ({k}, {k}), got {tuple(Q0.shape)}.")
    fit = 0.5 * jnp.sum((Y - U @ V.T) ** 2)
    pen = 0.125 * jnp.sum((U.T @ U - V.T @ V - Q0) ** 2)
    return fit + pen
