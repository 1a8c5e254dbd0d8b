"""Trackers checked on controlled workloads: known sleeps, known samples, known allocations, known devices."""

from __future__ import annotations

import json
import math
import mmap
import time
from types import SimpleNamespace

import numpy as np
import pytest

from harness.metrics import cost as measure
from harness.metrics.cost import (
    PhaseMemory,
    device_peak_flops,
    model_flops_utilization,
    stopwatch,
    summarize_latency,
    time_calls,
    track_memory,
)
from harness.report import markdown, sections
from tests.conftest import run_path

MIB = 2**20


# ----- latency -------------------------------------------------------------------------------------------------


def test_known_sleep_is_measured_within_tolerance():
    durations = time_calls(time.sleep, [0.05] * 5, warmup=1)
    assert len(durations) == 5
    # sleep never returns early; a loaded 2-core machine may oversleep by a few milliseconds
    assert min(durations) >= 0.05
    assert float(np.median(durations)) < 0.05 + 0.03


def test_stopwatch_measures_a_known_sleep():
    with stopwatch() as clock:
        time.sleep(0.1)
    assert 0.1 <= clock["seconds"] < 0.1 + 0.05


def test_warmup_calls_run_first_and_are_not_timed():
    calls = []

    def fn(item):
        # the first call is slow, as a cold model's is; only later calls may be timed
        if not calls:
            time.sleep(0.3)
        calls.append(item)

    durations = time_calls(fn, ["a", "b", "c"], warmup=4)
    assert calls == ["a", "b", "c", "a", "a", "b", "c"]
    assert len(durations) == 3 and max(durations) < 0.1


def test_percentiles_match_hand_values():
    # 1..100 ms: numpy's linear interpolation puts p on index (n - 1) * p / 100
    summary = summarize_latency(np.arange(1, 101) / 1000.0)
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p90_ms"] == pytest.approx(90.1)
    assert summary["p95_ms"] == pytest.approx(95.05)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["mean_ms"] == pytest.approx(50.5)
    assert summary["std_ms"] == pytest.approx(math.sqrt(100 * 101 / 12))
    assert (summary["min_ms"], summary["max_ms"], summary["repetitions"]) == (pytest.approx(1.0), pytest.approx(100.0), 100)


def test_percentiles_on_four_samples():
    summary = summarize_latency([0.010, 0.040, 0.020, 0.030])
    assert summary["p50_ms"] == pytest.approx(25.0)
    assert summary["p90_ms"] == pytest.approx(37.0)
    assert summary["p95_ms"] == pytest.approx(38.5)
    assert summary["p99_ms"] == pytest.approx(39.7)
    assert summary["mean_ms"] == pytest.approx(25.0)


def test_one_sample_and_no_sample():
    one = summarize_latency([0.002])
    assert one["p50_ms"] == one["p99_ms"] == pytest.approx(2.0) and one["std_ms"] == 0.0
    with pytest.raises(ValueError, match="no latency samples"):
        summarize_latency([])


def test_measure_latency_records_repetitions_and_warmup():
    summary = measure.measure_latency(lambda x: None, list(range(7)), warmup=3)
    assert summary["repetitions"] == 7 and summary["warmup"] == 3


# ----- memory --------------------------------------------------------------------------------------------------


def _allocate_and_free(megabytes: int, hold_s: float = 0.0) -> None:
    # An anonymous mapping takes fresh pages from the kernel: what malloc kept from earlier tests cannot
    # absorb part of the block. Writing one byte per page makes every page resident.
    block = mmap.mmap(-1, megabytes * MIB)
    for offset in range(0, megabytes * MIB, mmap.PAGESIZE):
        block[offset] = 1
    time.sleep(hold_s)
    block.close()


@pytest.mark.parametrize("exact", [True, False], ids=["high-water-mark", "sampled"])
def test_known_allocation_shows_in_its_phase_only(monkeypatch, exact):
    if not exact:
        monkeypatch.setattr(measure, "_reset_rss_high_water_mark", lambda: False)
    elif not measure._reset_rss_high_water_mark():
        pytest.skip("this kernel does not let a process reset its RSS high-water mark")
    with track_memory("train") as first:
        # the sampling thread needs the block to live for a few of its 10 ms intervals
        _allocate_and_free(200, hold_s=0.0 if exact else 0.15)
    with track_memory("inference") as second:
        _allocate_and_free(20, hold_s=0.0 if exact else 0.15)
    assert first.rss_method == second.rss_method == ("high-water-mark" if exact else "sampled")
    assert first.rss_peak_bytes - first.rss_start_bytes >= 190 * MIB
    grown = second.rss_peak_bytes - second.rss_start_bytes
    assert 18 * MIB <= grown < 60 * MIB
    assert first.cuda_peak_allocated_bytes is None and first.as_dict()["cuda_peak_reserved_bytes"] is None


