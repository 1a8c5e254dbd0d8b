"""The report of a fixed store is pinned byte for byte: a change of structure must not change what people read.

``fixtures/store`` holds the runs of one configuration (TF-IDF, 2 seeds, a language transfer matrix) as a run
wrote them; ``fixtures/report_golden`` holds the files ``report`` wrote from them. A deliberate change of the
report (a new column) regenerates the goldens in the same commit:
``textclf-bench report --benchmark tiny_multilingual --benchmarks-dir tests/fixtures/benchmarks --results-dir <copy>``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
FILES = ["leaderboard.md", "leaderboard.csv", "leaderboard_models.csv", "leaderboard.json", "errors.md"]


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("golden") / "results"
    shutil.copytree(FIXTURES / "store", store)
    code = main(["report", "--benchmark", "tiny_multilingual", "--benchmarks-dir", str(FIXTURES / "benchmarks"),
                 "--results-dir", str(store), "--quiet"])
    assert code == 0
    return store / "tiny_multilingual"


@pytest.mark.parametrize("name", FILES)
def test_report_files_are_byte_identical(rebuilt, name):
    expected = (FIXTURES / "report_golden" / name).read_bytes()
    assert (rebuilt / name).read_bytes() == expected
    configuration = next((rebuilt / "configs").iterdir())
    assert (configuration / name).read_bytes() == expected


def test_the_figures_are_drawn(rebuilt):
    names = sorted(p.name for p in (rebuilt / "plots").glob("*.png"))
    assert "transfer_lang_tfidf-logreg.png" in names and "quality_vs_latency.png" in names
    assert all((rebuilt / "plots" / n).stat().st_size > 5000 for n in names)
