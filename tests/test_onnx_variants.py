"""Deployment variants: tiny BERT, DistilBERT, RoBERTa and XLM-R exported to ONNX and int8, served by ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from harness.cli import main  # noqa: E402
from harness.models import onnx_variants as ov  # noqa: E402
from harness.store.results import DeploymentVariant, PairedTest  # noqa: E402
from tests.conftest import FIXTURES, run_path  # noqa: E402
from tests.tiny_models import FAMILIES, build_tiny_model, registry_yaml  # noqa: E402

POSITIVE = ["good", "great", "excellent", "love", "fine", "happy", "perfect", "nice"]
NEGATIVE = ["bad", "awful", "terrible", "hate", "poor", "broken", "sad", "worst"]
FILLER = ["the", "product", "it", "was", "and", "this", "a", "is", "of", "for"]


def keyword_texts(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Texts whose label is carried by sentiment words among filler words: learnable by a two-layer model."""
    rng = np.random.default_rng(seed)
    texts, labels = [], rng.integers(0, 2, size=n)
    for label in labels:
        words = list(rng.choice(FILLER, size=int(rng.integers(3, 9))))
        for _ in range(int(rng.integers(1, 3))):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(POSITIVE if label else NEGATIVE)))
        texts.append(" ".join(words))
    return texts, labels


