"""Throughput of many initialisations: one vmapped flow vs a Python loop of compiled flows.

A batched diffrax solve runs until its slowest member, and every member takes the same steps;
on CPU, tiny problems gain little from vectorising. This measures flows/second both ways on
the same random initialisations, at one scale (alpha fixed, random shapes w0) and across scales.

On an accelerator one flow is a long chain of small kernels, so the loop is slow there; it
runs for at most `--loop-seconds` (the whole batch if that comes first) and its throughput is
counted over the flows it finished, each compared with the vmapped answer.

    python benchmarks/vmap_throughput.py [--quick] [--batch 256] [--loop-seconds 60]
"""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from _common import parse, write

import linflow as lf


def main():
    def options(p):
        p.add_argument("--batch", type=int, default=None, help="initialisations (default 256)")
        p.add_argument("--loop-seconds", type=float, default=60.0, help="time cap of the loop")

    args = parse(__doc__, options)
    n, d = (10, 25) if args.quick else (40, 100)
    batch = args.batch or (16 if args.quick else 256)
    prob, _ = lf.sparse_regression(jr.PRNGKey(0), n, d, 5)

    @eqx.filter_jit
    def one(model):
        sol = lf.flow(model, prob, throw=False, saveat=lf.SaveAt(num=2))
        return sol.final.predictor(), sol.result

    batched = eqx.filter_jit(eqx.filter_vmap(one))
    cases = {
        "same alpha (0.1), random w0": (
            jnp.full(batch, 0.1),
            0.5 + jr.uniform(jr.PRNGKey(1), (batch, d)),
        ),
        "alpha in [1e-2, 10]": (jnp.geomspace(1e-2, 10.0, batch), jnp.ones((batch, d))),
    }
    rows = []
    for name, (alphas, w0s) in cases.items():
        models = jax.vmap(lambda a, w: lf.DiagonalNet.unbiased(d, a, w0=w))(alphas, w0s)
        jax.block_until_ready(batched(models))
        t = time.perf_counter()
        out_v, res_v = jax.block_until_ready(batched(models))
        t_vmap = time.perf_counter() - t
        # Loop order: a low-discrepancy permutation, so a time-capped loop still samples the
        # whole range of the batch (the alpha case is sorted from stiff to easy).
        order = sorted(range(batch), key=lambda i: (i * 0.6180339887498949) % 1.0)
        singles = [jax.tree.map(lambda x, i=i: x[i], models) for i in order]
        jax.block_until_ready(one(singles[0]))
        outs, t = [], time.perf_counter()
        for m in singles:
            outs.append(jax.block_until_ready(one(m)))
            if time.perf_counter() - t > args.loop_seconds:
                break
        t_loop = (time.perf_counter() - t) * batch / len(outs)  # the whole batch's time
        loop_out = jnp.stack([o[0] for o in outs])
        diff = float(jnp.max(jnp.abs(out_v[jnp.array(order[: len(outs)])] - loop_out)))
        rows.append(
            dict(
                case=name,
                batch=batch,
                loop_flows_timed=len(outs),
                vmap_s=t_vmap,
                loop_s=t_loop,
                vmap_flows_per_s=batch / t_vmap,
                loop_flows_per_s=batch / t_loop,
                speedup_vmap_over_loop=t_loop / t_vmap,
                max_abs_difference=diff,
                all_converged=bool(jnp.all(res_v == lf.RESULTS.converged)),
            )
        )
        print(
            f"{name}: vmap {batch / t_vmap:.1f} flows/s, loop {batch / t_loop:.1f} flows/s, "
            f"vmap/loop throughput = {t_loop / t_vmap:.2f}x (max diff {diff:.1e})"
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["vmap_flows_per_s"] for r in rows], 0.4, label="vmap")
    ax.bar([i + 0.2 for i in x], [r["loop_flows_per_s"] for r in rows], 0.4, label="loop")
    ax.set_xticks(list(x), [r["case"] for r in rows], fontsize=8)
    ax.set_ylabel(f"flows / s ({jax.default_backend()})")
    ax.legend()
    write(args, "vmap_throughput", {"n": n, "d": d, "rows": rows}, fig)


if __name__ == "__main__":
    main()
