"""One trace cache for the flow's formulas: a function of a static part and arrays, traced
once per (static part, shapes) and reused by every call site, compiled or shape-only."""

import functools

import equinox as eqx
import jax


@functools.partial(jax.jit, static_argnums=0)
def _call(static, dynamic):
    fn, args = eqx.combine(dynamic, static)
    return fn(*args)


def _split(fn, args):
    """`(static, dynamic)` of `fn(*args)` for `_call`, or `None` where the static part does
    not hash (e.g. an array in a static field): such calls are traced in place."""
    dynamic, static = eqx.partition((fn, args), eqx.is_array)
    try:
        hash(static)
    except TypeError:
        return None
    return static, dynamic


def traced(fn, *args):
    """`fn(*args)`, through `_call`'s trace cache when the static part hashes."""
    parts = _split(fn, args)
    return fn(*args) if parts is None else _call(*parts)


def traced_shape(fn, *args):
    """`eqx.filter_eval_shape(fn, *args)`, from `_call`'s trace cache when the static part
    hashes: the shapes a flow checks before it runs cost a trace only on the first call."""
    parts = _split(fn, args)
    return eqx.filter_eval_shape(fn, *args) if parts is None else _call.eval_shape(*parts)
