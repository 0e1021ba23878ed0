"""Shared pieces of the benchmark scripts: output folders, JSON, and an optax GD baseline."""

import argparse
import json
import os
import pathlib
import time

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402
import optax  # noqa: E402


matplotlib.use("Agg")

HERE = pathlib.Path(__file__).parent


def parse(description, extra=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes, < 60 s, results/quick/")
    if extra is not None:
        extra(p)
    args = p.parse_args()
    out = HERE / "results" / ("quick" if args.quick else "")
    os.makedirs(out, exist_ok=True)
    return args, out


def save_json(path, payload):
    def conv(x):
        if hasattr(x, "tolist"):
            return x.tolist()
        raise TypeError(type(x))

    with open(path, "w") as f:
        json.dump(payload, f, indent=1, default=conv)


def gd(loss_fn, params, lr, steps, record_every):
    """Plain GD (`optax.sgd`) on `loss_fn(params)` in one jitted `lax.scan`; returns the
    parameters and the loss recorded every `record_every` steps (first entry: step 0), and
    the wall time of the run (compilation included)."""
    opt = optax.sgd(lr)
    n_rec = steps // record_every

    @jax.jit
    def run(params):
        state = opt.init(params)

        def step(carry, _):
            p, s = carry
            g = jax.grad(loss_fn)(p)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), None

        def block(carry, _):
            loss = loss_fn(carry[0])
            carry, _ = jax.lax.scan(step, carry, None, length=record_every)
            return carry, loss

        (p, _), losses = jax.lax.scan(block, (params, state), None, length=n_rec)
        return p, jnp.append(losses, loss_fn(p))

    t0 = time.perf_counter()
    p, losses = jax.block_until_ready(run(params))
    return p, losses, time.perf_counter() - t0
