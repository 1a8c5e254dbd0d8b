"""Batch-1 replay: padded to its width's static buffers, a text's logits are those of the text alone.

Off a GPU the capture is the recomputing stand-in (same contract: static inputs, static output, replay); on a
GPU the last test captures real CUDA graphs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from harness.models import batching as B
from harness.models import transformer as T
from harness.models.replay import ReplayedForward, cuda_graph_capture, recompute_capture
from tests.conftest import FIXTURES
from tests.tiny_models import build_tiny_model

TEXTS = pd.read_csv(FIXTURES / "binary" / "train.csv").text.tolist()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model("bert", tmp_path_factory.mktemp("tiny") / "bert", TEXTS)


def counting(capture):
    calls = []

    def wrapped(forward):
        calls.append(1)
        return capture(forward)

    return wrapped, calls


def replayed(classifier, device, capture, mask_4d=True) -> ReplayedForward:
    model = classifier._inference_model()
    return ReplayedForward(model, classifier.tokenizer.pad_token_id, lambda n: B.padded_width(n, 64), mask_4d,
                           device, capture=capture)


def test_replayed_logits_equal_the_unpadded_forward_and_each_width_is_captured_once(tiny):
    classifier = T.TransformerClassifier.load(tiny)
    classifier.model.eval()
    capture, calls = counting(recompute_capture)
    replay = replayed(classifier, torch.device("cpu"), capture)
    texts = ["good", "a much longer review that goes on and on about the product " * 3, "bad", TEXTS[0]]
    for text in texts + texts:
        ids = classifier.tokenizer([text], truncation=True, max_length=64, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            alone = classifier.model(input_ids=ids).logits
        torch.testing.assert_close(replay(ids), alone, atol=1e-5, rtol=1e-5)
    widths = {B.padded_width(len(classifier.tokenizer(t, truncation=True, max_length=64)["input_ids"]), 64) for t in texts}
    assert len(calls) == len(widths) == len(replay.slots)  # the second round replayed, captured nothing
    assert replay.path == "replayed (CUDA graph per padded width)"


def test_a_model_without_a_ready_made_mask_runs_eagerly_and_says_why(tiny):
    classifier = T.TransformerClassifier.load(tiny)
    replay = replayed(classifier, torch.device("cpu"), lambda forward: pytest.fail("captured"), mask_4d=False)
    ids = classifier.tokenizer(["fine"], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        alone = classifier.model(input_ids=ids).logits
    torch.testing.assert_close(replay(ids), alone)
    assert replay.path.startswith("eager (the model takes no ready-made mask")


def test_a_failed_capture_falls_back_to_eager_for_good(tiny):
    classifier = T.TransformerClassifier.load(tiny)

    def broken(forward):
        raise RuntimeError("operation not permitted when stream is capturing")

    replay = replayed(classifier, torch.device("cpu"), broken)
    ids = classifier.tokenizer(["fine"], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        alone = classifier.model(input_ids=ids).logits
    torch.testing.assert_close(replay(ids), alone)
    torch.testing.assert_close(replay(ids), alone)
    assert replay.path == "eager (RuntimeError: operation not permitted when stream is capturing)"
    assert replay.slots == {}


def test_off_a_gpu_batch_one_is_eager_and_recorded_so(tiny):
    classifier = T.TransformerClassifier.load(tiny)
    classifier.predict_proba(["fine"])
    assert classifier.describe()["batch1_path"] == "eager"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_replay_matches_eager_on_the_gpu(tiny):
    classifier = T.TransformerClassifier.load(tiny)
    classifier.model.to("cuda").eval()
    replay = replayed(classifier, torch.device("cuda"), cuda_graph_capture)
    for text in ["good", TEXTS[0], "bad"]:
        ids = classifier.tokenizer([text], truncation=True, max_length=64, return_tensors="pt")["input_ids"].cuda()
        with torch.inference_mode():
            alone = classifier.model(input_ids=ids).logits
        torch.testing.assert_close(replay(ids), alone, atol=1e-4, rtol=1e-4)
    assert replay.failed is None, replay.failed
