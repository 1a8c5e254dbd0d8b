"""Runs that share a machine: each run started beside others gets its share of the cores (recorded), and a run
measured on a busy machine, or beside another harness run, says so in its row and in a warning."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.metrics import machine
from harness.run import running
from harness.run.executors import LocalExecutor
from harness.store.results import RunResult
from tests.conftest import FIXTURES, run_path

REAL_CORES = machine.usable_cores()


def _args(results: Path, *extra: str) -> list[str]:
    return ["run", "--models", "tfidf-logreg", "--benchmark", "tiny_binary", "--benchmarks-dir",
            str(FIXTURES / "benchmarks"), "--data-dir", str(FIXTURES / "binary"), "--results-dir", str(results),
            "--latency-samples", "3", "--quiet", *extra]


def _result(results: Path, seed: int = 42) -> RunResult:
    return RunResult.model_validate_json((run_path(results, "tiny_binary", "tfidf-logreg", seed) / "result.json").read_text())


def _row_notes(results: Path) -> str:
    board = (results / "tiny_binary" / "leaderboard.md").read_text()
    (row,) = [line for line in board.splitlines() if line.startswith("| 1 ") and "tfidf-logreg" in line]
    return row.rsplit("|", 2)[-2].strip()


def _warnings(results: Path) -> list[str]:
    board = (results / "tiny_binary" / "leaderboard.md").read_text()
    return [line for line in board.splitlines() if line.startswith("- **Warning**")]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Figures are not what these tests are about; the registry of running runs is this test's own."""
    from harness.report import publish

    monkeypatch.setattr(publish, "draw_figures", lambda board: [])
    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    for name in (machine.THREADS_ENV, machine.RUNS_AT_ONCE_ENV, machine.GIVEN_BY_ENV, running.COMMAND_ENV,
                 *machine.LIBRARY_THREAD_ENV):
        monkeypatch.delenv(name, raising=False)


# ----- thread shares ---------------------------------------------------------------------------------------


def test_parallel_2_gives_each_run_half_the_usable_cores(tmp_path, monkeypatch):
    """Four usable cores (as the command sees them), two runs at once: each run's process gets 2 threads, in
    its environment before any library starts, recorded in its result; the siblings are not named as
    neighbours (the command gave them their shares to run side by side)."""
    monkeypatch.setattr(machine, "usable_cores", lambda: 4)
    assert main(_args(tmp_path, "--parallel", "2", "--seeds", "2")) == 0
    for seed in (42, 43):
        result = _result(tmp_path, seed)
        share = result.device.thread_share
        # the child process caps it at the cores it really has (2 here): never more threads than cores
        assert (share.threads, share.runs_at_once, share.given_by) == (min(2, REAL_CORES), 2, "--parallel 2")
        assert result.device.threads["env"] == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2",
                                                "OPENBLAS_NUM_THREADS": "2"}
        assert result.load.others == []
    caption = (tmp_path / "tiny_binary" / "leaderboard.md").read_text()
    assert f"Each run's thread share: {min(2, REAL_CORES)} of {REAL_CORES} usable cores (\\--parallel 2)." in caption


def test_a_run_alone_keeps_every_usable_core(tmp_path):
    assert main(_args(tmp_path, "--no-isolate")) == 0
    share = _result(tmp_path).device.thread_share
    assert share.model_dump(exclude_none=True) == {"threads": REAL_CORES, "runs_at_once": 1, "usable_cores": REAL_CORES,
                                  "given_by": "one run at a time"}
    assert LocalExecutor(parallel=1).share() == {}


