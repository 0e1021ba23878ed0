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

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, check_finite, is_concrete


# Row scales above e^{_LOG_CAP} change the closed form by a relative e^{-2 _LOG_CAP}
# (the dependence on a large row scale h_i is through 1/h_i^2): capping avoids overflow.
_LOG_CAP = 150.0
# A start whose distance from Def. 3's spectral form exceeds this (relative to its size) is
# refused: the closed form's error grows with that distance (0.9 at t = 0.01 for a Gaussian
# start), while a `spectral_init` start is spectral to rounding (~1e-15).
_SPECTRAL_TOL = 1e-8


def _array(x, name, ndim):
    return check_finite(as_float_array(x, name, ndim=ndim), name)


def _times(t, dtype):
    t = jnp.asarray(t, dtype)
    if is_concrete(t):
        if np.any(np.isnan(np.asarray(t))) or np.any(np.asarray(t) < 0):
            raise ValueError("`t` must be >= 0 (and not NaN).")
        return t
    return eqx.error_if(t, jnp.any(jnp.isnan(t) | (t < 0)), "`t` must be >= 0 (and not NaN).")


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
    Y: Float[ArrayLike, "n n"], U0: Float[ArrayLike, "n k"], t: Float[ArrayLike, "*T"]
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
    Y = _array(Y, "Y", 2)
    U0 = _array(U0, "U0", 2)
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
    sigma: Float[ArrayLike, " n"], sigma0: Float[ArrayLike, " n"], t: Float[ArrayLike, "*T"]
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
    sigma = _array(sigma, "sigma", 1)
    sigma0 = _array(sigma0, "sigma0", 1)
    if sigma0.shape != sigma.shape:
        raise ValueError(f"`sigma0` must have shape {sigma.shape}, got {sigma0.shape}.")
    # The eigenvalues of X0 = U0 U0^T: eq. (9) is not the flow's solution for a negative one.
    msg = "`sigma0` (the eigenvalues of U0 U0^T) must be >= 0."
    if is_concrete(sigma0):
        if np.any(np.asarray(sigma0) < 0):
            raise ValueError(msg)
    else:
        sigma0 = eqx.error_if(sigma0, jnp.any(sigma0 < 0), msg)
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
    sigma: Float[ArrayLike, " p"],
    x0: Float[ArrayLike, " p"],
    lambda0: Float[ArrayLike, " p"],
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
    sigma = _array(sigma, "sigma", 1)
    x0 = _array(x0, "x0", 1)
    lambda0 = _array(lambda0, "lambda0", 1)
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


def _check_factorization_model(Y, U0, V0, names=("U0", "V0")):
    u, v = names
    Y = _array(Y, "Y", 2)
    U0 = _array(U0, u, 2)
    V0 = _array(V0, v, 2)
    if U0.shape[0] != Y.shape[0] or V0.shape[0] != Y.shape[1] or U0.shape[1] != V0.shape[1]:
        raise ValueError(
            f"For `Y` of shape {tuple(Y.shape)}, `{u}` must be ({Y.shape[0]}, k) and `{v}` "
            f"({Y.shape[1]}, k); got {tuple(U0.shape)} and {tuple(V0.shape)}."
        )
    return Y, U0, V0


def _offdiag_sq(A):
    return jnp.sum(A**2) - jnp.sum(jnp.diagonal(A) ** 2)


