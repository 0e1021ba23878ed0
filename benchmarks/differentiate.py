"""Differentiating the flow's limit: backpropagation through the solver vs the implicit adjoint.

Depth-2 `DiagonalNet.unbiased(d, alpha)` on `linflow.sparse_regression` (N = 50, 5-sparse
plant, noise 0.1), flowed to its steady state (exact reduced form). The scalar is the
validation loss of the limit, mean((X_val beta_inf - y_val)^2) on a second draw of the same
plant; its gradient with respect to alpha (through the initialisation) and to the training
targets y is taken with

- `backprop`: the default `diffrax.RecursiveCheckpointAdjoint()` (binomial checkpointing of
  the solver steps, ~sqrt(2 max_steps) checkpoints);
- `implicit`: `linflow.ImplicitAdjoint()` (Newton root solve at the steady state,
  `optimistix.ImplicitAdjoint`).

For each d and alpha: compile time (ahead of time: `jax.jit(...).lower(...).compile()`), wall
time of a compiled call (compilation excluded; best of a few calls, one call at the largest d),
the forward flow's time for reference, XLA's compiled memory analysis (temporary buffers;
arguments and outputs are the same for both), and the accuracy: relative difference between
the two gradients and against central finite differences (in alpha, and along a random
direction in y). A second table shows how backprop's temporary memory grows with `max_steps`
(its number of checkpoints) while the implicit adjoint's does not.
"""

import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from _common import parse, timed, write

import linflow as lf


N, SPARSITY, NOISE = 50, 5, 0.1
METHODS = {"backprop": None, "implicit": lf.ImplicitAdjoint()}
MEMORY_FIELDS = (
    "temp_size_in_bytes",
    "argument_size_in_bytes",
    "output_size_in_bytes",
    "generated_code_size_in_bytes",
    "peak_memory_in_bytes",
)


def validation_loss(adjoint, max_steps=100_000):
    """alpha, y, X, X_val, y_val -> validation MSE of the flow's limit. The data are arguments,
    not closed-over constants (XLA would otherwise constant-fold products of X)."""

    def f(alpha, y, X, X_val, y_val):
        d = X.shape[1]
        sol = lf.flow(
            lf.DiagonalNet.unbiased(d, alpha),
            lf.Regression(X, y),
            adjoint=adjoint,
            saveat=lf.SaveAt(num=1),
            max_steps=max_steps,
        )
        return jnp.mean((X_val @ sol.final.predictor() - y_val) ** 2)

    return f


