"""Render the numbers in README.md and docs/ from the results files in benchmarks/results/.

    python benchmarks/report.py            # rewrite every generated block in place
    python benchmarks/report.py --check    # exit 1 if a committed block differs (tests run this)

A generated block is the text between two markers in a markdown file:

    <!-- report:NAME -->
    ...
    <!-- /report:NAME -->

and NAME is a function below registered with `@block("NAME")`, which reads the results files
and returns the block's text. Every results file (`benchmarks/results/*.json`) must say where it
comes from (`REQUIRED`): `--check` lists the files that do not, and the `results-files` block
tables them all, so a new benchmark's file appears there without an edit here.
(`--quick`, the benchmarks' smoke-test flag, is `--check`.)
"""

import argparse
import difflib
import json
import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REQUIRED = ("benchmark", "mode", "machine", "linflow_version", "commit")
BLOCK = re.compile(
    r"(?P<open><!-- report:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- /report:(?P=name) -->)",
    re.S,
)
_BLOCKS: dict[str, Callable[[], str]] = {}


def block(name: str):
    def register(fn):
        _BLOCKS[name] = fn
        return fn

    return register


def load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path.relative_to(ROOT)}: no such results file")
    return json.loads(path.read_text())


def sci(x: float) -> str:
    """1e-4 style (no zero padding); plain below 1e3 and above 1e-2."""
    if 1e-2 <= abs(x) < 1e3:
        return f"{x:g}"
    mantissa, exponent = f"{x:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def span(values, fmt="{:.1f}", sep="-") -> str:
    lo, hi = min(values), max(values)
    a, b = fmt.format(lo), fmt.format(hi)
    return a if a == b else f"{a}{sep}{b}"


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


# --------------------------------------------------------------------------------------------
# Blocks


