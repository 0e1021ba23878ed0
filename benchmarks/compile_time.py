"""Time to first result: what a fresh process pays for its first flow, and where it goes.

Each row runs in a fresh Python process (`subprocess`) with JAX's persistent compilation cache
in a new, empty folder (`LINFLOW_CACHE_DIR`), as a user's first run does: first-call and
warm-call wall times, the process's CPU time during the first call, and JAX's own split of
that call into tracing, lowering to StableHLO and XLA compilation (`jax.monitoring`). Next to
each linflow row, a plain `diffrax.diffeqsolve` with Tsit5 of the same vector field (linflow's
own `vector_field` of the same state, the same 64 save times, a steady-state event at
rtol = atol = 1e-8), in a fresh process with no persistent cache. Then a second fresh process
with the first one's cache folder (`second_process`).

Problems: the getting-started sparse regression (N = 40, d = 100), a `DiagonalNet` of depth 2
and 3 at alpha = 0.1, and depth 2 at alpha = 0.01 (stiff: `linflow.Auto`'s explicit phase
runs out of its budget and the implicit solver continues); a two-layer net (D = 10, m = 5,
h = 5, Gaussian init at 0.1, full form: the explicit phase runs out of its budget and
Kvaerno5 continues). Transforms: plain call, `vmap` over 4
scales, `grad` of the squared norm of the final predictor with respect to the scale.

`breakdown` compiles the pieces of one flow ahead of time in one process (`jit(...).trace`,
`.lower`, `.compile`): the explicit phase alone (what a first call compiles when it suffices),
the implicit fallback with its linear solver, both in one program (what a caller's
`jit`/`vmap`/`grad` compiles), the explicit phase without the steady-state test (the cost of
the stop event) and with one save instead of 64, the gradient program (the adjoint), and the
plain Tsit5 solve.

The machine may be shared: ratios are between rows of one run, and CPU times (which count
only this process's threads) are recorded next to wall times.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


FAMILIES = {
    "diagonal D=2": dict(kind="diagonal", depth=2, alpha=0.1),
    "diagonal D=3": dict(kind="diagonal", depth=3, alpha=0.1),
    "two-layer": dict(kind="two_layer", alpha=0.1),
    "diagonal D=2, alpha=0.01 (stiff)": dict(kind="diagonal", depth=2, alpha=0.01),
}
TRANSFORMS = ("plain", "vmap", "grad")
_DURATIONS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace_s",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
    "/jax/core/compile/backend_compile_duration": "compile_s",
}


# ---------------------------------------------------------------- the child processes


def _setup(family):
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    import linflow as lf

    spec = FAMILIES[family]
    if spec["kind"] == "diagonal":
        problem, _ = lf.sparse_regression(jr.PRNGKey(0), n=40, d=100, sparsity=5)

        def model(alpha):
            return lf.DiagonalNet.unbiased(100, alpha, depth=spec["depth"])

    else:
        key = jr.PRNGKey(0)
        X = jr.normal(jr.fold_in(key, 1), (40, 10))
        target = jr.normal(jr.fold_in(key, 2), (10, 2)) @ jr.normal(jr.fold_in(key, 3), (2, 5))
        problem = lf.Regression(X, X @ target)
        U0 = jr.normal(jr.fold_in(key, 4), (10, 5))
        V0 = jr.normal(jr.fold_in(key, 5), (5, 5))

        def model(alpha):
            return lf.TwoLayer(alpha * U0, alpha * V0)

    alphas = spec["alpha"] * jnp.array([1.0, 2.0, 4.0, 8.0])
    jax.block_until_ready(problem)
    return problem, model, spec["alpha"], alphas


def _linflow_calls(problem, model, alpha, alphas):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import linflow as lf

    def plain():
        sol = lf.flow(model(alpha), problem)
        return sol.final_predictor, sol.stats["num_steps"]

    def vmapped():
        sols = eqx.filter_vmap(lambda a: lf.flow(model(a), problem, throw=False))(alphas)
        return sols.final_predictor, sols.stats["num_steps"]

    def grad():
        def f(a):
            return jnp.sum(lf.flow(model(a), problem).final_predictor ** 2)

        return jax.grad(f)(jnp.asarray(alpha)), jnp.asarray(0)

    return dict(plain=plain, vmap=vmapped, grad=grad)


def _plain_diffrax(problem, model):
    """`diffeqsolve` with Tsit5 of linflow's vector field for `model` on `problem`."""
    import diffrax
    import jax
    import jax.numpy as jnp

    import linflow as lf
    from linflow._flow import _select_system

    def solve(a):
        system = _select_system(model(a), problem, "auto")
        ts = lf.SaveAt().times(problem.time_scale(), jnp.float64)
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(system.vector_field),
            diffrax.Tsit5(),
            t0=0.0,
            t1=ts[-1],
            dt0=None,
            y0=system.initial_state(),
            args=problem,
            saveat=diffrax.SaveAt(ts=ts, t1=True),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8),
            event=diffrax.Event(diffrax.steady_state_event(rtol=1e-8, atol=1e-8)),
            max_steps=10_000,  # Tsit5 does not finish the stiff flows; bound its run time
            throw=False,
        )
        return system.predictor(jax.tree.map(lambda y: y[-1], sol.ys)), sol.stats["num_steps"]

    return solve


