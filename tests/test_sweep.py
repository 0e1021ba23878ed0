import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import sweep_points

import linflow
from linflow.cli import main as cli_main


TESTS = Path(__file__).parent
ROOT = TESTS.parent


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _grid():
    return {"alpha": np.array([0.25, 0.5, 2.0]), "seed": np.arange(4), "n": [3, 5]}


def _expected_closed_form(grid, seed=0):
    """Truth computed without the sweep: closed forms and keys from flat row-major indices."""
    shape = tuple(len(v) for v in grid.values())
    rows = []
    for flat in range(int(np.prod(shape))):
        i, j, k = np.unravel_index(flat, shape)
        a, s, n = grid["alpha"][i], grid["seed"][j], grid["n"][k]
        draw = float(jr.uniform(jr.fold_in(jr.PRNGKey(seed), flat), dtype=jnp.float64))
        rows.append((a * n * (n + 1) / 2 + s, a, 2 * a, draw))
    return np.array(rows)


def _assert_closed_form(table, grid, seed=0):
    want = _expected_closed_form(grid, seed)
    np.testing.assert_array_equal(table.index, np.arange(len(want)))
    # Sums of a few exactly representable numbers: exact in float64.
    np.testing.assert_array_equal(table["total"], want[:, 0])
    np.testing.assert_array_equal(table["head"], want[:, 1:3])
    # Same threefry key -> bit-identical uniform draw, whatever the chunking or mode.
    np.testing.assert_array_equal(table["draw"], want[:, 3])
    assert np.all(table.status == "ok")


@pytest.mark.parametrize(
    "mode, chunk_size, group_by",
    [("loop", None, None), ("map", 5, "alpha"), ("vmap", 3, None), ("vmap", 64, "seed")],
)
def test_sweep_results_match_closed_form_and_keys_for_any_chunking(mode, chunk_size, group_by):
    grid = _grid()
    sweep = linflow.Sweep(
        grid,
        sweep_points.closed_form,
        mode=mode,
        chunk_size=chunk_size,
        group_by=group_by,
        quiet=True,
    )
    table = sweep.run()
    assert table.complete and len(table) == 24
    _assert_closed_form(table, grid)
    # Coordinates of each row are the grid values at its flat index.
    i, j, k = np.unravel_index(table.index, (3, 4, 2))
    np.testing.assert_array_equal(table["alpha"], grid["alpha"][i])
    np.testing.assert_array_equal(table["n"], np.array(grid["n"])[k])
    assert table.to_grid("total").shape == (3, 4, 2)
    assert table.to_grid("head").shape == (3, 4, 2, 2)


def test_second_sweep_with_same_shapes_does_not_retrace():
    linflow.sweep.clear_cache()
    sweep_points.TRACES["count"] = 0
    grid = _grid()
    linflow.Sweep(grid, sweep_points.closed_form, mode="vmap", chunk_size=4, quiet=True).run()
    # One trace per static value of n (3 and 5), not per chunk (there are 6 chunks).
    assert sweep_points.TRACES["count"] == 2
    grid2 = dict(grid, alpha=np.array([0.1, 0.3, 7.0]))  # new values, same shapes
    table = linflow.Sweep(
        grid2, sweep_points.closed_form, mode="vmap", chunk_size=4, seed=9, quiet=True
    ).run()
    assert sweep_points.TRACES["count"] == 2
    _assert_closed_form(table, grid2, seed=9)


def test_failed_and_nonfinite_points_are_kept_with_their_status():
    grid = {"alpha": np.array([0.25, 0.5, 2.0, 4.0])}
    table = linflow.Sweep(grid, sweep_points.outcomes, mode="vmap", quiet=True).run()
    assert len(table) == 4
    assert table["result"].tolist() == [
        "converged",
        "converged",
        "max_steps_reached",
        "max_steps_reached",
    ]
    assert table.status.tolist() == [
        "ok",
        "nonfinite:value",
        "max_steps_reached",
        "max_steps_reached",
    ]
    np.testing.assert_array_equal(table.ok, [True, False, False, False])