def test_nested_phase_keeps_the_outer_peak():
    if not measure._reset_rss_high_water_mark():
        pytest.skip("this kernel does not let a process reset its RSS high-water mark")
    with track_memory("outer") as outer:
        _allocate_and_free(150)
        with track_memory("inner") as inner:
            pass
    assert outer.rss_peak_bytes - outer.rss_start_bytes >= 140 * MIB
    assert inner.rss_peak_bytes - inner.rss_start_bytes < 30 * MIB


def test_phase_record_is_filled_even_when_the_block_raises():
    with pytest.raises(RuntimeError), track_memory("train") as record:
        _allocate_and_free(50)
        raise RuntimeError("boom")
    assert record.rss_peak_bytes - record.rss_start_bytes >= 45 * MIB
    assert measure._open_phases == []


# ----- FLOPs and devices ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "precision", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989.4e12),
        ("NVIDIA H100 PCIe", "bf16", 756e12),
        ("NVIDIA H100 NVL", "fp16", 835e12),
        ("NVIDIA H200", "bf16", 989.4e12),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312e12),
        ("NVIDIA A100-PCIE-40GB", "no", 19.5e12),
        ("NVIDIA L40S", "bf16", 362.05e12),
        ("NVIDIA L4", "bf16", 121e12),
        ("Tesla T4", "fp16", 65e12),
        ("Tesla T4", "bf16", None),  # no bf16 tensor cores
        ("NVIDIA A10G", "bf16", None),  # not in the table: no guess
        ("Some Future GPU", "bf16", None),
        ("NVIDIA H100 80GB HBM3", "int8", None),
    ],
)
def test_peak_flops_table(name, precision, expected):
    assert device_peak_flops(precision, name) == expected


def test_fp32_peak_follows_the_tf32_setting():
    torch = pytest.importorskip("torch")
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert device_peak_flops("fp32", "NVIDIA A100-SXM4-80GB") == 19.5e12
        torch.set_float32_matmul_precision("high")
        assert device_peak_flops("fp32", "NVIDIA A100-SXM4-80GB") == 156e12
    finally:
        torch.set_float32_matmul_precision(before)


def test_no_peak_on_cpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert device_peak_flops("bf16") is None


def test_mfu_formula():
    # 6 x 21M non-embedding parameters x 1M real tokens in 10 s on an H100 (989.4 TFLOP/s dense bf16)
    assert model_flops_utilization(21_000_000, 1_000_000, 10.0, 989.4e12) == pytest.approx(1.26e13 / 989.4e12)
    assert model_flops_utilization(21_000_000, 1_000_000, 10.0, None) is None
    assert model_flops_utilization(21_000_000, 0, 10.0, 989.4e12) is None


def test_device_info_records_threads():
    torch = pytest.importorskip("torch")
    info = measure.device_info()
    assert info["threads"]["torch_intra_op"] == torch.get_num_threads()
    assert info["threads"]["torch_inter_op"] == torch.get_num_interop_threads()
    assert info["threads"]["usable_cores"] >= 1
    if not torch.cuda.is_available():
        assert info["device"] == "cpu" and info["device_name"].startswith("CPU: ")


# ----- the runner and the Cost table ---------------------------------------------------------------------------


