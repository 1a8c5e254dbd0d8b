"""The training loop in steps trains what the single long loop trained: values pinned from that loop.

A tiny BERT with dropout on, trained for a fixed seed with gradient accumulation, warm-up and weight decay,
gives a loss curve and predictions recorded from the loop before it was split into steps (the code at
df02564); they must stay the same within 1e-6, and the checkpoint on disk keeps its files and keys.
The tokenizer's vocabulary is fixed here (a trained one numbers tied pieces differently from run to run),
and one thread is used (the sums of a matmul change in the last bits with the thread count).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness.config.schema import Budget
from harness.data.loading import Split
from harness.models.training import TrainingState, TransformerFitReport, planned_steps
from harness.models.transformer import TransformerClassifier
from tests.conftest import FIXTURES

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="values pinned on a CPU")

BUDGET = Budget(epochs=3, max_length=32, batch_size=8, gradient_accumulation_steps=2, learning_rate=1e-2,
                warmup_ratio=0.25, weight_decay=0.01, precision="fp32", seed=5)

# Recorded from the loop before the split (df02564), one thread, fp32: the mean loss after each optimizer step...
PINNED_LOSSES = [
    0.6875903010368347, 0.6955866813659668, 0.7136456966400146, 0.694089412689209,
    0.6940011978149414, 0.6961798667907715, 0.6902154684066772, 0.692887544631958,
    0.6917098760604858,
]
# ...and the probability of class 0 the trained model gives each of the 24 test reviews.
PINNED_PROBS = [
    0.5052380561828613, 0.5034582614898682, 0.505385160446167, 0.5039561986923218,
    0.5052492022514343, 0.5031042695045471, 0.5040500164031982, 0.5032209157943726,
    0.5045115351676941, 0.5024038553237915, 0.5042579174041748, 0.5039716958999634,
    0.5047031044960022, 0.503619909286499, 0.5051781535148621, 0.5035020112991333,
    0.5054267644882202, 0.5034034252166748, 0.5052120089530945, 0.5037953853607178,
    0.5045244693756104, 0.5030348300933838, 0.5040240287780762, 0.5029760003089905,
]
PINNED_COUNTS = {"examples_seen": 144, "unique_examples": 48, "optimizer_steps": 9, "epochs_completed": 3.0,
                 "real_tokens": 1572, "padded_tokens": 2304, "stopped_by": "epochs", "loss_read_every_steps": 50,
                 "processes": 1}
# The keys the loop returned in its dict; the result's ``training`` block holds them.
REPORT_KEYS = {"examples_seen", "unique_examples", "optimizer_steps", "epochs_completed", "train_seconds",
               "tokenize_seconds", "warmup_seconds", "samples_per_second", "real_tokens", "padded_tokens",
               "padding_fraction", "tokens_per_second", "mfu", "mfu_convention", "loss_curve",
               "loss_read_every_steps", "stopped_by", "resumed_from_step", "precision", "threads", "forecast",
               "processes"}
# A checkpoint after step 4 (mid-epoch): its files (Accelerate's, and the harness's random states, which the
# loop wrote as random_states_harness_0.pt and are safetensors + JSON since they may not unpickle: safe_state),
# and its marker, as that loop wrote it, in this key order.
CHECKPOINT_FILES = ["harness_state.json", "model.safetensors", "optimizer.bin", "random_states_0.pkl",
                    "random_states_harness_0.json", "random_states_harness_0.safetensors", "scheduler.bin"]
MARKER_AT_4 = {
    "step": 4, "epoch": 1, "batch_in_epoch": 2, "examples": 64, "real_tokens": 698, "padded_tokens": 1024,
    "loss_curve": [{"step": 1, "examples": 16, "loss": 0.6875903010368347},
                   {"step": 2, "examples": 32, "loss": 0.6955866813659668},
                   {"step": 3, "examples": 48, "loss": 0.7136456966400146},
                   {"step": 4, "examples": 64, "loss": 0.694089412689209}],
    "train_seconds": 0.07383885399985957, "window_sum": 0.0, "window_count": 0,
    "precision": {"requested": "fp32", "probe": None, "resolved": "fp32", "reason": "set in the budget"},
    "budget": {"train_examples": None, "test_examples": None, "epochs": 3.0, "max_steps": None, "max_seconds": None,
               "max_length": 32, "batch_size": 8, "eval_batch_size": 64, "gradient_accumulation_steps": 2,
               "learning_rate": 0.01, "weight_decay": 0.01, "warmup_ratio": 0.25, "max_grad_norm": 1.0,
               "precision": "fp32", "seed": 5},
}


def fixed_vocabulary_bert(directory: Path, texts: list[str]) -> Path:
    """A tiny BERT (two layers, dropout 0.1) whose WordPiece vocabulary is the sorted words: the same ids
    on every run, unlike a trained vocabulary."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import AutoModelForSequenceClassification, BertConfig, PreTrainedTokenizerFast

    normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = sorted({w for t in texts for w, _ in splitter.pre_tokenize_str(normalizer.normalize_str(t))})
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, splitter
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=64, unk_token="[UNK]",
                                        pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    config = BertConfig(vocab_size=len(vocab), pad_token_id=0, num_labels=2, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=80,
                        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, classifier_dropout=0.1)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    texts = pd.read_csv(FIXTURES / "binary" / "train.csv").text.tolist()
    return fixed_vocabulary_bert(tmp_path_factory.mktemp("fixed") / "bert", texts)


