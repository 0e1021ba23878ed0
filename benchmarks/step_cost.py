"""The cost of a flow step against the cost of its vector field, per model family and form.

A step of an explicit Runge-Kutta method evaluates the vector field once per new stage
(Dopri8: 13) and spends the rest on combining the stages, the error estimate and the step-size
control, and, in `linflow.flow`, on the stop event and the saves. For each case the warm
wall time per step is measured four ways, each the best of 3-30 runs after compilation
(about 1 s of runs), on the solver `linflow.Auto` chooses:

- `flow`: `linflow.flow` as a user calls it (stop event, 64 saves);
- `flow_1save`: the same with one save (`SaveAt(num=1)`): the difference is the saves;
- `bare`: a plain `diffrax.diffeqsolve` of the same system's vector field with the same
  solver and step-size controller up to the flow's final time, no event and one save: the
  difference to `flow_1save` is the stop and divergence event (the predictor, the loss and
  the stationarity test at every step), plus the flow's once-per-run work (its first-step
  rule, the final model and loss) spread over the steps, which counts on short flows;
- `field`: one evaluation of the vector field, timed in a jitted loop of 200 evaluations
  (each feeding the next, so none is skipped), times the solver's new stages per step: the
  difference to `bare` is the method's own work (stage combinations, error norm, control).

`step / field` is the time of a flow step in units of one evaluation of its vector field
(the gradient, for the parameter forms). For an implicit solver (Kvaerno5, chosen for some
full forms) the "method" share also holds its Jacobians and Newton iterations.

Cases: a diagonal net (d = 1000, N = 100; reduced and full form), the two-layer net of Min et
al.'s Fig. 2 (D = 400, n = 100, m = 1, h = 500; the exact row-space form and the full
parameter flow), matrix completion with a two-layer factorisation (d = 6, k = 500; the
propagator of its factors and the full parameter flow) and a depth-3 convolutional tensor
net (d = 16, full form). `--quick`: smaller
sizes, no tensor net, one timed run each (a smoke test).
"""

import diffrax
import jax
import jax.random as jr
import numpy as np
from _common import parse, timed, write

import linflow as lf
from linflow._flow import _select_system


_FIELD_EVALS = 200


_SMOKE = [False]  # `--quick`: one timed run each, a smoke test of the script


def _repeats(seconds):
    """Best of at least 3 runs, more for short ones (about 1 s of runs, at most 30)."""
    if _SMOKE[0]:
        return 1
    return int(min(30, max(3, 1.0 / max(seconds, 1e-6))))


def cases(quick):
    key = jr.PRNGKey(0)
    d, n = (100, 20) if quick else (1000, 100)
    sparse, _ = lf.sparse_regression(jr.fold_in(key, 1), n, d, 5)
    diagonal = lf.DiagonalNet.unbiased(d, 0.1)

    D, nn, h = (40, 10, 50) if quick else (400, 100, 500)
    X = jr.normal(jr.fold_in(key, 2), (nn, D)) / np.sqrt(D)
    Y = jr.normal(jr.fold_in(key, 3), (nn, 1))
    k1, k2 = jr.split(jr.fold_in(key, 4))
    two_layer = lf.TwoLayer(0.1 * jr.normal(k1, (D, h)), 0.1 * jr.normal(k2, (1, h)))

    dc, k = (6, 50) if quick else (6, 500)
    completion, _ = lf.matrix_completion(jr.fold_in(key, 5), (dc, dc), 1, 20)
    k3, k4 = jr.split(jr.fold_in(key, 6))
    factors = lf.TwoLayer(0.1 * jr.normal(k3, (dc, k)), 0.1 * jr.normal(k4, (dc, k)))

    dt = 16
    Xt = jr.normal(jr.fold_in(key, 7), (n, dt))
    tensor_problem = lf.Regression(Xt, Xt @ jr.normal(jr.fold_in(key, 8), (dt,)))
    tensor = lf.TensorNet.convolution(jr.fold_in(key, 9), dt, 3, 0.5)

    return [
        (f"diagonal d={d}", "reduced", diagonal, sparse),
        (f"diagonal d={d}", "full", diagonal, sparse),
        (f"two-layer D={D} h={h}", "auto", two_layer, lf.Regression(X, Y)),
        (f"two-layer D={D} h={h}", "full", two_layer, lf.Regression(X, Y)),
        (f"completion d={dc} k={k}", "auto", factors, completion),
        (f"completion d={dc} k={k}", "full", factors, completion),
    ] + ([] if quick else [(f"tensor convolution d={dt} L=3", "auto", tensor, tensor_problem)])


