"""The environment of a new Python process whose only cache is a given linflow folder."""

import os
from pathlib import Path

import linflow as lf


def process_env(cache_dir) -> dict:
    """`os.environ` without JAX's or linflow's cache settings (the tests configure JAX's
    cache, which linflow then leaves alone), with `LINFLOW_CACHE_DIR=cache_dir` and this
    checkout of linflow on the path: the process runs as a user's would."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE", "LINFLOW_CACHE"))
    }
    env["LINFLOW_CACHE_DIR"] = str(cache_dir)
    root = str(Path(lf.__file__).parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    return env
