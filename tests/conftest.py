import jax
import jax.random as jr
import pytest


jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


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
