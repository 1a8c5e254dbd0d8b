"""Nothing read back from the store runs code, a --force redo never costs the finished result, a damaged
tokenisation cache is rebuilt."""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import FIXTURES

# ----- 1. a checkpoint cannot carry code -------------------------------------------------------------------


class Planted:
    """Unpickling this runs ``os.system``: it writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


class Killed(Exception):
    """Stands in for SIGKILL right after a checkpoint was written."""


def _tiny_run(tmp_path: Path):
    from harness.config.schema import Budget
    from harness.data.loading import Split
    from tests.tiny_models import build_tiny_model

    frame = pd.read_csv(FIXTURES / "binary" / "train.csv")
    texts, labels = frame.text.tolist(), frame.label.to_numpy()
    model_dir = build_tiny_model("bert", tmp_path / "bert", texts)
    split = Split(name="train", texts=texts, labels=labels, ids=np.arange(len(texts)))
    budget = Budget(epochs=1, max_length=32, batch_size=8, learning_rate=3e-3, precision="fp32", seed=7)
    return model_dir, split, budget


def _checkpointed(model_dir: Path, split, budget, workdir: Path, monkeypatch) -> Path:
    """A run killed right after its checkpoint at step 2: the checkpoint folder it leaves."""
    from harness.models.transformer import TransformerClassifier

    classifier = TransformerClassifier.load(model_dir)
    classifier.checkpoint_every_s = 0.0
    original = TransformerClassifier._checkpoint

    def checkpoint_then_die(self, accelerator, directory, state, budget_):
        original(self, accelerator, directory, state, budget_)
        if state.step == 2:
            raise Killed

    monkeypatch.setattr(TransformerClassifier, "_checkpoint", checkpoint_then_die)
    with pytest.raises(Killed):
        classifier.fit(split, budget, workdir, show_progress=False)
    monkeypatch.undo()
    return workdir / "checkpoint"


def test_no_checkpoint_file_runs_code_on_resume(tmp_path, monkeypatch, caplog):
    """A pickle that writes a file, planted in each file of a checkpoint that a loader could unpickle (and in the
    data-only ones): resuming writes nothing, and the run starts over to the result of an uninterrupted run."""
    from harness.models.transformer import TransformerClassifier

    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    model_dir, split, budget = _tiny_run(tmp_path)
    test_texts = pd.read_csv(FIXTURES / "binary" / "test.csv").text.tolist()[:8]
    reference = TransformerClassifier.load(model_dir)
    reference_report = reference.fit(split, budget, tmp_path / "reference", show_progress=False)
    expected = reference.predict_proba(test_texts, batch_size=8)

    good = _checkpointed(model_dir, split, budget, tmp_path / "killed", monkeypatch)
    names = sorted(p.name for p in good.iterdir())
    # What a checkpoint holds now: no pickled random state of the harness's own.
    assert "random_states_harness_0.safetensors" in names and "random_states_harness_0.json" in names
    assert not any(n.startswith("random_states_harness_") and n.endswith(".pt") for n in names)
    # Accelerate's pickle-format files, the harness's old random-state file, one Accelerate would unpickle
    # without restriction, and the data-only files.
    targets = ["optimizer.bin", "scheduler.bin", "random_states_0.pkl", "random_states_harness_0.pt",
               "custom_checkpoint_0.pkl", "pytorch_model.bin", "model.safetensors",
               "random_states_harness_0.safetensors", "random_states_harness_0.json"]
    assert {"optimizer.bin", "scheduler.bin", "random_states_0.pkl", "model.safetensors"} <= set(names)
    tried = 0
    for target in targets:
        for form in ("torch", "pickle"):
            marker = tmp_path / f"ran-{target}-{form}"
            workdir = tmp_path / f"planted-{target}-{form}"
            shutil.copytree(good, workdir / "checkpoint")
            planted = workdir / "checkpoint" / target
            if form == "torch":
                torch.save({"state": Planted(marker)}, planted)
            else:
                planted.write_bytes(pickle.dumps(Planted(marker)))
            if target == "optimizer.bin" and form == "torch":  # the planted file is live: unrestricted, it runs
                torch.load(planted, weights_only=False)
                assert marker.exists()
                marker.unlink()
            caplog.clear()
            classifier = TransformerClassifier.load(model_dir)
            with caplog.at_level(logging.WARNING, logger="harness"):
                report = classifier.fit(split, budget, workdir, show_progress=False)
            assert not marker.exists(), f"resuming ran the code planted in {target} ({form})"
            assert report.resumed_from_step is None, f"{target} ({form}): started over, not resumed"
            assert report.optimizer_steps == reference_report.optimizer_steps == 6
            assert np.abs(classifier.predict_proba(test_texts, batch_size=8) - expected).max() <= 1e-6
            lines = [r.getMessage() for r in caplog.records if "not resumed" in r.getMessage()]
            assert len(lines) == 1 and target in lines[0] and "starts over" in lines[0], lines
            assert not list(tmp_path.glob("ran-*"))
            tried += 1
    assert tried == 18

    # The untouched checkpoint still resumes, to the same predictions (random states from safetensors + JSON).
    classifier = TransformerClassifier.load(model_dir)
    report = classifier.fit(split, budget, tmp_path / "killed", show_progress=False)
    assert report.resumed_from_step == 2 and report.optimizer_steps == 6
    assert np.abs(classifier.predict_proba(test_texts, batch_size=8) - expected).max() <= 1e-6


def test_random_states_round_trip_exactly_through_safetensors_and_json(tmp_path):
    import random

    from harness.models import safe_state

    random.seed(3)
    random.gauss(0, 1)  # a cached gauss value is part of Python's state
    np.random.seed(5)
    np.random.standard_normal()  # and of NumPy's
    torch.manual_seed(9)
    safe_state.save_random_states(tmp_path, 0)
    expected = (random.random(), random.gauss(0, 1), np.random.standard_normal(), np.random.random(), torch.rand(3))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    safe_state.restore_random_states(tmp_path, 0)
    got = (random.random(), random.gauss(0, 1), np.random.standard_normal(), np.random.random(), torch.rand(3))
    assert got[:4] == expected[:4] and torch.equal(got[4], expected[4])
    assert json.loads((tmp_path / "random_states_harness_0.json").read_text())["numpy"]["name"] == "MT19937"


# ----- 4. a --force redo never costs the finished result ---------------------------------------------------

FORCE_REGISTRY = "models:\n  - {name: kept, family: tfidf, tfidf: {min_df: 1}}\n"


def _finished_tfidf(tmp_path: Path) -> tuple[Path, list[str], dict[str, bytes]]:
    from harness.cli import main
    from tests.conftest import run_path, tiny_binary_cli_args

    registry = tmp_path / "registry.yaml"
    registry.write_text(FORCE_REGISTRY)
    results = tmp_path / "results"
    args = tiny_binary_cli_args(registry, results, "--quiet")
    assert main(args) == 0
    run = run_path(results, "tiny_binary", "kept")
    return run, args, {name: (run / name).read_bytes() for name in ("result.json", "predictions.csv")}


def _unchanged(run: Path, before: dict[str, bytes]) -> bool:
    return all((run / name).read_bytes() == data for name, data in before.items())


def _board_row(results: Path) -> dict[str, str]:
    from tests.test_bad_input import leaderboard_row

    return leaderboard_row(results / "tiny_binary" / "leaderboard.md", "kept")


def test_forced_redo_killed_with_sigkill_is_a_failure_and_keeps_the_finished_result(tmp_path, monkeypatch, capsys):
    """The redo's process is killed: that is not "done" with the earlier numbers, and the earlier run stays."""
    import signal
    import subprocess

    from harness.cli import main

    run, args, before = _finished_tfidf(tmp_path)
    capsys.readouterr()

    def run_and_kill(argv, **kwargs):
        kwargs.pop("check", None)
        process = subprocess.Popen(argv, **kwargs)
        process.send_signal(signal.SIGKILL)
        return subprocess.CompletedProcess(argv, process.wait())

    monkeypatch.setattr("harness.run.executors.subprocess.run", run_and_kill)
    assert main([a for a in args if a != "--quiet"] + ["--force"]) == 1
    monkeypatch.undo()
    out, err = capsys.readouterr()
    assert "done in" not in err
    assert "FAILED after" in err and "ChildProcessDied: the run's process killed by signal SIGKILL" in err
    assert "the redo did not finish: the earlier finished result is kept" in err
    assert err.splitlines()[-1] == "1 run(s) failed: kept (seed 42) (see the leaderboard)"
    assert _unchanged(run, before)
    assert _board_row(tmp_path / "results")["status"] == "ok"
    assert sorted(p.name for p in run.parent.iterdir()) == [".seed-42.holder", ".seed-42.lock", "seed-42"]


