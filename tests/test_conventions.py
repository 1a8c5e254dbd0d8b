"""The habits of a command-line tool: results on stdout, log lines and warnings on stderr, -v beside --quiet,
``report`` that finds the store's benchmark itself and leaves nothing behind when it fails, an env default for
the results folder."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import ROOT, run_path

FIXTURES = Path(__file__).parent / "fixtures"
BENCHMARKS = FIXTURES / "benchmarks"


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.fixture
def store(tmp_path) -> Path:
    """A copy of the fixture store: one benchmark (tiny_multilingual), one configuration."""
    copy = tmp_path / "results"
    shutil.copytree(FIXTURES / "store", copy)
    return copy


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch):
    """Figures are not what these tests are about, and drawing them is most of a report's time."""
    from harness.report import publish

    monkeypatch.setattr(publish, "draw_figures", lambda board: [])


def test_report_on_a_store_with_one_benchmark_needs_no_benchmark(store, capsys):
    assert main(["report", "--benchmarks-dir", str(BENCHMARKS), "--results-dir", str(store)]) == 0
    out, err = capsys.readouterr()
    board = store / "tiny_multilingual" / "leaderboard.md"
    # The result (the path written) on stdout, and nothing else on either stream for a clean rebuild.
    assert out == f"leaderboard: {board} (configuration tiny-trainall-testall-fb50a8b3fb)\n"
    assert err == ""
    assert "**Configuration**: `tiny-trainall-testall-fb50a8b3fb`" in board.read_text()


def test_the_results_folder_defaults_to_the_environment(store, capsys, monkeypatch):
    monkeypatch.setenv("TEXTCLF_RESULTS_DIR", str(store))
    assert main(["report", "--benchmarks-dir", str(BENCHMARKS), "--quiet"]) == 0
    assert (store / "tiny_multilingual" / "leaderboard.md").exists()
    assert capsys.readouterr() == ("", "")


def test_report_lists_the_benchmarks_of_a_store_holding_several_and_creates_nothing(store, capsys):
    (store / "tiny_binary" / "configs").mkdir(parents=True)
    before = _tree(store)
    assert main(["report", "--benchmarks-dir", str(BENCHMARKS), "--results-dir", str(store)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"error: {store}: holds several benchmarks (tiny_binary, tiny_multilingual) "
                   "(fix: name one with --benchmark NAME)\n")
    assert _tree(store) == before


@pytest.mark.parametrize("where", ["empty", "absent", "other"])
def test_a_failed_report_creates_nothing(tmp_path, store, capsys, where):
    results = {"empty": tmp_path / "empty", "absent": tmp_path / "absent", "other": store}[where]
    if where == "empty":
        results.mkdir()
    before = _tree(tmp_path)
    args = ["report", "--benchmarks-dir", str(BENCHMARKS), "--results-dir", str(results)]
    if where == "other":
        args += ["--benchmark", "tiny_binary"]
    assert main(args) == 2
    err = capsys.readouterr().err
    if where == "other":
        assert err == (f"error: {store}: holds no runs of benchmark 'tiny_binary' "
                       "(fix: run it first, or report one it holds (tiny_multilingual))\n")
    else:
        assert err.startswith(f"error: {results.resolve()}: holds no benchmark's runs")
    assert _tree(tmp_path) == before
    assert not results.exists() or where != "absent"


BUSY = "warning: measured while the machine was busy: "


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "default"}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def _run_args(results: Path) -> list[str]:
    return ["run", "--models", "tfidf-logreg", "--benchmark", "tiny_binary", "--benchmarks-dir", str(BENCHMARKS),
            "--data-dir", str(FIXTURES / "binary"), "--results-dir", str(results), "--latency-samples", "2"]


def test_results_on_stdout_logs_and_warnings_on_stderr(tmp_path):
    results = tmp_path / "results"
    quiet = _cli(*_run_args(results), "--quiet")
    # A clean quiet run: nothing on stderr (no warning of ours or of a library), nothing on stdout; but for the
    # warning that the machine was busy while it was timed, which a shared test machine may well be.
    stderr = [line for line in quiet.stderr.splitlines() if not line.startswith(BUSY)]
    assert (quiet.returncode, quiet.stdout, stderr) == (0, "", [])
    loud = _cli(*_run_args(results))
    assert loud.returncode == 0, loud.stderr
    # stdout holds the result alone; the log lines (a skipped run here) are on stderr.
    assert loud.stdout == f"leaderboard: {results.resolve() / 'tiny_binary' / 'leaderboard.md'}\n"
    assert "- tfidf-logreg (seed 42): already complete, skipped" in loud.stderr
    # A warning (a run the report cannot use) is on stderr, even with --quiet, and stdout stays clean.
    (run_path(results, "tiny_binary", "tfidf-logreg") / "predictions.csv").write_text("id,label\n")
    report = _cli("report", "--benchmark", "tiny_binary", "--benchmarks-dir", str(BENCHMARKS),
                  "--results-dir", str(results), "--quiet")
    assert report.returncode == 1 and report.stdout == ""
    assert [line.split(":")[0] for line in report.stderr.splitlines()] == ["not used"]


def test_verbose_beside_quiet(store, capsys):
    logger = logging.getLogger("harness")
    for flag, level in (("--quiet", logging.WARNING), ("-v", logging.DEBUG), ("--verbose", logging.DEBUG)):
        assert main(["report", "--benchmarks-dir", str(BENCHMARKS), "--results-dir", str(store), flag]) == 0
        assert logger.level == level
    assert main(["report", "--benchmarks-dir", str(BENCHMARKS), "--results-dir", str(store)]) == 0
    assert logger.level == logging.INFO
    capsys.readouterr()
