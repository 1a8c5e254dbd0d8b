"""Kill and resume: the real CLI is killed with SIGKILL at several points and started again; it ends with the
same leaderboard as an uninterrupted run, finished models are not retrained and no JSON is ever partial.
A second run on the same results directory gets the lock's one-line message."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.store.results_store import ResultsStore
from tests.conftest import ROOT, masked_models_table, tiny_binary_cli_args

pytestmark = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")

REGISTRY = """\
models:
  - {name: tfidf-c0.5, family: tfidf, tfidf: {min_df: 1, C: 0.5}}
  - {name: tfidf-c4, family: tfidf, tfidf: {min_df: 1, C: 4.0}}
  - {name: tfidf-c16, family: tfidf, tfidf: {min_df: 1, ngram_max: 1, C: 16.0}}
"""
MODELS = ("tfidf-c0.5", "tfidf-c4", "tfidf-c16")


def cli_args(registry: Path, results: Path, *extra: str) -> list[str]:
    return tiny_binary_cli_args(registry, results, *extra)


def start_cli(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "run_benchmark.py"), *args], stdout=out, stderr=out, cwd=ROOT
        )


def wait_until(condition, process: subprocess.Popen, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended (code {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def processes_mentioning(text: str, *more: str) -> list[int]:
    """Live processes whose command line contains ``text`` and every one of ``more`` (zombies have none)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and all(m in cmdline for m in more):
                pids.append(int(entry.name))
    return pids


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


def result_files(results: Path) -> dict[str, Path]:
    return {p.parent.parent.name: p for p in (results / "tiny_binary").glob("configs/*/runs/*/seed-*/result.json")}


def completed(results: Path) -> dict[str, int]:
    """Models whose result.json says completed, with the file's mtime."""
    out = {}
    for model, path in result_files(results).items():
        if json.loads(path.read_text())["status"] == "completed":
            out[model] = path.stat().st_mtime_ns
    return out


def assert_no_partial_json(results: Path) -> int:
    files = list(results.rglob("*.json"))
    for path in files:
        json.loads(path.read_text())  # raises on a partial file
    return len(files)


def test_killed_runs_resume_to_the_same_leaderboard(tmp_path, capsys):
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    baseline, results = tmp_path / "baseline", tmp_path / "results"
    assert main(cli_args(registry, baseline, "--quiet", "--no-isolate")) == 0
    expected = masked_models_table(baseline / "tiny_binary" / "leaderboard.md")
    assert sorted(r["model"] for r in expected) == sorted(MODELS)
    assert [r["status"] for r in expected] == ["ok"] * 3 and [r["rank"] for r in expected] == ["1", "2", "3"]
    kills = 0

    # 1. Very early: as soon as the run holds the lock, before any model has finished.
    process = start_cli(cli_args(registry, results, "--no-isolate"), tmp_path / "run1.log")
    wait_until((results / "tiny_binary" / ".run.lock").exists, process, "the lock")
    kill(process)
    kills += 1
    assert_no_partial_json(results)
    finished = completed(results)

    # 2. Isolated (the default): after the first result, while the next model's own process is working.
    #    The killed run's children must die with it, not keep writing behind the next run's back.
    process = start_cli(cli_args(registry, results), tmp_path / "run2.log")
    wait_until(lambda: len(completed(results)) > len(finished), process, "a new result")

    def unfinished_worker() -> bool:
        done = completed(results)
        return any(
            processes_mentioning(f"harness.run.worker {results}/tiny_binary/configs/", f"/runs/{m}/seed-")
            for m in MODELS
            if m not in done
        )

    wait_until(unfinished_worker, process, "the next model's process")
    kill(process)
    kills += 1
    deadline = time.monotonic() + 15
    while processes_mentioning(f"harness.run.worker {results}"):
        assert time.monotonic() < deadline, "a model's process outlived the killed run"
        time.sleep(0.01)
    assert_no_partial_json(results)
    now = completed(results)
    assert all(now[m] == t for m, t in finished.items()), "a finished model was retrained"
    assert len(now) > len(finished)
    finished = now

    # 3. In-process: the moment one more result appears (the next model may be halfway through).
    if len(finished) < len(MODELS):
        process = start_cli(cli_args(registry, results, "--no-isolate"), tmp_path / "run3.log")
        wait_until(lambda: len(completed(results)) > len(finished), process, "another result")
        kill(process)
        kills += 1
        assert_no_partial_json(results)
        now = completed(results)
        assert all(now[m] == t for m, t in finished.items()), "a finished model was retrained"
        finished = now

    # Resume: finished models are skipped, the rest run, the leaderboard matches the uninterrupted run.
    capsys.readouterr()
    assert main(cli_args(registry, results, "--no-isolate")) == 0
    out = capsys.readouterr().err
    for model in finished:
        assert f"- {model} (seed 42): already complete, skipped" in out
    final = completed(results)
    assert set(final) == set(MODELS)
    assert all(final[m] == t for m, t in finished.items()), "a finished model was retrained"
    assert masked_models_table(results / "tiny_binary" / "leaderboard.md") == expected
    # 3 results + 3 evaluation_metrics (+ job.json of the isolated run), all whole; no temporary file left.
    assert assert_no_partial_json(results) >= 6
    assert not [p for p in results.rglob("*.tmp") if p.is_file()]
    assert kills >= 2


