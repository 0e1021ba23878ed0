"""Flow programs kept on disk as exported StableHLO, so that a new process skips tracing.

JAX's persistent cache (`linflow._cache`) keeps the *compiled* program, but a new process
must still trace and lower the flow to find it: for a flow with its stop, saves and solver
that is most of what a second process pays (the docs' *Benchmarks*, time to first result). Here
the lowered program is kept too (`jax.export`, in `exported/` beside the compilation cache),
keyed by everything the trace depends on: linflow's source, the versions of JAX and the
libraries the flow is made of, JAX's precision flags, the backend, and a description of every
argument: the type of every module (which must come from linflow or the libraries it is
built on), every static value, and every array's shape and dtype. A call whose arguments
cannot be described exactly (a model or problem class of the user's own, a closure in a
static field, arrays on another device than the default) is traced as usual and nothing is
kept: a stale program is never run. The first process traces once, as it would, and compiles
the exported program; the next one reads it, and its compiled form comes from the persistent
cache. Entries are written whole (a temporary file, renamed), carry their payload's SHA-256
(a damaged one is removed and traced again), and at most `_MAX_ENTRIES` are kept.
"""

import dataclasses
import enum
import functools
import hashlib
import importlib.metadata
import os
import pathlib
import pickle
import tempfile
import types

import equinox as eqx
import jax
import numpy as np


# Modules whose types and functions may appear in a kept program's arguments: their code is
# part of the key (linflow's source) or pinned by their version.
_LIBRARIES = ("linflow", "diffrax", "equinox", "lineax", "optimistix", "jax", "jaxlib", "numpy")
_VERSIONED = ("jax", "jaxlib", "diffrax", "equinox", "lineax", "optimistix", "numpy")


# JAX settings that change what a trace produces.
_FLAGS = (
    "jax_enable_x64",
    "jax_default_matmul_precision",
    "jax_numpy_rank_promotion",
    "jax_numpy_dtype_promotion",
    "jax_debug_nans",
    "jax_debug_infs",
    "jax_default_prng_impl",
)
# At most this many programs are kept; the least recently used go first.
_MAX_ENTRIES = 1_000


class _NotDescribable(Exception):
    pass


_folder: pathlib.Path | None = None
_loaded: dict = {}


def set_folder(path: "pathlib.Path | None") -> None:
    """Keep exported flows in `path` (`None`: keep none). Set by `import linflow` beside the
    compilation cache it configures."""
    global _folder
    _folder = None if path is None else pathlib.Path(path) / "exported"
    _loaded.clear()


@functools.cache
def _code_version() -> str:
    digest = hashlib.sha256()
    root = pathlib.Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    for name in _VERSIONED:
        try:
            digest.update(f"{name}=={importlib.metadata.version(name)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{name} absent".encode())
    return digest.hexdigest()


def _allowed(obj) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.split(".")[0] in _LIBRARIES


def _describe(x) -> str:
    """An exact description of `x` for the key, or `_NotDescribable`."""
    if isinstance(x, jax.Array):
        if len(x.devices()) != 1 or next(iter(x.devices())) != jax.devices()[0]:
            raise _NotDescribable  # placed elsewhere: the exported program is for one device
        weak = " weak" if getattr(x, "weak_type", False) else ""
        return f"A{x.shape}{x.dtype}{weak}"
    if isinstance(x, np.ndarray):
        return f"N{x.shape}{x.dtype}"
    if x is None or isinstance(x, (bool, int, float, complex, str, bytes, np.generic)):
        return f"{type(x).__name__}:{x!r}"
    if isinstance(x, enum.Enum):
        return f"E{type(x).__module__}.{type(x).__qualname__}.{x.name}"
    if isinstance(x, (tuple, list)):
        return f"{type(x).__name__}({','.join(_describe(y) for y in x)})"
    if isinstance(x, dict):
        items = sorted((repr(k), _describe(v)) for k, v in x.items())
        return f"dict({','.join(f'{k}:{v}' for k, v in items)})"
    if isinstance(x, np.dtype):
        return f"D{x}"
    if isinstance(x, type):
        if not _allowed(x) or "<" in x.__qualname__:
            raise _NotDescribable
        return f"T{x.__module__}.{x.__qualname__}"
    if isinstance(x, (types.FunctionType, types.BuiltinFunctionType)):
        # By name only where the name is the function: top level of a library module.
        if not _allowed(x) or "<" in x.__qualname__ or getattr(x, "__closure__", None):
            raise _NotDescribable
        return f"F{x.__module__}.{x.__qualname__}"
    if isinstance(x, types.MethodType):
        return f"M{_describe(x.__func__)}@{_describe(x.__self__)}"
    if isinstance(x, functools.partial):
        return f"P{_describe(x.func)}{_describe(x.args)}{_describe(x.keywords)}"
    if dataclasses.is_dataclass(x) and not isinstance(x, type):  # every eqx.Module
        cls = type(x)
        fields = ",".join(
            f"{f.name}={_describe(getattr(x, f.name, None))}" for f in dataclasses.fields(x)
        )
        return f"{_describe(cls)}({fields})"
    if _allowed(type(x)) and " at 0x" not in repr(x):
        # A library's constant (e.g. diffrax's marker for "the controller's tolerance").
        return f"O{_describe(type(x))}:{x!r}"
    raise _NotDescribable


def _key(name: str, tree) -> str | None:
    try:
        text = f"{name}|{_describe(tree)}"
    except _NotDescribable:
        return None
    flags = tuple(getattr(jax.config, flag) for flag in _FLAGS)
    flags = flags + (jax.default_backend(), jax.devices()[0].device_kind)
    return hashlib.sha256(f"{_code_version()}|{flags}|{text}".encode()).hexdigest()


