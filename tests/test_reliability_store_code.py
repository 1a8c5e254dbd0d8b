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
    from harness.config import Budget
    from harness.data import Split
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
        if state["step"] == 2:
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
            assert report["resumed_from_step"] is None, f"{target} ({form}): started over, not resumed"
            assert report["optimizer_steps"] == reference_report["optimizer_steps"] == 6
            assert np.abs(classifier.predict_proba(test_texts, batch_size=8) - expected).max() <= 1e-6
            lines = [r.getMessage() for r in caplog.records if "not resumed" in r.getMessage()]
            assert len(lines) == 1 and target in lines[0] and "starts over" in lines[0], lines
            assert not list(tmp_path.glob("ran-*"))
            tried += 1
    assert tried == 18

    # The untouched checkpoint still resumes, to the same predictions (random states from safetensors + JSON).
    classifier = TransformerClassifier.load(model_dir)
    report = classifier.fit(split, budget, tmp_path / "killed", show_progress=False)
    assert report["resumed_from_step"] == 2 and report["optimizer_steps"] == 6
    assert np.abs(classifier.predict_proba(test_texts, batch_size=8) - expected).max() <= 1e-6


def test_random_states_round_trip_exactly_through_safetensors_and_json(tmp_path):
    import random

    from harness import safe_state

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
