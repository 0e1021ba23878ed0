"""Compiled chunk programs: one per (run function, static point, mode, chunk shape, devices).

`run` is traced once per static point into a jaxpr (`trace_point`); the jaxpr gives the run
function's fingerprint (a hash of what it computes, independent of devices, mode and chunk
size) and is the body every batched program is compiled from. Programs are compiled ahead of
time (`jit(...).lower(...).compile()`); traces and programs are kept in process-wide caches,
so a second `Sweep` with the same run function and shapes reuses them without tracing `run`
again.
"""

import dataclasses
import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.extend.core import ClosedJaxpr, jaxpr_as_fun
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ._grid import Point


_AXIS = "points"
_CACHE: "OrderedDict[tuple, ChunkProgram]" = OrderedDict()
_TRACES: "OrderedDict[tuple, PointTrace]" = OrderedDict()
_CACHE_SIZE = 256
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


@dataclasses.dataclass
class PointTrace:
    """`run` traced on one point of a static combination: its jaxpr and what it returns."""

    jaxpr: ClosedJaxpr | None  # flat inputs (dynamic values, flat index, root key) -> flat metrics
    out_tree: object
    metric_names: tuple[str, ...] = ()
    enums: dict = dataclasses.field(default_factory=dict)  # metric name -> Enumeration class
    fingerprint: str = ""

    def __call__(self, dynamic, index, root):
        flat = jax.tree.leaves((dynamic, index, root))
        return jax.tree.unflatten(self.out_tree, jaxpr_as_fun(self.jaxpr)(*flat))


def _hash_jaxpr(closed: ClosedJaxpr, h) -> None:
    """Feed the program text and every constant it closes over (values, not names) to `h`."""
    # Printed jaxprs name host callbacks and custom-derivative rules by their Python objects
    # (`<function f at 0x7f...>`): drop the addresses, which differ between processes.
    h.update(_ADDRESS.sub("", str(closed.jaxpr)).encode())
    stack = [closed]
    while stack:
        cj = stack.pop()
        for c in cj.consts:
            try:
                a = np.asarray(c)
            except Exception:  # an opaque constant (e.g. a typed key): its text stands for it
                h.update(repr(c).encode())
                continue
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes() if a.dtype != object else repr(a).encode())
        for eqn in cj.jaxpr.eqns:
            for v in eqn.params.values():
                for sub in v if isinstance(v, (tuple, list)) else (v,):
                    if isinstance(sub, ClosedJaxpr):
                        stack.append(sub)


@dataclasses.dataclass
class ChunkProgram:
    """A compiled program evaluating `run` on a chunk of points of one static combination."""

    call: Callable | None  # (dynamic arrays, flat indices, root key) -> dict of arrays
    mode: str
    batch: int  # points per call (1 for "loop")
    metric_names: tuple[str, ...] = ()
    enums: dict = dataclasses.field(default_factory=dict)  # metric name -> Enumeration class
    memory_bytes: int | None = None


def _normalise_output(out, trace: "PointTrace"):
    if not isinstance(out, dict) or not all(isinstance(k, str) for k in out):
        raise TypeError(
            "`run(point, key)` must return a dict mapping metric names (str) to arrays, got "
            f"{type(out).__name__}."
        )
    result = {}
    for name, value in out.items():
        if isinstance(value, eqx.Enumeration) or type(value).__name__ == "EnumerationItem":
            trace.enums[name] = value._enumeration
            value = value._value
        try:
            value = jnp.asarray(value)
        except TypeError as e:
            raise TypeError(
                f"metric {name!r} returned by `run` is a {type(value).__name__}, not an array."
            ) from e
        if value.dtype.kind not in "biufc":
            raise TypeError(f"metric {name!r} has non-numeric dtype {value.dtype}.")
        result[name] = value
    trace.metric_names = tuple(result)
    return result


def _single(run, static_point, dynamic_names, axis_names, trace):
    def single(dynamic, index, root):
        values = dict(static_point)
        values.update(zip(dynamic_names, dynamic))
        point = Point({n: values[n] for n in axis_names}, axis_names)
        key = jr.fold_in(root, index)
        return _normalise_output(run(point, key), trace)

    return single


def _struct(shape, dtype, sharding=None):
    return jax.ShapeDtypeStruct(shape, jax.dtypes.canonicalize_dtype(dtype), sharding=sharding)


def _trace_key(run, static_point, dynamic_names, dynamic_dtypes, axis_names, root_key) -> tuple:
    return (
        run,
        tuple(sorted(static_point.items())),
        dynamic_names,
        tuple(str(jax.dtypes.canonicalize_dtype(d)) for d in dynamic_dtypes),
        axis_names,
        str(root_key.dtype),
        tuple(root_key.shape),
        jax.config.jax_enable_x64,
    )


def trace_point(
    run: Callable,
    static_point: dict,
    dynamic_names: tuple[str, ...],
    dynamic_dtypes: tuple,
    axis_names: tuple[str, ...],
    root_key: jax.Array,
) -> tuple[PointTrace, bool]:
    """`run` traced on one point of a static combination, and whether it had to be traced.

    The fingerprint hashes the jaxpr's text and the values of the constants it closes over:
    it changes when what `run` computes changes (its body, the data it closes over, the
    dtypes, the static values), not when only its name or the devices do.
    """
    key = _trace_key(run, static_point, dynamic_names, dynamic_dtypes, axis_names, root_key)
    if key in _TRACES:
        _TRACES.move_to_end(key)
        return _TRACES[key], False
    trace = PointTrace(jaxpr=None, out_tree=None)  # pyright: ignore
    single = _single(run, static_point, dynamic_names, axis_names, trace)
    args = (
        tuple(_struct((), d) for d in dynamic_dtypes),
        _struct((), np.uint32),
        _struct(root_key.shape, root_key.dtype),
    )
    closed, shapes = jax.make_jaxpr(single, return_shape=True)(*args)
    trace.jaxpr = closed
    trace.out_tree = jax.tree.structure(shapes)
    h = hashlib.sha256()
    _hash_jaxpr(closed, h)
    h.update(repr(trace.metric_names).encode())
    h.update(
        repr(
            sorted((k, getattr(e, "__qualname__", str(e))) for k, e in trace.enums.items())
        ).encode()
    )
    trace.fingerprint = h.hexdigest()[:16]
    _TRACES[key] = trace
    if len(_TRACES) > _CACHE_SIZE:
        _TRACES.popitem(last=False)
    return trace, True