def train_tiny(family: str, directory: Path):
    """A tiny model of ``family`` trained on the keyword fixture until it is far from chance, as a classifier."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from harness.models.transformer import TransformerClassifier

    texts, labels = keyword_texts(192, seed=1)
    build_tiny_model(family, directory, texts + POSITIVE + NEGATIVE)
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    model = AutoModelForSequenceClassification.from_pretrained(str(directory))
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _epoch in range(5):
        for start in range(0, len(texts), 32):
            enc = tokenizer(texts[start : start + 32], padding=True, return_tensors="pt")
            loss = model(**enc, labels=torch.tensor(labels[start : start + 32])).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    model.config.id2label, model.config.label2id = {0: "negative", 1: "positive"}, {"negative": 0, "positive": 1}
    classifier = TransformerClassifier(model, tokenizer, ["negative", "positive"])
    classifier.max_length = 32
    classifier.save(directory)
    return classifier


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("onnx")
    out = {}
    for family in FAMILIES:
        classifier = train_tiny(family, base / family)
        export = ov.export_onnx(classifier, base / family)
        quantized = ov.quantize_int8(export["path"])
        out[family] = {"classifier": classifier, "dir": base / family, "export": export, "quantized": quantized}
    return out


FIXED_TEXTS, FIXED_LABELS = keyword_texts(200, seed=7)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_exports_and_both_variants_match_pytorch(trained, family):
    item = trained[family]
    pytorch = item["classifier"].predict_proba(FIXED_TEXTS, batch_size=16)
    # The model learnt the fixture: its labels are far from chance, so agreement below is not agreement by luck.
    assert (pytorch.argmax(1) == FIXED_LABELS).mean() >= 0.9
    assert (item["dir"] / ov.ONNX_FILE).stat().st_size == item["export"]["bytes"]
    assert item["quantized"]["bytes"] < item["export"]["bytes"]
    fp32 = ov.OnnxClassifier.load(item["dir"], "onnx")
    int8 = ov.OnnxClassifier.load(item["dir"], "onnx-int8")
    assert fp32.label_names == ["negative", "positive"] and fp32.max_length == 32
    onnx_probs = fp32.predict_proba(FIXED_TEXTS, batch_size=16)
    assert np.abs(onnx_probs - pytorch).max() <= 1e-4
    # batch 1 (no padding) takes the same graph
    assert np.abs(fp32.predict_proba(FIXED_TEXTS[:1], batch_size=1) - pytorch[:1]).max() <= 1e-4
    int8_labels = int8.predict_proba(FIXED_TEXTS, batch_size=16).argmax(1)
    assert (int8_labels == pytorch.argmax(1)).mean() >= 0.95


def test_a_model_trained_under_mixed_precision_exports_its_fp32_graph(trained, tmp_path):
    """Accelerate's bf16 patches an autocast wrapper onto the model's forward; the export must not trace it.

    (A minilm-l6 run whose CPU probe chose bf16 failed both variants with "ScalarType ComplexDouble is an
    unexpected tensor scalar type" before the export traced the class's forward.)
    """
    import copy

    from harness.config.schema import Budget

    item = trained["bert"]
    classifier = copy.deepcopy(item["classifier"])
    plain = item["classifier"].predict_proba(FIXED_TEXTS[:40], batch_size=16)
    accelerator = classifier._make_accelerator(Budget(), "bf16")
    classifier.model = accelerator.prepare(classifier.model)
    assert "forward" in vars(classifier._unwrapped())  # the autocast wrapper is there
    export = ov.export_onnx(classifier, tmp_path)
    served = ov.OnnxClassifier.load(tmp_path, "onnx", tokenizer=classifier.tokenizer)
    assert export["bytes"] > 0
    assert np.abs(served.predict_proba(FIXED_TEXTS[:40], batch_size=16) - plain).max() <= 1e-4


def test_model_only_callable_runs_the_session(trained):
    served = ov.OnnxClassifier.load(trained["bert"]["dir"], "onnx")
    fn, feeds = served.model_only_callable(FIXED_TEXTS[:3])
    assert len(feeds) == 3 and set(feeds[0]) == {"input_ids", "attention_mask"}
    assert fn(feeds[0])[0].shape == (1, 2)


def test_a_missing_runtime_or_cuda_provider_skips_with_the_reason(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ov.VariantSkipped, match="no CUDAExecutionProvider"):
        ov.providers_for("cuda")
    assert ov.providers_for("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(ov, "runtime_missing", lambda: "onnxruntime not installed (pip install -e '.[onnx]')")
    with pytest.raises(ov.VariantSkipped, match="not installed"):
        ov.providers_for("cpu")


def test_verdict_states_the_paired_test():
    def variant(accuracy, p):
        return DeploymentVariant(status="completed", accuracy=accuracy,
                                 paired_test=PairedTest(b=9, c=1, statistic=1.0, p_value=p, method="exact"))

    assert variant(0.90, 0.2).verdict(0.905) == "no significant loss"
    assert variant(0.897, 0.0107).verdict(0.905) == "loses 0.8 points, p = 0.011"
    assert variant(0.92, 0.001).verdict(0.905) == "gains 1.5 points, p = 0.001"
    assert DeploymentVariant(status="skipped", reason="no provider").verdict(0.9) == "skipped: no provider"


# ----- through the run ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_registry(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("tiny-run")
    texts = pd.read_csv(FIXTURES / "binary" / "train.csv").text.tolist()
    path = base / "registry.yaml"
    path.write_text(registry_yaml({"tiny-bert": build_tiny_model("bert", base / "bert", texts)}, extra_tfidf=False))
    # Beside it, the binary fixture with the default variants (the shared fixture measures PyTorch only).
    yaml = (FIXTURES / "benchmarks" / "tiny_binary.yaml").read_text()
    assert "variants: [pytorch]\n" in yaml
    (base / "benchmarks").mkdir()
    (base / "benchmarks" / "tiny_binary.yaml").write_text(yaml.replace("variants: [pytorch]\n", ""))
    return path


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_BENCH_CACHE", str(tmp_path / "cache"))


def run_tiny(registry: Path, results: Path, *extra: str) -> dict:
    args = ["--models", "tiny-bert", "--registry", str(registry), "--benchmark", "tiny_binary",
            "--benchmarks-dir", str(registry.parent / "benchmarks"), "--data-dir", str(FIXTURES / "binary"),
            "--results-dir", str(results),
            "--quiet", "--no-isolate", "--latency-samples", "5", *extra]
    assert main(args) == 0
    return json.loads((run_path(results, "tiny_binary", "tiny-bert") / "result.json").read_text())


def test_run_measures_variants_and_predict_serves_them(tiny_registry, tmp_path, capsys):
    result = run_tiny(tiny_registry, tmp_path)
    run_dir = run_path(tmp_path, "tiny_binary", "tiny-bert")
    variants = result["deployment_variants"]
    assert list(variants) == ["onnx", "onnx-int8"]
    stored = pd.read_csv(run_dir / "predictions.csv")
    for name, v in variants.items():
        assert v["status"] == "completed", v
        assert v["file"] == ov.VARIANT_FILES[name] and (run_dir / "model" / v["file"]).is_file()
        assert v["inference"]["eval_examples"] == result["metrics"]["n"] == 24
        assert v["inference"]["latency_batch1_end_to_end"]["repetitions"] == 5
        assert v["inference"]["latency_batch1_model_only"]["repetitions"] == 5
        assert v["memory"]["rss_peak_bytes"] > 0 and v["export_seconds"] > 0
        mine = pd.read_csv(run_dir / "variants" / name / "predictions.csv")
        assert mine["id"].tolist() == stored["id"].tolist()
        agree = (mine[["prob_0", "prob_1"]].to_numpy().argmax(1) == stored[["prob_0", "prob_1"]].to_numpy().argmax(1))
        assert v["agreement_with_pytorch"] == pytest.approx(agree.mean())
        assert v["paired_test"]["method"] == "exact"
    assert variants["onnx"]["max_probability_difference"] <= 1e-4
    assert variants["onnx-int8"]["quantize_seconds"] > 0 and variants["onnx"]["quantize_seconds"] is None
    # the leaderboard: sub-rows of their model, with the paired test's verdict
    board = (tmp_path / "tiny_binary" / "leaderboard.md").read_text()
    assert "## Deployment variants" in board
    for name in ("pytorch", "onnx", "onnx-int8"):
        assert f"| tiny-bert · {name} " in board
    assert "no significant loss" in board
    card = (run_dir / "model" / "README.md").read_text()
    assert "## Deployment variants" in card and "model-int8.onnx" in card
    # the page's quality-vs-cost charts: each variant a point of its own, linked to its model's
    from harness.config.registry import load_benchmark
    from harness.report.board import Leaderboard
    from harness.report.page import quality_vs_cost
    from harness.store.results_store import ResultsStore

    board = Leaderboard.from_store(ResultsStore(tmp_path), load_benchmark("tiny_binary", tiny_registry.parent / "benchmarks")[0])
    charts = {c["x_label"].split(" (")[0]: c for c in quality_vs_cost(board)}
    latency = {v["variant"]: v for v in charts["batch-1 latency p50"]["variants"]}
    assert set(latency) == {"onnx", "onnx-int8"} and {v["parent"] for v in latency.values()} == {"tiny-bert"}
    for name, v in variants.items():
        assert latency[name]["x"] == v["inference"]["latency_batch1_end_to_end"]["p50_ms"]
        assert latency[name]["y"] == v["f1_macro"] and latency[name]["p_value"] == v["paired_test"]["p_value"]
    throughput = {v["variant"]: v["x"] for v in charts["eval throughput"]["variants"]}
    assert throughput == {n: v["inference"]["throughput_samples_per_s"] for n, v in variants.items()}
    assert charts["training time"]["variants"] == []  # a variant is not trained: no point of its own there
    # predict --variant serves the ONNX file and gives the labels the run stored for that variant
    texts = pd.read_csv(FIXTURES / "binary" / "test.csv").text.tolist()
    for name in ("onnx", "onnx-int8"):
        capsys.readouterr()
        assert main(["predict", "--model-dir", str(run_dir / "model"), "--variant", name, "--json", *texts]) == 0
        served = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        mine = pd.read_csv(run_dir / "variants" / name / "predictions.csv").sort_values("id")
        expected = ["negative", "positive"]
        assert [s["label"] for s in served] == [expected[i] for i in mine[["prob_0", "prob_1"]].to_numpy().argmax(1)]


def test_failed_export_fails_the_variants_alone(tiny_registry, tmp_path, monkeypatch):
    import torch

    def refuse(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::frobnicate")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    result = run_tiny(tiny_registry, tmp_path)
    assert result["status"] == "completed"
    for name in ("onnx", "onnx-int8"):
        v = result["deployment_variants"][name]
        assert v["status"] == "failed"
        assert v["reason"] == "ONNX export failed (RuntimeError: unsupported operator aten::frobnicate)"
    assert not (run_path(tmp_path, "tiny_binary", "tiny-bert") / "model" / ov.ONNX_FILE).exists()
    board = (tmp_path / "tiny_binary" / "leaderboard.md").read_text()
    assert "| tiny-bert · onnx " in board and "failed: ONNX export failed" in board


def test_failed_quantization_fails_int8_alone(tiny_registry, tmp_path, monkeypatch):
    import onnxruntime.quantization as quantization

    def refuse(*args, **kwargs):
        raise ValueError("no int8 kernel")

    monkeypatch.setattr(quantization, "quantize_dynamic", refuse)
    result = run_tiny(tiny_registry, tmp_path)
    assert result["deployment_variants"]["onnx"]["status"] == "completed"
    assert result["deployment_variants"]["onnx-int8"] == {
        **result["deployment_variants"]["onnx-int8"], "status": "failed",
        "reason": "int8 quantization failed (ValueError: no int8 kernel)"}


def test_no_variants_flag_measures_pytorch_only(tiny_registry, tmp_path):
    result = run_tiny(tiny_registry, tmp_path, "--no-variants", "--no-save-model")
    assert result["deployment_variants"] == {}
    assert not (run_path(tmp_path, "tiny_binary", "tiny-bert") / "variants").exists()
    assert "## Deployment variants" not in (tmp_path / "tiny_binary" / "leaderboard.md").read_text()


def test_quality_plot_links_a_variant_to_its_model():
    from harness.report import figures

    points = [
        {"model": "m", "quality": 0.9, "low": 0.88, "high": 0.92, "latency_ms": 10.0, "memory_mib": 500.0},
        {"model": "m · onnx-int8", "parent": "m", "quality": 0.89, "low": float("nan"), "high": float("nan"),
         "latency_ms": 4.0, "memory_mib": 450.0},
    ]
    fig = figures.quality_vs_latency(points)
    dotted = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == 1 and list(dotted[0].get_xdata()) == [10.0, 4.0]
