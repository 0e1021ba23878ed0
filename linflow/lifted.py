r"""Width-independent lifted dynamics of two-layer and symmetric factorisations.

For `TwoLayer(U, V)` ($\Theta = UV^\top$, $U\in\mathbb R^{D\times h}$, $V\in\mathbb R^{m\times h}$)
and any loss $L(\Theta)$ with gradient $g = \nabla L(\Theta)$, the gradient flow is
$\dot U = -gV$, $\dot V = -g^\top U$. Stacking $W = [U; V]$ ($p = D + m$ rows, $h$ columns),

$$\dot W = A W, \qquad A = \begin{pmatrix} 0 & -g \\ -g^\top & 0\end{pmatrix} = A^\top,$$

so the Gram matrix $G = WW^\top$ obeys the closed ODE $\dot G = AG + GA$ with
$\Theta = G_{[:D,\,D:]}$: a state of size $p^2$ whatever the width $h$ (the lifted matrix
Woodworth et al. 2020 use in the proof of their matrix-completion results; Min et al. 2021,
eq. (7), in Gram form). A Gaussian initialisation gives a Wishart $G(0)$, which is sampled
directly (Bartlett decomposition), so a width-$10^6$ network costs what a width-$p$ one does.

The imbalance $U^\top U - V^\top V = W^\top J W$, $J = \mathrm{diag}(I_D, -I_m)$, is conserved
because $A^\top J + JA = 0$. It is $h\times h$, but its nonzero spectrum is that of $JG$ (the
same $W$ on both sides), which the lifted model reports.

For regression, $g = X^\top(X\Theta - Y)$ lies in the row space of $X$. With an orthonormal
basis $\Phi_1$ of that row space and $\Phi_2$ of its complement, $U_2 = \Phi_2^\top U$ is
constant and $W_1 = [\Phi_1^\top U; V]$ ($q = r + m$ rows) follows $\dot W_1 = A_1 W_1$ with
$A_1 = [[0, -g_1], [-g_1^\top, 0]]$, $g_1 = \Phi_1^\top g$. So $W_1(t) = M(t)W_1(0)$ with the
$q\times q$ propagator $\dot M = A_1 M$, $M(0) = I$, and everything follows from $M$:

- $G_1 = W_1W_1^\top = M G_1(0) M^\top$, $\Theta_1 = \Phi_1^\top\Theta = G_{1[:r,\,r:]}$;
- $C = U_2W_1^\top = C(0)M^\top$ (the linear $\dot C = CA_1$), and
  $\Theta = \Phi_1\Theta_1 + \Phi_2 U_2V^\top$ with $\Phi_2U_2V^\top = N_0 M_{[r:,\,:]}^\top$,
  $N_0 = \Phi_2 C(0)$;
- $U_2U_2^\top$ is constant.

For Min et al.'s setting ($D = 400$, $n = r = 100$, $m = 1$) that is $101^2$ states instead of
$401^2$ (lifted) or $401h$ (parameters).

The same closure holds for `Symmetric(U)`: $\dot U = -(g + g^\top)U$, so $G = UU^\top$
(the predictor itself) follows the Riccati flow $\dot G = -(SG + GS)$, $S = g + g^\top$
(Tarmoun et al. 2021, eq. (5), up to the time scale, for $L = \frac12\|Y - UU^\top\|_F^2$).
"""

import functools

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._checks import is_concrete
from ._propagator_form import AbstractPropagatorForm
from ._system import AbstractFlowSystem
from ._thin_factors import ThinFactorSystem, row_space_basis
from .models._base import AbstractModel
from .models.factorization import Symmetric, TwoLayer
from .problems import AbstractProblem, Regression


def _check_width(h) -> int:
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)):
        raise TypeError(f"`h` (the width) must be an int, got {type(h).__name__}.")
    if h < 1:
        raise ValueError(f"`h` (the width) must be >= 1, got {h}.")
    return int(h)