def get_program(
    run: Callable,
    static_point: dict,
    dynamic_names: tuple[str, ...],
    dynamic_dtypes: tuple,
    axis_names: tuple[str, ...],
    mode: str,
    batch: int,
    devices: tuple,
    root_key: jax.Array,
) -> tuple[ChunkProgram, bool]:
    """The compiled program for these settings, and whether it had to be compiled."""
    key = _trace_key(run, static_point, dynamic_names, dynamic_dtypes, axis_names, root_key) + (
        mode,
        batch,
        tuple(d.id for d in devices),
    )
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key], False
    trace, _ = trace_point(run, static_point, dynamic_names, dynamic_dtypes, axis_names, root_key)
    program = ChunkProgram(
        call=None,  # pyright: ignore
        mode=mode,
        batch=batch,
        metric_names=trace.metric_names,
        enums=trace.enums,
    )

    if len(devices) > 1 and mode != "loop":
        # Inside `shard_map`, `run` is traced again: libraries that cannot run there (lineax's
        # own linear solvers, whose batched LAPACK LU also deadlocks across host devices)
        # then fail with their own error instead of being compiled from a jaxpr traced
        # outside it.
        single = _single(run, static_point, dynamic_names, axis_names, PointTrace(None, None))
    else:

        def single(dynamic, index, root):  # the traced body, evaluated without tracing `run`
            return trace(dynamic, index, root)

    index_dtype = np.uint32
    if mode == "loop":
        dev = devices[0]
        sharding = jax.sharding.SingleDeviceSharding(dev)
        args = (
            tuple(_struct((), d, sharding) for d in dynamic_dtypes),
            _struct((), index_dtype, sharding),
            _struct(root_key.shape, root_key.dtype, sharding),
        )
        compiled = jax.jit(single).lower(*args).compile()

        def call(dynamic, index, root):
            outs = [
                compiled(
                    tuple(jax.device_put(d[i], dev) for d in dynamic),
                    jax.device_put(index[i], dev),
                    root,
                )
                for i in range(index.shape[0])
            ]
            return {k: np.stack([np.asarray(o[k]) for o in outs]) for k in outs[0]}

        program.call = call
    else:
        mesh = Mesh(np.array(devices), (_AXIS,))
        sharded = NamedSharding(mesh, P(_AXIS))
        replicated = NamedSharding(mesh, P())
        if mode == "vmap":
            local = jax.vmap(single, in_axes=(0, 0, None))
        elif mode == "map":

            def local(dynamic, index, root):
                return jax.lax.map(lambda a: single(a[0], a[1], root), (dynamic, index))

        else:  # pragma: no cover - validated by Sweep
            raise ValueError(mode)
        # Each device runs its share of the chunk as its own program (`shard_map`): its
        # solver loops stop when *its* points have stopped, with no collective per step.
        # (Partitioning one batched loop across devices instead shares the loop condition:
        # every device then runs to the chunk's slowest point, with a cross-device
        # reduction per step and per Newton iteration, 6x slower than one device on a CPU.)
        # `check_vma=False`: the solvers' internal `cond`s mix per-device and replicated
        # values, which is right here since nothing is communicated.
        fn = local
        if len(devices) > 1:
            fn = jax.shard_map(
                local,
                mesh=mesh,
                in_specs=(P(_AXIS), P(_AXIS), P()),
                out_specs=P(_AXIS),
                check_vma=False,
            )
        fn = jax.jit(fn, in_shardings=(sharded, sharded, replicated), out_shardings=sharded)
        args = (
            tuple(_struct((batch,), d, sharded) for d in dynamic_dtypes),
            _struct((batch,), index_dtype, sharded),
            _struct(root_key.shape, root_key.dtype, replicated),
        )
        try:
            compiled = fn.lower(*args).compile()
        except ValueError as e:
            if "does not match out_structure" not in str(e):
                raise
            raise ValueError(
                "an implicit diffrax solver with lineax's own linear solver cannot run inside a "
                "sweep sharded over devices (lineax rejects the sharded abstract values: "
                "lineax issue #185). Pass `linflow.with_lu(solver)` (e.g. "
                "`linflow.with_lu(diffrax.Kvaerno5())`) instead, or leave the solver to "
                "`linflow.Auto`, or run on one device (`devices=jax.devices()[:1]`)."
            ) from e
        try:
            mem = compiled.memory_analysis()
            program.memory_bytes = int(
                mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
            )
        except Exception:  # memory analysis is not available on every backend
            program.memory_bytes = None

        def call(dynamic, index, root):
            out = compiled(
                tuple(jax.device_put(d, sharded) for d in dynamic),
                jax.device_put(index, sharded),
                jax.device_put(root, replicated),
            )
            return {k: np.asarray(v) for k, v in out.items()}

        program.call = call
    _CACHE[key] = program
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return program, True


def clear_cache() -> None:
    """Forget every traced run function and compiled chunk program (the next sweep traces and
    compiles again)."""
    _CACHE.clear()
    _TRACES.clear()