@pytest.mark.parametrize(
    "grid, kwargs, error, match",
    [
        ({"alpha": np.array([])}, {}, ValueError, "empty"),
        ({"alpha": np.array([1.0]), "seed": []}, {}, ValueError, "'seed' is empty"),
        ({"alpha": 1.0}, {}, TypeError, "1-D sequence"),
        ({}, {}, ValueError, "non-empty"),
        ({"alpha": np.array([1.0, 1.0])}, {}, ValueError, "repeated"),
        ({"alpha": np.array([1.0])}, {"static_axes": ["n"]}, ValueError, "static_axes"),
        ({"alpha": np.array([1.0])}, {"group_by": "beta"}, ValueError, "group_by"),
        ({"alpha": np.array([1.0])}, {"mode": "fast"}, ValueError, "mode"),
        ({"alpha": np.array([1.0])}, {"chunk_size": 0}, ValueError, "chunk_size"),
        ({"kind": np.array(["a", "b"])}, {}, TypeError, "static_axes"),
    ],
)
def test_invalid_sweep_arguments_fail_at_construction(grid, kwargs, error, match):
    with pytest.raises(error, match=match):
        linflow.Sweep(grid, sweep_points.closed_form, **kwargs)


def test_unknown_axis_in_run_fails_before_any_work(tmp_path):
    # closed_form reads point["n"] and point["seed"], which this grid lacks.
    sweep = linflow.Sweep(
        {"alpha": np.array([1.0, 2.0])}, sweep_points.closed_form, path=tmp_path, quiet=True
    )
    with pytest.raises(ValueError, match=r"point\['n'\].*axes are \['alpha'\]"):
        sweep.run()
    assert list(tmp_path.glob("chunk-*.npz")) == []
    with pytest.raises(TypeError, match="must return a dict"):
        linflow.Sweep({"a": np.array([1.0])}, lambda p, k: p["a"], quiet=True).run()


