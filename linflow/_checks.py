"""Validation helpers: clear errors naming the offending argument.

Checks run eagerly (before any compilation) when values are concrete, and degrade to
`eqx.error_if` when they are traced, so that `jit`/`vmap` callers still get a message.
"""

import contextlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """Whether `x` holds a value now (not a tracer inside `jit`, `vmap` or `grad`)."""
    return not isinstance(x, jax.core.Tracer)


def _check_numeric(x, name: str):
    """Raise `TypeError` unless `x` is a real number or an array of real numbers."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"`{name}` must be a real number or array, got {type(x).__name__}.")
    if not is_concrete(x):
        dtype = x.dtype
    else:
        try:
            dtype = np.asarray(x).dtype
        except Exception as e:  # depends on the input type
            raise TypeError(
                f"`{name}` must be a real number or array, got {type(x).__name__}."
            ) from e
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)) or (
        jnp.issubdtype(dtype, jnp.bool_)
    ):
        raise TypeError(
            f"`{name}` must be a real number or array of real numbers, got "
            f"{type(x).__name__} of dtype {dtype}."
        )


def as_float_array(x, name: str, *, ndim: int | tuple[int, ...] | None = None) -> jax.Array:
    """Convert `x` to a floating JAX array, checking its type (`TypeError`), rank and that it
    is not empty (`ValueError`)."""
    _check_numeric(x, name)
    arr = x if not is_concrete(x) else jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"`{name}` must have {want} dimension(s), got shape {tuple(arr.shape)}."
            )
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(arr.shape)}): it needs entries.")
    return arr


def check_finite(x, name: str):
    """Raise `ValueError` if `x` holds NaN or inf (eagerly), or `eqx.error_if` when traced."""
    if is_concrete(x):
        if not bool(np.all(np.isfinite(np.asarray(x)))):
            raise ValueError(f"`{name}` contains NaN or inf; the data must be finite.")
        return x
    return eqx.error_if(x, ~jnp.all(jnp.isfinite(x)), f"`{name}` contains NaN or inf.")


def check_positive(x, name: str):
    """Raise `ValueError` unless every entry of `x` is finite and > 0 (`TypeError` unless it
    is a real number or array). Under `jit` the check is an `eqx.error_if` on the returned
    value: use it, `x = check_positive(x, "x")`."""
    _check_numeric(x, name)
    if is_concrete(x):
        arr = np.asarray(x)
        if not bool(np.all((arr > 0) & np.isfinite(arr))):
            raise ValueError(f"`{name}` must be > 0 and finite, got {arr!r}.")
        return x
    bad = ~jnp.all((x > 0) & jnp.isfinite(x))
    return eqx.error_if(x, bad, f"`{name}` must be > 0 and finite.")


def check_count(n, name: str) -> int:
    """`n` as an int: `TypeError` unless it is an integer, `ValueError` unless >= 1."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"`{name}` must be a positive integer, got {type(n).__name__} {n!r}.")
    if n < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {n!r}.")
    return int(n)


def check_depth(depth, name: str = "depth") -> int:
    """`depth` as an int: `TypeError` unless it is an integer, `ValueError` unless >= 2."""
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer >= 2, got {type(depth).__name__} {depth!r}.")
    if depth < 2:
        raise ValueError(f"`{name}` must be an integer >= 2, got {depth!r}.")
    return int(depth)


@contextlib.contextmanager
def checks_as_nan():
    """Trace the enclosed code with equinox's run-time checks as NaN, not a host callback.

    With equinox's default (`EQX_ON_ERROR=raise`), an `eqx.error_if` whose predicate is only
    known at run time compiles to a host callback, and JAX's persistent compilation cache
    never stores a program with one: every new process would compile the flow again.
    `diffrax.diffeqsolve` checks its inputs that way (t0, t1, dt0 and the save times); the
    flow builds all of them itself (increasing save times within [t0, t1], a positive finite
    first step), so these checks cannot fail. Inside this block a failed check would make the
    value it guards NaN instead (equinox's `EQX_ON_ERROR=nan`), never a plausible number.
    Only the default is replaced: a user's own `EQX_ON_ERROR` (`breakpoint`, `nan`, `off`) is
    kept. Each check inside asks for `on_error="nan"` explicitly, so equinox's cache of traced
    checks keeps the two kinds apart: the same check traced outside the block still raises.
    Not thread-safe: it replaces a function of equinox's for the duration of a trace (linflow
    traces flows from one thread).
    """
    from equinox import _errors

    default = _errors.branched_error_if
    if getattr(_errors, "EQX_ON_ERROR", None) != "raise":
        yield
        return

    def as_nan(x, pred, index, msgs, *, on_error="default"):
        return default(x, pred, index, msgs, on_error="nan" if on_error == "default" else on_error)

    _errors.branched_error_if = as_nan
    try:
        yield
    finally:
        _errors.branched_error_if = default