def _diffrax_calls(problem, model, alpha, alphas):
    import jax
    import jax.numpy as jnp

    solve = _plain_diffrax(problem, model)

    def grad():
        return jax.grad(lambda a: jnp.sum(solve(a)[0] ** 2))(jnp.asarray(alpha)), jnp.asarray(0)

    return dict(
        plain=lambda: solve(jnp.asarray(alpha)),
        vmap=lambda: jax.vmap(solve)(alphas),
        grad=grad,
    )


def child_row(spec):
    t_import = time.perf_counter()
    import jax

    jax.config.update("jax_enable_x64", True)
    from jax import monitoring

    import linflow  # noqa: F401  (the import sets up the compilation cache)

    import_s = time.perf_counter() - t_import
    problem, model, alpha, alphas = _setup(spec["family"])
    calls = (_linflow_calls if spec["tool"] == "linflow" else _diffrax_calls)(
        problem, model, alpha, alphas
    )
    fn = calls[spec["transform"]]
    durations = {v: 0.0 for v in _DURATIONS.values()}
    counts = {"compiles": 0, "cache_hits": 0}
    recording = [False]

    def on_duration(event, duration, **kwargs):
        if recording[0] and event in _DURATIONS:
            durations[_DURATIONS[event]] += duration
            counts["compiles"] += event == "/jax/core/compile/backend_compile_duration"

    def on_event(event, **kwargs):
        if recording[0] and event == "/jax/compilation_cache/cache_hits":
            counts["cache_hits"] += 1

    monitoring.register_event_duration_secs_listener(on_duration)
    monitoring.register_event_listener(on_event)
    recording[0] = True
    wall, cpu = time.perf_counter(), time.process_time()
    _, steps = jax.block_until_ready(fn())
    first_s, first_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    recording[0] = False
    warm = []
    for _ in range(3):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        warm.append(time.perf_counter() - t)
    return dict(
        spec,
        import_s=import_s,
        first_s=first_s,
        first_cpu_s=first_cpu_s,
        warm_s=min(warm),
        steps=int(jax.numpy.max(steps)),
        **durations,
        **counts,
    )


def child_breakdown(spec):
    import diffrax
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import linflow as lf
    from linflow._flow import _integrate, _select_system
    from linflow._log_time import RealTime

    problem, model, alpha, _ = _setup(spec["family"])
    system = _select_system(model(alpha), problem, "auto")
    choice = lf.Auto().choose(system, problem)
    adjoint = diffrax.RecursiveCheckpointAdjoint()
    clock = RealTime()

    def call(part, system, problem, saveat, stop=lf.Converged(), first=None):
        args = (system, problem, saveat, stop, choice, float("inf"), 100_000, adjoint, clock, None)
        return _integrate.__wrapped__(*args, part=part, first=first)

    def integrate(part, stop=lf.Converged(), saveat=lf.SaveAt()):
        def f(system, problem):
            out = call(part, system, problem, saveat, stop)
            return out[0] if part == "first" else out

        return f, (system, problem)

    def then(system, problem, first):
        return call("then", system, problem, lf.SaveAt(), first=first)

    def grad(a):
        return jnp.sum(lf.flow(model(a), problem, throw=False).final_predictor ** 2)

    plain = _plain_diffrax(problem, model)
    first_phase = eqx.filter_eval_shape(
        lambda s, p: call("first", s, p, lf.SaveAt()), system, problem
    )[1]
    pieces = {
        "explicit phase (Dopri8, stop event, 64 saves)": integrate("first"),
        "implicit fallback (Kvaerno5 + LU), continuing it": (
            then,
            (system, problem, first_phase),
        ),
        "both phases in one program (caller's jit/vmap)": integrate("both"),
        "explicit phase without the steady-state test": integrate("first", stop=None),
        "explicit phase with 1 save": integrate("first", saveat=lf.SaveAt(num=1)),
        "gradient through both phases (adjoint)": (jax.grad(grad), (jnp.asarray(alpha),)),
        "plain diffrax Tsit5": (plain, (jnp.asarray(alpha),)),
    }
    out = {}
    for name, (fn, args) in pieces.items():
        dynamic, static = eqx.partition(
            args, lambda x: eqx.is_array(x) or isinstance(x, jax.ShapeDtypeStruct)
        )

        def flat(dynamic, fn=fn, static=static):
            return eqx.filter(fn(*eqx.combine(dynamic, static)), eqx.is_array)

        row = {}
        wall, cpu = time.perf_counter(), time.process_time()
        traced = jax.jit(flat).trace(dynamic)
        row["trace_s"], row["trace_cpu_s"] = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        lowered = traced.lower()
        row["lower_s"], row["lower_cpu_s"] = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        lowered.compile()
        row["compile_s"] = time.perf_counter() - wall
        row["compile_cpu_s"] = time.process_time() - cpu
        row["stablehlo_chars"] = len(lowered.as_text())
        out[name] = row
    return out


