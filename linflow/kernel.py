r"""The tangent-kernel (linearised) model and measures of how far a flow is from it.

Around an initialisation $\theta_0$ the model is replaced by its first-order Taylor expansion
(Woodworth et al. 2020, Sec. 3 and App. H, eq. (68); Chizat et al. 2019)

$$f_{\rm TK}(\theta_0 + \delta) = f(\theta_0) + J(\theta_0)\,\delta,$$

whose gradient flow is the kernel gradient flow with the tangent kernel
$K = J(\theta_0)J(\theta_0)^\top$. On a square loss it converges to the point nearest to
$\theta_0$ (in parameter space, hence in the RKHS norm of $K$ in function space) that fits the
data: $\delta^\infty = J^\top(JJ^\top)^{+}(y - f(\theta_0))$. Woodworth et al. Thm 9 / Cor 10
bound the distance between the real flow and this one.

Jacobians are applied with `jax.jvp` / `jax.vjp`; only the $N\times P$ Jacobian of the $N$
training outputs is ever formed (by the closed-form limit and the kernel measures), never
the Jacobian of the predictor.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .models._base import AbstractModel
from .problems import AbstractProblem, Regression
from .problems.completion import MatrixCompletion
from .problems.sensing import MatrixSensing


class Linearised(AbstractModel):
    r"""The linearisation of `model0` around its parameters: predictor
    $P(\theta_0) + \partial_\theta P(\theta_0)[\delta]$ (Woodworth et al. 2020, eq. (68)).

    Only `delta` is trained: `model0` enters through `jax.lax.stop_gradient`, so
    `linflow.flow(Linearised(model0), problem)` is the tangent-kernel flow, run by the same
    engine as the full flow.

    **Arguments:**

    - `model0`: the model at initialisation, any `linflow` model.
    - `delta`: the displacement $\delta = \theta - \theta_0$, a pytree like `model0`
      (default: zero).
    """

    model0: AbstractModel
    delta: AbstractModel

    def __init__(self, model0: AbstractModel, delta: AbstractModel | None = None):
        if not isinstance(model0, AbstractModel):
            raise TypeError(f"`model0` must be a linflow model, got {type(model0).__name__}.")
        if delta is None:
            delta = jax.tree.map(jnp.zeros_like, eqx.filter(model0, eqx.is_inexact_array))
            delta = eqx.combine(delta, eqx.filter(model0, eqx.is_inexact_array, inverse=True))
        elif jax.tree.structure(eqx.filter(delta, eqx.is_array)) != jax.tree.structure(
            eqx.filter(model0, eqx.is_array)
        ):
            raise ValueError("`delta` must have the same structure as `model0`.")
        self.model0 = model0
        self.delta = delta

    def predictor(self) -> Float[Array, "..."]:
        m0 = jax.lax.stop_gradient(self.model0)
        p0, dp = eqx.filter_jvp(lambda m: m.predictor(), (m0,), (self.delta,))
        return p0 + dp

    def parameters(self) -> AbstractModel:
        r"""$\theta_0 + \delta$ as a model of `model0`'s type (the paper's $W_{\rm TK}$)."""
        return eqx.apply_updates(self.model0, eqx.filter(self.delta, eqx.is_inexact_array))


def _outputs(problem: AbstractProblem):
    """(predictor -> training outputs z in R^N, targets y) for the square-loss problems."""
    if isinstance(problem, Regression):
        return (lambda P: (problem.X @ P).reshape(-1)), problem.Y.reshape(-1)
    if isinstance(problem, MatrixSensing):
        return problem.measurements, problem.y
    if isinstance(problem, MatrixCompletion):
        return problem.observed, problem.values
    raise TypeError(
        "`problem` must be a square-loss problem (Regression, MatrixSensing, MatrixCompletion), "
        f"got {type(problem).__name__}."
    )


def tangent_features(model: AbstractModel, problem: AbstractProblem) -> Float[Array, "N P"]:
    r"""The Jacobian $J = \partial z/\partial\theta$ of the $N$ training outputs with respect to
    the model's $P$ parameters (rows: the tangent feature maps $\phi_\theta(x_n)$).

    Built from $N$ vector-Jacobian products; the order of parameters is `ravel_pytree`'s.
    """
    out, _ = _outputs(problem)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    z0, vjp = jax.vjp(lambda p: out(eqx.combine(p, static).predictor()), params)
    eye = jnp.eye(z0.shape[0], dtype=z0.dtype)
    return jax.vmap(lambda e: ravel_pytree(vjp(e)[0])[0])(eye)


def tangent_kernel(model: AbstractModel, problem: AbstractProblem) -> Float[Array, "N N"]:
    r"""The tangent kernel on the training inputs, $K_{nm} = \langle\phi_\theta(x_n),
    \phi_\theta(x_m)\rangle$ (Woodworth et al. 2020, Sec. 3)."""
    J = tangent_features(model, problem)
    return J @ J.T


def tangent_kernel_limit(model0: AbstractModel, problem: AbstractProblem) -> Linearised:
    r"""The limit of the tangent-kernel flow from `model0` on a square-loss problem, in closed form:
    $\delta^\infty = J^\top(JJ^\top)^{+}(y - z(\theta_0))$, the minimum-norm displacement that
    minimises the linearised loss (Woodworth et al. 2020, Sec. 3: the minimum RKHS-norm
    interpolant around $f(\theta_0)$; App. H, $W_{\rm TK}(\infty)$).

    When the linearised model cannot interpolate, this is the least-squares solution nearest to
    $\theta_0$, which is again where the flow ends.

    **Arguments:** `model0` (any model), `problem` (`Regression`, `MatrixSensing` or
    `MatrixCompletion`).

    **Returns:** a `Linearised(model0, delta)`; `.parameters()` is $\theta_0 + \delta^\infty$ and
    `.predictor()` the kernel-regime predictor.
    """
    out, y = _outputs(problem)
    params, static = eqx.partition(model0, eqx.is_inexact_array)
    z0 = out(model0.predictor())
    J = tangent_features(model0, problem)
    K = J @ J.T
    evals, evecs = jnp.linalg.eigh(K)
    tol = evals[-1] * K.shape[0] * jnp.finfo(K.dtype).eps
    inv = jnp.where(evals > tol, 1.0 / jnp.where(evals > tol, evals, 1.0), 0.0)
    coef = evecs @ (inv * (evecs.T @ (y - z0)))
    flat, unravel = ravel_pytree(params)
    delta = eqx.combine(unravel(J.T @ coef), static)
    return Linearised(model0, delta)


def grad_distance(
    model_a: AbstractModel, model_b: AbstractModel, problem: AbstractProblem
) -> Float[Array, ""]:
    r"""The cosine distance $1 - \langle J_a, J_b\rangle_F/(\|J_a\|_F\|J_b\|_F)$ between the
    tangent feature maps of two models on the training data (Woodworth et al. 2020, Fig. 6,
    "grad distance": initialisation vs convergence). Zero in the kernel regime."""
    Ja = tangent_features(model_a, problem)
    Jb = tangent_features(model_b, problem)
    return 1.0 - jnp.sum(Ja * Jb) / jnp.sqrt(jnp.sum(Ja**2) * jnp.sum(Jb**2))


def kernel_change(
    model_a: AbstractModel, model_b: AbstractModel, problem: AbstractProblem
) -> Float[Array, ""]:
    r"""The relative change of the tangent kernel, $\|K_b - K_a\|_F / \|K_a\|_F$
    (Woodworth et al. 2020, Sec. 3: "the tangent kernel does not change")."""
    Ka = tangent_kernel(model_a, problem)
    Kb = tangent_kernel(model_b, problem)
    return jnp.linalg.norm(Kb - Ka) / jnp.linalg.norm(Ka)


def linearisation_distance(
    model: AbstractModel, linearised: Linearised
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    r"""How far a model is from a linearised one: $(\|P - P_{\rm TK}\|_F,
    \|\theta - \theta_{\rm TK}\|)$, predictor and parameter distances (Woodworth et al. 2020,
    Thm 9 bounds the second along the whole flow)."""
    dp = jnp.linalg.norm((model.predictor() - linearised.predictor()).reshape(-1))
    a = ravel_pytree(eqx.filter(model, eqx.is_inexact_array))[0]
    b = ravel_pytree(eqx.filter(linearised.parameters(), eqx.is_inexact_array))[0]
    return dp, jnp.linalg.norm(a - b)
