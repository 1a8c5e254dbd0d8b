"""A transformer run killed mid-training resumes from its last checkpoint; a wall-clock budget stops training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from harness.cli import main
from tests.conftest import FIXTURES, ROOT, run_path
from tests.tiny_models import build_tiny_model, registry_yaml

LONG_BENCH = """name: tiny_binary
description: the binary fixture with a long budget, to be killed part-way
dataset: {hub_id: local/tiny_binary}
label_names: [negative, positive]
default_budget: long
budgets:
  long: {epochs: 30, max_length: 32, batch_size: 8, eval_batch_size: 16, learning_rate: 1.0e-3, precision: fp32}
  timed: {epochs: 1000, max_seconds: 1.0, max_length: 32, batch_size: 8, eval_batch_size: 16, learning_rate: 1.0e-3, precision: fp32}
"""


def setup(tmp_path: Path) -> tuple[Path, Path]:
    texts = pd.read_csv(FIXTURES / "binary" / "train.csv").text.tolist()
    model = build_tiny_model("bert", tmp_path / "bert", texts)
    (tmp_path / "registry.yaml").write_text(registry_yaml({"tiny-bert": model}, extra_tfidf=False))
    bench_dir = tmp_path / "benchmarks"
    bench_dir.mkdir()
    (bench_dir / "tiny_binary.yaml").write_text(LONG_BENCH)
    return tmp_path / "registry.yaml", bench_dir


def args(registry: Path, bench_dir: Path, results: Path) -> list[str]:
    return ["--models", "tiny-bert", "--registry", str(registry), "--benchmark", "tiny_binary",
            "--benchmarks-dir", str(bench_dir), "--data-dir", str(FIXTURES / "binary"), "--results-dir", str(results),
            "--quiet", "--no-save-model"]


def test_killed_training_resumes_from_checkpoint(tmp_path):
    registry, bench_dir = setup(tmp_path)
    results = tmp_path / "results"
    env = {**os.environ, "TEXTCLF_BENCH_CHECKPOINT_S": "0", "TEXTCLF_BENCH_CACHE": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "run_benchmark.py", *args(registry, bench_dir, results)],
                               cwd=ROOT, env=env, start_new_session=True)
    deadline = time.time() + 120
    pattern = "tiny_binary/configs/*/runs/tiny-bert/seed-42/checkpoint/harness_state.json"
    state = None
    while time.time() < deadline and process.poll() is None:
        state = next(results.glob(pattern), None)
        if state is not None and state.exists() and json.loads(state.read_text())["step"] >= 20:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = json.loads(state.read_text())["step"]
    assert not (run_path(results, "tiny_binary", "tiny-bert", 42) / "result.json").exists()

    env["TEXTCLF_BENCH_CHECKPOINT_S"] = "300"
    done = subprocess.run([sys.executable, "run_benchmark.py", *args(registry, bench_dir, results)], cwd=ROOT, env=env)
    assert done.returncode == 0
    result = json.loads((run_path(results, "tiny_binary", "tiny-bert", 42) / "result.json").read_text())
    training = result["training"]
    assert training["resumed_from_step"] >= killed_at >= 20
    # the budget is honoured exactly across the interruption: 48 rows x 30 epochs / batch 8
    assert training["optimizer_steps"] == 180 and training["examples_seen"] == 1440
    assert not state.parent.exists(), "the checkpoint is removed once the run completes"


def test_wall_clock_budget_stops_training(tmp_path, monkeypatch):
    registry, bench_dir = setup(tmp_path)
    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    assert main([*args(registry, bench_dir, tmp_path / "r"), "--budget", "timed", "--no-isolate"]) == 0
    result = json.loads((run_path(tmp_path / "r", "tiny_binary", "tiny-bert", 42) / "result.json").read_text())
    training = result["training"]
    assert training["stopped_by"] == "max_seconds"
    assert 1.0 <= training["train_seconds"] < 10
    assert training["optimizer_steps"] < 6000