@pytest.fixture(autouse=True)
def _one_thread(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def train_split() -> Split:
    frame = pd.read_csv(FIXTURES / "binary" / "train.csv")
    return Split(name="train", texts=frame.text.tolist(), labels=frame.label.to_numpy(), ids=np.arange(len(frame)))


class Killed(Exception):
    """Stands in for SIGKILL right after a checkpoint was written."""


def fit_checkpointing_every_step(model_dir: Path, workdir: Path, monkeypatch, kill_at: int | None = None):
    """A fit that writes a checkpoint after every step (as the values were recorded); the markers and files
    it wrote by step; optionally killed right after the checkpoint of step ``kill_at``."""
    classifier = TransformerClassifier.load(model_dir)
    classifier.checkpoint_every_s = 0.0
    written: dict[int, tuple[dict, list[str]]] = {}
    original = TransformerClassifier._checkpoint

    def spy(self, accelerator, directory, state, budget):
        original(self, accelerator, directory, state, budget)
        written[state.step] = (json.loads((directory / "harness_state.json").read_text()),
                               sorted(p.name for p in directory.iterdir()))
        if state.step == kill_at:
            raise Killed

    monkeypatch.setattr(TransformerClassifier, "_checkpoint", spy)
    try:
        report = classifier.fit(train_split(), BUDGET, workdir, show_progress=False)
    finally:
        monkeypatch.setattr(TransformerClassifier, "_checkpoint", original)
    return classifier, report, written


def assert_pinned(classifier: TransformerClassifier, report: TransformerFitReport) -> None:
    test_texts = pd.read_csv(FIXTURES / "binary" / "test.csv").text.tolist()
    probs = classifier.predict_proba(test_texts, batch_size=16)
    np.testing.assert_allclose([p["loss"] for p in report.loss_curve], PINNED_LOSSES, rtol=0, atol=1e-6)
    np.testing.assert_allclose(probs[:, 0], PINNED_PROBS, rtol=0, atol=1e-6)
    assert [(p["step"], p["examples"]) for p in report.loss_curve] == [(s, 16 * s) for s in range(1, 10)]
    assert {key: getattr(report, key) for key in PINNED_COUNTS} == PINNED_COUNTS


def test_a_fixed_seed_trains_the_losses_and_predictions_pinned_before_the_split(model_dir, tmp_path, monkeypatch):
    classifier, report, written = fit_checkpointing_every_step(model_dir, tmp_path / "w", monkeypatch)
    assert_pinned(classifier, report)
    assert isinstance(report, TransformerFitReport) and report.resumed_from_step is None
    assert set(report.model_dump()) == REPORT_KEYS
    assert report.precision == MARKER_AT_4["precision"] and report.resolved_precision == "fp32"
    assert report.padding_fraction == 1 - 1572 / 2304 and report.threads["intra_op"] == 1
    # the checkpoint on disk: the same files, the same marker keys in the same order, the same values
    marker, files = written[4]
    assert files == CHECKPOINT_FILES
    assert list(marker) == list(MARKER_AT_4)
    assert {k: v for k, v in marker.items() if k not in ("train_seconds", "loss_curve")} == \
        {k: v for k, v in MARKER_AT_4.items() if k not in ("train_seconds", "loss_curve")}
    np.testing.assert_allclose([p["loss"] for p in marker["loss_curve"]],
                               [p["loss"] for p in MARKER_AT_4["loss_curve"]], rtol=0, atol=1e-6)
    assert sorted(written) == list(range(1, 9)), "a checkpoint after every step but the last"
    assert not (tmp_path / "w" / "checkpoint").exists(), "a finished run removes its checkpoint"


def test_a_run_killed_mid_epoch_resumes_to_the_pinned_values(model_dir, tmp_path, monkeypatch):
    with pytest.raises(Killed):
        fit_checkpointing_every_step(model_dir, tmp_path / "w", monkeypatch, kill_at=4)
    classifier, report, _ = fit_checkpointing_every_step(model_dir, tmp_path / "w", monkeypatch)
    assert report.resumed_from_step == 4 and report.precision == {**MARKER_AT_4["precision"], "resumed": True}
    assert_pinned(classifier, report)


def test_a_marker_written_before_the_split_reads_back_and_writes_the_same(tmp_path):
    from harness.models.safe_state import save_random_states

    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    save_random_states(checkpoint, 0)  # a checkpoint without them is of the pickled layout: started over
    (checkpoint / "harness_state.json").write_text(json.dumps(MARKER_AT_4))
    state = TransformerClassifier._read_checkpoint(checkpoint, BUDGET)
    assert isinstance(state, TrainingState)
    assert (state.step, state.epoch, state.batch_in_epoch, state.examples) == (4, 1, 2, 64)
    assert state.train_seconds == MARKER_AT_4["train_seconds"] and state.loss_curve == MARKER_AT_4["loss_curve"]
    assert json.dumps(state.to_marker(BUDGET)) == json.dumps(MARKER_AT_4)
    # another budget's checkpoint is not this run's
    assert TransformerClassifier._read_checkpoint(checkpoint, Budget(**{**BUDGET.model_dump(), "seed": 6})) is None


def test_the_planned_steps_follow_the_budget():
    assert planned_steps(48, BUDGET) == 9  # 6 batches an epoch, 3 steps of 2, 3 epochs
    assert planned_steps(48, Budget(**{**BUDGET.model_dump(), "epochs": 0.5})) == 2
    assert planned_steps(48, Budget(**{**BUDGET.model_dump(), "max_steps": 4})) == 4
    assert planned_steps(3, Budget(batch_size=8, gradient_accumulation_steps=4, epochs=1)) == 1
