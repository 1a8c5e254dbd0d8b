"""Runs that share a machine, and the findings of the adversarial pass on them: Ctrl-C cancels what is queued and
still writes the leaderboard of what finished; the latest configuration is the one whose command finished last."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.run.executors import LocalExecutor

FIXTURES = Path(__file__).parent / "fixtures"


def _args(results: Path, *extra: str) -> list[str]:
    return ["run", "--models", "tfidf-logreg", "--benchmark", "tiny_binary", "--benchmarks-dir",
            str(FIXTURES / "benchmarks"), "--data-dir", str(FIXTURES / "binary"), "--results-dir", str(results),
            "--no-isolate", "--latency-samples", "2", "--quiet", *extra]


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch):
    """Figures are not what these tests are about, and drawing them is most of a report's time."""
    from harness.report import publish

    monkeypatch.setattr(publish, "draw_figures", lambda board: [])


# ----- Ctrl-C during --parallel N ------------------------------------------------------------------------------


def test_ctrl_c_cancels_the_queued_runs_of_a_parallel_executor():
    """SIGINT while two runs are in flight and four are queued: the two finish, none of the four starts."""
    started: list[str] = []
    release = threading.Event()

    def execute(job, env):
        started.append(job)
        if release.wait(5):
            raise KeyboardInterrupt  # a run's process stopped by the same Ctrl-C exits 130
        return job

    def ctrl_c():
        os.kill(os.getpid(), signal.SIGINT)  # the terminal sends it to the command and to its runs
        release.set()

    timer = threading.Timer(0.3, ctrl_c)
    timer.start()
    begin = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        for _ in LocalExecutor(parallel=2).map(list("abcdef"), execute):
            pass
    assert sorted(started) == ["a", "b"]
    assert time.monotonic() - begin < 4


def test_a_run_stopped_by_ctrl_c_starts_no_queued_run_on_its_freed_slot():
    """A run that ends with Ctrl-C frees its slot before the main thread hears of it: nothing starts there."""
    started: list[str] = []
    b_started = threading.Event()

    def execute(job, env):
        started.append(job)
        if job == "a":
            b_started.wait(5)
            raise KeyboardInterrupt
        b_started.set()
        time.sleep(0.3)
        return job

    with pytest.raises(KeyboardInterrupt):
        for _ in LocalExecutor(parallel=2).map(list("abcdef"), execute):
            pass
    assert sorted(started) == ["a", "b"]


def test_ctrl_c_during_a_parallel_grid_writes_the_leaderboard_of_what_finished(tmp_path, monkeypatch, capsys):
    from harness.run import executors

    real = executors.run_job
    started: list[int] = []

    def run_job(job):
        started.append(job.seed)
        if job.seed == 43:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(executors, "run_job", run_job)
    results = tmp_path / "results"
    assert main(_args(results, "--parallel", "2", "--seeds", "6")) == 130
    assert sorted(started) == [42, 43]  # seeds 44-47 were queued: cancelled, never started
    board = json.loads((results / "tiny_binary" / "leaderboard.json").read_text())
    assert [(row["model"], row["seed"], row["status"]) for row in board["rows"]] == [("tfidf-logreg", 42, "completed")]
    assert capsys.readouterr().err.splitlines()[-1].startswith("interrupted: finished runs are kept")


# ----- the latest configuration --------------------------------------------------------------------------------


def test_the_latest_configuration_is_the_one_whose_command_finished_last(tmp_path, monkeypatch, capsys):
    """Command A starts, command B (another configuration) starts and finishes, then A finishes: the top-level
    leaderboard, current-configuration.json and a later plain 'report' all name A."""
    from harness.run import executors

    real = executors.run_job
    results = tmp_path / "results"
    calls = []

    def run_job(job):
        calls.append(job.configuration.label)
        if len(calls) == 1:  # A is running: B runs from start to finish meanwhile
            monkeypatch.setattr(executors, "run_job", real)
            assert main(_args(results, "--limit-train", "40")) == 0
        return real(job)

    monkeypatch.setattr(executors, "run_job", run_job)
    assert main(_args(results)) == 0
    top = results / "tiny_binary"
    a = json.loads(next(top.glob("configs/*-trainall-*/configuration.json")).read_text())["label"]
    current = json.loads((top / "current-configuration.json").read_text())["label"]
    board = json.loads((top / "leaderboard.json").read_text())
    assert current == a and f"`{a}`" in (top / "leaderboard.md").read_text()
    assert main(["report", "--benchmarks-dir", str(FIXTURES / "benchmarks"), "--results-dir", str(results),
                 "--quiet"]) == 0
    assert json.loads((top / "leaderboard.json").read_text()) == board
    assert json.loads((top / "current-configuration.json").read_text())["label"] == a
    capsys.readouterr()
