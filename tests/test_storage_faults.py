"""A results store that fills up or turns read-only: the affected run fails with one line, the others go on,
the command exits 1 without a traceback, and no finished result is lost.

The tests run as root, which ignores file permissions, so faults are injected where every store write goes:
``harness.store.results_store.atomic_write_bytes`` raises ``OSError(ENOSPC)`` for chosen paths, in this process or, for
isolated runs, in the model's own process through a ``sitecustomize`` hook. A slow test does the same with a
real full (and then read-only) tmpfs when mounting one is permitted.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import harness.run.executors
import harness.store.results_store
from harness.cli import main
from tests.conftest import FIXTURES, ROOT, tiny_binary_cli_args

REGISTRY = """\
models:
  - {name: first, family: tfidf, tfidf: {min_df: 1}}
  - {name: victim, family: tfidf, tfidf: {min_df: 1, C: 2.0}}
  - {name: last, family: tfidf, tfidf: {min_df: 1, C: 3.0}}
"""
ENOSPC = os.strerror(errno.ENOSPC)

# Loaded by the model processes the test starts (PYTHONPATH): the store refuses every write whose path
# contains FAULT_PATHS' pieces, as a full disk would; KILL_IN_FIT also kills the worker in fit.
SITECUSTOMIZE = """\
import errno
import os
import signal

from harness.store import results_store as store
from harness.models import tfidf

_write = store.atomic_write_bytes
_fit = tfidf.TfidfLogReg.fit
PIECES = [p for p in os.environ.get("FAULT_PATHS", "").split(",") if p]


def atomic_write_bytes(path, data):
    if any(piece in str(path) for piece in PIECES):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return _write(path, data)


def fit(self, train, budget, workdir, show_progress=True, **kwargs):
    if os.environ.get("KILL_IN_FIT") and os.environ["KILL_IN_FIT"] in str(workdir):
        os.kill(os.getpid(), signal.SIGKILL)
    return _fit(self, train, budget, workdir, show_progress, **kwargs)


