"""Each model runs in its own process: results come back through the store, a dead child is a failed run."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from harness.config.options import RunOptions
from harness.pipeline import run
from tests.conftest import ROOT, run_path

REGISTRY = """\
models:
  - name: tfidf-logreg
    family: tfidf
    tfidf: {ngram_max: 2, min_df: 1}
  - name: crasher
    family: tfidf
    description: a baseline whose process is killed in the middle of training
    tfidf: {ngram_max: 1, min_df: 1}
"""

# Loaded by every Python the test starts (PYTHONPATH); it kills the worker of the "crasher" model with
# SIGKILL during fit, as the kernel's out-of-memory killer would: no exception, no result.json.
SITECUSTOMIZE = """\
import os
import signal

from harness.models import tfidf

_fit = tfidf.TfidfLogReg.fit


def fit(self, train, budget, workdir, show_progress=True, **kwargs):
    if "crasher" in str(workdir):
        os.kill(os.getpid(), signal.SIGKILL)
    return _fit(self, train, budget, workdir, show_progress, **kwargs)


tfidf.TfidfLogReg.fit = fit
"""


@pytest.fixture
def crash_setup(tmp_path, monkeypatch):
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hooks), str(ROOT)]))
    return registry


def _config(tmp_path, bench_dir, binary_dir, registry, models: str) -> RunOptions:
    return RunOptions(
        models=models, benchmark="tiny_binary", benchmarks_dir=bench_dir, data_dir=binary_dir,
        results_dir=tmp_path / "results", registry=registry, isolate=True, quiet=True, latency_samples=5,
    )


def _result(tmp_path, model: str) -> dict:
    return json.loads((run_path(tmp_path / "results", "tiny_binary", model, 42) / "result.json").read_text())


def test_killed_child_is_a_failed_run_and_the_others_survive(tmp_path, bench_dir, binary_dir, crash_setup):
    summary = run(_config(tmp_path, bench_dir, binary_dir, crash_setup, "crasher,tfidf-logreg"))
    assert summary.completed == ["tfidf-logreg (seed 42)"]
    assert list(summary.failed) == ["crasher (seed 42)"]
    reason = summary.failed["crasher (seed 42)"]
    assert reason.startswith("the run's process killed by signal SIGKILL") and reason.endswith("before writing its result")

    crashed = _result(tmp_path, "crasher")
    assert crashed["status"] == "failed" and crashed["error"]["type"] == "ChildProcessDied"
    survivor = _result(tmp_path, "tfidf-logreg")
    assert survivor["status"] == "completed" and survivor["metrics"]["n"] == 24
    # the survivor's numbers were measured in its own process, started after the crash
    assert survivor["memory"]["train"]["rss_peak_bytes"] >= survivor["memory"]["train"]["rss_start_bytes"] > 0

    board = (tmp_path / "results" / "tiny_binary" / "leaderboard.md").read_text()
    crash_line = next(line for line in board.splitlines() if "| crasher " in line)
    assert "| failed " in crash_line and "killed by signal SIGKILL" in crash_line
    assert "| 1      | tfidf-logreg |" in board


def test_crashed_run_is_redone_on_the_next_run(tmp_path, bench_dir, binary_dir, crash_setup, monkeypatch):
    run(_config(tmp_path, bench_dir, binary_dir, crash_setup, "crasher"))
    assert _result(tmp_path, "crasher")["status"] == "failed"
    # the cause is gone (more memory, a fixed bug): the next run retries it instead of skipping it
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    summary = run(_config(tmp_path, bench_dir, binary_dir, crash_setup, "crasher"))
    assert summary.completed == ["crasher (seed 42)"] and summary.skipped == [], summary.failed
    assert _result(tmp_path, "crasher")["status"] == "completed"
