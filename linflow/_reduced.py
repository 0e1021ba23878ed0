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

from ._system import AbstractFlowSystem
from .models._base import AbstractModel
from .problems import AbstractProblem, Classification, Regression


def diagonal_params(model, s: Float[Array, " d"]):
    """The `DiagonalNet` on the flow's path at dual point $s = X^\\top\\nu$ (see module doc)."""
    return model.at_dual_point(s)


def hadamard_params(model, s: Float[Array, " d"]):
    """The `HadamardNet` on the flow's path at dual point $s = X^\\top\\nu$."""
    return model.at_dual_point(s)


class DualFlowSystem(AbstractFlowSystem):
    r"""The reduced flow $\dot\nu = -\nabla_z\ell(X\beta(X^\top\nu))$, $\nu \in \mathbb R^N$, with
    $\beta = \nabla\Phi^*(s)$ from the model's potential (`AbstractModel.potential`): the same
    formula as its limit `linflow.limits.dual_minimise(model.potential(), X, y)`."""

    model: AbstractModel
    X: Float[Array, "n d"]
    name = "reduced"

    @property
    def potential(self):
        return self.model.potential()

    def initial_state(self):
        return jnp.zeros(self.X.shape[0], self.X.dtype)

    def state_scale(self):
        r"""For a bounded potential (a depth $D \ge 3$ `DiagonalNet`): the typical size $\nu_b$
        of $\nu$ where a coordinate reaches its boundary (`boundary_scale` of the potential);
        `None` otherwise.

        At small scales $u_i$ is the difference of two numbers of size $\alpha^{2-D}$, so
        near the boundary (every coordinate of the support, from its escape on) $\nu$ is
        resolved only to about $u\,\nu_b$ in absolute terms: a purely componentwise relative
        tolerance on its smaller components then asks for more than the arithmetic carries,
        and the solver stalls (depth 4, $\alpha = 10^{-3}$: 10^5 steps, half rejected,
        stuck after the first escape). The engine floors the absolute tolerance at
        $10^{-3}\,\mathrm{rtol}\,\nu_b$."""
        potential = self.potential
        if not potential.bounded:
            return None
        return potential.boundary_scale(self.X)

    def to_model(self, y):
        return self.model.at_dual_point(y @ self.X)  # (faster than X.T @ y on CPU)

    def predictor(self, y):
        r"""$\beta = \nabla\Phi^*(X^\top\nu)$, formed without the cancellation of
        $w_+^D - w_-^D$ (`linflow.limits.diagonal_paths`)."""
        return self.potential.primal(y @ self.X)

    def mirror_coordinates(self, y):
        r"""The dual point $s = X^\top\nu$: on a plateau between saddles its coordinates off
        the support move at the constant rate $-\nabla_\beta L$ (while $\beta$ and the loss
        are still to rounding), and it converges only at a steady state, fittable or not
        ($X^\top\rho = 0$). Only its two-sided coordinates (`AbstractPotential.two_sided`;
        the others are held at 0): a one-sided coordinate reaches its steady state
        $\beta_i = 0$ only as $s_i \to \pm\infty$."""
        return jnp.where(self.potential.two_sided(), y @ self.X, 0.0)

    def predictor_magnitude(self, y, predictor):
        r"""The scale $m$ of $\beta$'s rounding error ($|\delta\beta_i| \approx u\,m_i$).

        `predictor` forms $\beta$ without cancellation, so its own rounding is relative to
        $|\beta|$. For a bounded potential (depth $D \ge 3$) the state itself limits the
        accuracy: $s = X^\top\nu$ is known to about $u\,|s|$, which the potential's
        `rounding(s)` turns into $\beta$'s scale (where a coordinate has escaped from a small
        initialisation, $\approx 10^{-7}$ on an entry of size 1 at depth 5 and
        $\alpha = 10^{-3}$): the stop's tolerance rises to that floor (`linflow.Converged`)
        instead of asking for digits the state does not hold."""
        magnitude = jnp.abs(predictor)
        potential = self.potential
        if not potential.bounded:
            return magnitude
        return magnitude + potential.rounding(y @ self.X)

    def vector_field(self, t, y, problem):
        beta = self.predictor(y)
        rho = jax.grad(problem.output_loss)(self.X @ beta)
        return -rho


def reduced_system(model, problem: AbstractProblem) -> AbstractFlowSystem | None:
    """The exact reduced form of `model`'s flow on `problem`, or `None` if none is known."""
    if model.potential() is None:
        return None
    if isinstance(problem, Regression) and problem.Y.ndim == 1:
        return DualFlowSystem(model, problem.X)
    if isinstance(problem, Classification):
        return DualFlowSystem(model, problem.X)
    return None


__all__ = ["DualFlowSystem", "reduced_system", "diagonal_params", "hadamard_params"]
del eqx
