"""Both notebooks run top to bottom on the fixtures, so they cannot go stale against the harness."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from harness.cli import main
from tests.conftest import ROOT

NOTEBOOKS = ROOT / "notebooks"


def execute(name: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    # Run from the repository root, as a user who opens the notebook there would.
    NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    return notebook


def outputs(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
            parts.append(output.get("data", {}).get("text/markdown", ""))
    return "\n".join(parts)


def images(notebook) -> int:
    return sum("image/png" in o.get("data", {}) for cell in notebook.cells for o in cell.get("outputs", []))


@pytest.fixture(scope="module")
def tfidf_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    bench = ROOT / "tests" / "fixtures" / "benchmarks"
    argv = [
        "--models", "tfidf-logreg", "--benchmark", "tiny_multilingual", "--benchmarks-dir", str(bench),
        "--data-dir", str(ROOT / "tests" / "fixtures" / "multilingual"), "--results-dir", str(root),
        "--seeds", "2", "--quiet", "--no-isolate", "--no-save-model",
    ]  # fmt: skip
    assert main(argv) == 0
    return root


@pytest.fixture
def fixture_env(monkeypatch, tfidf_store):
    monkeypatch.setenv("TEXTCLF_BENCHMARK", "tiny_multilingual")
    monkeypatch.setenv("TEXTCLF_BENCHMARKS_DIR", str(ROOT / "tests" / "fixtures" / "benchmarks"))
    monkeypatch.setenv("TEXTCLF_DATA_DIR", str(ROOT / "tests" / "fixtures" / "multilingual"))
    monkeypatch.setenv("TEXTCLF_RESULTS_DIR", str(tfidf_store))


def test_data_exploration_runs_on_the_fixture(fixture_env):
    notebook = execute("data_exploration.ipynb")
    text = outputs(notebook)
    assert "tiny_multilingual: 72 train / 36 test examples, 3 classes" in text
    assert "lang x class" in text and "test texts also in train: 0 (0.00%)" in text
    assert images(notebook) == 2  # class balance, length histogram


def test_evaluation_analysis_runs_on_the_tfidf_store(fixture_env):
    notebook = execute("evaluation_analysis.ipynb")
    text = outputs(notebook)
    assert "tiny_multilingual, configuration tiny-trainall-testall-" in text
    assert ": 1 model(s); 2 completed run(s); eval texts found" in text
    assert "tfidf-logreg" in text and "best" in text
    assert "_Fewer than two models with predictions._" in text
    assert images(notebook) == 2  # interval chart, reliability diagram


def test_python_api_notebook_runs_tfidf_and_prints_the_table(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTCLF_BENCHMARK", str(ROOT / "tests" / "fixtures" / "benchmarks" / "tiny_binary.yaml"))
    monkeypatch.setenv("TEXTCLF_DATA_DIR", str(ROOT / "tests" / "fixtures" / "binary"))
    monkeypatch.setenv("TEXTCLF_RESULTS_DIR", str(tmp_path / "results"))
    text = outputs(execute("python_api.ipynb"))
    lines = [line.split() for line in text.splitlines() if "tfidf-" in line]
    assert sorted(line[1] for line in lines) == ["tfidf-1gram", "tfidf-logreg"]
    # rank, model, seed 42, then accuracy / macro-F1 / ROC-AUC in [0, 1] and a positive latency
    assert all(line[2] == "42" and all(0 <= float(v) <= 1 for v in line[3:6]) and float(line[6]) > 0 for line in lines)
