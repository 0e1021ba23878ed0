import os
import pathlib

import jax
import jax.random as jr
import pytest


jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

# Most of the suite's time is XLA compilation, and many programs are compiled more than once:
# by both test workers, again after `_release_compiled_programs`, and by the notebooks' kernels
# (which inherit these variables). JAX's persistent compilation cache keeps each compiled
# program on disk, keyed by the program, the options and the JAX version, so each is compiled
# once. Set JAX_COMPILATION_CACHE_DIR to use another directory.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".jax_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)


@pytest.fixture
def getkey():
    """A fresh PRNG key on each call, deterministic across runs."""
    state = {"key": jr.PRNGKey(5678)}

    def _getkey():
        state["key"], sub = jr.split(state["key"])
        return sub

    return _getkey


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compilation caches after each test module.

    Every compiled XLA:CPU program keeps its machine code in memory mappings of its own; the
    whole suite in one process compiles enough programs to pass Linux's default limit of 65,530
    mappings per process (`vm.max_map_count`), after which compilation crashes (segmentation
    fault or abort inside XLA). Programs a later module needs are compiled again.
    """
    yield
    jax.clear_caches()
