"""The persistent compilation cache that `import linflow` turns on.

Most of the time of a first flow is XLA compilation (the docs' *Benchmarks*, time to first
result). JAX can keep compiled programs on disk, keyed by the program, the compile options,
the device and the JAX version, so that a second process running the same flow on data of
the same shapes loads its program instead of compiling it. linflow turns this cache on in
the user's cache folder unless the user has configured JAX's cache themselves.
"""

import importlib.util
import os
import pathlib

import jax

from . import _exported as exported


# Every program is written, however fast it compiled (JAX's default skips those under 1 s):
# each eager operation of a first call compiles a small program of its own (about a dozen,
# 0.01-0.07 s each); loading them saved 0.17 s of a 1.2 s second-process first flow.
_MIN_COMPILE_TIME_SECS = 0.0
# With a bounded size JAX evicts the least recently used entries and holds a file lock
# (`filelock`) around every read and write, so processes that share the folder never read an
# entry that another is still writing (JAX writes the file in place, not by renaming).
_MAX_SIZE_BYTES = 2 * 1024**3
_OFF = ("0", "false", "no", "off")


def default_cache_dir() -> pathlib.Path:
    """`$LINFLOW_CACHE_DIR`, else `$XDG_CACHE_HOME/linflow`, else `~/.cache/linflow`."""
    explicit = os.environ.get("LINFLOW_CACHE_DIR")
    if explicit:
        return pathlib.Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache"
    return base / "linflow"


def configure_compilation_cache() -> pathlib.Path | None:
    """Point JAX's persistent compilation cache at `default_cache_dir()`.

    Does nothing, and returns `None`, when `LINFLOW_CACHE` is `0`/`false`/`no`/`off`, when JAX's
    cache is disabled (`jax_enable_compilation_cache`), or when a cache folder is already set
    (`JAX_COMPILATION_CACHE_DIR` or `jax.config.update("jax_compilation_cache_dir", ...)`):
    the user's own configuration wins. Otherwise returns the folder now in use.
    """
    if os.environ.get("LINFLOW_CACHE", "1").strip().lower() in _OFF:
        return None
    if not jax.config.jax_enable_compilation_cache or jax.config.jax_compilation_cache_dir:
        return None
    path = default_cache_dir()
    exported.set_folder(path)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", _MIN_COMPILE_TIME_SECS)
    if jax.config.jax_compilation_cache_max_size == -1 and importlib.util.find_spec("filelock"):
        jax.config.update("jax_compilation_cache_max_size", _MAX_SIZE_BYTES)
    # JAX decides once per process whether the cache is in use, at the first compilation: if
    # anything compiled before `import linflow`, that decision was "no cache" and must be
    # taken again.
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()
    return path