def _field_time(system, problem, y0):
    """Seconds per evaluation of `system.vector_field`, in one jitted loop of evaluations."""

    @jax.jit
    def loop(y, problem):
        def body(_, y):
            f = system.vector_field(0.0, y, problem)
            # A step far below rounding keeps y, and makes each evaluation depend on the last.
            return jax.tree.map(lambda a, b: a + 1e-300 * b, y, f)

        return jax.lax.fori_loop(0, _FIELD_EVALS, body, y)

    timed(loop, y0, problem)
    _, seconds = timed(loop, y0, problem)
    _, seconds = timed(loop, y0, problem, repeat=_repeats(seconds))
    return seconds / _FIELD_EVALS


def _bare_time(system, problem, choice, t1, steps):
    """Seconds per step of a plain `diffeqsolve` of the system up to `t1`."""
    solver = choice.solver
    controller = choice.stepsize_controller

    @jax.jit
    def solve(y0, problem):
        return diffrax.diffeqsolve(
            diffrax.ODETerm(system.vector_field),
            solver,
            t0=0.0,
            t1=t1,
            dt0=None,
            y0=y0,
            args=problem,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=controller,
            max_steps=max(4 * steps, 1000),
            throw=False,
        )

    y0 = system.initial_state()
    sol, _ = timed(solve, y0, problem)
    sol, seconds = timed(solve, y0, problem)
    _, seconds = timed(solve, y0, problem, repeat=_repeats(seconds))
    return seconds / int(sol.stats["num_steps"]), int(sol.stats["num_steps"])


def measure(family, form, model, problem):
    system = _select_system(model, problem, form)
    choice = lf.Auto().choose(system, problem)
    first = choice.first if isinstance(choice, lf.Fallback) else choice
    row = dict(family=family, form=system.name, solver=first.name)

    def run(saveat):
        return lambda: lf.flow(model, problem, form=form, saveat=saveat, throw=False)

    timed(run(lf.SaveAt()))  # compile
    sol, _ = timed(run(lf.SaveAt()))
    repeat = _repeats(_)
    sol, flow_s = timed(run(lf.SaveAt()), repeat=repeat)
    one, _ = timed(run(lf.SaveAt(num=1)))
    one, one_s = timed(run(lf.SaveAt(num=1)), repeat=repeat)
    steps = int(sol.stats["num_steps"])
    row.update(
        status=sol.status,
        steps=steps,
        fallback_steps=int(sol.stats.get("fallback_steps", 0)),
        states=int(sum(x.size for x in jax.tree.leaves(system.initial_state()))),
        flow_step_s=flow_s / steps,
        flow_1save_step_s=one_s / int(one.stats["num_steps"]),
    )
    if row["fallback_steps"]:
        # An implicit continuation has its own cost (a Jacobian and Newton iterations per
        # step): the breakdown below is for explicit steps only.
        row.update(note="the explicit phase ran out of its budget; breakdown skipped")
        return row
    bare_s, bare_steps = _bare_time(system, problem, first, float(sol.t_final), steps)
    field_s = _field_time(system, problem, system.initial_state())
    tableau = first.solver.tableau
    stages = int(tableau.num_stages - tableau.fsal)
    row.update(
        bare_step_s=bare_s,
        bare_steps=bare_steps,
        field_s=field_s,
        stages=stages,
        step_over_field=row["flow_step_s"] / field_s,
        share=dict(
            field=stages * field_s / row["flow_step_s"],
            method=(bare_s - stages * field_s) / row["flow_step_s"],
            event=(row["flow_1save_step_s"] - bare_s) / row["flow_step_s"],
            saves=(row["flow_step_s"] - row["flow_1save_step_s"]) / row["flow_step_s"],
        ),
    )
    return row


def _plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if "share" in r]
    labels = [f"{r['family'].replace(' ', chr(10))}\n{r['form']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4))
    bottom = np.zeros(len(rows))
    for part in ("field", "method", "event", "saves"):
        values = np.array([max(r["share"][part], 0.0) * r["step_over_field"] for r in rows])
        ax.bar(range(len(rows)), values, bottom=bottom, label=part)
        bottom += values
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set_ylabel("time per flow step / one vector field")
    ax.set_title("Where a flow step goes")
    ax.legend(fontsize=8)
    return fig


def main():
    args = parse(__doc__.split("\n")[0])
    _SMOKE[0] = args.quick
    rows = []
    for family, form, model, problem in cases(args.quick):
        row = measure(family, form, model, problem)
        rows.append(row)
        share = row.get("share", {})
        parts = " ".join(f"{k} {v:5.0%}" for k, v in share.items())
        print(
            f"{family:30s} {row['form']:9s} {row['solver']:8s} {row['status']:10s} "
            f"steps {row['steps']:6d}  step {1e3 * row['flow_step_s']:8.3f} ms  "
            f"step/field {row.get('step_over_field', float('nan')):6.1f}  {parts}",
            flush=True,
        )
    write(args, "step_cost", dict(rows=rows), _plot(rows))


if __name__ == "__main__":
    main()
