"""Injected faults: a model that raises, diverges, will not load or whose process dies is recorded as failed with
its reason, shown in the leaderboard, and every other model still runs; the CLI exits 1 at the end."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.models.tfidf import TfidfLogReg
from tests.conftest import FIXTURES, run_path, tiny_binary_cli_args
from tests.test_bad_input import leaderboard_row


def cli_args(registry: Path, results: Path, *extra: str) -> list[str]:
    return tiny_binary_cli_args(registry, results, "--quiet", *extra)


def result_of(results: Path, model: str) -> dict:
    return json.loads((run_path(results, "tiny_binary", model, 42) / "result.json").read_text())


def write_registry(tmp_path: Path, entries: str) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text("models:\n" + entries)
    return path


def test_exceptions_in_fit_and_predict_fail_alone(tmp_path, capsys, monkeypatch):
    """In-process: out of memory and a NaN in fit, an error in predict; the healthy model still ranks."""
    registry = write_registry(
        tmp_path,
        "  - {name: healthy, family: tfidf, tfidf: {min_df: 1, C: 1.0}}\n"
        "  - {name: oom, family: tfidf, tfidf: {min_df: 1, C: 2.0}}\n"
        "  - {name: nan-loss, family: tfidf, tfidf: {min_df: 1, C: 3.0}}\n"
        "  - {name: bad-predict, family: tfidf, tfidf: {min_df: 1, C: 5.0}}\n",
    )
    fit, predict = TfidfLogReg.fit, TfidfLogReg.predict_proba

    def faulty_fit(self, train, budget, workdir, show_progress=True, **kwargs):
        if self.params.C == 2.0:
            raise MemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if self.params.C == 3.0:
            raise FloatingPointError("loss is nan at step 3")
        return fit(self, train, budget, workdir, show_progress, **kwargs)

    def faulty_predict(self, texts, batch_size=64):
        if self.params.C == 5.0:
            raise RuntimeError("device-side assert triggered")
        return predict(self, texts, batch_size)

    monkeypatch.setattr(TfidfLogReg, "fit", faulty_fit)
    monkeypatch.setattr(TfidfLogReg, "predict_proba", faulty_predict)
    results = tmp_path / "results"
    assert main(cli_args(registry, results, "--no-isolate")) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        "3 run(s) failed: oom (seed 42), nan-loss (seed 42), bad-predict (seed 42) (see the leaderboard)"
    )
    assert result_of(results, "healthy")["status"] == "completed"
    expected = {
        "oom": ("MemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB"),
        "nan-loss": ("FloatingPointError", "loss is nan at step 3"),
        "bad-predict": ("RuntimeError", "device-side assert triggered"),
    }
    board = results / "tiny_binary" / "leaderboard.md"
    for model, (kind, message) in expected.items():
        result = result_of(results, model)
        assert result["status"] == "failed"
        assert (result["error"]["type"], result["error"]["message"]) == (kind, message)
        assert result["budget"]["seed"] == 42  # what was known before the failure is kept
        row = leaderboard_row(board, model)
        assert (row["rank"], row["status"], row["accuracy"]) == ("-", "failed", "n/a")
        assert row["notes"] == f"failed: {kind}: {message}"
    healthy = leaderboard_row(board, "healthy")
    assert (healthy["rank"], healthy["status"]) == ("1", "ok")
    assert healthy["accuracy"].startswith(f"{result_of(results, 'healthy')['metrics']['accuracy']:.4f}")


def test_real_failure_in_an_isolated_child(tmp_path, capsys):
    """Default isolation: a model whose fit fails for real (no term survives min_df) in its own process."""
    registry = write_registry(
        tmp_path,
        "  - {name: healthy, family: tfidf, tfidf: {min_df: 1}}\n"
        "  - {name: no-vocabulary, family: tfidf, tfidf: {min_df: 1000}}\n",
    )
    results = tmp_path / "results"
    assert main(cli_args(registry, results)) == 1
    assert (
        capsys.readouterr().err.splitlines()[-1]
        == "1 run(s) failed: no-vocabulary (seed 42) (see the leaderboard)"
    )
    failed = result_of(results, "no-vocabulary")
    assert failed["status"] == "failed" and failed["error"]["type"] == "ValueError"
    assert "min_df" in failed["error"]["message"]
    assert result_of(results, "healthy")["status"] == "completed"
    row = leaderboard_row(results / "tiny_binary" / "leaderboard.md", "no-vocabulary")
    assert row["status"] == "failed" and row["notes"].startswith("failed: ValueError: ")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_child_that_dies_hard_is_a_failed_run_and_is_redone_later(tmp_path, capsys, monkeypatch, sig):
    """The test kills the child of one model; that model is recorded as failed, the other completes; a rerun
    redoes only the killed model."""
    registry = write_registry(
        tmp_path,
        "  - {name: victim, family: tfidf, tfidf: {min_df: 1}}\n"
        "  - {name: survivor, family: tfidf, tfidf: {min_df: 1, C: 2.0}}\n",
    )
    real_run = subprocess.run

    def run_and_kill_victim(args, **kwargs):
        if "/runs/victim/" not in args[-1]:
            return real_run(args, **kwargs)
        kwargs.pop("check", None)
        process = subprocess.Popen(args, **kwargs)
        process.send_signal(sig)
        return subprocess.CompletedProcess(args, process.wait())

    monkeypatch.setattr("harness.run.executors.subprocess.run", run_and_kill_victim)
    results = tmp_path / "results"
    assert main(cli_args(registry, results)) == 1
    assert (
        capsys.readouterr().err.splitlines()[-1] == "1 run(s) failed: victim (seed 42) (see the leaderboard)"
    )
    victim = result_of(results, "victim")
    assert victim["status"] == "failed" and victim["error"]["type"] == "ChildProcessDied"
    hint = " (often the out-of-memory killer)" if sig == signal.SIGKILL else ""
    assert (
        victim["error"]["message"]
        == f"the run's process killed by signal {sig.name}{hint} before writing its result"
    )
    assert result_of(results, "survivor")["status"] == "completed"
    row = leaderboard_row(results / "tiny_binary" / "leaderboard.md", "victim")
    assert row["status"] == "failed" and row["notes"].startswith(
        "failed: ChildProcessDied: the run's process killed"
    )
    if sig != signal.SIGKILL:
        return

    # Nothing is lost: the rerun redoes the killed model only.
    monkeypatch.undo()
    survivor_file = run_path(results, "tiny_binary", "survivor", 42) / "result.json"
    before = survivor_file.stat().st_mtime_ns
    assert main(cli_args(registry, results, "--no-isolate")) == 0
    assert survivor_file.stat().st_mtime_ns == before
    assert result_of(results, "victim")["status"] == "completed"
    assert leaderboard_row(results / "tiny_binary" / "leaderboard.md", "victim")["status"] == "ok"


def test_diverging_and_unloadable_transformers_fail_alone(tmp_path, capsys, monkeypatch):
    """An absurd learning rate makes the loss explode: training stops early (TrainingDiverged). A registry entry
    whose weights folder is empty fails to load. The TF-IDF baseline still completes. trust_remote_code reaches
    transformers only where the registry sets it, and the leaderboard marks that entry."""
    import transformers

    from tests.tiny_models import build_tiny_model

    trust: dict[str, bool] = {}
    load_tokenizer = transformers.AutoTokenizer.from_pretrained

    def spy(location, *args, **kwargs):
        trust[str(location)] = kwargs.get("trust_remote_code")
        return load_tokenizer(location, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", spy)

    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    texts = pd.read_csv(FIXTURES / "binary" / "train.csv").text.tolist()
    tiny = build_tiny_model("bert", tmp_path / "tiny-bert", texts)
    empty = tmp_path / "empty-weights"
    empty.mkdir()
    registry = write_registry(
        tmp_path,
        "  - {name: tfidf, family: tfidf, tfidf: {min_df: 1}}\n"
        f"  - {{name: exploding, family: transformer, source: {{path: '{tiny}'}}, "
        "budget_overrides: {learning_rate: 10.0, warmup_ratio: 0.0}}\n"
        f"  - {{name: no-weights, family: transformer, source: {{path: '{empty}'}}, trust_remote_code: true}}\n",
    )
    results = tmp_path / "results"
    assert main(cli_args(registry, results, "--no-isolate")) == 1
    err = capsys.readouterr().err
    assert (
        err.splitlines()[-1]
        == "2 run(s) failed: exploding (seed 42), no-weights (seed 42) (see the leaderboard)"
    )

    diverged = result_of(results, "exploding")
    assert diverged["status"] == "failed" and diverged["error"]["type"] == "TrainingDiverged"
    message = diverged["error"]["message"]
    assert "stopped instead of training on garbage (lower learning_rate, currently 10.0)" in message
    step = int(message.split(" at step ")[1].split(";")[0])
    budget = diverged["budget"]
    total_steps = 48 // budget["batch_size"] * int(budget["epochs"])  # 48 train rows
    assert total_steps == 12 and 1 <= step < total_steps  # stopped early, not after the whole budget
    assert diverged["budget_overrides"] == {"learning_rate": 10.0, "warmup_ratio": 0.0}

    unloadable = result_of(results, "no-weights")
    assert unloadable["status"] == "failed" and unloadable["error"]["type"] == "ModelRunError"
    assert f"cannot load a model and tokenizer from {empty}" in unloadable["error"]["message"]

    assert result_of(results, "tfidf")["status"] == "completed"
    board = results / "tiny_binary" / "leaderboard.md"
    assert leaderboard_row(board, "tfidf")["status"] == "ok"
    assert "failed: TrainingDiverged: loss became" in leaderboard_row(board, "exploding")["notes"]
    assert leaderboard_row(board, "no-weights")["notes"].startswith(
        "trust_remote_code; failed: ModelRunError: model 'no-weights': cannot load"
    )
    assert trust == {str(tiny): False, str(empty): True}
    assert (diverged["trust_remote_code"], unloadable["trust_remote_code"]) == (False, True)
