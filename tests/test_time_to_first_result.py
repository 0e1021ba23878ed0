"""Time to first result: the persistent compilation cache that `import linflow` configures, no
recompilation for new values of the same shapes, and the implicit fallback compiled only when
the explicit phase runs out of its budget."""

import contextlib
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from fresh_cache import process_env
from jax import monitoring

import linflow as lf
from linflow import _cache
from linflow._checks import checks_as_nan


N, D = 40, 100
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_listening = []


def _on_compile(event, duration, **kwargs):
    if event == _COMPILE_EVENT:
        for programs in _listening:
            programs.append(kwargs.get("fun_name", "?"))


monitoring.register_event_duration_secs_listener(_on_compile)


@contextlib.contextmanager
def _programs():
    """The names of the programs compiled (or loaded from a persistent cache) inside."""
    programs = []
    _listening.append(programs)
    try:
        yield programs
    finally:
        _listening.remove(programs)


@pytest.fixture(scope="module")
def sparse():
    return lf.sparse_regression(jr.PRNGKey(0), N, D, 5)[0]


def _rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@contextlib.contextmanager
def _unconfigured_cache():
    """JAX's cache settings as if nothing had configured them; restored afterwards."""
    names = (
        "jax_compilation_cache_dir",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_compilation_cache_max_size",
    )
    saved = {name: getattr(jax.config, name) for name in names}
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_compilation_cache_max_size", -1)
    try:
        yield
    finally:
        for name, value in saved.items():
            jax.config.update(name, value)
        from jax.experimental.compilation_cache import compilation_cache

        compilation_cache.reset_cache()


def test_cache_folder_is_the_users_cache_folder_unless_moved(monkeypatch, tmp_path):
    monkeypatch.delenv("LINFLOW_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _cache.default_cache_dir() == tmp_path / "home" / ".cache" / "linflow"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.default_cache_dir() == tmp_path / "xdg" / "linflow"
    monkeypatch.setenv("LINFLOW_CACHE_DIR", str(tmp_path / "mine"))
    assert _cache.default_cache_dir() == tmp_path / "mine"


def test_cache_is_set_only_when_the_user_has_not_configured_one(monkeypatch, tmp_path):
    monkeypatch.setenv("LINFLOW_CACHE_DIR", str(tmp_path / "linflow"))
    monkeypatch.delenv("LINFLOW_CACHE", raising=False)
    with _unconfigured_cache():
        assert _cache.configure_compilation_cache() == tmp_path / "linflow"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "linflow")
        # Bounded size: JAX then locks the folder around each read and write.
        assert jax.config.jax_compilation_cache_max_size > 0
    with _unconfigured_cache():
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "users"))
        assert _cache.configure_compilation_cache() is None
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "users")
    for off in ("0", "false", "off"):
        monkeypatch.setenv("LINFLOW_CACHE", off)
        with _unconfigured_cache():
            assert _cache.configure_compilation_cache() is None
            assert jax.config.jax_compilation_cache_dir is None


_FLOW_SCRIPT = textwrap.dedent(
    """
    import jax
    from jax import monitoring
    jax.config.update("jax_enable_x64", True)
    import jax.random as jr
    import linflow as lf

    counts = {"programs": 0, "hits": 0}
    def on_duration(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration" and "_integrate" in kwargs.get(
            "fun_name", ""
        ):
            counts["programs"] += 1
    def on_event(event, **kwargs):
        counts["hits"] += event == "/jax/compilation_cache/cache_hits"
    monitoring.register_event_duration_secs_listener(on_duration)
    monitoring.register_event_listener(on_event)
    problem = lf.sparse_regression(jr.PRNGKey(0), 10, 25, 3)[0]
    sol = lf.flow(lf.DiagonalNet.unbiased(25, 1.0), problem)
    assert sol.status == "converged", sol.status
    print(jax.config.jax_compilation_cache_dir, counts["programs"], counts["hits"])
    """
)


