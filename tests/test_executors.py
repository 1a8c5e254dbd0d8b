"""The grid's runs executed several at once, here or on Ray, give the leaderboard a sequential run gives."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from harness.cli import main
from harness.store.results_store import ResultsStore
from tests.conftest import FIXTURES, ROOT, masked_models_table

REGISTRY = """\
models:
  - {name: tfidf-a, family: tfidf, tfidf: {min_df: 1, C: 1.0}}
  - {name: tfidf-b, family: tfidf, tfidf: {min_df: 1, ngram_max: 1, C: 8.0}}
"""

# Loaded by every Python a test starts (PYTHONPATH): kills the process of model tfidf-b, seed 43, with SIGKILL
# in the middle of training, as a lost machine or the out-of-memory killer would.
KILL_ONE = """\
import os
import signal

from harness.models import tfidf

_fit = tfidf.TfidfLogReg.fit


def fit(self, train, budget, workdir, show_progress=True, **kwargs):
    if "/runs/tfidf-b/seed-43" in str(workdir):
        os.kill(os.getpid(), signal.SIGKILL)
    return _fit(self, train, budget, workdir, show_progress, **kwargs)


tfidf.TfidfLogReg.fit = fit
"""


def grid_args(results: Path, registry: Path, *extra: str) -> list[str]:
    return [
        "--models", "all", "--registry", str(registry), "--seeds", "2", "--limit-train", "40",
        "--benchmark", "tiny_binary", "--benchmarks-dir", str(FIXTURES / "benchmarks"),
        "--data-dir", str(FIXTURES / "binary"), "--results-dir", str(results), "--latency-samples", "3", "--quiet",
        *extra,
    ]  # fmt: skip


def board_rows(results: Path) -> list[dict[str, str]]:
    return masked_models_table(results / "tiny_binary" / "leaderboard.md")


def predictions(results: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(results).parts[-3:]): p.read_bytes()
        for p in sorted(results.glob("tiny_binary/configs/*/runs/*/seed-*/predictions.csv"))
    }


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    registry = root / "registry.yaml"
    registry.write_text(REGISTRY)
    assert main(grid_args(root / "sequential", registry)) == 0
    return registry, root / "sequential"


def test_parallel_runs_give_the_sequential_leaderboard(sequential, tmp_path):
    registry, expected = sequential
    assert main(grid_args(tmp_path, registry, "--parallel", "2")) == 0
    assert board_rows(tmp_path) == board_rows(expected)
    assert predictions(tmp_path) == predictions(expected) and len(predictions(tmp_path)) == 4


def test_devices_run_one_job_per_device_with_its_device_visible(sequential, tmp_path, monkeypatch):
    import harness.run.executors as executors

    seen: list[str] = []
    real = executors.run_isolated

    def spy(job, store, env=None):
        seen.append(env["CUDA_VISIBLE_DEVICES"])
        return real(job, store, env)

    monkeypatch.setattr(executors, "run_isolated", spy)
    registry, expected = sequential
    assert main(grid_args(tmp_path, registry, "--devices", "0,1")) == 0
    assert sorted(seen) == ["0", "0", "1", "1"] or sorted(set(seen)) == ["0", "1"]
    assert len(seen) == 4 and board_rows(tmp_path) == board_rows(expected)


def test_bad_devices_are_one_line(tmp_path, capsys):
    assert main(grid_args(tmp_path, tmp_path / "r.yaml", "--devices", "gpu0")) == 2
    assert capsys.readouterr().err.startswith("error: --devices: 'gpu0' is not a list of device numbers")


ray = pytest.importorskip("ray", reason="Ray is the optional extra '.[ray]' (the dev extra installs it)")


@pytest.fixture
def local_ray():
    """One local Ray instance with two workers for this module's tests (started here, as a user's cluster)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}})
    yield
    ray.shutdown()


def test_ray_executor_gives_the_sequential_leaderboard(sequential, tmp_path, local_ray):
    registry, expected = sequential
    assert main(grid_args(tmp_path, registry, "--executor", "ray")) == 0
    assert board_rows(tmp_path) == board_rows(expected)
    assert predictions(tmp_path) == predictions(expected)


def test_a_run_killed_on_a_ray_worker_is_retried_by_the_rerun(sequential, tmp_path, monkeypatch):
    registry, expected = sequential
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(KILL_ONE))
    # A Ray instance whose workers (and the model processes they start) load the hook.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hooks), str(ROOT)]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT)])}})
    try:
        assert main(grid_args(tmp_path, registry, "--executor", "ray")) == 1
    finally:
        ray.shutdown()
    store = ResultsStore(tmp_path)
    (config,) = store.configurations("tiny_binary")
    killed = store.load_result(store.run_dir("tiny_binary", config.label, "tfidf-b", 43))
    assert killed.status == "failed" and killed.error.type == "ChildProcessDied"
    assert "SIGKILL" in killed.error.message
    # the machine is back (no hook): the rerun skips the three finished runs and redoes the killed one
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    assert main(grid_args(tmp_path, registry, "--executor", "ray", "--parallel", "2")) == 0
    assert board_rows(tmp_path) == board_rows(expected)
    assert predictions(tmp_path) == predictions(expected)