def spectral_defect(
    Y: Float[ArrayLike, "m n"], U0: Float[ArrayLike, "m k"], V0: Float[ArrayLike, "n k"]
) -> Float[Array, ""]:
    r"""How far $(U_0, V_0)$ is from a spectral initialisation of $Y$ (Tarmoun et al. 2021,
    Def. 3: $U_0 = \Phi\bar U_0G^\top$, $V_0 = \Psi\bar V_0G^\top$ with $\bar U_0, \bar V_0$
    rectangular diagonal and $G$ orthogonal), relative to $s = \|U_0\|_F^2 + \|V_0\|_F^2$.

    With $Y = \Phi\Sigma\Psi^\top$ (the thin SVD `jnp.linalg.svd` returns), $\tilde U = \Phi^\top
    U_0$ and $\tilde V = \Psi^\top V_0$ (rows $u_i$, $v_i$), the start is spectral exactly when
    (a) $U_0 = \Phi\tilde U$ and $V_0 = \Psi\tilde V$, (b) $\tilde U\tilde U^\top$,
    $\tilde V\tilde V^\top$ and $\tilde U\tilde V^\top$ are diagonal, and (c) $u_i \parallel v_i$:
    $\|u_i\|^2\|v_i\|^2 = \langle u_i, v_i\rangle^2$. The defect is
    $\big(\|U_0 - \Phi\tilde U\|_F^2 + \|V_0 - \Psi\tilde V\|_F^2\big)^{1/2}/s^{1/2}$ plus the
    norms of the off-diagonal parts in (b) and $\big(\sum_i \|u_i\|^2\|v_i\|^2 -
    \langle u_i, v_i\rangle^2\big)^{1/2}$, each over $s$ (0 when $s = 0$). Where $Y$ has
    repeated singular values its singular vectors are not unique: a start is judged in the
    basis `jnp.linalg.svd(Y)` returns (the one `linflow.spectral_init` uses).

    **Arguments:**

    - `Y`: target, shape `(m, n)`.
    - `U0`, `V0`: the start, shapes `(m, k)` and `(n, k)`.

    **Returns:** the relative defect, a scalar $\ge 0$ (rounding level for a spectral start).
    """
    Y, U0, V0 = _check_factorization_model(Y, U0, V0)
    Phi, _, PsiT = jnp.linalg.svd(Y, full_matrices=False)
    return _spectral_defect(Phi, PsiT, U0, V0)


def _spectral_defect(Phi, PsiT, U0, V0):
    Ub, Vb = Phi.T @ U0, PsiT @ V0
    s = jnp.sum(U0**2) + jnp.sum(V0**2)
    outside = jnp.sum((U0 - Phi @ Ub) ** 2) + jnp.sum((V0 - PsiT.T @ Vb) ** 2)
    off = _offdiag_sq(Ub @ Ub.T) + _offdiag_sq(Vb @ Vb.T) + _offdiag_sq(Ub @ Vb.T)
    # ||u_i||^2 ||v_i||^2 - <u_i, v_i>^2 = ||u_i ^ v_i||^2, formed from the wedge's entries
    # (rounding-level for parallel rows) rather than by cancellation.
    wedge = Ub[:, :, None] * Vb[:, None, :] - Ub[:, None, :] * Vb[:, :, None]
    skew = 0.5 * jnp.sum(wedge**2)
    s_safe = jnp.where(s > 0, s, 1.0)
    defect = jnp.sqrt(outside / s_safe) + (jnp.sqrt(off) + jnp.sqrt(skew)) / s_safe
    return jnp.where(s > 0, defect, 0.0)


