"""Validation helpers: clear errors naming the offending argument.

Checks run eagerly (before any compilation) when values are concrete, and degrade to
`eqx.error_if` when they are traced, so that `jit`/`vmap` callers still get a message.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """Whether `x` holds a value now (not a tracer inside `jit`, `vmap` or `grad`)."""
    return not isinstance(x, jax.core.Tracer)


def as_float_array(x, name: str, *, ndim: int | tuple[int, ...] | None = None) -> jax.Array:
    """Convert `x` to a floating JAX array, checking its rank."""
    if not is_concrete(x):
        arr = x
    else:
        try:
            arr = jnp.asarray(x)
        except Exception as e:  # pragma: no cover - depends on the input type
            raise TypeError(f"`{name}` must be an array, got {type(x).__name__}.") from e
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"`{name}` must have {want} dimension(s), got shape {tuple(arr.shape)}."
            )
    return arr


def check_finite(x, name: str):
    """Raise `ValueError` if `x` holds NaN or inf (eagerly), or `eqx.error_if` when traced."""
    if is_concrete(x):
        if not bool(np.all(np.isfinite(np.asarray(x)))):
            raise ValueError(f"`{name}` contains NaN or inf; the data must be finite.")
        return x
    return eqx.error_if(x, ~jnp.all(jnp.isfinite(x)), f"`{name}` contains NaN or inf.")


def check_positive(x, name: str):
    """Raise `ValueError` unless every entry of `x` is > 0."""
    if is_concrete(x):
        if not bool(np.all(np.asarray(x) > 0)):
            raise ValueError(f"`{name}` must be > 0, got {np.asarray(x)!r}.")
        return x
    return eqx.error_if(x, ~jnp.all(x > 0), f"`{name}` must be > 0.")
