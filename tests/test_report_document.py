"""The report renders one object: the board reads each predictions file once, sections carry no format, the
markdown renderer writes them the same way every time, and publish writes from memory without reading back."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from harness.config.registry import load_benchmark
from harness.metrics.columns import columns
from harness.report import analysis, markdown, publish, sections
from harness.report.board import Leaderboard
from harness.report.document import BulletList, Figure, Gallery, Paragraph, Section, Table
from harness.store.results_store import ResultsStore

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def store(tmp_path) -> ResultsStore:
    shutil.copytree(FIXTURES / "store", tmp_path / "results")
    return ResultsStore(tmp_path / "results")


@pytest.fixture
def spec():
    return load_benchmark("tiny_multilingual", FIXTURES / "benchmarks")[0]


def test_the_board_holds_group_tables_and_transfer_matrices_from_predictions_read_once(store, spec, monkeypatch):
    reads: Counter = Counter()
    original = analysis.read_predictions

    def counted(run_dir, *args):
        reads[Path(run_dir)] += 1
        return original(run_dir, *args)

    monkeypatch.setattr(analysis, "read_predictions", counted)
    board = Leaderboard.from_store(store, spec, n_boot=200)
    publish.report_files(board)
    assert reads and set(reads.values()) == {1}
    # The transfer rows' runs (filtered variants) are read by the board too, each once.
    assert any("transfer" in str(path) for path in reads)
    assert list(board.group_tables) == ["lang"] and list(board.transfer) == ["lang"]
    (scored,) = board.group_tables["lang"]
    assert scored.model == "tfidf-logreg" and sorted(scored.cells) == ["de", "en", "es", "fr"]
    matrix = board.transfer["lang"]["tfidf-logreg"]
    assert "all" in matrix and len(matrix) > 1
    assert board.warnings == []


def test_publish_writes_from_memory_and_reads_back_nothing(store, spec, monkeypatch):
    board = Leaderboard.from_store(store, spec, n_boot=200)
    top = store.benchmark_dir(spec.name)
    touched = []
    for name in ("read_text", "read_bytes"):
        original = getattr(Path, name)

        def spy(self, *args, _original=original, **kwargs):
            if top in self.resolve().parents:
                touched.append(self)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Path, name, spy)
    monkeypatch.setattr(shutil, "copytree", lambda *a, **k: pytest.fail("publish copied files it wrote"))
    path = publish.publish(store, board)
    assert touched == []
    monkeypatch.undo()
    config_dir = store.config_dir(spec.name, board.configuration.label)
    for name in publish.LEADERBOARD_FILES:
        assert (top / name).is_file() and (config_dir / name).is_file()
    assert path.read_text() == (config_dir / "leaderboard.md").read_text().replace("](../", "](configs/")
    assert sorted(p.name for p in (top / "plots").iterdir()) == sorted(p.name for p in (config_dir / "plots").iterdir())


def test_the_markdown_renderer_spaces_every_block_the_same_way():
    doc = [
        Section("Title", [Paragraph("intro\nsecond line"), BulletList(["a", "b"])], level=1),
        Section("Numbers", [Table(["x", "y"], [["1", 2]], notes="under it")], caption="over it"),
        Section("Parts", [Section("one", [Figure("plots/a.png", "A")], level=3), Section("two", [Paragraph("")], level=3)]),
        Section("Plots", [Gallery([Figure("plots/b.png", "B")])]),
        Section("Last", [Paragraph("end")]),
    ]
    assert markdown.render(doc) == (
        "# Title\n\nintro\nsecond line\n\n- a\n- b\n\n"
        "## Numbers\n\nover it\n\n| x   | y   |\n|-----|-----|\n| 1   | 2   |\n\nunder it\n\n"
        "## Parts\n\n### one\n\n![A](plots/a.png)\n\n### two\n\n\n\n"
        "## Plots\n\n### B\n\n![B](plots/b.png)\n\n\n"
        "## Last\n\nend\n"
    )


def test_sections_are_data_built_from_the_board_alone(store, spec):
    board = Leaderboard.from_store(store, spec, n_boot=200)
    built = sections.leaderboard(board, [Figure("plots/x.png", "X")])
    titles = [s.title for s in built]
    assert titles[0] == "Leaderboard: tiny\\_multilingual" and titles[1] == "Models"
    assert "Macro-F1 per lang" in titles and "Plots" in titles and "Error analysis" in titles
    models = built[1].blocks[0]
    labels = [column.label for column in columns("table")]
    assert isinstance(models, Table) and models.columns[3 : 3 + len(labels)] == labels
    assert labels[:3] == ["accuracy", "macro-F1", "ROC-AUC"]
    assert all(isinstance(cell, str | int) for row in models.rows for cell in row)
    # Without files (the API's to_markdown): no plots, no error-analysis link, no group heatmaps.
    bare = [s.title for s in sections.leaderboard(board, None, with_groups=False)]
    assert "Plots" not in bare and "Error analysis" not in bare and "Macro-F1 per lang" not in bare