class _Kept(eqx.Module):
    """A flow program read back: its compiled call and how to rebuild its output."""

    call: object
    skeleton: object  # the output's array positions, as indices into the call's results
    static: object  # the output's non-array part


def _export(fn, dyn_leaves, dyn_def, static):
    out_parts = {}

    def flat(*leaves):
        args, kwargs = eqx.combine(jax.tree.unflatten(dyn_def, leaves), static)
        out = fn(*args, **kwargs)
        out_dyn, out_static = eqx.partition(out, eqx.is_array)
        leaves_out, out_def = jax.tree.flatten(out_dyn)
        # Results of a fixed type: a program read back does not know which were weakly
        # typed, and a call that passes one on (a `Fallback`'s first phase to its second)
        # must find the same key in every process.
        leaves_out = [jax.lax.convert_element_type(x, x.dtype) for x in leaves_out]
        out_parts["skeleton"] = jax.tree.unflatten(out_def, list(range(len(leaves_out))))
        out_parts["static"] = out_static
        return leaves_out

    shapes = [
        jax.ShapeDtypeStruct(x.shape, x.dtype, weak_type=getattr(x, "weak_type", False))
        for x in dyn_leaves
    ]
    exported = jax.export.export(jax.jit(flat))(*shapes)
    return exported, out_parts["skeleton"], out_parts["static"]


def _compiled(exported, name: str):
    """`exported`'s call, jitted under `name` (the program's name in JAX's cache and logs)."""

    def run(*leaves):
        return exported.call(*leaves)

    run.__name__ = run.__qualname__ = name
    return jax.jit(run)


def _write(path: pathlib.Path, payload: bytes) -> None:
    # Written to a temporary file and renamed: processes sharing the folder read a whole
    # entry or none.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    entries = sorted(path.parent.glob("*.bin"), key=_mtime)
    for old in entries[: max(0, len(entries) - _MAX_ENTRIES)]:
        old.unlink(missing_ok=True)


def _mtime(path: pathlib.Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed by another process meanwhile
        return 0.0


def _read(path: pathlib.Path, name: str) -> "_Kept | None":
    try:
        data = path.read_bytes()
    except OSError:  # not there (or removed by another process meanwhile): trace
        return None
    try:
        # An entry is its payload's SHA-256 and the payload: a damaged file (which could
        # still unpickle, and whose program JAX parses only when it is first run) is found
        # here, removed and traced again.
        digest, payload = data[:32], data[32:]
        if hashlib.sha256(payload).digest() != digest:
            raise ValueError("checksum")
        entry = pickle.loads(payload)
        exported = jax.export.deserialize(bytearray(entry["exported"]))
        exported.mlir_module()  # parses the program
        os.utime(path)  # recently used
    except Exception:
        path.unlink(missing_ok=True)
        return None
    return _Kept(_compiled(exported, name), entry["skeleton"], entry["static"])


def call(fn, *args, **kwargs):
    """`fn(*args, **kwargs)`, through its exported program where one can be kept (module
    docstring): read from the folder if there, else traced once, exported, kept and run.

    `fn` must be a jitted pure function of its arguments' arrays and static values (a flow's
    `_integrate`), called with concrete arrays outside any transformation."""
    if _folder is None or jax.config.jax_disable_jit:
        return fn(*args, **kwargs)
    name = getattr(fn, "__name__", "kept")
    tree = (args, kwargs)
    dyn, static = eqx.partition(tree, eqx.is_array)
    dyn_leaves, dyn_def = jax.tree.flatten(dyn)
    # This process's calls are told apart as `jax.jit` tells them apart (structure, static
    # values, array types): the description and the file are read once per configuration.
    static_leaves, static_def = jax.tree.flatten(static)
    arrays = tuple(
        (x.shape, x.dtype, getattr(x, "weak_type", False), getattr(x, "sharding", None))
        for x in dyn_leaves
    )
    try:
        seen = (fn, dyn_def, static_def, tuple(static_leaves), arrays)
        kept = _loaded.get(seen, _UNSEEN)
    except TypeError:  # an unhashable static value: jit would refuse it too
        return fn(*args, **kwargs)
    if kept is _UNSEEN:
        kept = _load_or_export(fn, name, tree, dyn_leaves, dyn_def, static)
        _loaded[seen] = kept
    if kept is None:
        return fn(*args, **kwargs)
    outs = kept.call(*dyn_leaves)
    out_dyn = jax.tree.map(lambda i: outs[i], kept.skeleton)
    return eqx.combine(out_dyn, kept.static)


_UNSEEN = object()


def _load_or_export(fn, name, tree, dyn_leaves, dyn_def, static) -> "_Kept | None":
    """The kept program for this call (read from the folder, or traced, exported and written
    there), or `None` where the call cannot be kept (module docstring)."""
    key = _key(f"{fn.__module__}.{name}", tree)
    if key is None:
        return None
    path = _folder / f"{key}.bin"
    kept = _read(path, name)
    if kept is not None:
        return kept
    try:
        exported, skeleton, out_static = _export(fn, dyn_leaves, dyn_def, static)
    except Exception:
        # Not exportable (e.g. a host callback): the ordinary call, which raises any error
        # of the user's input itself.
        return None
    try:
        payload = pickle.dumps(
            {"exported": exported.serialize(), "skeleton": skeleton, "static": out_static}
        )
        _write(path, hashlib.sha256(payload).digest() + payload)
    except Exception:
        pass  # kept for this process only
    return _Kept(_compiled(exported, name), skeleton, out_static)