def _check_dim(x, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int, got {type(x).__name__}.")
    if x < 1:
        raise ValueError(f"`{name}` must be >= 1, got {x}.")
    return int(x)


def _check_scale(s, name: str) -> float:
    try:
        s = float(s)
    except TypeError as e:
        raise TypeError(f"`{name}` must be a positive number, got {type(s).__name__}.") from e
    if not (np.isfinite(s) and s > 0):
        raise ValueError(f"`{name}` must be a finite number > 0, got {s}.")
    return s


def wishart(key: PRNGKeyArray, scales: Float[Array, " p"], h: int) -> Float[Array, "p p"]:
    r"""The Gram matrix $G = WW^\top$ of $W\in\mathbb R^{p\times h}$ with independent columns
    $\mathcal N(0, \mathrm{diag}(s)^2)$: a Wishart $W_p(h, \mathrm{diag}(s)^2)$ matrix.

    For $h \ge p$ it uses the Bartlett decomposition $G = \mathrm{diag}(s) LL^\top
    \mathrm{diag}(s)$, $L$ lower triangular with $L_{ii}^2\sim\chi^2_{h-i+1}$ and
    $L_{ij}\sim\mathcal N(0,1)$ below the diagonal: cost $O(p^3)$, independent of $h$. For
    $h < p$ ($G$ of rank $h$) it samples $W$ itself.

    Moments: $\mathbb E\,G = h\,\mathrm{diag}(s)^2$,
    $\mathrm{Var}\,G_{ij} = h\,s_i^2 s_j^2(1 + \delta_{ij})$.

    **Arguments:**

    - `key`: a JAX PRNG key.
    - `scales`: the standard deviations $s$ of the rows of $W$, shape `(p,)`.
    - `h`: the number of columns of $W$ (the width), a Python int $\ge 1$.

    **Returns:** $G$, shape `(p, p)`, symmetric positive semi-definite.
    """
    h = _check_width(h)
    scales = jnp.asarray(scales)
    if scales.ndim != 1 or scales.shape[0] < 1:
        raise ValueError(f"`scales` must be a non-empty vector, got shape {tuple(scales.shape)}.")
    if not jnp.issubdtype(scales.dtype, jnp.floating):
        scales = scales.astype(jnp.result_type(float))
    p = scales.shape[0]
    dtype = scales.dtype
    if h < p:
        W = scales[:, None] * jr.normal(key, (p, h), dtype)
        return W @ W.T
    kdiag, koff = jr.split(key)
    df = jnp.asarray(h - np.arange(p), dtype)
    diag = jnp.sqrt(jr.chisquare(kdiag, df, dtype=dtype))
    L = jnp.tril(jr.normal(koff, (p, p), dtype), k=-1) + jnp.diag(diag)
    F = scales[:, None] * L
    G = F @ F.T
    return 0.5 * (G + G.T)


def _imbalance_spectrum(G, signs):
    # Nonzero spectrum of W^T J W equals that of F^T J F for any F with F F^T = G = W W^T.
    lam, Q = jnp.linalg.eigh(0.5 * (G + G.T))
    F = Q * jnp.sqrt(jnp.clip(lam, 0.0))[None, :]
    return jnp.linalg.eigvalsh(F.T @ (signs[:, None] * F))


class LiftedTwoLayer(AbstractModel):
    r"""A two-layer linear network of any width, represented by its Gram matrix
    $G = WW^\top$, $W = [U; V]$ (see the module docstring for the derivation).

    The predictor is $\Theta = UV^\top = G_{[:D,\,D:]}$. `linflow.flow` integrates the exact
    lifted dynamics $\dot G = AG + GA$ (or, for `linflow.Regression` with $n < D$, the
    row-space propagator of size $(r+m)^2$); the trajectory of $\Theta$ is that of
    `TwoLayer(U, V)` for every width $h$.

    **Fields:**

    - `G`: the Gram matrix, shape `(D + m, D + m)`, symmetric positive semi-definite.
    - `D`: the input dimension (rows of $U$), static.

    Build one with `LiftedTwoLayer.from_model(TwoLayer(U, V))` or sample a Gaussian
    initialisation directly with `LiftedTwoLayer.gaussian(key, D, m, h, sigma_u, sigma_v)`.
    """

    G: Float[Array, "p p"]
    D: int = eqx.field(static=True)

    def __check_init__(self):
        if self.G.ndim != 2 or self.G.shape[0] != self.G.shape[1]:
            raise ValueError(f"`G` must be a square matrix, got shape {tuple(self.G.shape)}.")
        if not (1 <= self.D < self.G.shape[0]):
            raise ValueError(
                f"`D` must satisfy 1 <= D < G.shape[0] = {self.G.shape[0]} (so that m >= 1), "
                f"got D = {self.D}."
            )
        if is_concrete(self.G):
            G = np.asarray(self.G)
            scale = max(np.abs(G).max(), np.finfo(G.dtype).tiny)
            if not np.all(np.abs(G - G.T) <= 1e-8 * scale):
                raise ValueError("`G` must be symmetric (it is the Gram matrix W W^T).")

    @property
    def m(self) -> int:
        """The output dimension (rows of $V$)."""
        return self.G.shape[0] - self.D

    def predictor(self) -> Float[Array, "D m"]:
        return self.G[: self.D, self.D :]

    def conserved(self) -> dict[str, Array]:
        r"""`imbalance_spectrum`: the eigenvalues of $JG$, $J = \mathrm{diag}(I_D, -I_m)$,
        ascending (shape `(D + m,)`): the nonzero eigenvalues of the imbalance
        $U^\top U - V^\top V$, padded with zeros (Min et al. 2021, eq. (8))."""
        signs = jnp.concatenate([jnp.ones(self.D, self.G.dtype), -jnp.ones(self.m, self.G.dtype)])
        return {"imbalance_spectrum": _imbalance_spectrum(self.G, signs)}

    def conserved_scale(self) -> dict[str, Array]:
        r"""$\operatorname{tr} G = \|U\|_F^2 + \|V\|_F^2$, which bounds every eigenvalue of
        $U^\top U$ and $V^\top V$, for each entry of the spectrum."""
        spectrum = self.conserved()["imbalance_spectrum"]
        return {"imbalance_spectrum": jnp.full_like(spectrum, jnp.trace(self.G))}

    @classmethod
    def from_model(cls, model: TwoLayer) -> "LiftedTwoLayer":
        """The lifted model of `TwoLayer(U, V)`: $G = WW^\\top$, $W = [U; V]$."""
        if not isinstance(model, TwoLayer):
            raise TypeError(f"`model` must be a linflow.TwoLayer, got {type(model).__name__}.")
        W = jnp.concatenate([model.U, model.V], axis=0)
        G = W @ W.T
        return cls(0.5 * (G + G.T), model.U.shape[0])

    @classmethod
    def gaussian(
        cls,
        key: PRNGKeyArray,
        D: int,
        m: int,
        h: int,
        sigma_u: float,
        sigma_v: float,
    ) -> "LiftedTwoLayer":
        r"""The lifted model of `TwoLayer(U, V)` with $U_{ij}\sim\mathcal N(0,\sigma_U^2)$,
        $V_{ij}\sim\mathcal N(0,\sigma_V^2)$ i.i.d., sampled in time independent of $h$
        (see `linflow.lifted.wishart`). Min et al. 2021, Sec. 3.2: $\sigma = h^{-a}$.

        **Arguments:**

        - `key`: a JAX PRNG key.
        - `D`, `m`: rows of $U$ and $V$.
        - `h`: the width (any int $\ge 1$, e.g. $10^6$).
        - `sigma_u`, `sigma_v`: standard deviations of the entries of $U$ and $V$.

        **Returns:** a `LiftedTwoLayer` with $G$ of shape `(D + m, D + m)`.
        """
        D, m = _check_dim(D, "D"), _check_dim(m, "m")
        h = _check_width(h)
        su, sv = _check_scale(sigma_u, "sigma_u"), _check_scale(sigma_v, "sigma_v")
        dtype = jnp.result_type(float)
        scales = jnp.concatenate([jnp.full(D, su, dtype), jnp.full(m, sv, dtype)])
        return cls(wishart(key, scales, h), D)

    def full_flow_system(self) -> None:
        """`None`: `G` is a Gram matrix, not the network's parameters."""
        return None

    def flow_system(self, problem: AbstractProblem) -> AbstractFlowSystem:
        """The exact ODE `linflow.flow` integrates for this model on `problem`."""
        if isinstance(problem, Regression) and problem.Y.ndim == 2:
            n = problem.X.shape[0]
            if n < self.D:
                return RowSpaceLiftedSystem.build(self, problem.X)
        return LiftedFlowSystem(self)


class LiftedSymmetric(AbstractModel):
    r"""A symmetric factorisation $UU^\top$ of any width $k$, represented by
    $G = UU^\top$ (which is also its predictor).

    `linflow.flow` integrates the Riccati flow $\dot G = -(SG + GS)$, $S = g + g^\top$,
    $g = \nabla L(G)$: the trajectory of `Symmetric(U)` for every $k$ (Tarmoun et al. 2021,
    eq. (5)).

    **Fields:**

    - `G`: shape `(n, n)`, symmetric positive semi-definite.
    """

    G: Float[Array, "n n"]

    def __check_init__(self):
        if self.G.ndim != 2 or self.G.shape[0] != self.G.shape[1] or self.G.shape[0] < 1:
            raise ValueError(f"`G` must be a square matrix, got shape {tuple(self.G.shape)}.")
        if is_concrete(self.G):
            G = np.asarray(self.G)
            scale = max(np.abs(G).max(), np.finfo(G.dtype).tiny)
            if not np.all(np.abs(G - G.T) <= 1e-8 * scale):
                raise ValueError("`G` must be symmetric (it is the Gram matrix U U^T).")

    def predictor(self) -> Float[Array, "n n"]:
        return self.G

    @classmethod
    def from_model(cls, model: Symmetric) -> "LiftedSymmetric":
        """The lifted model of `Symmetric(U)`: $G = UU^\\top$."""
        if not isinstance(model, Symmetric):
            raise TypeError(f"`model` must be a linflow.Symmetric, got {type(model).__name__}.")
        G = model.U @ model.U.T
        return cls(0.5 * (G + G.T))

    @classmethod
    def gaussian(cls, key: PRNGKeyArray, n: int, k: int, sigma: float) -> "LiftedSymmetric":
        r"""The lifted `Symmetric(U)` with $U\in\mathbb R^{n\times k}$,
        $U_{ij}\sim\mathcal N(0, \sigma^2)$, sampled in time independent of $k$."""
        n = _check_dim(n, "n")
        k = _check_width(k)
        s = _check_scale(sigma, "sigma")
        return cls(wishart(key, jnp.full(n, s, jnp.result_type(float)), k))

    def full_flow_system(self) -> None:
        """`None`: `G` is a Gram matrix, not the network's parameters."""
        return None

    def flow_system(self, problem: AbstractProblem) -> AbstractFlowSystem:
        """The exact ODE `linflow.flow` integrates for this model on `problem`."""
        return LiftedSymmetricSystem(self)


def _lifted_solver_choice(y0):
    # Measured (benchmarks/lifted_width.py): Dopri8 reaches the 1e-10 stop in <100 steps on
    # Min et al.'s setting at every width. Kvaerno5 (Auto's fallback for stiff reduced states)
    # factors a dense Jacobian of the q^2 states: 260 s against 0.01 s for Dopri8 at D = 100
    # (q^2 = 676). atol follows the state's scale so small initialisations keep their digits.
    from ._solver import SolverChoice

    scale = 1.0
    if is_concrete(y0):
        scale = float(np.clip(np.abs(np.asarray(y0)).max(), 1e-200, 1.0))
    return SolverChoice(
        diffrax.Dopri8(),
        rtol=1e-12,
        atol=1e-14 * scale,
        reason="lifted form: explicit high order (small, not stiff, dense Jacobian wasteful)",
    )


class _AbstractGramSystem(AbstractFlowSystem):
    """A flow whose state is the model's Gram matrix `G` itself."""

    model: eqx.AbstractVar[AbstractModel]
    name = "lifted"

    def solver_choice(self):
        return _lifted_solver_choice(self.initial_state())

    def initial_state(self):
        return self.model.G


class LiftedFlowSystem(_AbstractGramSystem):
    r"""$\dot G = AG + GA$, $A = [[0, -g], [-g^\top, 0]]$, $g = \nabla L(G_{[:D,\,D:]})$.

    The field is evaluated as $B + B^\top$ with $B = AG$, so $G$ stays exactly symmetric."""

    model: LiftedTwoLayer

    def to_model(self, y):
        return LiftedTwoLayer(y, self.model.D)

    def vector_field(self, t, y, problem):
        D = self.model.D
        g = jax.grad(problem.loss)(y[:D, D:])
        B = -jnp.concatenate([g @ y[D:, :], g.T @ y[:D, :]], axis=0)
        return B + B.T


class LiftedSymmetricSystem(_AbstractGramSystem):
    r"""$\dot G = -(SG + GS)$, $S = g + g^\top$, $g = \nabla L(G)$."""

    model: LiftedSymmetric

    def to_model(self, y):
        return LiftedSymmetric(y)

    def vector_field(self, t, y, problem):
        g = jax.grad(problem.loss)(y)
        B = -(g + g.T) @ y
        return B + B.T


class RowSpacePropagator(eqx.Module):
    r"""The two-layer regression flow on the row space of $X$, as a propagator.

    $\dot M = A_1 M$, $M(0) = I_q$, $q = n + m$, with $A_1 = [[0, -g_1], [-g_1^\top, 0]]$,
    $g_1 = X_1^\top\nabla\ell(X_1\Theta_1)$, $X_1 = X\Phi_1$,
    $\Theta_1 = (MG_1(0)M^\top)_{[:n,\,n:]}$, and the predictor
    $\Theta = \Phi_1\Theta_1 + N_0M_{[n:]}^\top$ with $N_0 = \Phi_2U_2W_1(0)^\top$.
    $\Phi_1$ ($D\times n$, orthonormal columns, from the QR factorisation of $X^\top$) spans
    a space that contains the row space of $X$ whatever its rank, so the static shape does
    not depend on the numerical rank (directions of $\Phi_1$ outside the row space simply
    see no gradient).

    The state of `RowSpaceLiftedSystem`, which maps $M$ to the Gram matrix.
    """

    Phi1: Float[Array, "D n"]
    X1: Float[Array, "n n"]
    G1_0: Float[Array, "q q"]
    N0: Float[Array, "D q"]

    def initial_state(self):
        return jnp.eye(self.G1_0.shape[0], dtype=self.G1_0.dtype)

    def theta1(self, M):
        n = self.X1.shape[0]
        # Multiply the m columns first: O(q^2 m + n q m) per evaluation, not O(n q^2).
        return M[:n, :] @ (self.G1_0 @ M[n:, :].T)

    def predictor(self, M):
        r"""$\Theta = \Phi_1\Theta_1 + N_0M_{[n:]}^\top$, in $O(Dqm)$."""
        n = self.X1.shape[0]
        return self.Phi1 @ self.theta1(M) + self.N0 @ M[n:, :].T

    def rebased(self, B: Float[Array, "q q"]) -> "RowSpacePropagator":
        r"""The propagator whose $M'$ stands for $M'B$ of this one:
        $G_1(0) \to BG_1(0)B^\top$, $N_0 \to N_0B^\top$
        (`linflow._propagator_form.AbstractPropagatorForm`)."""
        G1 = B @ self.G1_0 @ B.T
        return RowSpacePropagator(self.Phi1, self.X1, 0.5 * (G1 + G1.T), self.N0 @ B.T)

    def vector_field(self, t, M, problem):
        del t
        n = self.X1.shape[0]
        g1 = self.X1.T @ jax.grad(problem.output_loss)(self.X1 @ self.theta1(M))
        return -jnp.concatenate([g1 @ M[n:, :], g1.T @ M[:n, :]], axis=0)


class RowSpaceLiftedSystem(AbstractPropagatorForm):
    r"""The lifted two-layer regression flow reduced to the row space of $X$: the state is
    the propagator $M$ of `RowSpacePropagator`; the Gram matrix follows from it as
    $G_1 = MG_1(0)M^\top$, $C = U_2W_1^\top = C(0)M^\top$ and the constant $U_2U_2^\top$
    (module docstring)."""

    model: LiftedTwoLayer
    propagator: RowSpacePropagator
    K: Float[Array, "D D"]
    name = "lifted-rowspace"

    @classmethod
    def build(cls, model: LiftedTwoLayer, X) -> "RowSpaceLiftedSystem":
        Phi1, X1, G1_0, N0, K = _rowspace_blocks(model.G, X, model.D)
        return cls(model, RowSpacePropagator(Phi1, X1, G1_0, N0), K)

    def rebased(self, B):
        return eqx.tree_at(lambda s: s.propagator, self, self.propagator.rebased(B))

    def initial_state(self):
        return self.propagator.initial_state()

    def vector_field(self, t, y, problem):
        return self.propagator.vector_field(t, y, problem)

    def predictor(self, y):
        return self.propagator.predictor(y)

    def to_model(self, y):
        # Built block by block; `predictor()` above avoids forming the D x D block.
        p = self.propagator
        n = p.X1.shape[0]
        R = p.N0 @ y.T  # Phi2 U2 W1^T, shape (D, q)
        G1 = y @ p.G1_0 @ y.T
        G1 = 0.5 * (G1 + G1.T)
        A = p.Phi1 @ R[:, :n].T
        GU = p.Phi1 @ G1[:n, :n] @ p.Phi1.T + A + A.T + self.K
        GUV = p.predictor(y)
        G = jnp.block([[GU, GUV], [GUV.T, G1[n:, n:]]])
        return LiftedTwoLayer(G, self.model.D)


class TwoLayerRowSpaceSystem(AbstractFlowSystem):
    r"""The exact flow of `TwoLayer(U, V)` on regression with a matrix target and fewer
    samples than inputs ($n < D$), integrated as a thin factorisation in the row space of
    $X$.

    With $W_1 = [\Phi_1^\top U; V]$ ($q = n + m$ rows) and $F$ ($h \times q$, orthonormal
    columns) from $W_1(0)^\top = FR$ (QR): $W_1$ moves by $\dot W_1 = A_1W_1$ (module
    docstring), so its rows stay in the span of $F$ and $W_1(t) = N(t)F^\top$ with
    $N = [N_U; N_V] = W_1F$ ($q \times q$), which follows the gradient flow of
    `TwoLayer(N_U, N_V)` on the projected data $X_1 = X\Phi_1$ (the same construction as
    `ThinFactorSystem`, after the projection). The parameters follow exactly at any time:

    $$U(t) = \Phi_1N_U(t)F^\top + (I - \Phi_1\Phi_1^\top)U(0),\qquad V(t) = N_V(t)F^\top,$$

    since the null-space part $\Phi_2^\top U$ of $U$ is constant (the gradient
    $X^\top(\cdot)V^\top$ lies in the row space of $X$), and the predictor is
    $\Theta = \Phi_1N_UN_V^\top + (U_\perp F)N_V^\top$ with $U_\perp = (I -
    \Phi_1\Phi_1^\top)U(0)$. The ODE has $q^2$ states against the $(D + m)h$ parameters: for
    Min et al.'s setting ($D = 400$, $n = 100$, $m = 1$, $h = 500$), 10,201 instead of
    200,500. `linflow.flow` chooses it by default when it is the smaller state
    (`form="full"` forces the parameters); `FlowSolution.final` is a `TwoLayer`. As for
    `ThinFactorSystem`, derivatives with respect to the start (and to $X$, which enters it
    through $\Phi_1^\top U$) are exact where $W_1(0)$ has full row rank, and NaN where it
    does not.

    **Fields:**

    - `factors`: the thin form of `TwoLayer(Phi1.T @ U(0), V(0))` (its state $N$ at $t = 0$,
      and $F^\top$ with the term that carries the derivative outside it, `back`).
    - `Phi1`, `X1`: the row-space basis ($D \times n$) and $X\Phi_1$ (`RowSpacePropagator`).
    - `U_perp`: $(I - \Phi_1\Phi_1^\top)U(0)$, shape `(D, h)`, and `U_perp_back`:
      $U_\perp F$ (`U_perp @ factors.back.T`), shape `(D, q)`.
    """

    factors: ThinFactorSystem
    Phi1: Float[Array, "D n"]
    X1: Float[Array, "n n"]
    U_perp: Float[Array, "D h"]
    U_perp_back: Float[Array, "D q"]
    name = "rowspace"

    @classmethod
    def build(cls, model: TwoLayer, X) -> "TwoLayerRowSpaceSystem":
        Phi1, X1 = _rowspace_basis(X)
        U1 = Phi1.T @ model.U
        factors = ThinFactorSystem.build(TwoLayer(U1, model.V))
        U_perp = model.U - Phi1 @ U1
        return cls(factors, Phi1, X1, U_perp, U_perp @ factors.back.T)

    @staticmethod
    def is_smaller(model: TwoLayer, problem: AbstractProblem) -> bool:
        """Whether this form applies to `model` on `problem` (regression with a matrix target
        and $n < D$) and has fewer states than the parameters, $(n + m)^2 < (D + m)h$."""
        if not (isinstance(problem, Regression) and problem.Y.ndim == 2):
            return False
        (n, D), (m, h) = problem.X.shape, model.V.shape
        return n < D and (n + m) ** 2 < (D + m) * h

    def initial_state(self):
        return self.factors.initial_state()

    def vector_field(self, t, y, problem):
        del t
        grads = jax.grad(lambda m: problem.output_loss(self.X1 @ m.predictor()))(y)
        return jax.tree.map(jnp.negative, grads)

    def predictor(self, y):
        return self.Phi1 @ y.predictor() + self.U_perp_back @ y.V.T

    @property
    def is_reduced(self) -> bool:
        # The same manifold of minimisers as the parameter flow (any U R, V R^-T with the
        # imbalance): no isolated steady state for `linflow.ImplicitAdjoint`.
        return False

    def predictor_magnitude(self, y, predictor):
        del y, predictor
        return None  # TwoLayer's: no cancellation floor

    def to_model(self, y):
        W1 = self.factors.to_model(y)  # TwoLayer(Phi1^T U, V)
        return TwoLayer(self.Phi1 @ W1.U + self.U_perp, W1.V)


@jax.jit
def _rowspace_basis(X):
    # Its derivative is exact where X has full row rank (also with repeated singular values,
    # where singular vectors have none); at a rank-deficient X it is NaN, not a wrong number.
    Phi1 = row_space_basis(X)
    return Phi1, X @ Phi1


@functools.partial(jax.jit, static_argnums=2)
def _rowspace_blocks(G, X, D):
    Phi1, X1 = _rowspace_basis(X)
    # W1 = B^T W with B = blockdiag(Phi1, I_m).
    GU, GUV, GV = G[:D, :D], G[:D, D:], G[D:, D:]
    PGU = Phi1.T @ GU
    PGUV = Phi1.T @ GUV
    G1_0 = jnp.block([[PGU @ Phi1, PGUV], [PGUV.T, GV]])
    # With P2 = Phi2 Phi2^T = I - Phi1 Phi1^T: N0 = P2 U W1(0)^T and K = P2 U U^T P2.
    P2GU = GU - Phi1 @ PGU
    P2GUV = GUV - Phi1 @ PGUV
    P2GUPhi1 = P2GU @ Phi1
    N0 = jnp.concatenate([P2GUPhi1, P2GUV], axis=1)
    K = P2GU - P2GUPhi1 @ Phi1.T
    return Phi1, X1, 0.5 * (G1_0 + G1_0.T), N0, 0.5 * (K + K.T)


__all__ = [
    "LiftedTwoLayer",
    "LiftedSymmetric",
    "LiftedFlowSystem",
    "LiftedSymmetricSystem",
    "RowSpaceLiftedSystem",
    "RowSpacePropagator",
    "TwoLayerRowSpaceSystem",
    "ThinFactorSystem",
    "wishart",
]