def spectral_factorization_solution(
    Y: Float[ArrayLike, "m n"],
    U0: Float[ArrayLike, "m k"],
    V0: Float[ArrayLike, "n k"],
    t: Float[ArrayLike, "*T"],
) -> Float[Array, "*T m n"]:
    r"""$U(t)V(t)^\top$ from a spectral initialisation (Tarmoun et al. 2021, Def. 3 and
    Prop. 3): with $Y = \Phi\Sigma\Psi^\top$, $U_0 = \Phi\bar U_0G^\top$,
    $V_0 = \Psi\bar V_0G^\top$,
    $X(t) = \Phi\,\mathrm{diag}(x_i(t))\Psi^\top$ with $x_i$ from `spectral_singular_values`,
    $x_{0,i} = [\Phi^\top U_0V_0^\top\Psi]_{ii}$ and $\lambda_{0,i} = \|[\Phi^\top U_0]_{i,:}\|^2 -
    \|[\Psi^\top V_0]_{i,:}\|^2$.

    The formula holds only for a spectral start (`linflow.spectral_init`): the start is
    checked with `spectral_defect` (tolerance 1e-8), a `ValueError` before any computation
    on concrete arrays, and an `eqx.error_if` on the result under `jit`. For any other start
    use a flow (`linflow.flow(linflow.TwoLayer(U0, V0), linflow.Factorization(Y))`), or
    `isotropic_imbalance_solution` when $U_0^\top U_0 - V_0^\top V_0 = \lambda_0I$.

    **Arguments:**

    - `Y`: target, shape `(m, n)`.
    - `U0`, `V0`: the spectral start, shapes `(m, k)` and `(n, k)` (`TwoLayer.U`, `.V`).
    - `t`: times $\ge 0$, any shape.

    **Returns:** shape `t.shape + (m, n)`.
    """
    Y, U0, V0 = _check_factorization_model(Y, U0, V0)
    Phi, s, PsiT = jnp.linalg.svd(Y, full_matrices=False)
    defect = _spectral_defect(Phi, PsiT, U0, V0)
    msg = (
        "`U0`, `V0` are not a spectral initialisation of `Y` (Tarmoun et al. 2021, Def. 3), "
        "for which alone this closed form holds; build one with `linflow.spectral_init`, or "
        "run a flow."
    )
    if is_concrete(defect):
        if float(defect) > _SPECTRAL_TOL:
            raise ValueError(f"{msg} Relative defect {float(defect):.2e} > {_SPECTRAL_TOL:g}.")
    Ub = Phi.T @ U0
    Vb = PsiT @ V0
    x0 = jnp.sum(Ub * Vb, axis=1)
    lam0 = jnp.sum(Ub**2, axis=1) - jnp.sum(Vb**2, axis=1)
    x = spectral_singular_values(s, x0, lam0, t)
    out = jnp.einsum("ip,...p,pj->...ij", Phi, x, PsiT)
    if not is_concrete(defect):
        out = eqx.error_if(out, defect > _SPECTRAL_TOL, msg)
    return out


def isotropic_imbalance_solution(
    Y: Float[ArrayLike, "m n"],
    U0: Float[ArrayLike, "m k"],
    V0: Float[ArrayLike, "n k"],
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
    U: Float[ArrayLike, "m k"],
    V: Float[ArrayLike, "n k"],
    Y: Float[ArrayLike, "m n"],
    Q0: Float[ArrayLike, "k k"],
) -> Float[Array, ""]:
    r"""$\tfrac12\|Y - UV^\top\|_F^2 + \tfrac18\|U^\top U - V^\top V - \mathcal Q_0\|_F^2$
    (Tarmoun et al. 2021, Prop. 4, eq. (28)). Its gradient flow is the Riccati-like equation
    (25) $\dot R = SR - \tfrac12RR^\top R + \tfrac12JR\mathcal Q_0$ ($J = \mathrm{diag}(I_m, -I_n)$)
    from any initialisation, and equals the unregularised flow when
    $U_0^\top U_0 - V_0^\top V_0 = \mathcal Q_0$ (then the penalty stays zero).

    **Returns:** a scalar.
    """
    Y, U, V = _check_factorization_model(Y, U, V, names=("U", "V"))
    Q0 = _array(Q0, "Q0", 2)
    k = U.shape[1]
    if Q0.shape != (k, k):
        raise ValueError(f"`Q0` must have shape ({k}, {k}), got {tuple(Q0.shape)}.")
    fit = 0.5 * jnp.sum((Y - U @ V.T) ** 2)
    pen = 0.125 * jnp.sum((U.T @ U - V.T @ V - Q0) ** 2)
    return fit + pen
