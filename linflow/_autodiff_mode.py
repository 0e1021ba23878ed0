"""The default adjoint of `linflow.flow`, picked from the autodiff modes its inputs carry.

diffrax's `RecursiveCheckpointAdjoint` (backpropagation with checkpointing, memory
$O(\\log n)$ in the number of steps) is a `custom_vjp`: it has no forward mode, so `jax.jvp`
or `jax.jacfwd` through it fail. `diffrax.ForwardMode` differentiates forward only, and
`diffrax.DirectAdjoint` both ways (at a higher memory cost in reverse mode). When `flow` is
called directly under a JAX transformation its inputs are tracers that say which modes are
asked for: forward only (`jax.jvp`, `jax.jacfwd`), reverse (`jax.grad`, `jax.vjp`, and the
linearisation inside `jax.jacrev`/`jax.hessian`), or both (`jax.hessian` = forward over
reverse). Inside a caller's own `jax.jit` the inputs are plain staged values, so the mode
cannot be seen: pass `adjoint=diffrax.ForwardMode()` (or `diffrax.DirectAdjoint()`) there.
"""

import diffrax
import equinox as eqx
import jax


def _modes(x) -> tuple[bool, bool]:
    """(forward, reverse): whether the tracer `x` (or a tracer it wraps) carries a
    forward-mode (JVP) or a reverse-mode (linearisation) derivative."""
    forward = reverse = False
    while isinstance(x, jax.core.Tracer):
        kind = type(x).__name__
        if kind == "JVPTracer":
            forward = True
            x = x.primal
        elif kind == "LinearizeTracer":
            reverse = True
            x = x.primal
        elif hasattr(x, "val"):  # a batching tracer (vmap)
            x = x.val
        else:  # a staged value (jit): its modes are not visible here
            break
    return forward, reverse


def default_adjoint(tree) -> diffrax.AbstractAdjoint:
    """The adjoint for a flow whose inputs are `tree`: `diffrax.ForwardMode()` when only
    forward-mode derivatives are asked for, `diffrax.DirectAdjoint()` when both modes are,
    else `diffrax.RecursiveCheckpointAdjoint()`."""
    forward = reverse = False
    for leaf in jax.tree.leaves(eqx.filter(tree, eqx.is_array)):
        f, r = _modes(leaf)
        forward, reverse = forward or f, reverse or r
    if forward and reverse:
        return diffrax.DirectAdjoint()
    if forward:
        return diffrax.ForwardMode()
    return diffrax.RecursiveCheckpointAdjoint()