def compile_timed(fn, *args):
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - t
    mem = compiled.memory_analysis()
    memory = {k: int(getattr(mem, k)) for k in MEMORY_FIELDS if hasattr(mem, k)}
    return compiled, seconds, memory


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main():
    args = parse(__doc__)
    ds = [100] if args.quick else [100, 1_000, 10_000, 100_000]
    alphas = [0.1, 1.0] if args.quick else [1e-2, 0.1, 1.0]
    fd_max_d = 1_000 if args.quick else 10_000  # finite differences cost 4 more flows
    # The main loop compiles with max_steps = 1e5; these are extra compiles at d = 1e3.
    max_steps_list = [] if args.quick else [1_000, 10_000, 1_000_000]
    rows, started = [], time.perf_counter()
    for d in ds:
        prob, _ = lf.sparse_regression(jr.PRNGKey(0), N, d, SPARSITY, noise=NOISE)
        val, _ = lf.sparse_regression(jr.PRNGKey(1), N, d, SPARSITY, noise=NOISE)
        direction = jr.normal(jr.PRNGKey(2), (N,), prob.Y.dtype)
        direction = direction / jnp.linalg.norm(direction)
        data = (prob.X, val.X, val.Y)
        repeat = 1 if (args.quick or d >= 100_000) else 3
        example = (jnp.asarray(1.0), prob.Y, *data)
        value, value_compile_s, _ = compile_timed(validation_loss(METHODS["implicit"]), *example)
        grads = {}
        for name, adjoint in METHODS.items():
            grads[name] = compile_timed(
                jax.grad(validation_loss(adjoint), argnums=(0, 1)), *example
            )
        for alpha in alphas:
            a = jnp.asarray(alpha)
            row = dict(d=d, alpha=alpha, n=N)
            loss, row["forward_s"] = timed(value, a, prob.Y, *data, repeat=repeat)
            row["validation_loss"] = float(loss)
            row["forward_compile_s"] = value_compile_s
            steps = lf.flow(lf.DiagonalNet.unbiased(d, alpha), prob, saveat=lf.SaveAt(num=1))
            row["num_steps"] = int(steps.stats["num_steps"])
            g = {}
            for name, (compiled, compile_s, memory) in grads.items():
                g[name], row[f"{name}_s"] = timed(compiled, a, prob.Y, *data, repeat=repeat)
                row[f"{name}_compile_s"] = compile_s
                row[f"{name}_memory"] = memory
                row[f"{name}_grad_alpha"] = float(g[name][0])
                row[f"{name}_grad_y_norm"] = float(jnp.linalg.norm(g[name][1]))
            row["rel_diff_alpha"] = rel(g["implicit"][0], g["backprop"][0])
            row["rel_diff_y"] = rel(g["implicit"][1], g["backprop"][1])
            if d <= fd_max_d:
                # Central differences: truncation O(h^2), rounding ~ (limit's error) * f / h.
                h = 1e-4 * alpha
                fd_a = (float(value(a + h, prob.Y, *data)) - float(value(a - h, prob.Y, *data))) / (
                    2 * h
                )
                h = 1e-4
                fd_y = (
                    float(value(a, prob.Y + h * direction, *data))
                    - float(value(a, prob.Y - h * direction, *data))
                ) / (2 * h)
                row["fd_grad_alpha"], row["fd_grad_y_dir"] = fd_a, fd_y
                for name in METHODS:
                    row[f"{name}_fd_rel_alpha"] = rel(g[name][0], fd_a)
                    row[f"{name}_fd_rel_y"] = rel(g[name][1] @ direction, fd_y)
            rows.append(row)
            mb = {k: row[f"{k}_memory"]["temp_size_in_bytes"] / 2**20 for k in METHODS}
            fd = (
                f" | vs FD: bp {row['backprop_fd_rel_alpha']:.0e}/{row['backprop_fd_rel_y']:.0e}"
                f" impl {row['implicit_fd_rel_alpha']:.0e}/{row['implicit_fd_rel_y']:.0e}"
                if "fd_grad_alpha" in row
                else ""
            )
            print(
                f"d={d:>6d} alpha={alpha:<5g} steps={row['num_steps']:>5d} | forward "
                f"{row['forward_s']:7.3f}s | backprop {row['backprop_s']:7.3f}s "
                f"(temp {mb['backprop']:6.1f} MiB) | implicit {row['implicit_s']:7.3f}s "
                f"(temp {mb['implicit']:6.1f} MiB) | rel diff a {row['rel_diff_alpha']:.0e} "
                f"y {row['rel_diff_y']:.0e}{fd}",
                flush=True,
            )

    # Memory against max_steps (compile only): backprop keeps O(sqrt(max_steps)) checkpoints.
    d = 1_000
    prob, _ = lf.sparse_regression(jr.PRNGKey(0), N, d, SPARSITY, noise=NOISE)
    val, _ = lf.sparse_regression(jr.PRNGKey(1), N, d, SPARSITY, noise=NOISE)
    example = (jnp.asarray(1.0), prob.Y, prob.X, val.X, val.Y)
    memory_rows = [
        dict(d=d, max_steps=100_000, **{f"{k}_memory": r[f"{k}_memory"] for k in METHODS})
        for r in rows
        if r["d"] == d and r["alpha"] == alphas[0]
    ]
    for max_steps in max_steps_list:
        mrow = dict(d=d, max_steps=max_steps)
        for name, adjoint in METHODS.items():
            fn = jax.grad(validation_loss(adjoint, max_steps), argnums=(0, 1))
            _, mrow[f"{name}_compile_s"], mrow[f"{name}_memory"] = compile_timed(fn, *example)
        memory_rows.append(mrow)
    memory_rows.sort(key=lambda m: m["max_steps"])
    for mrow in memory_rows:
        print(
            f"d={d} max_steps={mrow['max_steps']:>8d}: temp backprop "
            f"{mrow['backprop_memory']['temp_size_in_bytes'] / 2**20:7.2f} MiB, implicit "
            f"{mrow['implicit_memory']['temp_size_in_bytes'] / 2**20:7.2f} MiB",
            flush=True,
        )
    print(f"total {time.perf_counter() - started:.0f} s")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(19, 4))
    styles = {"backprop": "o-", "implicit": "s--"}
    for alpha in alphas:
        sub = [r for r in rows if r["alpha"] == alpha]
        x = [r["d"] for r in sub]
        line = axes[0].loglog(
            x, [r["backprop_s"] for r in sub], "o-", label=f"backprop a={alpha:g}"
        )
        c = line[0].get_color()
        axes[0].loglog(
            x, [r["implicit_s"] for r in sub], "s--", color=c, label=f"implicit a={alpha:g}"
        )
        axes[0].loglog(x, [r["forward_s"] for r in sub], ":", color=c, alpha=0.6)
        axes[3].loglog(x, [r["rel_diff_y"] for r in sub], "o-", color=c, label=f"d/dy, a={alpha:g}")
        axes[3].loglog(
            x, [r["rel_diff_alpha"] for r in sub], "x:", color=c, label=f"d/da, a={alpha:g}"
        )
    axes[0].set_xlabel("d (features)")
    axes[0].set_ylabel("gradient wall time (s); dotted: forward flow")
    axes[0].legend(fontsize=7)
    sub = [r for r in rows if r["alpha"] == alphas[0]]
    for name in METHODS:
        axes[1].loglog(
            [r["d"] for r in sub],
            [r[f"{name}_memory"]["temp_size_in_bytes"] / 2**20 for r in sub],
            styles[name],
            label=f"{name} (max_steps=1e5)",
        )
        axes[2].loglog(
            [m["max_steps"] for m in memory_rows],
            [m[f"{name}_memory"]["temp_size_in_bytes"] / 2**20 for m in memory_rows],
            styles[name],
            label=name,
        )
    axes[1].set_xlabel("d (features)")
    axes[1].set_ylabel("XLA temporary buffers (MiB)")
    axes[1].legend(fontsize=7)
    axes[2].set_xlabel(f"max_steps (d = {d})")
    axes[2].set_ylabel("XLA temporary buffers (MiB)")
    axes[2].legend(fontsize=7)
    axes[3].set_xlabel("d (features)")
    axes[3].set_ylabel("|g_implicit - g_backprop| / |g_backprop|")
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    write(
        args,
        "differentiate",
        {
            "n": N,
            "sparsity": SPARSITY,
            "noise": NOISE,
            "rows": rows,
            "memory_vs_max_steps": memory_rows,
        },
        fig,
    )


if __name__ == "__main__":
    main()
