"""A flow system whose vector field and predictor are traced once per compiled flow.

A solve calls the field and the predictor a dozen times or more while it is traced: every
Runge–Kutta stage and its shape checks, the first-step rule, the stop test and its forward
derivatives, an implicit solver's Jacobian. Each call would trace the model's formula again.
`TracedOnce` routes both through one `jax.jit`, whose trace cache keys on the arguments'
shapes and static content: the formula is traced once per shape, and the compiled flow is
the same program (XLA inlines the calls). What a new process pays before its first flow,
even with the compiled program on disk, is mostly this Python tracing.
"""

import equinox as eqx

from ._system import AbstractFlowSystem, AbstractWrappedSystem
from ._trace_cache import traced


class _VectorField(eqx.Module):
    system: AbstractFlowSystem

    def __call__(self, t, y, problem):
        return self.system.vector_field(t, y, problem)


class _Predictor(eqx.Module):
    system: AbstractFlowSystem

    def __call__(self, y):
        return self.system.predictor(y)


class TracedOnce(AbstractWrappedSystem):
    """`system`, with `vector_field` and `predictor` traced once per shape (see above);
    everything else is `system`'s own."""

    system: AbstractFlowSystem

    def vector_field(self, t, y, problem):
        return traced(_VectorField(self.system), t, y, problem)

    def predictor(self, y):
        return traced(_Predictor(self.system), y)