def test_forced_redo_that_fails_keeps_the_finished_result(tmp_path, monkeypatch, capsys):
    from harness.cli import main
    from harness.models.tfidf import TfidfLogReg

    run, args, before = _finished_tfidf(tmp_path)

    def failing_fit(self, *a, **k):
        raise MemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(TfidfLogReg, "fit", failing_fit)
    capsys.readouterr()
    assert main([*args, "--force", "--no-isolate"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == "1 run(s) failed: kept (seed 42) (see the leaderboard)"
    assert _unchanged(run, before), "the failed redo replaced the finished result"
    assert _board_row(tmp_path / "results")["status"] == "ok"
    monkeypatch.undo()
    # A later --force that finishes replaces it, and leaves nothing aside.
    assert main([*args, "--force"]) == 0
    assert (run / "result.json").read_bytes() != before["result.json"]
    assert sorted(p.name for p in run.parent.iterdir()) == [".seed-42.holder", ".seed-42.lock", "seed-42"]


# The whole command killed with SIGKILL during a --force redo, at a chosen point: after the redo wrote its
# predictions (shifted, as a redo on other hardware may give) and before its result, or after its result.
KILLED_COMMAND = """\
import os, signal, sys
import harness.run.runner, harness.store.results_store
from harness.cli import main

point = sys.argv[1]
write_predictions = harness.store.results_store.ResultsStore.write_predictions


def shifted(self, run_dir, ids, labels, probs, *rest, **kw):
    return write_predictions(self, run_dir, ids, labels, probs * 0.5 + 0.25, *rest, **kw)


harness.store.results_store.ResultsStore.write_predictions = shifted
if point == "before-result":
    harness.run.runner.write_result = lambda path, result: os.kill(os.getpid(), signal.SIGKILL)
else:
    import harness.store.redo
    harness.store.redo.drop_aside = lambda run_dir: os.kill(os.getpid(), signal.SIGKILL)
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("point", ["before-result", "after-result"])
def test_command_killed_during_a_forced_redo_is_settled_by_the_next_run(tmp_path, capsys, point):
    """Killed before the redo's result: the next run restores the earlier run (never the earlier result with the
    redo's predictions). Killed after it: the redo's result is the run, and nothing is left aside."""
    import subprocess
    import sys

    from harness.cli import main
    from tests.conftest import ROOT

    run, args, before = _finished_tfidf(tmp_path)
    script = tmp_path / "killed.py"
    script.write_text(KILLED_COMMAND)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, str(script), point, *args, "--force", "--no-isolate"], cwd=ROOT, env=env)
    assert killed.returncode == -9
    redone = {name: (run / name).read_bytes() for name in ("result.json", "predictions.csv") if (run / name).exists()}
    assert redone.get("predictions.csv", b"") != before["predictions.csv"]
    capsys.readouterr()
    assert main([a for a in args if a != "--quiet"]) == 0
    out = capsys.readouterr().err
    assert "already complete, skipped" in out
    if point == "before-result":
        assert "an earlier --force redo of this run did not finish: the finished result it was redoing is restored" in out
        assert _unchanged(run, before)
    else:
        assert "restored" not in out
        assert _unchanged(run, redone) and json.loads(redone["result.json"])["status"] == "completed"
    assert sorted(p.name for p in run.parent.iterdir()) == [".seed-42.holder", ".seed-42.lock", "seed-42"]
    assert _board_row(tmp_path / "results")["status"] == "ok"


# ----- 7. a damaged tokenisation cache is rebuilt, never a failed model ----------------------------------


def _damage(kind: str, entry: Path) -> None:
    arrow = sorted(entry.glob("*.arrow"))[0]
    data = arrow.read_bytes()
    if kind == "truncated":
        arrow.write_bytes(data[: len(data) // 2])
    elif kind == "flipped":  # same size, one token id changed
        arrow.write_bytes(data[:-200] + bytes([data[-200] ^ 0x01]) + data[-199:])
    elif kind == "emptied":
        arrow.write_bytes(b"")
    elif kind == "info-deleted":
        (entry / "dataset_info.json").unlink()
    elif kind == "state-garbled":
        (entry / "state.json").write_text("{not json")
    elif kind == "arrow-deleted":
        arrow.unlink()
    elif kind == "manifest-deleted":  # as an older harness left it: no manifest to check against
        (entry / "harness_cache.json").unlink()


DAMAGE = ["truncated", "flipped", "emptied", "info-deleted", "state-garbled", "arrow-deleted", "manifest-deleted"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_tokenisation_cache_is_rebuilt_with_one_line(tmp_path, monkeypatch, caplog, kind):
    from harness.models.transformer import TransformerClassifier
    from tests.tiny_models import build_tiny_model

    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    frame = pd.read_csv(FIXTURES / "binary" / "train.csv")
    texts, labels = frame.text.tolist(), frame.label.to_numpy()
    model = TransformerClassifier.load(build_tiny_model("bert", tmp_path / "bert", texts))
    first = model.tokenize(texts, 32, labels)
    expected = (list(first["input_ids"]), list(first["label"]), list(first["idx"]))
    del first  # memory-mapped from the file damaged below
    (entry,) = (tmp_path / "cache" / "tokenized").iterdir()
    _damage(kind, entry)
    with caplog.at_level(logging.WARNING, logger="harness"):
        again = model.tokenize(texts, 32, labels)
    assert (list(again["input_ids"]), list(again["label"]), list(again["idx"])) == expected
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and f"tokenisation cache {entry} is damaged" in lines[0] and "rebuilt" in lines[0], lines
    # The rebuilt entry is whole: the next read reuses it without a word and without tokenising.
    caplog.clear()
    calls = []
    original = type(model.tokenizer).__call__
    monkeypatch.setattr(type(model.tokenizer), "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    third = model.tokenize(texts, 32, labels)
    assert calls == [] and not caplog.records and list(third["input_ids"]) == expected[0]
    assert sorted(p.name for p in (tmp_path / "cache" / "tokenized").iterdir()) == [entry.name]


def test_training_on_a_truncated_tokenisation_cache_trains_as_on_a_whole_one(tmp_path, monkeypatch):
    from harness.models.transformer import TransformerClassifier

    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    model_dir, split, budget = _tiny_run(tmp_path)
    test_texts = pd.read_csv(FIXTURES / "binary" / "test.csv").text.tolist()[:8]
    whole = TransformerClassifier.load(model_dir)
    whole.fit(split, budget, tmp_path / "whole", show_progress=False)
    expected = whole.predict_proba(test_texts, batch_size=8)
    (entry,) = (tmp_path / "cache" / "tokenized").iterdir()
    _damage("truncated", entry)
    damaged = TransformerClassifier.load(model_dir)
    report = damaged.fit(split, budget, tmp_path / "damaged", show_progress=False)
    assert report.optimizer_steps == 6
    assert np.abs(damaged.predict_proba(test_texts, batch_size=8) - expected).max() <= 1e-6