def _python(env, cwd):
    return subprocess.Popen(
        [sys.executable, "-c", _FLOW_SCRIPT],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_processes_sharing_the_cache_folder_read_it_safely(tmp_path):
    # Two processes compile the same flow at the same time into one new folder; a third then
    # loads programs from it. No process may see a broken entry (JAX warns when it cannot
    # read one and compiles instead).
    env = process_env(tmp_path / "cache")
    runs = [_python(env, tmp_path) for _ in range(2)]
    outs = [run.communicate(timeout=600) for run in runs]
    outs.append(_python(env, tmp_path).communicate(timeout=600))
    for stdout, stderr in outs:
        assert "persistent compilation cache" not in stderr.lower(), stderr
        assert stdout.split()[0] == str(tmp_path / "cache"), (stdout, stderr)
    _, programs, hits = outs[-1][0].split()
    assert int(programs) >= 1 and int(hits) >= 1
    # The flow's own program is among the stored ones (JAX stores no program with a host
    # callback: `test_the_flows_program_has_no_host_callback`).
    stored = [p.name for p in (tmp_path / "cache").iterdir()]
    assert any(name.startswith("jit__integrate") for name in stored), stored


def _primitives(jaxpr):
    """The names of every primitive in `jaxpr` and in the jaxprs nested in its equations."""
    for eqn in jaxpr.eqns:
        yield eqn.primitive.name
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    yield from _primitives(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    yield from _primitives(sub)


def _two_layer():
    key = jr.PRNGKey(0)
    X = jr.normal(jr.fold_in(key, 1), (20, 6))
    problem = lf.Regression(X, X @ jr.normal(jr.fold_in(key, 2), (6, 3)))
    U0 = 0.1 * jr.normal(jr.fold_in(key, 3), (6, 4))
    V0 = 0.1 * jr.normal(jr.fold_in(key, 4), (3, 4))
    return lf.TwoLayer(U0, V0), problem


@pytest.mark.parametrize("case", ["depth 2", "depth 3, implicit fallback", "two-layer"])
def test_the_flows_program_has_no_host_callback(case, sparse):
    # JAX's persistent cache never stores a program with a host callback, so one such call
    # would make every new process compile the flow again. Equinox's run-time checks compile
    # to host callbacks (diffrax checks its inputs with them); the flow traces them as NaN
    # (`linflow._checks.checks_as_nan`). Traced here as a caller's `jit` traces it: both
    # phases of the default `Fallback` in one program.
    if case == "two-layer":
        model, problem = _two_layer()
    else:
        depth = 2 if case == "depth 2" else 3
        model, problem = lf.DiagonalNet.unbiased(D, 1e-2, depth=depth), sparse
    jaxpr = jax.make_jaxpr(lambda m: lf.flow(m, problem, throw=False).final_predictor)(model)
    names = set(_primitives(jaxpr.jaxpr))
    assert "while" in names  # the walk reaches the solver's loop
    assert not [n for n in names if "callback" in n], names


def test_checks_as_nan_replaces_only_equinoxs_default(monkeypatch):
    from equinox import _errors

    # Traced inside the block, a failing run-time check gives NaN instead of raising.
    with checks_as_nan():
        check = jax.jit(lambda x: eqx.error_if(x, x > 0, "x must be <= 0"))
        jaxpr = jax.make_jaxpr(check)(1.0)
    assert bool(jnp.isnan(check(1.0))) and float(check(-1.0)) == -1.0
    assert not [n for n in _primitives(jaxpr.jaxpr) if "callback" in n]
    # Outside it (also after an exception inside it), equinox's default is back: it raises.
    with pytest.raises(RuntimeError), checks_as_nan():
        raise RuntimeError
    # The same check traced again outside: equinox's cache of traced checks must not hand
    # back the NaN version.
    with pytest.raises(Exception, match="x must be <= 0"):
        jax.block_until_ready(jax.jit(lambda x: eqx.error_if(x, x > 0, "x must be <= 0"))(1.0))
    # A user's own setting is kept.
    monkeypatch.setattr(_errors, "EQX_ON_ERROR", "off")
    with checks_as_nan():
        assert float(jax.jit(lambda x: eqx.error_if(x, x > 0, "off"))(1.0)) == 1.0


def test_new_scale_data_and_initialisation_reuse_the_compiled_flow(sparse):
    # The same shapes with new values: no program is compiled again (neither the flow's
    # nor the eager operations around it).
    lf.flow(lf.DiagonalNet.unbiased(D, 1.0), sparse)
    key = jr.PRNGKey(3)
    X = jr.normal(key, (N, D))
    other = lf.Regression(X, X @ jr.normal(jr.fold_in(key, 1), (D,)))
    w0 = jr.uniform(jr.fold_in(key, 2), (D,), minval=0.5, maxval=1.5)
    with _programs() as programs:
        a = lf.flow(lf.DiagonalNet.unbiased(D, 2.0), sparse)  # new alpha
        b = lf.flow(lf.DiagonalNet.unbiased(D, 1.0), other)  # new data
        c = lf.flow(lf.DiagonalNet.unbiased(D, 1.0, w0=w0), sparse)  # new initialisation
    assert programs == []
    for sol in (a, b, c):
        assert bool(sol.converged) and int(sol.stats["fallback_steps"]) == 0


def test_implicit_fallback_is_compiled_only_when_the_explicit_phase_runs_out(sparse):
    with _programs() as programs:
        explicit = lf.flow(lf.DiagonalNet.unbiased(D, 1.0), sparse)
    assert int(explicit.stats["fallback_steps"]) == 0
    flow_programs = [p for p in programs if "_integrate" in p]
    assert len(flow_programs) <= 1  # (none if an earlier test compiled it)
    # alpha = 1e-2 is stiff for Dopri8 here (1,000 explicit steps, then ~60 implicit ones):
    # the one new program is the continuation with Kvaerno5.
    with _programs() as programs:
        sol = lf.flow(lf.DiagonalNet.unbiased(D, 1e-2), sparse)
    assert len([p for p in programs if "_integrate" in p]) == 1
    assert int(sol.stats["fallback_steps"]) > 0
    assert int(sol.stats["num_steps"]) == 1_000 + int(sol.stats["fallback_steps"])
    want = lf.limits.hypentropy_minimiser(sparse.X, sparse.Y, 1e-2)
    # The stop's relative excess of 1e-10 moves beta by <= ~1e-9 here (test_solver_auto).
    assert _rel(sol.final.predictor(), want) <= 1e-8


def test_fallback_under_a_callers_jit_with_constant_inputs_decides_inside(sparse):
    # Inputs closed over by a caller's `jit` are constants, but the switch is then a traced
    # value: the flow must stay one program (and give the unjitted call's answer).
    model = lf.DiagonalNet.unbiased(D, 1e-2)
    sol = jax.jit(lambda: lf.flow(model, sparse, saveat=lf.SaveAt(num=4)))()
    want = lf.limits.hypentropy_minimiser(sparse.X, sparse.Y, 1e-2)
    assert bool(sol.converged) and int(sol.stats["fallback_steps"]) > 0
    assert _rel(sol.final_predictor, want) <= 1e-8


def _fixed_solver(name):
    import diffrax

    return lf.SolverChoice(getattr(diffrax, name)(), rtol=1e-8, atol=1e-10)


def test_a_flow_traces_its_vector_field_once_per_program(monkeypatch):
    # A solve calls the field at every stage, in its shape checks, the first-step rule, the
    # stop test and (implicit solvers) the Jacobian; each trace of the model's formula costs
    # tracing time in every new process. `TracedOnce` traces it once per program (twice at
    # most: the stop test evaluates it at a Python-number time, a static argument). Counted
    # as Python calls of the full form's field while the flow is traced, with an explicit
    # and an implicit solver. A new shape (d = 17) so that no earlier trace is reused. Also:
    # while the flow is traced, full garbage collections are deferred (the generation-2
    # threshold is raised), and the threshold is restored afterwards.
    import gc

    from linflow import _system

    calls, thresholds = [], []
    field = _system.GradientFlowSystem.vector_field

    def counted(self, t, y, problem):
        calls.append(t)
        thresholds.append(gc.get_threshold()[2])
        return field(self, t, y, problem)

    monkeypatch.setattr(_system.GradientFlowSystem, "vector_field", counted)
    problem = lf.sparse_regression(jr.PRNGKey(1), 8, 17, 3)[0]
    before = gc.get_threshold()
    for i, solver in enumerate((_fixed_solver("Tsit5"), _fixed_solver("Kvaerno5"))):
        calls.clear()
        model = lf.DiagonalNet.unbiased(17, 0.5 + i)  # (values do not matter for tracing)
        sol = lf.flow(model, problem, form="full", solver=solver, throw=False)
        assert int(sol.stats["num_steps"]) > 10
        assert 1 <= len(calls) <= 2, (solver, len(calls))
    assert min(thresholds) >= 1_000_000
    assert gc.get_threshold() == before


def test_deferred_collections_restore_the_threshold_after_a_failure(sparse):
    import gc

    before = gc.get_threshold()
    with pytest.raises(eqx.EquinoxRuntimeError, match="max_steps_reached"):
        lf.flow(lf.DiagonalNet.unbiased(D, 0.1), sparse, max_steps=3)
    assert gc.get_threshold() == before
    # A threshold the user set at least as high is left alone.
    gc.set_threshold(before[0], before[1], 5_000_000)
    try:
        lf.flow(lf.DiagonalNet.unbiased(D, 0.1), sparse, saveat=lf.SaveAt(num=2))
        assert gc.get_threshold()[2] == 5_000_000
    finally:
        gc.set_threshold(*before)
