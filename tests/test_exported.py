"""Flows kept on disk as exported programs (`linflow._exported`): a new process runs the kept
program without tracing and gets the traced flow's answer; a key that cannot describe a call
exactly keeps nothing; what the key holds tells apart every change that alters the trace."""

import subprocess
import sys
import textwrap

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from fresh_cache import process_env
from jaxtyping import Array, Float

import linflow as lf
from linflow import _exported


@pytest.fixture
def folder(tmp_path):
    """Kept programs in a fresh folder for the test (the tests' own configuration keeps
    none: `conftest.py` configures JAX's cache, which linflow then leaves alone)."""
    _exported.set_folder(tmp_path)
    try:
        yield tmp_path / "exported"
    finally:
        _exported.set_folder(None)


@pytest.fixture(scope="module")
def sparse():
    return lf.sparse_regression(jr.PRNGKey(0), 10, 25, 3)[0]


@pytest.fixture(scope="module")
def stiff():
    """A depth-3 flow that Dopri8 does not finish within its budget (Kvaerno5 does)."""
    return lf.DiagonalNet.unbiased(30, 1e-3, depth=3), lf.sparse_regression(
        jr.PRNGKey(0), 10, 30, 3
    )[0]


def _traced(monkeypatch):
    """A list that grows by one whenever a flow is traced for export."""
    calls = []
    export = _exported._export

    def counted(*args):
        calls.append(1)
        return export(*args)

    monkeypatch.setattr(_exported, "_export", counted)
    return calls


def test_a_kept_flow_is_read_back_and_gives_the_traced_answer(folder, monkeypatch, sparse):
    # Truth: the same flow without kept programs (traced and compiled as usual), bit for bit,
    # and the hypentropy limit of the depth-2 net (Woodworth et al. Thm 1) to the stop's
    # accuracy. The in-process copy is dropped so that the second call reads the file.
    traced = _traced(monkeypatch)
    model = lf.DiagonalNet.unbiased(25, 0.1)
    kept = lf.flow(model, sparse)
    assert len(traced) >= 1 and len(list(folder.glob("*.bin"))) == len(traced)
    _exported._loaded.clear()
    again = lf.flow(lf.DiagonalNet.unbiased(25, 0.3), sparse)  # new values, same program
    assert len(traced) == len(list(folder.glob("*.bin")))  # read from the folder, not traced
    _exported.set_folder(None)
    plain = lf.flow(model, sparse)
    np.testing.assert_array_equal(kept.final_predictor, plain.final_predictor)
    np.testing.assert_array_equal(kept.losses, plain.losses)
    assert kept.status == plain.status == "converged" and kept.solver == plain.solver
    want = lf.limits.hypentropy_minimiser(sparse.X, sparse.Y, 0.3)
    np.testing.assert_allclose(again.final_predictor, want, rtol=0, atol=1e-7)


def test_the_implicit_continuation_is_kept_too(folder, monkeypatch, stiff):
    # A stiff depth-3 flow runs both phases of its `Fallback`: two programs, both kept, and
    # read back by the next call of the same shapes; the answer equals the traced flow's.
    traced = _traced(monkeypatch)
    model, sparse = stiff
    kept = lf.flow(model, sparse)
    assert int(kept.stats["fallback_steps"]) > 0 and len(traced) == 2
    _exported._loaded.clear()
    lf.flow(model, sparse)
    assert len(traced) == 2
    _exported.set_folder(None)
    plain = lf.flow(model, sparse)
    np.testing.assert_array_equal(kept.final_predictor, plain.final_predictor)
    assert int(kept.stats["num_steps"]) == int(plain.stats["num_steps"])


class _SquaredNet(lf.AbstractModel):
    """A model class of the user's own: its code is not in the key."""

    w: Float[Array, " d"]

    def predictor(self):
        return self.w * self.w


