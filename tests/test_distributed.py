"""One run over several processes through `accelerate launch`: DDP (and FSDP where torch has it on CPU)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import FIXTURES, ROOT, run_path
from tests.tiny_models import build_tiny_model, registry_yaml

pytest.importorskip("torch")
ACCELERATE_CONFIGS = ROOT / "docs" / "accelerate"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("tiny")
    texts = pd.read_csv(FIXTURES / "binary" / "train.csv").text.tolist()
    path = base / "registry.yaml"
    path.write_text(registry_yaml({"tiny-bert": build_tiny_model("bert", base / "bert", texts)}, extra_tfidf=False))
    return path


def args(registry: Path, results: Path, *extra: str) -> list[str]:
    return [
        "run_benchmark.py", "--models", "tiny-bert", "--registry", str(registry), "--benchmark", "tiny_binary",
        "--benchmarks-dir", str(FIXTURES / "benchmarks"), "--data-dir", str(FIXTURES / "binary"),
        "--results-dir", str(results), "--quiet", "--latency-samples", "3", *extra,
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(config: Path, registry: Path, results: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    # `--cpu` would send accelerate to its single-process launcher (several CPU processes on one host need
    # mpirun there): the config's own launcher starts the 2 processes, and ACCELERATE_USE_CPU keeps them on the
    # CPU (gloo), exactly as they would run on GPUs otherwise.
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
        "--num_processes", "2", "--main_process_port", str(free_port()), *args(registry, results),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TEXTCLF_BENCH_CACHE": str(tmp_path / "cache"),
           "ACCELERATE_USE_CPU": "true", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def one_process(registry: Path, results: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TEXTCLF_BENCH_CACHE": str(tmp_path / "cache")}
    subprocess.run([sys.executable, *args(registry, results)], cwd=ROOT, env=env, check=True, timeout=600)


def probabilities(results: Path) -> np.ndarray:
    frame = pd.read_csv(run_path(results, "tiny_binary", "tiny-bert") / "predictions.csv").sort_values("id")
    assert frame["id"].tolist() == list(range(24)), "every test example exactly once"
    return frame["prob_1"].to_numpy()


def test_accelerate_launch_with_the_ddp_example_matches_one_process(tiny, tmp_path):
    one_process(tiny, tmp_path / "one", tmp_path)
    done = launch(ACCELERATE_CONFIGS / "ddp.yaml", tiny, tmp_path / "two", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert np.allclose(probabilities(tmp_path / "one"), probabilities(tmp_path / "two"), atol=1e-4)
    result = json.loads((run_path(tmp_path / "two", "tiny_binary", "tiny-bert") / "result.json").read_text())
    assert result["training"]["processes"] == 2 and result["training"]["examples_seen"] == 96


def test_fsdp_saves_whole_weights_that_reload_to_the_same_predictions(tiny, tmp_path):
    done = launch(ACCELERATE_CONFIGS / "fsdp.yaml", tiny, tmp_path / "fsdp", tmp_path)
    if done.returncode != 0 and ("not supported" in done.stderr or "NotImplementedError" in done.stderr
                                 or "requires a GPU" in done.stderr or "CUDA" in done.stderr):
        pytest.skip(f"FSDP on CPU processes is not available with this torch/accelerate: {done.stderr.strip().splitlines()[-1][:200]}")
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = run_path(tmp_path / "fsdp", "tiny_binary", "tiny-bert")
    assert json.loads((run_dir / "result.json").read_text())["training"]["processes"] == 2
    from safetensors.torch import load_file

    saved = load_file(run_dir / "model" / "model.safetensors")
    word_embeddings = next(v for k, v in saved.items() if k.endswith("word_embeddings.weight"))
    assert word_embeddings.shape[0] > 100, "the whole embedding table, not one process's shard"
    from harness.run.predict import predict_texts

    texts = pd.read_csv(FIXTURES / "binary" / "test.csv").text.tolist()
    reloaded = np.array([r["probabilities"]["positive"] for r in predict_texts(run_dir / "model", texts)])
    stored = probabilities(tmp_path / "fsdp")
    assert np.allclose(reloaded, stored, atol=1e-4)