def test_run_records_every_cost_field(tmp_path, bench_dir, binary_dir):
    from harness.config.options import RunOptions
    from harness.pipeline import run

    summary = run(
        RunOptions(
            models="tfidf-logreg", benchmark="tiny_binary", benchmarks_dir=bench_dir, data_dir=binary_dir,
            results_dir=tmp_path, isolate=False, quiet=True, latency_samples=7,
        )
    )
    assert summary.completed == ["tfidf-logreg (seed 42)"]
    result = json.loads((run_path(tmp_path, "tiny_binary", "tfidf-logreg", 42) / "result.json").read_text())
    inference = result["inference"]
    latency = inference["latency_batch1_end_to_end"]
    assert latency["repetitions"] == 7 and latency["warmup"] == 5
    assert latency["p50_ms"] <= latency["p90_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert inference["latency_batch1_model_only"] is None  # TF-IDF has no separate forward pass
    n_eval = result["metrics"]["n"]
    assert inference["throughput_samples_per_s"] == pytest.approx(n_eval / inference["eval_seconds"])
    assert inference["throughput_warmup_examples"] == min(16, n_eval)
    assert result["training"]["wall_seconds"] >= result["training"]["train_seconds"]
    for phase in ("train", "inference"):
        memory = result["memory"][phase]
        assert memory["rss_peak_bytes"] >= memory["rss_start_bytes"] > 0
    assert result["model_info"]["size_on_disk_bytes"] > 0
    assert result["device"]["threads"]["usable_cores"] >= 1
    board = (tmp_path / "tiny_binary" / "leaderboard.md").read_text()
    assert "## Cost" in board and "| tfidf-logreg |" in board.split("## Cost")[1]


def _result(model: str, cuda: bool) -> dict:
    latency = {"p50_ms": 12.345, "p90_ms": 15.0, "p95_ms": 16.5, "p99_ms": 20.0, "repetitions": 50, "warmup": 5}
    memory = {
        phase: PhaseMemory(
            phase,
            rss_start_bytes=100 * MIB,
            rss_peak_bytes=peak * MIB,
            cuda_peak_allocated_bytes=alloc * MIB if cuda else None,
            cuda_peak_reserved_bytes=reserved * MIB if cuda else None,
        ).as_dict()
        for phase, peak, alloc, reserved in (("train", 900, 3000, 4096), ("inference", 600, 500, 1024))
    }
    return {
        "status": "completed",
        "model": model,
        "metrics": {"f1_macro": 0.9},
        "inference": {
            "latency_batch1_end_to_end": latency,
            "latency_batch1_model_only": {"p50_ms": 4.5},
            "throughput_samples_per_s": 250.0,
            "eval_batch_size": 64,
        },
        "training": {"samples_per_second": 12.5, "tokens_per_second": 1500.4, "mfu": 0.4123 if cuda else None},
        "memory": memory,
        "model_info": {"parameters": 22_713_216, "size_on_disk_bytes": 90 * MIB},
        "device": {"threads": {"torch_intra_op": 2, "usable_cores": 2}},
    }


def _cost_rows(text: str) -> dict[str, dict[str, str]]:
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    return {
        cells[0]: dict(zip(header, cells, strict=True))
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table[2:])
    }


def cost_section(board) -> list[str]:
    """The cost section's markdown lines, as the leaderboard shows them ([] when there is none)."""
    section = sections.cost(board)
    return ["", *markdown.section_lines(section)] if section else []


def _board(**results: list) -> SimpleNamespace:
    """The part of a Leaderboard the cost table reads: rows with a model name and its completed results."""
    return SimpleNamespace(rows=[SimpleNamespace(model=m, results=r) for m, r in results.items()])


def test_cost_table_values_on_cpu():
    lines = cost_section(_board(m=[_result("m", cuda=False)]))
    assert lines[:3] == ["", "## Cost", ""]
    assert "same 50 test texts" in lines[3] and "after 5 untimed calls" in lines[3] and "torch intra-op=2" in lines[3]
    row = _cost_rows(lines[-1])["m"]
    assert row["p50 ms"] == "12.35" and row["p99 ms"] == "20.00" and row["p50 ms model-only"] == "4.50"
    assert row["eval samples/s"] == "250.0" and row["train samples/s"] == "12.5"
    assert row["train real tokens/s"] == "1500" and row["MFU %"] == "n/a"
    assert row["peak RSS train MiB"] == "900" and row["peak RSS inference MiB"] == "600"
    assert row["params"] == "22.7M" and row["size on disk MiB"] == "90.0"
    assert "CUDA" not in lines[-1].splitlines()[0]


def test_cost_table_cuda_columns_and_seed_mean():
    lines = cost_section(_board(g=[_result("g", cuda=True), _result("g", cuda=True)]))
    row = _cost_rows(lines[-1])["g"]
    assert row["CUDA alloc/reserved train MiB"] == "3000 ± 0 / 4096 ± 0"
    assert row["CUDA alloc/reserved inference MiB"] == "500 ± 0 / 1024 ± 0"
    assert row["MFU %"] == "41.2 ± 0.0"


def test_cost_table_skips_failed_models():
    assert cost_section(_board(bad=[])) == []


def test_mfu_uses_the_cards_bf16_peak_for_every_precision():
    from harness.metrics.cost import MFU_CONVENTION, mfu_peak_flops

    assert mfu_peak_flops("NVIDIA H100 80GB HBM3") == 989.4e12
    assert mfu_peak_flops("NVIDIA H100 PCIe") == 756e12
    assert mfu_peak_flops("Tesla V100-SXM2-16GB") == 125e12  # no bf16: its fp16 tensor-core peak
    assert mfu_peak_flops("CPU: AMD EPYC") is None
    assert "bf16 peak" in MFU_CONVENTION and "non-embedding" in MFU_CONVENTION and "real" in MFU_CONVENTION
