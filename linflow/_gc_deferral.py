"""Python's full garbage collections deferred while a flow is traced and compiled.

Tracing a flow creates hundreds of thousands of Python objects (jaxprs, tracers, equations).
With CPython's default thresholds the collector runs a full (generation 2) collection every
ten younger ones, and each walks the whole, still growing heap: about 0.1 s of the 0.8 s a
new process spends before its first depth-2 flow, with the compiled program on disk. Raising
the generation-2 threshold for the duration of the call defers those walks; young
collections continue, and objects without cycles are freed by reference counting as usual.
Once the threshold is restored the generation-2 count is past it, so the next young
collection runs the deferred full one.
"""

import contextlib
import gc


_DEFERRED = 1_000_000  # generation-2 threshold while tracing (CPython's default: 10)


@contextlib.contextmanager
def full_collections_deferred():
    """Run the enclosed code with full collections deferred (reentrant; a threshold already
    at least this high, e.g. set by the user, is left alone)."""
    g0, g1, g2 = gc.get_threshold()
    if g2 >= _DEFERRED:
        yield
        return
    gc.set_threshold(g0, g1, _DEFERRED)
    try:
        yield
    finally:
        if gc.get_threshold() == (g0, g1, _DEFERRED):  # unless changed inside the block
            gc.set_threshold(g0, g1, g2)