def test_devices_on_a_cpu_divide_the_cores_and_a_lower_user_setting_wins(monkeypatch):
    monkeypatch.setattr(machine, "usable_cores", lambda: 6)
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    env = LocalExecutor(devices=["0", "1"]).share()
    assert env == {machine.THREADS_ENV: "3", machine.GIVEN_BY_ENV: "--devices 0,1", machine.RUNS_AT_ONCE_ENV: "2",
                   "OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "3"}
    # never below one thread, however many runs at once
    assert machine.share_of_cores(8, cores=6) == 1 and machine.share_of_cores(3, cores=7) == 2


def test_the_precision_probe_runs_with_the_share(tmp_path, monkeypatch):
    """A transformer trained under a share of 1 thread probes its precision with 1 thread (the probe's
    identity records it) and trains with 1."""
    import pandas as pd
    import torch

    from harness.models import transformer as T
    from tests.test_training_loop import budget, train_split
    from tests.tiny_models import build_tiny_model

    texts = pd.read_csv(FIXTURES / "binary" / "train.csv").text.tolist()
    tiny = build_tiny_model("bert", tmp_path / "bert", texts)
    before = torch.get_num_threads()
    monkeypatch.setenv(machine.THREADS_ENV, "1")
    monkeypatch.setenv(machine.RUNS_AT_ONCE_ENV, str(max(2, REAL_CORES)))
    try:
        report = T.TransformerClassifier.load(tiny).fit(train_split(), budget(precision="auto", epochs=1),
                                                        tmp_path / "w", show_progress=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert report.precision["probe"]["identity"]["threads"] == 1
    assert report.threads["intra_op"] == 1 and report.threads["share"] == 1


def test_a_ray_task_gets_its_num_cpus_as_threads(tmp_path, monkeypatch):
    """A local Ray instance for --parallel 2 on four usable cores: each task asks for 2 CPUs, and they are
    its run's threads."""
    ray = pytest.importorskip("ray", reason="Ray is the optional extra '.[ray]'")
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    real_init = ray.init

    def init_or_skip(*args, **kwargs):
        try:
            return real_init(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - no local Ray here (sandbox, no shared memory): nothing to test
            pytest.skip(f"Ray cannot start locally: {type(exc).__name__}: {exc}")

    monkeypatch.setattr(ray, "init", init_or_skip)
    monkeypatch.setattr(machine, "usable_cores", lambda: 4)
    assert main(_args(tmp_path, "--executor", "ray", "--parallel", "2")) == 0
    share = _result(tmp_path).device.thread_share
    assert (share.threads, share.runs_at_once, share.given_by) == (min(2, REAL_CORES), None, "Ray task num_cpus=2")


# ----- load while measured -----------------------------------------------------------------------------------


def _fake_machine(monkeypatch, load: float | None, cores_used: float) -> None:
    """Readings as the harness takes them (machine.read_machine), from a machine with this load where the
    process gets ``cores_used`` of a core: each reading one second after the last."""
    clock = iter(range(1, 1_000_000))

    def reading() -> machine.Reading:
        second = next(clock)
        return machine.Reading(wall=float(second), cpu=cores_used * second, load=load)

    monkeypatch.setattr(machine, "usable_cores", lambda: 2)
    monkeypatch.setattr(machine, "read_machine", reading)


def test_a_run_measured_on_a_busy_machine_is_noted_and_warned(tmp_path, monkeypatch, capsys):
    _fake_machine(monkeypatch, load=3.9, cores_used=0.9)
    assert main(_args(tmp_path, "--no-isolate")) == 0
    note = ("measured while the machine was busy: load 3.9 on 2 cores; latency, eval samples/s and training time "
            "not comparable")
    assert _row_notes(tmp_path) == note
    warning = ("measured while the machine was busy: tfidf-logreg/seed 42 (load 3.9 on 2 cores); their latency, "
               "throughput or training time are not comparable with the other rows (rerun them on a quiet machine)")
    assert _warnings(tmp_path) == [f"- **Warning**: {warning}"]
    assert capsys.readouterr().err.splitlines() == [f"warning: {warning}"]
    window = _result(tmp_path).load.windows["latency"]
    assert (window.load_before, window.load_after, window.cores_used, window.busy) == (3.9, 3.9, 0.9,
                                                                                       "load 3.9 on 2 cores")


def test_a_process_starved_of_cpu_is_busy_even_where_the_load_is_unknown(tmp_path, monkeypatch):
    _fake_machine(monkeypatch, load=None, cores_used=0.2)
    assert main(_args(tmp_path, "--no-isolate")) == 0
    assert _row_notes(tmp_path) == (
        "measured while the machine was busy: the run's process got 0.20 of a core while timed (2 cores); "
        "latency, eval samples/s and training time not comparable")


def test_a_quiet_machine_gives_no_note_and_no_warning(tmp_path, monkeypatch, capsys):
    _fake_machine(monkeypatch, load=2.9, cores_used=0.9)  # just under 1.5 x 2 cores, most of a core
    assert main(_args(tmp_path, "--no-isolate")) == 0
    assert _row_notes(tmp_path) == "" and _warnings(tmp_path) == []
    assert "busy" not in capsys.readouterr().err
    assert all(w.busy is None for w in _result(tmp_path).load.windows.values())


def test_busy_thresholds():
    quiet = {"usable_cores": 4, "load_before": 6.0, "load_after": 5.5, "cores_used": 0.5, "wall_seconds": 1.0}
    assert machine.busy_reason(quiet) is None
    assert machine.busy_reason({**quiet, "load_after": 6.1}) == "load 6.1 on 4 cores"
    assert machine.busy_reason({**quiet, "cores_used": 0.49}) == ("the run's process got 0.49 of a core while "
                                                                  "timed (4 cores)")
    # too short a window to judge by CPU time, and on a GPU the process waits on the device
    assert machine.busy_reason({**quiet, "cores_used": 0.1, "wall_seconds": 0.01}) is None
    assert machine.busy_reason({**quiet, "cores_used": 0.1, "on_gpu": True}) is None


@pytest.mark.slow
def test_a_real_cpu_hog_beside_a_tfidf_run_is_noted(tmp_path, capsys):
    """Four spinning processes per usable core beside the run: the run's process gets a fraction of a core."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4 * REAL_CORES)]
    try:
        time.sleep(0.5)
        assert main(_args(tmp_path, "--no-isolate", "--latency-samples", "400")) == 0
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert "measured while the machine was busy" in _row_notes(tmp_path)
    assert "warning: measured while the machine was busy: tfidf-logreg/seed 42" in capsys.readouterr().err


# ----- other harness runs on the machine --------------------------------------------------------------------


def _register(folder: Path, pid: int, run: str, started: float, ended: float | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{socket.gethostname()}-{pid}.json"
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "run": run, "command": "another",
                                "started": started, "ended": ended}))
    return path


def test_another_run_training_at_the_same_time_is_named(tmp_path, monkeypatch):
    """A live process registered as a harness run is named; a killed one from before and one of another
    host are not, and a file ended long ago is cleaned."""
    _fake_machine(monkeypatch, load=0.5, cores_used=1.0)
    folder = tmp_path / "cache" / running.RUNNING_DIR
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        now = time.time()
        _register(folder, other.pid, "sst5 minilm-l6 seed 0", now - 5, None)
        killed = _register(folder, dead.pid, "sst5 tfidf-logreg seed 1", now - 3600, None)
        stale = _register(folder, 999_999_999, "sst5 tfidf-logreg seed 2", now - 3 * 86400, now - 2 * 86400)
        (folder / "elsewhere-7.json").write_text(json.dumps({"host": "elsewhere", "pid": other.pid, "run": "x",
                                                             "started": now - 5, "ended": None}))
        assert main(_args(tmp_path, "--no-isolate")) == 0
    finally:
        other.kill()
        other.wait()
    assert _row_notes(tmp_path) == f"another run, pid {other.pid} (sst5 minilm-l6 seed 0), trained at the same time"
    assert [o.pid for o in _result(tmp_path).load.others] == [other.pid]
    assert json.loads(killed.read_text())["ended"] == pytest.approx(now - 3600)
    assert not stale.exists()
    # this run's own file records its end, kept for runs it overlapped
    (own,) = [p for p in folder.glob("*.json") if json.loads(p.read_text())["pid"] == os.getpid()]
    assert json.loads(own.read_text())["ended"] is not None


# ----- two commands on one machine --------------------------------------------------------------------------


def test_rebalanced_threads_divide_the_cores_among_every_run_training_now():
    alone = {"threads": 4, "runs_at_once": 1, "usable_cores": 4, "given_by": "one run at a time"}
    assert [machine.rebalanced_threads(n, alone) for n in (0, 1, 2, 3, 7)] == [4, 2, 1, 1, 1]
    half = {"threads": 2, "runs_at_once": 2, "usable_cores": 4, "given_by": "--parallel 2"}
    # its own command's two runs plus others: never above its share, at least one thread
    assert [machine.rebalanced_threads(n, half) for n in (0, 1, 2, 6)] == [2, 1, 1, 1]
    odd = {"threads": 6, "runs_at_once": 1, "usable_cores": 6, "given_by": "one run at a time"}
    assert [machine.rebalanced_threads(n, odd) for n in (1, 2)] == [3, 2]


def test_a_run_beside_another_command_takes_its_part_and_gives_it_back(tmp_path, monkeypatch):
    """Another command's run training on this host (a live process registered as one) halves this run's
    torch threads from before its probe on, the result records it, and the process gets its share back
    after; once the other ends, the count seen between steps drops and the threads grow back."""
    import pandas as pd
    import torch

    from harness.models import transformer as T
    from tests.test_training_loop import budget, train_split
    from tests.tiny_models import build_tiny_model

    monkeypatch.setattr(machine, "usable_cores", lambda: 4)
    folder = tmp_path / "cache" / running.RUNNING_DIR
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    before = torch.get_num_threads()
    try:
        _register(folder, other.pid, "sst5 minilm-l6 seed 0", time.time() - 5, None)
        assert running.training_elsewhere() == 1
        machine.share_with_other_commands(running.training_elsewhere)
        texts = pd.read_csv(FIXTURES / "binary" / "train.csv").text.tolist()
        tiny = build_tiny_model("bert", tmp_path / "bert", texts)
        report = T.TransformerClassifier.load(tiny).fit(train_split(), budget(precision="auto", epochs=1),
                                                        tmp_path / "w", show_progress=False)
        assert report.threads["intra_op"] == 2 and report.precision["probe"]["identity"]["threads"] == 2
        assert machine.thread_share()["beside_other_commands"] == [2]
        other.kill()
        other.wait()
        assert running.training_elsewhere() == 0
        assert machine.rebalance_threads(force=True) == 4 and torch.get_num_threads() == 4
        had = machine._OTHERS["restore"]  # its threads just before the first change
        torch.set_num_threads(3)
        machine.share_with_other_commands(None)  # those come back
        assert had is not None and torch.get_num_threads() == had
        assert "beside_other_commands" not in machine.thread_share()
    finally:
        machine.share_with_other_commands(None)
        other.kill()
        torch.set_num_threads(before)


def test_the_run_records_its_threads_beside_another_command(tmp_path, monkeypatch):
    """Through the command: the result's thread share names the threads the run took beside the other."""
    monkeypatch.setattr(machine, "usable_cores", lambda: 4)
    folder = tmp_path / "cache" / running.RUNNING_DIR
    import torch  # loaded, as in any run of a transformer, so its pool is what is sized

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    before = torch.get_num_threads()
    try:
        _register(folder, other.pid, "sst5 minilm-l6 seed 0", time.time() - 5, None)
        assert main(_args(tmp_path, "--no-isolate")) == 0
        assert torch.get_num_threads() == before  # given back once the run ended
    finally:
        other.kill()
        other.wait()
        torch.set_num_threads(before)
    assert _result(tmp_path).device.thread_share.beside_other_commands == [2]