# ---------------------------------------------------------------- the driver


def _spawn(spec, cache_dir):
    env = dict(os.environ)
    # Cold means cold: neither the tests' cache (CI shares it with the benchmarks) nor the
    # user's; linflow rows get a folder of their own, the plain diffrax rows none.
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", None)
    if cache_dir is None:
        env["LINFLOW_CACHE"] = "0"
    else:
        env["LINFLOW_CACHE"] = "1"
        env["LINFLOW_CACHE_DIR"] = str(cache_dir)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
    )
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{spec} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load():
    return float(os.getloadavg()[0]) if hasattr(os, "getloadavg") else None


def _plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['family']}\n{r['transform']}" for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4))
    w = 0.27
    ax.bar([i - w for i in x], [r["linflow"]["first_s"] for r in rows], w, label="linflow, cold")
    ax.bar(
        list(x),
        [
            r["linflow_second_process"]["first_s"] if "linflow_second_process" in r else 0
            for r in rows
        ],
        w,
        label="linflow, second process (cache)",
    )
    ax.bar(
        [i + w for i in x], [r["diffrax"]["first_s"] for r in rows], w, label="plain diffrax Tsit5"
    )
    ax.set_xticks(list(x), labels, fontsize=7)
    ax.set_ylabel("first call, fresh process (s)")
    ax.legend(fontsize=8)
    ax.set_title("Time to first result")
    return fig


def main():
    from _common import parse, write

    def extra(p):
        p.add_argument("--families", default=None, help="';'-separated subset of the families")
        p.add_argument("--no-breakdown", action="store_true", help="skip the ahead-of-time split")

    args = parse(__doc__.split("\n")[0], extra)
    if args.quick:
        families, transforms = ["diagonal D=2"], ("plain",)
    else:
        families = args.families.split(";") if args.families else list(FAMILIES)
        transforms = TRANSFORMS
    load_before = _load()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in families:
            for transform in transforms if "stiff" not in family else ("plain",):
                cache = Path(tmp) / f"{len(rows)}"
                row = {"family": family, "transform": transform}
                for tool in ("linflow", "diffrax"):
                    spec = dict(tool=tool, family=family, transform=transform)
                    row[tool] = _spawn(spec, cache if tool == "linflow" else None)
                if transform == "plain":
                    spec = dict(tool="linflow", family=family, transform=transform)
                    row["linflow_second_process"] = _spawn(spec, cache)
                    row["second_over_cold"] = (
                        row["linflow_second_process"]["first_s"] / row["linflow"]["first_s"]
                    )
                row["first_over_diffrax"] = row["linflow"]["first_s"] / row["diffrax"]["first_s"]
                row["first_cpu_over_diffrax"] = (
                    row["linflow"]["first_cpu_s"] / row["diffrax"]["first_cpu_s"]
                )
                rows.append(row)
                lf, dx = row["linflow"], row["diffrax"]
                second = row.get("linflow_second_process", {}).get("first_s", float("nan"))
                print(
                    f"{family:34s} {transform:5s} linflow first {lf['first_s']:6.2f}s "
                    f"(cpu {lf['first_cpu_s']:5.2f}, compile {lf['compile_s']:5.2f}, "
                    f"{lf['compiles']} programs) warm {lf['warm_s']:.3f}s | second process "
                    f"{second:5.2f}s | diffrax first {dx['first_s']:5.2f}s (cpu "
                    f"{dx['first_cpu_s']:5.2f}) warm {dx['warm_s']:.3f}s | ratio "
                    f"{row['first_over_diffrax']:.2f} (cpu {row['first_cpu_over_diffrax']:.2f})",
                    flush=True,
                )
    breakdown = None
    if not args.quick and not args.no_breakdown:
        print("breakdown, diagonal D=2, alpha=0.01 (ahead of time, one process):")
        spec = dict(breakdown=True, family="diagonal D=2, alpha=0.01 (stiff)")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                breakdown = _spawn(spec, Path(tmp))
            except RuntimeError as e:  # keep the rows measured so far
                breakdown = {"error": str(e)[-2000:]}
                print(f"  breakdown failed: {e}")
        for name, row in breakdown.items():
            if isinstance(row, dict):
                print(f"  {name:52s} " + " ".join(f"{k} {v:.2f}" for k, v in row.items()))
    load_after = _load()
    loaded = max(load_before or 0, load_after or 0) > (os.cpu_count() or 1)
    results = dict(
        machine_load=dict(
            loadavg_1min_before=load_before,
            loadavg_1min_after=load_after,
            cpu_count=os.cpu_count(),
            loaded=loaded,
            note=(
                "the machine was shared and loaded (1-min load average above the core count): "
                "wall times are inflated, compare ratios within this run and the CPU times"
                if loaded
                else "machine not loaded"
            ),
        ),
        rows=rows,
        breakdown=breakdown,
    )
    write(args, "compile_time", results, _plot(rows))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        spec = json.loads(sys.argv[2])
        out = child_breakdown(spec) if spec.get("breakdown") else child_row(spec)
        print(json.dumps(out))
    else:
        main()
