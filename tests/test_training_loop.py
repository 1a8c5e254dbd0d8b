"""The transformer training loop: no device reads inside a step, divergence named, precision decided by measuring.

All on tiny random models built offline (tests/tiny_models.py), fp32 unless a test says otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness.config.schema import Budget
from harness.core.errors import TrainingDiverged
from harness.data.loading import Split
from harness.models import batching as B
from harness.models import precision as P
from harness.models import training as L
from harness.models import transformer as T
from tests.conftest import FIXTURES
from tests.tiny_models import build_tiny_model

READS = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    texts = pd.read_csv(FIXTURES / "binary" / "train.csv").text.tolist()
    return build_tiny_model("bert", tmp_path_factory.mktemp("tiny") / "bert", texts)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))


def train_split() -> Split:
    frame = pd.read_csv(FIXTURES / "binary" / "train.csv")
    return Split(name="train", texts=frame.text.tolist(), labels=frame.label.to_numpy(), ids=np.arange(len(frame)))


def budget(**overrides) -> Budget:
    values = dict(max_length=32, batch_size=8, learning_rate=1e-3, precision="fp32", seed=3)
    return Budget(**{**values, **overrides})


def test_no_device_read_inside_a_training_step(tiny_bert, tmp_path, monkeypatch):
    """Every read of a tensor's value during fit() happens in DeviceTally.read, which runs every
    READ_EVERY_STEPS optimizer steps and once at the end; none inside a step (model, loss, clipping, optimizer,
    scheduler, counters and the divergence check included). On CUDA the driver's sync check says the same."""
    classifier = T.TransformerClassifier.load(tiny_bert)
    reads: list[str] = []
    in_read = [False]
    for name in READS:
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            if not in_read[0]:
                import traceback

                reads.append(f"{_name} at {traceback.extract_stack(limit=3)[-2]}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    read_steps: list[int] = []
    original_read = L.DeviceTally.read
    cuda = torch.cuda.is_available()

    def counted_read(self, accelerator):
        in_read[0] = True
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
        try:
            read_steps.append(len(self.points))
            return original_read(self, accelerator)
        finally:
            in_read[0] = False
            if cuda:
                torch.cuda.set_sync_debug_mode("error")

    monkeypatch.setattr(L.DeviceTally, "read", counted_read)
    if cuda:  # from the first step on: the warm-up before it synchronises on purpose
        original_add = L.DeviceTally.add

        def add(self, loss, step):
            torch.cuda.set_sync_debug_mode("error")
            return original_add(self, loss, step)

        monkeypatch.setattr(L.DeviceTally, "add", add)
    # Reads only count from the first step on: tokenising and setting up may read values freely.
    original_stream = B.BatchStream.__iter__
    started = [False]

    def stream(self):
        if not started[0]:
            started[0] = True
            reads.clear()
        yield from original_stream(self)

    monkeypatch.setattr(B.BatchStream, "__iter__", stream)
    steps = 2 * L.READ_EVERY_STEPS + 7
    try:
        report = classifier.fit(train_split(), budget(max_steps=steps), tmp_path / "w", show_progress=False)
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
    assert reads == [], reads
    assert report.optimizer_steps == steps
    # one read at steps 50 and 100, one at the end; each fetched every loss point logged since the last
    assert len(read_steps) == 3 and sum(read_steps) == len(report.loss_curve) == steps


def test_divergence_names_the_first_bad_step_and_stops_within_the_read_interval(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setattr(L, "READ_EVERY_STEPS", 4)
    classifier = T.TransformerClassifier.load(tiny_bert)
    calls = [0]
    original = type(classifier.model).forward

    def forward(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] >= 7:  # the loss turns NaN at step 7 and stays so
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(type(classifier.model), "forward", forward)
    with pytest.raises(TrainingDiverged) as caught:
        classifier.fit(train_split(), budget(max_steps=30), tmp_path / "w", show_progress=False)
    message = str(caught.value)
    assert message.startswith("loss became nan at step 7; stopped instead of training on garbage")
    assert "noticed at step 8, the loss is read every 4 steps" in message
    assert calls[0] == 8, "training stops at the first read after the bad step"


def test_loop_trains_the_seeded_batches_in_order(tiny_bert, tmp_path, monkeypatch):
    """Same examples, same order for a seed: the batches fed to the model are length_bucketed_batches'."""
    classifier = T.TransformerClassifier.load(tiny_bert)
    seen: list[np.ndarray] = []
    original = type(classifier.model).forward

    def forward(self, input_ids=None, **kwargs):
        seen.append(input_ids.numpy().copy())
        return original(self, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(type(classifier.model), "forward", forward)
    split = train_split()
    report = classifier.fit(split, budget(epochs=2), tmp_path / "w", show_progress=False)
    table = classifier.tokenize(split.texts, 32, split.labels)
    ids = B.TokenIds(table)
    lengths = np.asarray(table["length"])
    expected = [ids.batch(np.asarray(rows), classifier.tokenizer.pad_token_id, 32)["input_ids"]
                for epoch in range(2) for rows in B.length_bucketed_batches(lengths, 8, seed=3 + epoch)]
    assert len(seen) == len(expected) == report.optimizer_steps == 12
    for got, want in zip(seen, expected, strict=True):
        assert np.array_equal(got, want)
    assert report.examples_seen == 96
    assert report.real_tokens == 2 * int(lengths.sum())


def test_batch_builder_matches_the_collate_and_shards_evenly():
    table_rows = [[5] * 17, [6] * 3, [7] * 9, [8] * 40]
    import datasets

    table = datasets.Dataset.from_dict({"input_ids": table_rows, "label": [1, 0, 1, 0]})
    ids = B.TokenIds(table)
    built = ids.batch(np.array([0, 1]), pad_id=0, max_length=40)
    reference = B.pad_collate(0, 40)({"input_ids": table_rows[:2], "label": [1, 0], "idx": [0, 1]})
    for key in ("input_ids", "attention_mask", "labels"):
        assert np.array_equal(built[key], reference[key].numpy())
    order = [[0, 1], [2, 3]]
    assert [s.tolist() for s in B.shard_rows([0, 1, 2], order, 2)] == [[0, 1], [2, 0]]
    host = B.build_host_batch(ids, [0, 1, 2, 3], order, world=2, rank=1, pad_id=0, max_length=40, mask_4d=True)
    # the whole batch's counts, this process's rows: [9, 40] tokens padded to 40 each, [17, 3] to 32
    assert (host.examples, host.real_tokens, host.padded_tokens) == (4, 69, 2 * 32 + 2 * 40)
    assert host.arrays["attention_mask"].shape == (2, 1, 1, 40) and host.arrays["attention_mask"].dtype == bool
    full = B.build_host_batch(ids, [3], [[3]], world=1, rank=0, pad_id=0, max_length=40, mask_4d=True)
    assert "attention_mask" not in full.arrays, "a batch without padding needs no mask"


def fake_probe(monkeypatch, fp32_s: float, bf16_s: float) -> list:
    calls = []

    def timed(model, batch, dtype, repeats, stop_after=None):
        calls.append(dtype)
        return [1.0] + [bf16_s if dtype is not None else fp32_s] * (repeats - 1)

    monkeypatch.setattr(P, "_time_train_step", timed)
    return calls


def test_auto_precision_on_cpu_follows_a_cached_probe(tiny_bert, tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("the probe decides on CPU only")
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    classifier = T.TransformerClassifier.load(tiny_bert)
    calls = fake_probe(monkeypatch, fp32_s=0.010, bf16_s=0.020)
    first = P.resolve_precision("auto", classifier.model, 8, 32, 2)
    assert first["resolved"] == "fp32" and first["probe"]["cached"] is False and len(calls) == 2
    assert "fp32 10.0 ms, bf16 20.0 ms" in first["reason"]
    again = P.resolve_precision("auto", classifier.model, 8, 32, 2)
    assert again["resolved"] == "fp32" and again["probe"]["cached"] is True and len(calls) == 2
    files = list((tmp_path / "cache" / P.PROBE_DIR).iterdir())
    assert len(files) == 1 and json.loads(files[0].read_text())["identity"]["shape"]["hidden_size"] == 32
    # another shape or thread count is another key, measured afresh
    fake_probe(monkeypatch, fp32_s=0.010, bf16_s=0.004)
    other = P.resolve_precision("auto", classifier.model, 16, 32, 2)
    assert other["resolved"] == "bf16" and other["probe"]["cached"] is False
    # a near-tie stays fp32
    fake_probe(monkeypatch, fp32_s=0.010, bf16_s=0.0097)
    assert P.resolve_precision("auto", classifier.model, 8, 64, 2)["resolved"] == "fp32"
    assert P.resolve_precision("bf16", classifier.model)["reason"] == "set in the budget"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert P.resolve_precision("auto", classifier.model)["reason"] == "the Accelerate launch configuration"


def test_probe_leaves_weights_gradients_and_random_state_alone(tiny_bert):
    classifier = T.TransformerClassifier.load(tiny_bert)
    before = {n: p.detach().clone() for n, p in classifier.model.named_parameters()}
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    probe = P.probe_cpu_precision(classifier.model, 4, 16, 1)
    assert torch.equal(torch.rand(3), expected)
    assert probe["fp32_s"] > 0 and probe["bf16_s"] > 0 and probe["choice"] in ("fp32", "bf16")
    for name, parameter in classifier.model.named_parameters():
        assert parameter.grad is None and torch.equal(parameter, before[name])


def test_fit_records_precision_and_a_resumed_run_keeps_it(tiny_bert, tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("the probe decides on CPU only")
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    fake_probe(monkeypatch, fp32_s=0.010, bf16_s=0.004)  # bf16 measured faster when the run starts

    class Killed(Exception):
        pass

    original = T.TransformerClassifier._checkpoint

    def checkpoint_then_die(self, accelerator, directory, state, budget_):
        original(self, accelerator, directory, state, budget_)
        raise Killed

    classifier = T.TransformerClassifier.load(tiny_bert)
    classifier.checkpoint_every_s = 0.0
    monkeypatch.setattr(T.TransformerClassifier, "_checkpoint", checkpoint_then_die)
    with pytest.raises(Killed):
        classifier.fit(train_split(), budget(precision="auto", epochs=1), tmp_path / "w", show_progress=False)
    assert classifier.resolved_precision() == "bf16"
    monkeypatch.setattr(T.TransformerClassifier, "_checkpoint", original)
    fake_probe(monkeypatch, fp32_s=0.010, bf16_s=0.040)  # the machine now measures fp32 faster
    resumed = T.TransformerClassifier.load(tiny_bert)
    report = resumed.fit(train_split(), budget(precision="auto", epochs=1), tmp_path / "w", show_progress=False)
    assert report.resumed_from_step == 1
    assert report.precision["resolved"] == "bf16" and report.precision["resumed"] is True
    assert "bf16 faster" in report.precision["reason"] and resumed.resolved_precision() == "bf16"
    # a fresh run of the same shape reads the cached probe (bf16); once the cache is gone it measures again
    import shutil

    shutil.rmtree(tmp_path / "cache" / P.PROBE_DIR)
    fresh = T.TransformerClassifier.load(tiny_bert).fit(train_split(), budget(precision="auto", epochs=1),
                                                         tmp_path / "w2", show_progress=False)
    assert fresh.precision["resolved"] == "fp32" and "fp32 faster" in fresh.precision["reason"]


def test_threads_never_exceed_usable_cores(monkeypatch):
    before = torch.get_num_threads()
    try:
        cores = P.usable_cores()
        monkeypatch.setenv("OMP_NUM_THREADS", str(cores + 63))
        assert P.configure_threads()["intra_op"] == cores
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        info = P.configure_threads()
        assert info["intra_op"] == 1 == torch.get_num_threads() and info["omp_num_threads"] == "1"
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert P.configure_threads()["intra_op"] == cores == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_adamw_is_fused_where_torch_has_it():
    parameter = torch.nn.Parameter(torch.zeros(3))
    optimizer = L.make_adamw([{"params": [parameter]}], 1e-3, torch.device("cpu"))
    group = optimizer.param_groups[0]
    assert group["fused"] or group["foreach"]
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_bf16_predictions_run_on_weights_cast_once_and_training_keeps_fp32(tiny_bert, tmp_path):
    """In bf16 the predictions come from a copy cast once (no autocast in the forward): the same labels as
    autocast, the trained weights stay fp32, and a new fit drops the copy instead of predicting with stale weights."""
    classifier = T.TransformerClassifier.load(tiny_bert)
    classifier.fit(train_split(), budget(precision="bf16", max_steps=6), tmp_path / "w", show_progress=False)
    texts = train_split().texts
    cast = classifier.predict_proba(texts, batch_size=8)
    copy = classifier._inference_model()
    assert next(copy.parameters()).dtype == torch.bfloat16
    assert next(classifier._unwrapped().parameters()).dtype == torch.float32
    assert classifier._inference_model() is copy  # made once
    with torch.inference_mode(), classifier._autocast():
        enc = classifier.tokenizer(texts, truncation=True, max_length=32, padding=True, return_tensors="pt")
        autocast = torch.softmax(classifier._unwrapped()(**enc).logits.float(), dim=-1).numpy()
    assert np.abs(cast - autocast).max() < 0.05
    np.testing.assert_array_equal(cast.argmax(1), autocast.argmax(1))
    np.testing.assert_allclose(classifier.predict_proba(texts[:1]), cast[:1], atol=0.02)  # batch-1 path, same copy

    classifier.fit(train_split(), budget(precision="bf16", max_steps=6, seed=4), tmp_path / "w2", show_progress=False)
    assert classifier._inference_model() is not copy


@pytest.mark.skipif(torch.cuda.is_available(), reason="on CUDA a bf16-trained model predicts in bf16 without a probe")
def test_a_loaded_bf16_model_predicts_in_what_a_cpu_probe_measured_faster(tiny_bert, tmp_path, monkeypatch):
    classifier = T.TransformerClassifier.load(tiny_bert)
    classifier.fit(train_split(), budget(precision="bf16", max_steps=4), tmp_path / "w", show_progress=False)
    classifier.save(tmp_path / "saved")
    seconds = {torch.float32: 1.0, torch.bfloat16: 2.0}

    def timed(model, batch, repeats):
        return [9.0] + [seconds[next(model.parameters()).dtype]] * (repeats - 1)

    monkeypatch.setattr(P, "_time_forward", timed)
    assert T.TransformerClassifier.load(tmp_path / "saved").precision == "fp32"  # bf16 measured slower here
    seconds[torch.bfloat16] = 0.5
    assert T.TransformerClassifier.load(tmp_path / "saved").precision == "fp32"  # the cached probe decides
    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "another-cache"))
    assert T.TransformerClassifier.load(tmp_path / "saved").precision == "bf16"  # measured again, faster now
    fp32 = T.TransformerClassifier.load(tiny_bert)
    fp32.fit(train_split(), budget(precision="fp32", max_steps=4), tmp_path / "w2", show_progress=False)
    fp32.save(tmp_path / "saved32")
    assert T.TransformerClassifier.load(tmp_path / "saved32").precision == "fp32"
