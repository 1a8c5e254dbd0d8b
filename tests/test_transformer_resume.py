"""A transformer run killed mid-training resumes from its last checkpoint; a wall-clock budget stops training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

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
    # Dropout on: a resumed run must replay the dropout masks as well as the batches.
    model = with_dropout(build_tiny_model("bert", tmp_path / "bert", texts))
    (tmp_path / "registry.yaml").write_text(registry_yaml({"tiny-bert": model}, extra_tfidf=False))
    bench_dir = tmp_path / "benchmarks"
    bench_dir.mkdir()
    (bench_dir / "tiny_binary.yaml").write_text(LONG_BENCH)
    return tmp_path / "registry.yaml", bench_dir


def args(registry: Path, bench_dir: Path, results: Path) -> list[str]:
    return ["--models", "tiny-bert", "--registry", str(registry), "--benchmark", "tiny_binary",
            "--benchmarks-dir", str(bench_dir), "--data-dir", str(FIXTURES / "binary"), "--results-dir", str(results),
            "--quiet", "--no-save-model", "--no-isolate"]  # the command trains in its own process: one torch start


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

    # The resumed run is the run it replaces: the same predictions as a run never killed.
    whole = tmp_path / "whole"
    assert subprocess.run([sys.executable, "run_benchmark.py", *args(registry, bench_dir, whole)], cwd=ROOT,
                          env=env).returncode == 0
    killed_run, whole_run = run_path(results, "tiny_binary", "tiny-bert"), run_path(whole, "tiny_binary", "tiny-bert")
    resumed, uninterrupted = pd.read_csv(killed_run / "predictions.csv"), pd.read_csv(whole_run / "predictions.csv")
    assert len(resumed) == 24 and (resumed["id"] == uninterrupted["id"]).all()
    # predictions.csv holds 6 decimals: equal values may round one unit apart
    assert (resumed["prob_1"] - uninterrupted["prob_1"]).abs().max() <= 1e-6 + 1e-12
    assert json.loads((whole_run / "result.json").read_text())["training"]["loss_curve"] == training["loss_curve"]


def test_wall_clock_budget_stops_training(tmp_path, monkeypatch):
    registry, bench_dir = setup(tmp_path)
    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    assert main([*args(registry, bench_dir, tmp_path / "r"), "--budget", "timed"]) == 0
    result = json.loads((run_path(tmp_path / "r", "tiny_binary", "tiny-bert", 42) / "result.json").read_text())
    training = result["training"]
    assert training["stopped_by"] == "max_seconds"
    assert 1.0 <= training["train_seconds"] < 10
    assert training["optimizer_steps"] < 6000


# ----- a resumed run is the run it replaces ---------------------------------------------------------------


class Killed(Exception):
    """Stands in for SIGKILL right after a checkpoint was written."""


def with_dropout(directory: Path, p: float = 0.1) -> Path:
    """Turn dropout on in a tiny model's config: the resumed run must then also replay the dropout masks."""
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config.update(hidden_dropout_prob=p, attention_probs_dropout_prob=p, classifier_dropout=p)
    config_path.write_text(json.dumps(config))
    return directory


def _fit_and_predict(model_dir: Path, workdir: Path, budget, texts, labels, test_texts, kill_at: int | None = None,
                     monkeypatch=None):
    from harness.data.loading import Split
    from harness.models.transformer import TransformerClassifier

    classifier = TransformerClassifier.load(model_dir)
    split = Split(name="train", texts=texts, labels=labels, ids=np.arange(len(texts)))
    if kill_at is not None:
        classifier.checkpoint_every_s = 0.0  # a checkpoint after every step
        original = TransformerClassifier._checkpoint

        def checkpoint_then_die(self, accelerator, directory, state, budget_):
            original(self, accelerator, directory, state, budget_)
            if state.step == kill_at:
                raise Killed

        monkeypatch.setattr(TransformerClassifier, "_checkpoint", checkpoint_then_die)
        with pytest.raises(Killed):
            classifier.fit(split, budget, workdir, show_progress=False)
        monkeypatch.undo()
        # The killed process is gone: a fresh model object from the initial weights picks up the checkpoint.
        classifier = TransformerClassifier.load(model_dir)
    report = classifier.fit(split, budget, workdir, show_progress=False)
    return report, classifier.predict_proba(test_texts, batch_size=16)


def test_resumed_run_predicts_exactly_as_an_uninterrupted_one(tmp_path, monkeypatch):
    """Kills at three steps (one mid-epoch, one on an epoch boundary, one later) with dropout on, in fp32."""
    from harness.config.schema import Budget

    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    frame = pd.read_csv(FIXTURES / "binary" / "train.csv")
    texts, labels = frame.text.tolist(), frame.label.to_numpy()
    test_texts = pd.read_csv(FIXTURES / "binary" / "test.csv").text.tolist()
    model_dir = with_dropout(build_tiny_model("bert", tmp_path / "bert", texts))
    # 48 rows, batch 8: 6 steps an epoch, 18 in all; warm-up so the scheduler's state matters too.
    budget = Budget(epochs=3, max_length=32, batch_size=8, learning_rate=3e-3, warmup_ratio=0.2, precision="fp32",
                    seed=7)
    reference, expected = _fit_and_predict(model_dir, tmp_path / "ref", budget, texts, labels, test_texts)
    assert reference.resumed_from_step is None and reference.optimizer_steps == 18
    for kill_at in (3, 6, 13):
        report, probs = _fit_and_predict(model_dir, tmp_path / f"kill{kill_at}", budget, texts, labels, test_texts,
                                         kill_at=kill_at, monkeypatch=monkeypatch)
        assert report.resumed_from_step == kill_at
        assert report.optimizer_steps == 18 and report.examples_seen == reference.examples_seen == 144
        assert report.real_tokens == reference.real_tokens
        assert np.abs(probs - expected).max() <= 1e-6, f"killed at step {kill_at}"
        got = [(p["step"], p["examples"]) for p in report.loss_curve]
        assert got == [(p["step"], p["examples"]) for p in reference.loss_curve]
        assert np.allclose([p["loss"] for p in report.loss_curve], [p["loss"] for p in reference.loss_curve],
                           rtol=0, atol=1e-6)


def test_a_checkpoint_left_half_renamed_is_resumed_not_dropped(tmp_path):
    """A kill between removing the old checkpoint and renaming the new one leaves only checkpoint.tmp, whole."""
    from harness.config.schema import Budget
    from harness.models.training import TrainingState
    from harness.models.transformer import TransformerClassifier

    budget = Budget(epochs=1, batch_size=8)
    checkpoint = tmp_path / "checkpoint"
    pending = tmp_path / "checkpoint.tmp"
    pending.mkdir()
    from safetensors.torch import save_file

    from harness.models.safe_state import save_random_states

    save_file({"w": torch.ones(2)}, str(pending / "model.safetensors"))
    weights = (pending / "model.safetensors").read_bytes()
    save_random_states(pending, 0)
    (pending / "harness_state.json").write_text(json.dumps({"step": 7, "precision": "fp32", "budget": budget.model_dump()}))
    saved = TransformerClassifier._read_checkpoint(checkpoint, budget)
    assert saved == TrainingState(step=7, precision="fp32")
    assert (checkpoint / "model.safetensors").read_bytes() == weights and not pending.exists()
    # a marker cut short by a kill is no checkpoint: the run starts over instead of failing
    (checkpoint / "harness_state.json").write_text('{"step": 9, "prec')
    assert TransformerClassifier._read_checkpoint(checkpoint, budget) is None