@block("results-files")
def results_files() -> str:
    rows = [
        "| results file | benchmark | mode | machine | date | linflow | commit |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        d = json.loads(path.read_text())
        m = d.get("machine", {})
        if m.get("jax_backend") == "gpu":
            where = m.get("device_kind", "GPU")
        else:
            where = f"{m.get('cpu_count', '?')}-core CPU"
        rows.append(
            f"| `{path.name}` | {d.get('benchmark', '?')} | {d.get('mode', '?')} | {where} | "
            f"{m.get('date', '?')} | {d.get('linflow_version', '?')} | {d.get('commit', '?')} |"
        )
    return "\n".join(rows)


def _differentiate_ratios():
    rows = load("differentiate")["rows"]
    backprop = [r["backprop_s"] / r["forward_s"] for r in rows]
    implicit = [r["implicit_s"] / r["forward_s"] for r in rows]
    ds = sorted({r["d"] for r in rows})
    return backprop, implicit, ds


@block("readme-differentiate")
def readme_differentiate() -> str:
    backprop, implicit, ds = _differentiate_ratios()
    return (
        f"- **Gradients of the limit**: the implicit adjoint costs {span(implicit, '{:.2f}')}x "
        f"one forward flow, backpropagation through the solver {span(backprop)}x "
        f"($d$ = {ds[0]:,} to {ds[-1]:,}; `benchmarks/results/differentiate.json`)."
    )


@block("flow-vs-gd-min-fig2")
def flow_vs_gd_min_fig2() -> str:
    d = load("min_fig2_3")
    cases = d["cases"].values()
    gd = [c["gd_wall_s"] for c in cases]
    flow = [c["flow_wall_s"] for c in cases]
    steps = [c["flow_steps"] for c in cases]
    solvers = sorted({c["flow_solver"] for c in cases})
    ratio = [c["gd_wall_s"] / c["flow_wall_s"] for c in cases]
    return (
        f"| Min et al. Fig. 2 ($D={d['D']}$, $n={d['n']}$, $h={d['h']}$; {len(ratio)} "
        f"initialisations) | η = {sci(d['lr'])}: {d['steps']:,} steps, {span(gd)} s | "
        f"{', '.join(solvers)}: {span(steps, '{:d}')} steps, {span(flow, '{:.2f}')} s | "
        f"{span(ratio, '{:.0f}')}× |"
    )


@block("min-fig2-3-cases")
def min_fig2_3_cases() -> str:
    d = load("min_fig2_3")
    head = (
        f"| Figs 2–3, full (D={d['D']}, n={d['n']}, m={d['m']}, h={d['h']}, GD η={sci(d['lr'])} "
        f"on the averaged loss, {d['steps']:,} steps) | "
    )
    rows = []
    for i, (name, c) in enumerate(d["cases"].items()):
        holds = "holds" if c["bound_holds"] else "fails"
        rows.append(
            (head if i == 0 else "| | ")
            + f"{name}: c = {c['c']:.3g}, refined c̃ = {c['margin_rate']:.3g}; flow "
            f"{c['flow_solver']} {c['flow_steps']} steps; Thm 1 bound {holds} at all "
            f"{len(d['ks'])} saved times; max\\|GD − flow\\|/L(0) = "
            f"{sci(c['max_gd_flow_gap_rel'])}; GD {c['gd_wall_s']:.1f} s vs flow "
            f"{c['flow_wall_s']:.2f} s: **{c['gd_wall_s'] / c['flow_wall_s']:.0f}×** |"
        )
    return "\n".join(rows)


@block("flow-vs-gd-summary")
def flow_vs_gd_summary() -> str:
    d = load("flow_vs_gd")
    eps = 1e-5
    rows = [
        r
        for r in d["equal_accuracy"]
        if r["eps"] == eps and r["status"] == "reached" and r["alpha"] < 1
    ]
    rows.sort(key=lambda r: -r["alpha"])

    def each(fmt, key):
        return " / ".join(fmt(r[key]) for r in rows)

    return (
        f"| diagonal net, $N={d['n']}$, $d={d['d']}$, to within {sci(eps)} of the limit "
        f"(α = {each(sci, 'alpha')}) | η = {each('{:.1e}'.format, 'eta')}: "
        f"{each('{:.1e}'.format, 'gd_steps_to_eps')} steps, "
        f"{each(_seconds, 'gd_time_to_eps_s')} | {each(_seconds, 'flow_time_s')} | "
        f"{each('{:,.0f}'.format, 'time_ratio_gd_over_flow')}× |"
    )


@block("flow-vs-gd-floor")
def flow_vs_gd_floor() -> str:
    rows = ["| α | η | exact flow | plain GD, best |", "|---|---|---|---|"]
    for r in load("flow_vs_gd")["rows"]:
        rows.append(
            f"| {sci(r['alpha'])} | {sci(r['eta'])} | {_seconds(r['flow_time_s'])}, error "
            f"{r['flow_error']:.1e} | {r['gd_best_error']:.1e} after {r['gd_steps_to_goal']:,} "
            f"steps ({r['gd_time_to_goal_s']:.2f} s) |"
        )
    return "\n".join(rows) + "\n"


@block("flow-vs-gd-equal-accuracy")
def flow_vs_gd_equal_accuracy() -> str:
    rows = [
        "| α | ε | flow (its error) | GD: η, steps to ε, time | GD / flow |",
        "|---|---|---|---|---|",
    ]
    for r in load("flow_vs_gd")["equal_accuracy"]:
        flow = f"{_seconds(r['flow_time_s'])} ({r['flow_error']:.1e})"
        if r["status"] == "reached":
            gd = (
                f"{r['eta']:.1e}, {r['gd_steps_to_eps']:,} steps, {_seconds(r['gd_time_to_eps_s'])}"
            )
            x = r["time_ratio_gd_over_flow"]
            ratio = f"{x:,.0f}×" if x >= 10 else f"{x:.1f}×"
        else:
            gd, ratio = f"{r['eta']:.1e}: {r['status']}", "—"
        rows.append(f"| {sci(r['alpha'])} | {sci(r['eps'])} | {flow} | {gd} | {ratio} |")
    return "\n".join(rows) + "\n"


@block("two-layer-vs-gd")
def two_layer_vs_gd() -> str:
    d = load("two_layer_vs_gd")
    st, gd, default, full = d["setting"], d["gd"], d["flow_default"], d["flow_full"]
    ends = d["flow_default_two_saves"]
    U, V = d["max_abs_U_default_vs_full"], d["max_abs_V_default_vs_full"]
    return (
        f"| Min et al. Fig. 2, their data ($D={st['D']}$, $n={st['n']}$, $m={st['m']}$, "
        f"$h={st['h']}$), to a relative loss of {sci(gd['rel_loss_target'])} | "
        f"η = {sci(gd['learning_rate'])}: {gd['steps']:,} steps, {gd['seconds']:.1f} s | "
        f"default ({default['form']}, {default['solver']}): {default['steps']} steps, "
        f"{default['seconds']:.2f} s; full form: {full['steps']} steps, {full['seconds']:.2f} s "
        f"(U, V equal to {sci(max(U, V))}); default saving only $t = 0$ and the end: "
        f"{ends['seconds']:.2f} s | {d['speedup_gd_over_default']:.0f}× "
        f"(2 saves {d['speedup_gd_over_default_two_saves']:.0f}×, "
        f"full form {d['speedup_gd_over_full']:.0f}×) |"
    )


@block("reduced-vs-full")
def reduced_vs_full() -> str:
    rows = [r for r in load("reduced_scaling")["rows"] if "full_s" in r]
    ratio = [r["full_s"] / r["reduced_s"] for r in rows]
    alphas = sorted({r["alpha"] for r in rows})
    ds = sorted({r["d"] for r in rows})
    where = ", ".join(f"{d:,}" for d in ds)
    lo, hi = sci(alphas[0]), sci(alphas[-1])
    return (
        f"The full parameter flow (run at $d$ = {where}, α = {lo} to {hi}) "
        f"is {span(ratio, '{:.0f}')}x slower than the reduced form."
    )


@block("solver-matrix")
def solver_matrix() -> str:
    data = load("solver_matrix")
    alphas = sorted({r["alpha"] for r in data["summary"]})
    families = list(dict.fromkeys(r["family"] for r in data["summary"]))
    rows = [
        "| family (parameters, form) | " + " | ".join(f"α = {sci(a)}" for a in alphas) + " |",
        "|---" * (len(alphas) + 1) + "|",
    ]
    for family in families:
        auto = [r for r in data["rows"] if r["family"] == family and r["solver"] == "auto"]
        cells = []
        for a in alphas:
            (s,) = [r for r in data["summary"] if r["family"] == family and r["alpha"] == a]
            (t,) = [r for r in auto if r["alpha"] == a]
            cells.append(f"{s['auto_over_best']:.2f} ({s['best']}; {_seconds(t['time_s'])})")
        label = f"{family} ({auto[0]['states']:,}, {auto[0]['form']})"
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


@block("solver-matrix-vs-reference")
def solver_matrix_vs_reference() -> str:
    """Time now over time at the reference commit, per family, for every (alpha, solver) cell
    that converged in both runs (`solver_matrix.json` and `solver_matrix_<commit>.json`)."""
    import statistics

    now = load("solver_matrix")
    ref_name = next(p.stem for p in sorted(RESULTS.glob("solver_matrix_*.json")))
    ref = load(ref_name)

    def converged(data):
        return {
            (r["family"], r["alpha"], r["solver"]): r
            for r in data["rows"]
            if r.get("status") == "converged"
        }

    a, b = converged(now), converged(ref)
    rows = [
        f"| family | cells | median, time now / at `{ref['commit']}` | range | steps equal |",
        "|---|---|---|---|---|",
    ]
    for family in dict.fromkeys(k[0] for k in a):
        keys = [k for k in a if k[0] == family and k in b]
        if not keys:
            continue
        ratios = [a[k]["time_s"] / b[k]["time_s"] for k in keys]
        same = sum(a[k]["steps"] == b[k]["steps"] for k in keys)
        forms = sorted({a[k]["form"] for k in keys}), sorted({b[k]["form"] for k in keys})
        then = "" if forms[0] == forms[1] else f"; then {'/'.join(forms[1])}"
        rows.append(
            f"| {family} ({'/'.join(forms[0])}{then}) | {len(keys)} "
            f"| {statistics.median(ratios):.2f} "
            f"| {min(ratios):.2f}-{max(ratios):.2f} | {same} of {len(keys)} |"
        )
    return "\n".join(rows) + "\n"


def _seconds(x: float) -> str:
    if x < 1e-3:
        return f"{1e6 * x:.0f} µs"
    return f"{1e3 * x:.1f} ms" if x < 1 else f"{x:.2f} s"


@block("step-cost")
def step_cost() -> str:
    rows = [
        "| case | form, solver | steps | time per step | step / field | field | method "
        "| event | saves |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in load("step_cost")["rows"]:
        head = (
            f"| {r['family']} | {r['form']}, {r['solver']} | {r['steps']:,} "
            f"| {_seconds(r['flow_step_s'])} |"
        )
        if "share" not in r:
            rows.append(head + f" {r.get('note', '')} | | | | |")
            continue
        share = " | ".join(
            f"{100 * r['share'][k]:.0f}%" for k in ("field", "method", "event", "saves")
        )
        rows.append(head + f" {r['step_over_field']:.1f} | {share} |")
    return "\n".join(rows) + "\n"


@block("compile-time")
def compile_time() -> str:
    data = load("compile_time")
    rows = [
        "| row | linflow first call: wall (CPU) | warm | second process (of cold) "
        "| diffrax Tsit5 first: wall (CPU) | first / diffrax: wall (CPU) "
        "| without the runs: (first - warm) / diffrax's |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        lf, dx = r["linflow"], r["diffrax"]
        second = r.get("linflow_second_process")
        second = f"{second['first_s']:.2f} s ({r['second_over_cold']:.2f})" if second else ""
        first = f"{lf['first_s']:.2f} s ({lf['first_cpu_s']:.2f} s)"
        plain = f"{dx['first_s']:.2f} s ({dx['first_cpu_s']:.2f} s)"
        ratio = f"{r['first_over_diffrax']:.2f} ({r['first_cpu_over_diffrax']:.2f})"
        compile_only = (lf["first_s"] - lf["warm_s"]) / (dx["first_s"] - dx["warm_s"])
        rows.append(
            f"| {r['family']}, {r['transform']} | {first} | {lf['warm_s']:.3f} s | {second} "
            f"| {plain} | {ratio} | {compile_only:.2f} |"
        )
    load_note = data["machine_load"]["note"]
    rows += ["", f"Machine load during the run: {load_note}.", ""]
    breakdown = data.get("breakdown") or {}
    if breakdown and "error" not in breakdown:
        rows += [
            "| program (depth 2, α = 0.01, ahead of time) | trace | lower | XLA compile (CPU) "
            "| StableHLO characters |",
            "|---|---|---|---|---|",
        ]
        for name, b in breakdown.items():
            rows.append(
                f"| {name} | {b['trace_s']:.2f} s | {b['lower_s']:.2f} s | {b['compile_s']:.2f} s "
                f"({b['compile_cpu_s']:.2f} s) | {b['stablehlo_chars']:,} |"
            )
        rows.append("")
    return "\n".join(rows)


@block("compile-time-vs-reference")
def compile_time_vs_reference() -> str:
    """First calls, second processes and the ahead-of-time programs of `compile_time.json`
    against `compile_time_<commit>.json` (the same benchmark at an earlier commit, same
    machine, same session)."""
    now = load("compile_time")
    ref = load(next(p.stem for p in sorted(RESULTS.glob("compile_time_*.json"))))
    then = {(r["family"], r["transform"]): r for r in ref["rows"]}
    rows = [
        f"| row | first call, now / at `{ref['commit']}` | second process, now / then |",
        "|---|---|---|",
    ]
    for r in now["rows"]:
        old = then.get((r["family"], r["transform"]))
        if old is None:
            continue
        first = f"{r['linflow']['first_s']:.2f} s / {old['linflow']['first_s']:.2f} s"
        second, second_old = r.get("linflow_second_process"), old.get("linflow_second_process")
        second = (
            f"{second['first_s']:.2f} s / {second_old['first_s']:.2f} s"
            if second and second_old
            else ""
        )
        rows.append(f"| {r['family']}, {r['transform']} | {first} | {second} |")
    rows += [
        "",
        "| program (ahead of time) | trace, now / then | StableHLO characters, now / then |",
        "|---|---|---|",
    ]
    for name, b in now["breakdown"].items():
        old = ref["breakdown"].get(name)
        if old is not None:
            rows.append(
                f"| {name} | {b['trace_s']:.2f} s / {old['trace_s']:.2f} s "
                f"| {b['stablehlo_chars']:,} / {old['stablehlo_chars']:,} |"
            )
    return "\n".join(rows) + "\n"


def _colab_base() -> str | None:
    url = pyproject().get("urls", {}).get("Repository", "")
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", url)
    if match is None:
        return None
    return f"https://colab.research.google.com/github/{match[1]}/{match[2]}/blob/v{pyproject()['version']}"


@block("colab-links")
def colab_links() -> str:
    notebooks = sorted((ROOT / "examples").glob("*.ipynb"))
    base = _colab_base()
    if base is None:
        return (
            "Open-in-Colab links are generated here from `[project.urls] Repository` in "
            "`pyproject.toml` once it names the project's public GitHub repository (it is a "
            "placeholder now). Until then, upload a notebook to Colab and set `LINFLOW_SOURCE` "
            "in its first cell."
        )
    badge = "https://colab.research.google.com/assets/colab-badge.svg"
    return "\n".join(
        f"- [![Open In Colab]({badge})]({base}/examples/{p.name}) `{p.stem}`" for p in notebooks
    )


# --------------------------------------------------------------------------------------------


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def render(text: str, where: str) -> str:
    def replace(match):
        name = match["name"]
        if name not in _BLOCKS:
            raise KeyError(f"{where}: unknown generated block {name!r}; known: {sorted(_BLOCKS)}")
        return match["open"] + _BLOCKS[name]().rstrip("\n") + "\n" + match["close"]

    return BLOCK.sub(replace, text)


def missing_provenance() -> list[str]:
    problems = []
    for path in sorted(RESULTS.glob("*.json")):
        d = json.loads(path.read_text())
        missing = [k for k in REQUIRED if k not in d]
        if "date" not in d.get("machine", {}):
            missing.append("machine.date")
        if missing:
            problems.append(f"{path.relative_to(ROOT)}: missing {', '.join(missing)}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated block differs")
    parser.add_argument("--quick", action="store_true", help="the same as --check")
    args = parser.parse_args(argv)
    check = args.check or args.quick
    problems = missing_provenance()
    used = set()
    for path in documents():
        text = path.read_text()
        where = str(path.relative_to(ROOT))
        used.update(m["name"] for m in BLOCK.finditer(text))
        new = render(text, where)
        if new == text:
            continue
        if check:
            diff = difflib.unified_diff(
                text.splitlines(), new.splitlines(), where, where + " (from results)", lineterm=""
            )
            problems.append("\n".join(diff))
        else:
            path.write_text(new)
            print(f"updated {where}")
    problems += [f"block {name!r} is used in no document" for name in sorted(set(_BLOCKS) - used)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems and check:
        print("run `python benchmarks/report.py` to regenerate the blocks", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