def test_chunks_are_npz_without_pickle_and_a_changed_grid_is_refused(tmp_path):
    grid = _grid()
    sweep = linflow.Sweep(
        grid, sweep_points.closed_form, path=tmp_path, chunk_size=4, seed=3, quiet=True, mode="vmap"
    )
    table = sweep.run()
    files = sorted(tmp_path.glob("chunk-*.npz"))
    assert len(files) == 6  # 2 static values x 12 points / 4 per chunk
    index = []
    for f in files:
        with np.load(f, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            assert meta["version"] == linflow.__version__
            assert meta["grid_hash"] == sweep.grid_hash and meta["seed"] == 3
            idx = data["index"]
            i, j, k = np.unravel_index(idx, (3, 4, 2))
            np.testing.assert_array_equal(data["coord:alpha"], grid["alpha"][i])
            np.testing.assert_array_equal(data["coord:seed"], grid["seed"][j])
            index.append(idx)
    np.testing.assert_array_equal(np.sort(np.concatenate(index)), np.arange(24))
    assert not list(tmp_path.glob(".tmp-*"))
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert manifest["grid"]["static_axes"] == ["n"] and manifest["grid"]["seed"] == 3
    # Loading needs no computation and gives the same table.
    again = linflow.Sweep(grid, sweep_points.closed_form, path=tmp_path, seed=3, quiet=True)
    np.testing.assert_array_equal(again.load()["draw"], table["draw"])
    with pytest.raises(ValueError, match="different sweep"):
        linflow.Sweep(grid, sweep_points.closed_form, path=tmp_path, seed=4, quiet=True).run()


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np, linflow, sweep_points
    sweep_points.DELAY["seconds"] = 0.1
    grid = {"alpha": np.linspace(0.1, 4.0, 20), "seed": np.arange(2), "n": [1, 2]}
    linflow.Sweep(grid, sweep_points.slow, path=sys.argv[1], mode="loop", chunk_size=4).run()
    """
)


def test_sweep_killed_midway_resumes_without_recomputing(tmp_path):
    path = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(path)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 180  # generous: the machine may be loaded
    try:
        while time.time() < deadline and len(list(path.glob("chunk-*.npz"))) < 3:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {f: f.stat().st_mtime_ns for f in path.glob("chunk-*.npz")}
    assert 3 <= len(before) < 20, "the subprocess should be killed midway (80 points, 20 chunks)"
    done = sum(4 for _ in before)

    grid = {"alpha": np.linspace(0.1, 4.0, 20), "seed": np.arange(2), "n": [1, 2]}
    sweep_points.DELAY["seconds"] = 0.0
    sweep_points.EVALUATIONS["count"] = 0
    sweep = linflow.Sweep(grid, sweep_points.slow, path=path, mode="loop", chunk_size=4, quiet=True)
    table = sweep.run()
    # Only the unfinished points were evaluated; finished chunks were not rewritten.
    assert sweep_points.EVALUATIONS["count"] == 80 - done
    assert sweep.stats["points_loaded"] == done and sweep.stats["points_computed"] == 80 - done
    assert all(f.stat().st_mtime_ns == t for f, t in before.items())

    fresh = linflow.Sweep(grid, sweep_points.slow, mode="vmap", chunk_size=7, quiet=True).run()
    assert table.complete
    for col in ("value", "draw", "alpha", "n"):
        np.testing.assert_array_equal(table[col], fresh[col])


_DEVICES_SCRIPT = textwrap.dedent(
    """
    import json, time, jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np, linflow, sweep_points
    assert len(jax.devices()) == 8, jax.devices()
    grid = {"alpha": np.logspace(-2, 0, 3), "seed": np.arange(3), "n": [3]}
    out = {}
    for mode, devices in (("loop", jax.devices()[:1]), ("map", jax.devices()),
                          ("vmap", jax.devices())):
        t0 = time.time()
        t = linflow.Sweep(grid, sweep_points.flow_point, mode=mode, devices=devices,
                          chunk_size=8, quiet=True).run()
        out[f"{mode}-{len(devices)}"] = {
            "beta": t["beta"].tolist(), "result": t["result"].tolist(),
            "train_residual": t["train_residual"].tolist(), "seconds": time.time() - t0,
        }
    print(json.dumps(out))
    """
)


def _run_on_host_devices(script: str, n_devices: int) -> dict:
    """Run `script` in a subprocess with `n_devices` host devices (a hang fails through the
    timeout); return the JSON it prints on its last line."""
    flags = f"--xla_force_host_platform_device_count={n_devices}"
    res = subprocess.run(
        [sys.executable, "-c", script],
        env=_env(XLA_FLAGS=flags, JAX_ENABLE_X64="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_sharded_over_eight_host_devices_matches_one_device():
    out = _run_on_host_devices(_DEVICES_SCRIPT, 8)
    ref = out["loop-1"]  # a compiled single-point flow per point, one device
    assert all(r == "converged" for r in ref["result"])
    # The flows interpolate the data (truth independent of the sweep: X beta = y).
    assert np.max(np.abs(ref["train_residual"])) < 1e-5
    for mode in ("map", "vmap"):
        eight = out[f"{mode}-8"]
        assert eight["result"] == ref["result"]
        # Batch widths differ between the loop and the 8 devices, and XLA's batched linear
        # solves inside the implicit steps round differently at each width (we saw 5e-12);
        # the limits agree to the flow's stop tolerance (1e-10), with margin.
        np.testing.assert_allclose(eight["beta"], ref["beta"], rtol=0, atol=1e-9, err_msg=mode)


def test_phase_diagram_plots_the_mean_over_other_axes():
    import matplotlib

    matplotlib.use("Agg")
    grid = {"alpha": np.logspace(-3, 1, 5), "seed": np.arange(4), "n": [3, 5]}
    table = linflow.Sweep(grid, sweep_points.closed_form, mode="vmap", quiet=True).run()
    ax = linflow.plot.phase_diagram(table, x="n", y="alpha", value="total", contour=3.0)
    assert ax.get_yscale() == "log" and ax.get_xscale() == "linear"
    drawn = ax.collections[0].get_array().reshape(5, 2)
    # mean over seeds of alpha n (n+1)/2 + seed = alpha n (n+1)/2 + 1.5
    want = np.outer(grid["alpha"], [6.0, 15.0]) + 1.5
    np.testing.assert_allclose(drawn, want, rtol=1e-14)
    with pytest.raises(ValueError, match="not an axis"):
        linflow.plot.phase_diagram(table, x="m", y="alpha", value="total")


def test_cli_sweep_from_toml_and_figure_registry(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text(
        textwrap.dedent(
            """
            run = "sweep_points:closed_form"
            path = "out"
            static_axes = ["n"]
            chunk_size = 5
            [grid]
            alpha = { values = [0.25, 0.5, 2.0] }
            seed = { arange = 4 }
            n = [3, 5]
            [plot]
            x = "n"
            y = "alpha"
            value = "total"
            """
        )
    )
    assert cli_main(["sweep", str(config), "--quiet"]) == 0
    table = linflow.Sweep(_grid(), sweep_points.closed_form, path=tmp_path / "out").load()
    _assert_closed_form(table, _grid())
    assert (tmp_path / "out" / "phase_diagram.png").exists()

    from linflow.figures import FIGURES, available, register_figure

    calls = []

    @register_figure("test-figure")
    def _figure(*, quick, out, quiet):
        calls.append((quick, Path(out), quiet))
        return {"ok": True}

    try:
        assert "woodworth-fig1" in available() and "test-figure" in available()
        assert cli_main(["reproduce", "test-figure", "--quick", "--out", str(tmp_path)]) == 0
        assert calls == [(True, tmp_path, False)]
        assert cli_main(["reproduce", "no-such-figure"]) == 2
        assert "available" in capsys.readouterr().err
    finally:
        FIGURES.pop("test-figure")


def test_metrics_whose_shape_follows_a_static_axis_are_padded_with_nan():
    def run(point, key):
        return {"v": jnp.full(point["d"], point["a"])}

    table = linflow.Sweep({"d": [2, 3], "a": np.array([1.5])}, run, quiet=True).run()
    np.testing.assert_array_equal(table["v"], [[1.5, 1.5, np.nan], [1.5, 1.5, 1.5]])


def test_trajectories_draws_each_predictor_entry_against_log_time():
    import types

    import matplotlib

    matplotlib.use("Agg")
    ts = np.logspace(-2, 2, 9)
    preds = np.stack([1 - np.exp(-ts), -0.5 * (1 - np.exp(-2 * ts))], axis=1)
    sol = types.SimpleNamespace(ts=ts, predictors=preds)
    ax = linflow.plot.trajectories(sol, reference=np.array([1.0, -0.5]))
    assert ax.get_xscale() == "log"
    lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    # Drawn largest final magnitude first: entry 0 (-> 1), then entry 1 (-> -0.5).
    np.testing.assert_array_equal(lines[0].get_xydata(), np.stack([ts, preds[:, 0]], 1))
    np.testing.assert_array_equal(lines[1].get_xydata(), np.stack([ts, preds[:, 1]], 1))


_IMPLICIT_TWO_DEVICES_SCRIPT = textwrap.dedent(
    """
    import json, jax
    jax.config.update("jax_enable_x64", True)
    import diffrax, numpy as np, jax.random as jr, linflow
    assert len(jax.devices()) == 2, jax.devices()
    problem, _ = linflow.sparse_regression(jr.PRNGKey(0), 40, 100, 3, noise=0.0)

    def point_with(solver):
        def point(p, key):
            sol = linflow.flow(
                linflow.DiagonalNet.unbiased(100, p["alpha"]), problem,
                saveat=linflow.SaveAt(num=1), solver=linflow.SolverChoice(solver, 1e-9, 1e-11),
                throw=False,
            )
            return {"beta": sol.final.predictor(), "result": sol.result}
        return point

    grid = {"alpha": np.logspace(-2, 0, 32)}
    run = lambda solver, devices: linflow.Sweep(
        grid, point_with(solver), mode="vmap", chunk_size=32, devices=devices, quiet=True
    ).run()
    two = run(linflow.with_lu(diffrax.Kvaerno5()), jax.devices())
    one = run(linflow.with_lu(diffrax.Kvaerno5()), jax.devices()[:1])
    try:
        run(diffrax.Kvaerno5(), jax.devices())
        error = ""
    except ValueError as e:
        error = str(e)
    print(json.dumps({
        "two": two["beta"].tolist(), "one": one["beta"].tolist(),
        "result": two["result"].tolist(),
        "residual": np.abs(two["beta"] @ np.asarray(problem.X).T - np.asarray(problem.Y)).max(),
        "error": error,
    }))
    """
)


@pytest.mark.slow
def test_implicit_flows_sharded_over_two_host_devices():
    # 16 points per device of a 40 x 40 implicit Newton system: with the batched LAPACK LU,
    # two host devices on a CPU deadlocked here (each device's batched factorisation waits
    # for threads the other holds); a hang fails this test through the timeout.
    out = _run_on_host_devices(_IMPLICIT_TWO_DEVICES_SCRIPT, 2)
    assert all(r == "converged" for r in out["result"])
    assert out["residual"] < 1e-6  # the limits interpolate the data (noise-free, N < d)
    # Same flows, same stop (rtol 1e-10 on beta): one and two devices agree to well within
    # the stop tolerance (batch widths round differently: we saw 1.3e-13).
    np.testing.assert_allclose(out["two"], out["one"], rtol=0, atol=1e-10)
    # lineax's own LU cannot run sharded: the error says what to do instead.
    assert "linflow.with_lu" in out["error"] and "lineax issue #185" in out["error"]


# -- sweeps across processes and machines ------------------------------------------------------


def test_chunks_are_a_function_of_the_grid_alone():
    grid = {"alpha": np.array([0.25, 0.5, 2.0, 4.0, 8.0]), "seed": np.arange(4), "n": [3, 5]}
    plans = []
    for mode in ("loop", "map", "vmap"):
        for process in ((0, 1), (1, 3)):
            sweep = linflow.Sweep(
                grid,
                sweep_points.closed_form,
                mode=mode,
                chunk_size=6,
                group_by="alpha",
                process=process,
            )
            plans.append([c.tolist() for c in sweep.chunks()])
    assert all(p == plans[0] for p in plans)
    chunks = plans[0]
    # Each static slice (20 points) is cut into 6 + 6 + 6 + 2, sorted by alpha within it.
    assert [len(c) for c in chunks] == [6, 6, 6, 2] * 2
    flat = np.concatenate(chunks)
    np.testing.assert_array_equal(np.sort(flat), np.arange(40))  # every point exactly once
    alpha_index = np.unravel_index(flat, (5, 4, 2))[0]
    assert np.all(np.diff(alpha_index[:20]) >= 0) and np.all(np.diff(alpha_index[20:]) >= 0)
    # The default size depends on the grid only: 1/32 of it, within one static slice.
    big = {"alpha": np.linspace(1.0, 2.0, 100), "n": [3, 5]}
    assert linflow.Sweep(big, sweep_points.closed_form).resolved_chunk_size == 7  # ceil(200/32)


_PROCESS_SCRIPT = textwrap.dedent(
    """
    import json, sys, jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np, linflow, sweep_points
    index, n_devices, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    assert len(jax.devices()) == n_devices, jax.devices()
    grid = {"alpha": np.array([0.25, 0.5, 2.0, 4.0, 8.0]), "seed": np.arange(4), "n": [3, 5]}
    sweep = linflow.Sweep(grid, sweep_points.closed_form, path=path, chunk_size=6,
                          group_by="alpha", process=(index, 3), quiet=True)
    sweep.run()
    print(json.dumps(sweep.stats))
    """
)


def _start_process(index: int, n_devices: int, path) -> subprocess.Popen:
    flags = f"--xla_force_host_platform_device_count={n_devices}"
    return subprocess.Popen(
        [sys.executable, "-c", _PROCESS_SCRIPT, str(index), str(n_devices), str(path)],
        env=_env(XLA_FLAGS=flags),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_processes_with_1_3_and_8_devices_cover_every_point_once(tmp_path):
    grid = {"alpha": np.array([0.25, 0.5, 2.0, 4.0, 8.0]), "seed": np.arange(4), "n": [3, 5]}
    path = tmp_path / "split"
    # Processes 0 and 1 (1 and 3 host devices: modes loop and map, batches of 1 and 6).
    stats = [_finish(p) for p in [_start_process(0, 1, path), _start_process(1, 3, path)]]
    assert [s["devices"] for s in stats] == [1, 3] and [s["mode"] for s in stats] == ["loop", "map"]
    sweep = linflow.Sweep(
        grid, sweep_points.closed_form, path=path, chunk_size=6, group_by="alpha", quiet=True
    )
    # Process 2 has not run: load() says which points are missing and whose chunks they are.
    owned_by_2 = np.sort(np.concatenate(sweep.chunks()[2::3]))
    with pytest.warns(linflow.sweep.IncompleteSweepWarning, match=r"process 2: chunks \[2, 5\]"):
        partial = sweep.load()
    np.testing.assert_array_equal(partial.missing, owned_by_2)
    with pytest.raises(ValueError, match="12 of 40 points have no results"):
        sweep.load(missing="raise")
    # Process 2 (8 host devices: map, batches of 8).
    stats.append(_finish(_start_process(2, 8, path)))
    assert [s["chunks_computed"] for s in stats] == [3, 3, 2]
    # Every point was computed exactly once: the chunk files partition the grid, each file
    # holding one whole chunk of the plan.
    files = sorted(path.glob("chunk-*.npz"))
    stored = []
    for f in files:
        with np.load(f, allow_pickle=False) as data:
            stored.append(sorted(data["index"].tolist()))
    assert sorted(stored) == sorted(sorted(c.tolist()) for c in sweep.chunks())
    table = sweep.load(missing="raise")
    assert table.complete
    # Identical values on every machine: closed forms and the keys of the flat indices,
    # bit for bit, and the same as one process computing the whole grid.
    _assert_closed_form(table, grid)
    one = linflow.Sweep(grid, sweep_points.closed_form, chunk_size=6, quiet=True).run()
    for col in ("total", "head", "draw"):
        np.testing.assert_array_equal(table[col], one[col])


_RUN_MODULE = """
import jax.numpy as jnp

SCALE = jnp.array([1.0, 2.0])


def point(p, key):
    return {{"v": {body}}}
"""


def _import_run_module(tmp_path, monkeypatch, name, body):
    import importlib

    (tmp_path / f"{name}.py").write_text(_RUN_MODULE.format(body=body))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_a_changed_run_function_is_never_mixed_with_old_results(tmp_path, monkeypatch):
    grid = {"a": np.array([1.0, 2.0, 3.0])}
    path = tmp_path / "results"
    old = _import_run_module(tmp_path, monkeypatch, "points_v1", "p['a'] * SCALE")
    first = linflow.Sweep(grid, old.point, path=path, chunk_size=2, quiet=True).run()
    np.testing.assert_array_equal(first["v"], [[1, 2], [2, 4], [3, 6]])

    # The same function, imported afresh (another process would do the same): it resumes.
    same = _import_run_module(tmp_path, monkeypatch, "points_v1", "p['a'] * SCALE")
    assert same.point is not old.point
    sweep = linflow.Sweep(grid, same.point, path=path, chunk_size=2, quiet=True)
    again = sweep.run()
    assert sweep.stats["points_loaded"] == 3 and sweep.stats["points_computed"] == 0
    np.testing.assert_array_equal(again["v"], first["v"])

    # The file edited: same module, same name, another body. Refused by run() and load().
    edited = _import_run_module(tmp_path, monkeypatch, "points_v1", "p['a'] * SCALE * 0")
    sweep = linflow.Sweep(grid, edited.point, path=path, chunk_size=2, quiet=True)
    with pytest.raises(linflow.sweep.SweepMismatchError, match="run function computes"):
        sweep.run()
    with pytest.raises(linflow.sweep.SweepMismatchError, match="run function computes"):
        sweep.load()
    # The same body closing over other data is another function too.
    other_data = _import_run_module(tmp_path, monkeypatch, "points_v1", "p['a'] * SCALE")
    other_data.SCALE = jnp.array([1.0, 3.0])
    with pytest.raises(linflow.sweep.SweepMismatchError, match="run_fingerprint"):
        linflow.Sweep(grid, other_data.point, path=path, quiet=True).run()
    # The fingerprint is of what it computes, not of its name: a renamed copy resumes.
    renamed = _import_run_module(tmp_path, monkeypatch, "points_v2", "p['a'] * SCALE")
    sweep = linflow.Sweep(grid, renamed.point, path=path, chunk_size=2, quiet=True)
    sweep.run()
    assert sweep.stats["points_computed"] == 0
    # Asked to, run() deletes the old results and computes the edited function's.
    sweep = linflow.Sweep(
        grid, edited.point, path=path, chunk_size=2, on_mismatch="overwrite", quiet=True
    )
    with pytest.warns(UserWarning, match="deleted 2 chunk files"):
        table = sweep.run()
    assert sweep.stats["points_computed"] == 3
    np.testing.assert_array_equal(table["v"], np.zeros((3, 2)))
    manifest = json.loads((path / "sweep.json").read_text())
    assert manifest["run_fingerprint"] == sweep.identity["run_fingerprint"]
    assert manifest["run"] == "points_v1:point"


def test_load_names_missing_points_and_a_stale_chunk_is_refused(tmp_path):
    grid = _grid()
    sweep = linflow.Sweep(grid, sweep_points.closed_form, path=tmp_path, chunk_size=4, quiet=True)
    half = linflow.Sweep(
        grid, sweep_points.closed_form, path=tmp_path, chunk_size=4, process=(0, 2), quiet=True
    )
    half.run()  # chunks 0, 2, 4 of 6
    # The other half cut differently would leave gaps and overlaps: refused.
    with pytest.raises(ValueError, match="same `chunk_size` and `group_by`"):
        linflow.Sweep(
            grid, sweep_points.closed_form, path=tmp_path, chunk_size=3, process=(1, 2), quiet=True
        ).run()
    with pytest.warns(linflow.sweep.IncompleteSweepWarning, match=r"process 1: chunks \[1, 3, 5\]"):
        table = sweep.load()
    np.testing.assert_array_equal(table.missing, np.sort(np.concatenate(sweep.chunks()[1::2])))
    np.testing.assert_array_equal(table.to_grid("total").reshape(-1)[table.missing], np.nan)
    table = sweep.run()  # the other half, then the whole table
    _assert_closed_form(table, grid)
    # A chunk file written by another sweep (here: another seed) is refused, never mixed in.
    other = tmp_path / "other"
    linflow.Sweep(
        grid, sweep_points.closed_form, path=other, chunk_size=12, seed=1, quiet=True
    ).run()
    stray = sorted(other.glob("chunk-*.npz"))[0]  # a whole static slice: no name in common
    stray.rename(tmp_path / stray.name)
    with pytest.raises(linflow.sweep.SweepMismatchError, match="seed changed"):
        sweep.load()


def test_cli_sweep_takes_process_index_and_count_from_slurm_array(tmp_path, monkeypatch):
    config = tmp_path / "sweep.toml"
    config.write_text(
        textwrap.dedent(
            """
            run = "sweep_points:closed_form"
            path = "out"
            static_axes = ["n"]
            chunk_size = 5
            [grid]
            alpha = { values = [0.25, 0.5, 2.0] }
            seed = { arange = 4 }
            n = [3, 5]
            """
        )
    )
    sweep = linflow.Sweep(_grid(), sweep_points.closed_form, path=tmp_path / "out", chunk_size=5)
    chunks = sweep.chunks()  # 3 + 3 chunks of 5, 5, 2
    # A SLURM array --array=1-2 (task ids start at 1): task 2 is process 1 of 2.
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert cli_main(["sweep", str(config), "--quiet"]) == 0
    with pytest.warns(linflow.sweep.IncompleteSweepWarning):
        table = sweep.load()
    np.testing.assert_array_equal(table.index, np.sort(np.concatenate(chunks[1::2])))
    # Explicit flags win over the environment.
    assert cli_main(["sweep", str(config), "--quiet", "--process-index", "0"]) == 0
    _assert_closed_form(sweep.load(missing="raise"), _grid())
    with pytest.raises(SystemExit):
        cli_main(["sweep", str(config), "--process-index", "2", "--process-count", "2"])


@pytest.fixture
def ray_cluster(tmp_path, monkeypatch):
    """A local Ray cluster of 2 CPUs (2 workers at a time) whose workers import linflow and
    the tests' run functions from this tree. Its workers inherit this environment: a worker
    running `sweep_points.dies_once` dies at the first point with seed 2 while the file
    `tmp_path / "kill-marker"` exists."""
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    monkeypatch.setenv("LINFLOW_TEST_KILL_MARKER", str(tmp_path / "kill-marker"))
    monkeypatch.setenv("LINFLOW_TEST_KILL_SEED", "2")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_sweep_survives_a_killed_worker_and_resumes(tmp_path, ray_cluster):
    grid = _grid()
    path = tmp_path / "ray"
    kwargs = dict(path=path, chunk_size=4, mode="loop", quiet=True)
    # Resume across backends: this process computes half the chunks (0, 2, 4) first.
    linflow.Sweep(grid, sweep_points.dies_once, process=(0, 2), **kwargs).run()
    # Then the first worker to evaluate a point with seed 2 dies there, in the middle of a
    # chunk (each chunk holds one alpha and seeds 0..3, evaluated in order).
    marker = tmp_path / "kill-marker"
    marker.touch()
    sweep = linflow.Sweep(grid, sweep_points.dies_once, backend="ray", **kwargs)
    before = {f: f.stat().st_mtime_ns for f in path.glob("chunk-*.npz")}
    assert len(before) == 3 and marker.exists()
    table = sweep.run()
    assert not marker.exists(), "no worker reached the point that kills it"
    # The dead worker's chunk was run again: every chunk once, nothing lost or rewritten.
    assert sweep.stats["chunks_computed"] == 3 and sweep.stats["points_computed"] == 12
    assert all(f.stat().st_mtime_ns == t for f, t in before.items())
    files = sorted(path.glob("chunk-*.npz"))
    stored = []
    for f in files:
        with np.load(f, allow_pickle=False) as data:
            stored.append(sorted(data["index"].tolist()))
    assert sorted(stored) == sorted(sorted(c.tolist()) for c in sweep.chunks())
    assert not list(path.glob(".tmp-*"))
    assert table.complete
    _assert_closed_form(table, grid)  # identical values: closed forms and keys, bit for bit
    # Resume: everything is on disk, no task is sent.
    again = linflow.Sweep(grid, sweep_points.dies_once, backend="ray", **kwargs)
    again.run()
    assert again.stats["chunks_computed"] == 0 and again.stats["points_loaded"] == 24


_DISTRIBUTED_SCRIPT = textwrap.dedent(
    """
    import json, sys, jax
    index, port, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=index)
    jax.config.update("jax_enable_x64", True)
    import numpy as np, linflow, sweep_points
    grid = {"alpha": np.array([0.25, 0.5, 2.0]), "seed": np.arange(4), "n": [3, 5]}
    sweep = linflow.Sweep(grid, sweep_points.closed_form, path=path, chunk_size=5, quiet=True)
    sweep.run()
    print(json.dumps(sweep.stats))
    """
)


@pytest.mark.slow
def test_jax_distributed_processes_split_a_sweep(tmp_path):
    import socket

    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    path = tmp_path / "distributed"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _DISTRIBUTED_SCRIPT, str(i), str(port), str(path)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    stats = [_finish(p) for p in procs]
    # The process index and count came from jax.distributed: chunks 0, 2, 4 and 1, 3, 5.
    assert [s["process"] for s in stats] == [[0, 2], [1, 2]]
    assert [s["chunks_computed"] for s in stats] == [3, 3]
    table = linflow.Sweep(_grid(), sweep_points.closed_form, path=path, chunk_size=5).load(
        missing="raise"
    )
    _assert_closed_form(table, _grid())