store.atomic_write_bytes = atomic_write_bytes
tfidf.TfidfLogReg.fit = fit
"""


@pytest.fixture
def registry(tmp_path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    return path


def refuse_writes(monkeypatch, *pieces: str, module=harness.store.results_store) -> list[str]:
    """Make the store's atomic writes fail with ENOSPC for paths containing any of ``pieces``; returns the
    paths refused."""
    real = harness.store.results_store.atomic_write_bytes
    refused: list[str] = []

    def faulty(path, data):
        if any(piece in str(path) for piece in pieces):
            refused.append(str(path))
            raise OSError(errno.ENOSPC, ENOSPC, str(path))
        return real(path, data)

    monkeypatch.setattr(module, "atomic_write_bytes", faulty)
    return refused


def child_hook(tmp_path, monkeypatch, fault_paths: str, kill_in_fit: str = "") -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hooks), str(ROOT)]))
    monkeypatch.setenv("FAULT_PATHS", fault_paths)
    monkeypatch.setenv("KILL_IN_FIT", kill_in_fit)


def run_dir(results: Path, model: str) -> Path:
    found = list(results.glob(f"tiny_binary/configs/*/runs/{model}/seed-42"))
    assert len(found) == 1, found
    return found[0]


def status(results: Path, model: str) -> tuple[str, str | None, str | None]:
    path = run_dir(results, model) / "result.json"
    if not path.exists():
        return ("absent", None, None)
    result = json.loads(path.read_text())
    error = result.get("error") or {}
    return (result["status"], error.get("type"), error.get("message"))


def finished_first(registry: Path, results: Path) -> bytes:
    """Run 'first' on a healthy store; its result.json bytes, to check that no fault touches them later."""
    assert main(tiny_binary_cli_args(registry, results, "--quiet", "--models", "first")) == 0
    return (run_dir(results, "first") / "result.json").read_bytes()


def board_statuses(results: Path) -> dict[str, str]:
    rows = json.loads((results / "tiny_binary" / "leaderboard.json").read_text())["rows"]
    return {row["model"]: row["status"] for row in rows}


def last_line(err: str) -> str:
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("refused", "expected"),
    [
        # The predictions cannot be written: the run fails with that cause, and its failure record can be.
        ("/runs/victim/seed-42/predictions.csv", ("failed", "OSError")),
        # Neither the result nor the failure record can be written: nothing of the run reaches the store.
        ("/runs/victim/", ("absent", None)),
    ],
    ids=["predictions-refused", "whole-run-refused"],
)
def test_in_process_store_fault_fails_one_run(tmp_path, registry, monkeypatch, capfd, refused, expected):
    results = tmp_path / "results"
    first = finished_first(registry, results)
    capfd.readouterr()
    writes = refuse_writes(monkeypatch, refused)
    assert main(tiny_binary_cli_args(registry, results, "--quiet", "--no-isolate")) == 1
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert writes and all(refused in path for path in writes)
    assert last_line(err) == "1 run(s) failed: victim (seed 42) (see the leaderboard)"
    assert status(results, "victim")[:2] == expected
    if expected[0] == "absent":
        # --quiet still says, in one line, that the failure is not in the store and why.
        line = next(line for line in out.splitlines() if "victim" in line)
        assert line.startswith("- victim (seed 42): FAILED: OSError: [Errno 28] No space left on device")
        assert line.endswith(f"; this failure could not be recorded in the results store either ({ENOSPC})")
    else:
        assert "No space left on device" in status(results, "victim")[2]
    assert status(results, "last")[0] == "completed"  # the models after it still ran
    assert (run_dir(results, "first") / "result.json").read_bytes() == first  # skipped, untouched
    assert board_statuses(results) == {"first": "completed", "last": "completed", **({"victim": "failed"} if expected[0] != "absent" else {})}


def test_isolated_child_cannot_write_parent_records_the_failure(tmp_path, registry, monkeypatch, capfd):
    """The model's process finds the store full: it says so in one line and exits 3; the parent, whose own
    write goes through, records the run as failed; the next model runs."""
    results = tmp_path / "results"
    first = finished_first(registry, results)
    capfd.readouterr()
    child_hook(tmp_path, monkeypatch, "/runs/victim/seed-42/result.json")
    assert main(tiny_binary_cli_args(registry, results, "--quiet")) == 1
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    child_line = next(line for line in err.splitlines() if line.startswith("error:"))
    assert child_line.endswith(
        f"/runs/victim/seed-42: OSError: [Errno 28] {ENOSPC}: '{run_dir(results, 'victim')}/result.json'; "
        f"this failure could not be recorded in the results store either ({ENOSPC})"
    )
    assert last_line(err) == "1 run(s) failed: victim (seed 42) (see the leaderboard)"
    assert status(results, "victim") == (
        "failed", "ResultNotWritten", "the run's process could not write its result to the results store"
    )
    assert status(results, "last")[0] == "completed"
    assert (run_dir(results, "first") / "result.json").read_bytes() == first
    assert board_statuses(results) == {"first": "completed", "victim": "failed", "last": "completed"}


def test_forced_redo_that_cannot_be_written_keeps_the_finished_result(tmp_path, registry, monkeypatch, capfd):
    """--force redoes 'first'; its process cannot write the new result. The earlier finished result stays as
    it was (the parent could write a failure record, and must not write it over a finished run)."""
    results = tmp_path / "results"
    first = finished_first(registry, results)
    capfd.readouterr()
    child_hook(tmp_path, monkeypatch, "/runs/first/seed-42/result.json")
    assert main(tiny_binary_cli_args(registry, results, "--quiet", "--force", "--models", "first")) == 1
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert last_line(err) == "1 run(s) failed: first (seed 42) (see the leaderboard)"
    assert (run_dir(results, "first") / "result.json").read_bytes() == first
    assert board_statuses(results) == {"first": "completed"}


@pytest.mark.parametrize("kill", [False, True], ids=["child-cannot-write", "child-killed"])
def test_isolated_parent_cannot_record_the_failure_either(tmp_path, registry, monkeypatch, capfd, kill):
    """The finding itself: the parent failing to record a child's failure crashed the whole command (five
    tracebacks, no leaderboard, later models never run). Now that run fails in one line and the rest goes on."""
    results = tmp_path / "results"
    first = finished_first(registry, results)
    capfd.readouterr()
    child_hook(tmp_path, monkeypatch, "/runs/victim/", kill_in_fit="/runs/victim/" if kill else "")
    refuse_writes(monkeypatch, "/runs/victim/seed-42/result.json")  # the parent's own record of the failure
    assert main(tiny_binary_cli_args(registry, results, "--quiet")) == 1
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    cause = (
        "ChildProcessDied: the run's process killed by signal SIGKILL (often the out-of-memory killer) before "
        "writing its result" if kill else
        "ResultNotWritten: the run's process could not write its result to the results store"
    )
    assert f"- victim (seed 42): FAILED: {cause}; this failure could not be recorded in the results store " \
           f"either ({ENOSPC})" in out.splitlines()
    assert last_line(err) == "1 run(s) failed: victim (seed 42) (see the leaderboard)"
    assert status(results, "victim")[0] == "absent"
    assert status(results, "last")[0] == "completed"
    assert (run_dir(results, "first") / "result.json").read_bytes() == first
    assert board_statuses(results) == {"first": "completed", "last": "completed"}


def test_job_file_refused_fails_that_run_only(tmp_path, registry, monkeypatch, capfd):
    """The parent cannot even hand the job to a process: that run fails in one line, the next one runs."""
    results = tmp_path / "results"
    refuse_writes(monkeypatch, "/runs/victim/seed-42/job.json", module=harness.run.executors)
    assert main(tiny_binary_cli_args(registry, results, "--quiet")) == 1
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert f"- victim (seed 42): FAILED: could not write to the results store ({ENOSPC})" in out.splitlines()
    assert [status(results, m)[0] for m in ("first", "last")] == ["completed", "completed"]


@pytest.mark.parametrize("isolate", [True, False], ids=["isolated", "in-process"])
def test_report_that_cannot_be_written_keeps_every_run(tmp_path, registry, monkeypatch, capfd, isolate):
    results = tmp_path / "results"
    refuse_writes(monkeypatch, "leaderboard.md")
    extra = () if isolate else ("--no-isolate",)
    assert main(tiny_binary_cli_args(registry, results, "--quiet", *extra)) == 1
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert [status(results, m)[0] for m in ("first", "victim", "last")] == ["completed"] * 3
    assert not (results / "tiny_binary" / "leaderboard.md").exists()
    assert out.strip().splitlines()[-1].startswith(f"could not write the report: [Errno 28] {ENOSPC}")
    assert last_line(err) == "1 run(s) failed: report (see the leaderboard)"

    # Room again: the report rebuilds from the store alone, with every run.
    monkeypatch.undo()
    assert main(["report", "--benchmark", "tiny_binary", "--benchmarks-dir", str(FIXTURES / "benchmarks"),
                 "--results-dir", str(results), "--quiet"]) == 0
    assert board_statuses(results) == {"first": "completed", "victim": "completed", "last": "completed"}


@pytest.mark.parametrize("how", [["report"], ["--report-only"]], ids=["report", "report-only"])
def test_report_command_on_a_full_store_is_one_line(tmp_path, registry, monkeypatch, capfd, how):
    results = tmp_path / "results"
    assert main(tiny_binary_cli_args(registry, results, "--quiet", "--no-isolate")) == 0
    before = {p: p.read_bytes() for p in results.rglob("result.json")}
    capfd.readouterr()
    refuse_writes(monkeypatch, "leaderboard")
    code = main([*how, "--benchmark", "tiny_binary", "--benchmarks-dir", str(FIXTURES / "benchmarks"),
                 "--results-dir", str(results), "--quiet"])
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert code == 1
    assert f"could not write the report: [Errno 28] {ENOSPC}" in out + err
    assert {p: p.read_bytes() for p in results.rglob("result.json")} == before


def test_store_that_refuses_the_configuration_stops_before_any_run(tmp_path, registry, monkeypatch, capfd):
    results = tmp_path / "results"
    first = finished_first(registry, results)
    capfd.readouterr()
    refuse_writes(monkeypatch, "eval_texts.csv")
    assert main(tiny_binary_cli_args(registry, results, "--quiet", "--force")) == 2
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert err.strip() == (
        f"error: {results.resolve() / 'tiny_binary'}: cannot write to the results directory ({ENOSPC}) "
        "(fix: free some space or pass a writable --results-dir)"
    )
    assert (run_dir(results, "first") / "result.json").read_bytes() == first
    assert not list(results.glob("tiny_binary/configs/*/runs/victim"))


# ----- a real, tiny file system -------------------------------------------------------------------------------


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs (root only): room for the configuration and about one run; skipped where mounting is
    not permitted."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip() or done.returncode}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def cli(registry: Path, results: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "run_benchmark.py"),
                           *tiny_binary_cli_args(registry, results, "--quiet", *extra)],
                          capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=300)


def completed_results(results: Path) -> dict[str, bytes]:
    found = {}
    for path in results.glob("tiny_binary/configs/*/runs/*/seed-42/result.json"):
        if json.loads(path.read_text())["status"] == "completed":
            found[path.parents[1].name] = path.read_bytes()
    return found


@pytest.mark.slow
def test_real_tmpfs_full_then_read_only(registry, tiny_tmpfs):
    """The issue's reproduction on a real file system: a 64 KiB tmpfs as --results-dir fills up during the
    second run; then it is read-only; then it has room. No traceback anywhere, every run that finished stays
    byte for byte, and the last command completes the rest."""
    results = tiny_tmpfs / "results"
    done = cli(registry, results)
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 1, done.stderr
    finished = completed_results(results)
    assert "first" in finished and len(finished) < 3  # the disk filled after the first run
    failed = [m for m in ("first", "victim", "last") if m not in finished]
    summary = last_line(done.stderr)
    assert summary.startswith(f"{len(failed) + 1} run(s) failed: ") and summary.endswith(", report (see the leaderboard)")
    assert all(f"{m} (seed 42)" in summary for m in failed)
    assert "could not write the report: [Errno 28] No space left on device" in done.stderr

    subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
    done = cli(registry, results)
    assert "Traceback" not in done.stdout + done.stderr
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: {results / 'tiny_binary'}: cannot write to the results directory (Read-only file system) "
        "(fix: pass a writable --results-dir)"
    )

    subprocess.run(["mount", "-o", "remount,rw,size=8m", str(tiny_tmpfs)], check=True)
    done = cli(registry, results)
    assert done.returncode == 0, done.stderr
    after = completed_results(results)
    assert set(after) == {"first", "victim", "last"}
    assert all(after[m] == finished[m] for m in finished)  # skipped, never redone or rewritten
    assert board_statuses(results) == {"first": "completed", "victim": "completed", "last": "completed"}
