"""The numbers in README.md and docs/ are the ones the results files hold
(`python benchmarks/report.py --check`), and every results file says where it comes from."""

import importlib.util
import json
import pathlib

import pytest


ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_docs_match_the_results_files(report, capsys):
    assert report.main(["--check"]) == 0, capsys.readouterr().err


def test_a_changed_number_or_an_unknown_block_is_caught(report):
    name = "readme-differentiate"
    good = f"<!-- report:{name} -->\n{report._BLOCKS[name]()}\n<!-- /report:{name} -->"
    assert report.render(good, "x.md") == good
    stale = good.replace(report._BLOCKS[name](), "backpropagation 3.7-5.5x")
    assert report.render(stale, "x.md") == good
    with pytest.raises(KeyError, match="no-such-block"):
        report.render("<!-- report:no-such-block -->\n<!-- /report:no-such-block -->", "x.md")


def test_differentiate_ratios_are_the_files_ratios(report):
    """The README's backpropagation ratio is min..max of backprop_s / forward_s in the file."""
    rows = json.loads((ROOT / "benchmarks/results/differentiate.json").read_text())["rows"]
    ratios = [r["backprop_s"] / r["forward_s"] for r in rows]
    text = report.readme_differentiate()
    assert f"{min(ratios):.1f}-{max(ratios):.1f}x" in text


def test_a_results_file_without_provenance_is_reported(report, tmp_path, monkeypatch):
    (tmp_path / "new_benchmark.json").write_text(json.dumps({"benchmark": "new", "rows": []}))
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    monkeypatch.setattr(report, "ROOT", tmp_path)
    (problem,) = report.missing_provenance()
    for field in ("mode", "machine", "linflow_version", "commit", "machine.date"):
        assert field in problem


def test_colab_links_follow_the_configured_repository(report, monkeypatch):
    monkeypatch.setattr(
        report,
        "pyproject",
        lambda: {"version": "0.2.0", "urls": {"Repository": "https://github.com/owner/linflow"}},
    )
    links = report.colab_links()
    notebooks = sorted((ROOT / "examples").glob("*.ipynb"))
    assert links.count(
        "colab.research.google.com/github/owner/linflow/blob/v0.2.0/examples/"
    ) == len(notebooks)
    monkeypatch.setattr(
        report,
        "pyproject",
        lambda: {"version": "0.2.0", "urls": {"Repository": "https://x.invalid/l"}},
    )
    assert "colab.research.google.com/github" not in report.colab_links()
