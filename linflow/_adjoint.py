import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx


class ImplicitAdjoint(eqx.Module):
    r"""Differentiate the flow's *limit* by the implicit function theorem at the steady state.

    Pass as `linflow.flow(..., adjoint=linflow.ImplicitAdjoint())`. The flow runs forward without
    recording a tape; its final state $y^\star$ (a zero of the vector field, $f(y^\star) = 0$) is
    then refined by a Newton root solve with `optimistix.ImplicitAdjoint`, so that
    $\partial y^\star/\partial p = -(\partial_y f)^{-1}\partial_p f$ for every input $p$ (data,
    scale, initial parameters). Memory is independent of the number of solver steps.

    This needs an isolated steady state, which the exact reduced forms have (for diagonal nets,
    $\partial_\nu f = -X\,\mathrm{diag}(\beta'(s))\,X^\top$ is definite when $X$ has full row
    rank). The full parameter flow has a manifold of minimisers, so `flow` refuses this adjoint
    there. Saved trajectories (`FlowSolution.models`) carry no gradient in this mode; use the
    default `diffrax.RecursiveCheckpointAdjoint` to differentiate them.

    **Arguments:**

    - `rtol`, `atol`: tolerances of the Newton refinement.
    - `max_steps`: Newton iterations.
    """

    rtol: float = 1e-11
    atol: float = 1e-13
    max_steps: int = 64


def refine_steady_state(system, problem, y_star, adjoint: ImplicitAdjoint):
    """Newton-refine `y_star` as a root of the system's vector field, with implicit gradients."""

    def fn(y, args):
        sys, prob = args
        return sys.vector_field(0.0, y, prob)

    sol = optx.root_find(
        fn,
        optx.Newton(rtol=adjoint.rtol, atol=adjoint.atol, cauchy_termination=False),
        jax.lax.stop_gradient(y_star),
        args=(system, problem),
        adjoint=optx.ImplicitAdjoint(),
        max_steps=adjoint.max_steps,
        throw=False,
    )
    return sol.value, sol.result == optx.RESULTS.successful


@jax.custom_jvp
def poison_tangent(x, ok):
    """Identity on values; tangents are multiplied by NaN where `ok` is False.

    Used so that differentiating a flow that did not reach its steady state gives NaN
    gradients rather than silently wrong ones (the value itself is kept for inspection)."""
    return x


@poison_tangent.defjvp
def _poison_tangent_jvp(primals, tangents):
    x, ok = primals
    tx, _ = tangents
    nan_unless_ok = jnp.where(ok, 1.0, jnp.nan)
    # `x` is a state: an array (reduced forms) or a model (the full form), a pytree.
    return x, jax.tree.map(lambda t: t * nan_unless_ok.astype(jnp.result_type(t)), tx)