def test_calls_the_key_cannot_describe_keep_nothing(folder, monkeypatch, sparse):
    # A user's model class, a closure in a static field, a progress meter (host callbacks):
    # traced as usual and nothing written.
    traced = _traced(monkeypatch)
    own = lf.flow(_SquaredNet(jnp.full(25, 0.3)), sparse, throw=False)
    norm = lambda x: jnp.sqrt(jnp.mean(x**2))  # noqa: E731
    controller = diffrax.PIDController(rtol=1e-10, atol=1e-12, norm=norm)
    choice = lf.SolverChoice(diffrax.Dopri8(), controller=controller)
    closure = lf.flow(lf.DiagonalNet.unbiased(25, 0.5), sparse, solver=choice, throw=False)
    meter = lf.flow(lf.DiagonalNet.unbiased(25, 0.5), sparse, progress=lf.Progress())
    assert traced == [] and not folder.exists()
    assert own.form == "full" and int(closure.stats["num_steps"]) > 10
    assert meter.status == "converged"


def test_the_key_tells_apart_what_changes_the_trace(monkeypatch, sparse):
    model = lf.DiagonalNet.unbiased(25, 0.1)

    def key(*args, **kwargs):
        return _exported._key("flow", (args, kwargs))

    base = key(model, sparse, lf.Converged())
    # New values of the same shapes: the same program.
    assert key(lf.DiagonalNet.unbiased(25, 7.0), sparse, lf.Converged()) == base
    others = {
        "shape": key(lf.DiagonalNet.unbiased(26, 0.1), sparse, lf.Converged()),
        "dtype": key(jax.tree.map(lambda x: x.astype(jnp.float32), model), sparse, lf.Converged()),
        "static value": key(model, sparse, lf.Converged(rtol=1e-8)),
        "depth": key(lf.DiagonalNet.unbiased(25, 0.1, depth=3), sparse, lf.Converged()),
        "name": _exported._key("other", ((model, sparse, lf.Converged()), {})),
    }
    monkeypatch.setattr(_exported, "_code_version", lambda: "another version of linflow")
    others["code"] = key(model, sparse, lf.Converged())
    assert len({base, *others.values()}) == 1 + len(others), others


@pytest.mark.parametrize("damage", ["replaced", "truncated", "bytes flipped in the program"])
def test_a_damaged_entry_is_traced_again(folder, sparse, damage):
    # A file that is not a whole entry, or one whose bytes changed where the program is (it
    # would still unpickle, and JAX parses the program only when it runs): removed, traced
    # again, and written anew; the answer is the first call's.
    model = lf.DiagonalNet.unbiased(25, 0.1)
    first = lf.flow(model, sparse)
    (entry,) = folder.glob("*.bin")
    data = bytearray(entry.read_bytes())
    if damage == "replaced":
        data = b"not a kept program"
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    entry.write_bytes(bytes(data))
    _exported._loaded.clear()
    again = lf.flow(model, sparse)
    np.testing.assert_array_equal(again.final_predictor, first.final_predictor)
    assert entry.read_bytes() != bytes(data)  # written anew


_SCRIPT = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.random as jr
    import numpy as np
    import linflow as lf
    from linflow import _exported

    traced = []
    export = _exported._export
    _exported._export = lambda *a: traced.append(1) or export(*a)
    problem = lf.sparse_regression(jr.PRNGKey(0), 10, 30, 3)[0]
    sol = lf.flow(lf.DiagonalNet.unbiased(30, 1e-3, depth=3), problem)
    np.save(sys.argv[1], np.asarray(sol.final_predictor))
    print(len(traced), sol.status, int(sol.stats["fallback_steps"]) > 0)
    """
)


@pytest.mark.slow
def test_a_second_process_runs_the_kept_flow_without_tracing(tmp_path):
    # The first process traces both phases and keeps them; the second traces nothing and
    # gets the same numbers; a process with kept programs off (`LINFLOW_CACHE=0`, traced and
    # compiled as usual) agrees bit for bit.
    env = process_env(tmp_path / "cache")

    def run(name, **extra):
        out = subprocess.run(
            [sys.executable, "-c", _SCRIPT, str(tmp_path / name)],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split(), np.load(tmp_path / f"{name}.npy")

    (n1, *rest1), first = run("first")
    (n2, *rest2), second = run("second")
    (n3, *rest3), plain = run("plain", LINFLOW_CACHE="0")
    assert rest1 == rest2 == rest3 == ["converged", "True"]
    assert (int(n1), int(n2), int(n3)) == (2, 0, 0)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, plain)
