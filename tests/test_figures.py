"""`linflow list` / `linflow reproduce`: every registered figure resolves and says what it draws;
a quick reproduction draws all its panels; `plot.phase_diagram` never combines an axis the
caller did not name, and says when a contour level is not crossed."""

import json
import pathlib

import matplotlib
import numpy as np
import pytest

import linflow
from linflow import cli
from linflow.figures import DESCRIPTIONS, available, get_figure


matplotlib.use("Agg")

PAPER_FIGURES = {  # the figures the issue lists, by paper
    "min": 2,  # Figs. 1/4 and 2/3
    "woodworth": 4,  # Fig. 1 (sweep), 1(a-c)/3(c), 2/3(a-b), 5
    "yun": 2,  # toy regression and classification
    "tarmoun": 2,  # Figs. 1 and 2
}


def test_list_shows_every_paper_figure_with_a_description(capsys):
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert names == available()
    for paper, count in PAPER_FIGURES.items():
        assert sum(n.startswith(paper + "-") for n in names) == count, paper
    for line, name in zip(lines, names):
        assert len(line.split(maxsplit=1)) == 2 and DESCRIPTIONS[name], line


def test_every_registered_figure_resolves_to_a_function():
    for name in available():
        fn = get_figure(name)
        assert callable(fn) and fn.__name__ == "reproduce", name


@pytest.mark.slow
def test_reproduce_quick_draws_every_panel(tmp_path, capsys):
    """The potentials figure (Woodworth Figs. 2, 3(a-b): evaluations only, no flows)."""
    out = tmp_path / "fig"
    assert (
        cli.main(["reproduce", "woodworth-fig2-3ab", "--quick", "--quiet", "--out", str(out)]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "quick"
    assert len(summary["panels"]) == 3 and summary["all_panels_drawn"], summary["panels"]
    for path in summary["files"]:
        assert pathlib.Path(path).is_file(), path


@pytest.mark.slow
def test_reproduce_quick_draws_the_yun_panels(tmp_path, capsys):
    """Yun et al.'s toy figures: the flows and the Thm 6 single-point limit (a NumPy closed form,
    evaluated outside `jit`) in one quick run (~10 s); every panel drawn."""
    out = tmp_path / "fig"
    assert cli.main(["reproduce", "yun-regression", "--quick", "--quiet", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["all_panels_drawn"], summary["panels"]
    for path in summary["files"]:
        assert pathlib.Path(path).is_file(), path


def _table():
    import sweep_points

    grid = {"alpha": np.logspace(-3, 1, 3), "seed": np.arange(2), "n": [3, 5], "depth": [2, 3]}
    return linflow.Sweep(grid, sweep_points.closed_form, mode="loop", quiet=True).run()


def test_phase_diagram_refuses_to_average_an_axis_it_was_not_told_to():
    table = _table()
    with pytest.raises(ValueError, match="depth"):
        linflow.plot.phase_diagram(table, x="n", y="alpha", value="total")
    # Fixed with `where`: the mean over the seeds 0 and 1 of alpha n (n + 1) / 2 + seed.
    ax = linflow.plot.phase_diagram(table, x="n", y="alpha", value="total", where={"depth": 2})
    drawn = ax.collections[0].get_array().reshape(3, 2)
    want = np.outer(table.axes["alpha"], [6.0, 15.0]) + 0.5
    np.testing.assert_allclose(drawn, want, rtol=1e-14)
    # Named in `reduce_over`: combined on purpose.
    linflow.plot.phase_diagram(
        table, x="n", y="alpha", value="total", reduce_over=("seed", "depth")
    )


def test_phase_diagram_says_when_a_contour_level_is_never_crossed():
    table = _table().select(depth=2)
    ax = linflow.plot.phase_diagram(table, x="n", y="alpha", value="total", contour=1e9)
    texts = [t.get_text() for t in ax.texts]
    assert any("no contour at 1e+09" in t for t in texts), texts