def _pump(stream) -> list[str]:
    """The lines of a child's stream as they come (read by a thread, so the child never blocks on a full pipe)."""
    lines: list[str] = []

    def read():
        for line in stream:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_a_second_command_on_the_same_grid_waits_for_the_shared_files_and_skips_held_runs(tmp_path):
    """One writer per run: while another process holds the benchmark's files, a second command waits for them;
    a run held by another process is left to it, and every other run is done once."""
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    results = tmp_path / "results"
    assert main(cli_args(registry, results, "--no-isolate", "--quiet", "--models", "tfidf-c0.5")) == 0
    store = ResultsStore(results)
    (config,) = store.configurations("tiny_binary")
    held = store.run_dir("tiny_binary", config.label, "tfidf-c4", 42)
    with store.run_lock(held) as holder:
        assert holder is None
        with store.lock("tiny_binary"):
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "run_benchmark.py"), *cli_args(registry, results, "--no-isolate")],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            )
            out, err = _pump(process.stdout), _pump(process.stderr)
            # Held until the child says it waits (its start-up takes seconds on a loaded machine): never refused.
            deadline = time.monotonic() + 120
            while not any(f"waiting for pid {os.getpid()} to finish writing" in line for line in out + err):
                assert process.poll() is None, "".join(err)
                assert time.monotonic() < deadline, "the second command never said it waits"
                time.sleep(0.1)
            assert not (held / "result.json").exists()
        process.wait(timeout=120)
    out, err = "".join(out), "".join(err)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    # The log lines are on stderr; stdout holds only the result.
    assert f"waiting for pid {os.getpid()} to finish writing" in err
    assert f"- tfidf-c4 (seed 42): being run by pid {os.getpid()} on {os.uname().nodename}, left to it" in err
    assert "- tfidf-c0.5 (seed 42): already complete, skipped" in err
    assert "- tfidf-c16 (seed 42): running" in err and not (held / "result.json").exists()


def test_stale_temporary_files_of_a_killed_writer_are_swept(tmp_path):
    store = ResultsStore(tmp_path)
    run_dir = store.run_dir("tiny_binary", "c", "m", 42)
    run_dir.mkdir(parents=True)
    stale = run_dir / ".result.json.abc123.tmp"
    stale.write_text('{"status": "compl')  # what a SIGKILL in the middle of a write leaves
    keep = run_dir / "checkpoint.tmp"  # not ours: a training loop's own folder
    keep.mkdir()
    shared = store.benchmark_dir("tiny_binary") / ".leaderboard.md.abc123.tmp"
    shared.write_text("# Leader")
    with store.lock("tiny_binary"):
        # the benchmark's own files are swept by its lock; a run's files only by that run's writer
        assert not shared.exists() and stale.exists()
    with store.run_lock(run_dir) as holder:
        assert holder is None and not stale.exists() and keep.is_dir()
    assert store.load_result(run_dir) is None


@pytest.mark.parametrize("how", [["report"], ["--report-only"]], ids=["report", "report-only"])
def test_report_takes_the_lock_and_writes_nothing_while_a_run_holds_it(tmp_path, capsys, how):
    """A report used to rebuild the leaderboard while a run was writing, replacing the run's newer one."""
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    results = tmp_path / "results"
    assert main(cli_args(registry, results, "--no-isolate", "--quiet")) == 0
    board = results / "tiny_binary" / "leaderboard.md"
    board.unlink()  # a report that slips past the lock would write it again
    capsys.readouterr()
    with ResultsStore(results).lock("tiny_binary"):
        code = main([*how, "--benchmark", "tiny_binary", "--benchmarks-dir", str(ROOT / "tests" / "fixtures" / "benchmarks"),
                     "--results-dir", str(results), "--quiet"])
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: {results / 'tiny_binary'}: another run is writing here (pid {os.getpid()}) "
        "(fix: wait for it to finish, or pass a different --results-dir)\n"
    )
    assert not board.exists()
