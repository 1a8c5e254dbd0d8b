"""Latency, throughput and memory trackers, measured the way benchmarking tools measure them.

- Warm-up calls are run and discarded before timing: first calls pay for allocation, kernel selection and
  lazy initialisation, which a deployed model pays once.
- On CUDA every timed region is bracketed by ``torch.cuda.synchronize`` so the clock sees the work and not
  just the kernel launches (end-to-end latency includes CPU tokenisation, which CUDA events would not see).
- Peak memory is reset at the start of each phase, so training and inference peaks are separate: CUDA's peak
  counters are reset, and on Linux the kernel's RSS high-water mark is reset through ``/proc/self/clear_refs``;
  a sampling thread backs it up where that is not allowed.
- Percentiles are computed on the raw samples (numpy's linear interpolation), never averaged away.
- Model FLOPs utilisation uses a table of dense peak FLOP/s per GPU; unknown devices give ``None`` rather than
  a guess.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from harness.metrics.machine import thread_share, usable_cores

PERCENTILES = (50, 90, 95, 99)


def _torch_if_loaded():
    # Never import torch for a model that does not use it (the TF-IDF path stays torch-free).
    return sys.modules.get("torch")


def _cuda_in_use(torch) -> bool:
    return torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()


def synchronize() -> None:
    """Wait for queued CUDA work, if this process has started CUDA at all (a no-op otherwise)."""
    torch = _torch_if_loaded()
    if _cuda_in_use(torch):
        torch.cuda.synchronize()


# ----- latency ---------------------------------------------------------------------------------------------


def summarize_latency(samples_s: list[float] | np.ndarray) -> dict:
    """Mean and percentiles in milliseconds from per-call durations in seconds.

    Args:
        samples_s: one duration per timed call, in seconds.

    Returns:
        ``p50_ms``, ``p90_ms``, ``p95_ms``, ``p99_ms``, ``mean_ms``, ``std_ms`` (sample std), ``min_ms``,
        ``max_ms`` and ``repetitions``.

    Raises:
        ValueError: when there are no samples.
    """
    values = np.asarray(samples_s, dtype=np.float64) * 1000.0
    if values.size == 0:
        raise ValueError("no latency samples")
    out = {f"p{p}_ms": float(np.percentile(values, p)) for p in PERCENTILES}
    out.update(
        mean_ms=float(values.mean()),
        std_ms=float(values.std(ddof=1)) if values.size > 1 else 0.0,
        min_ms=float(values.min()),
        max_ms=float(values.max()),
        repetitions=int(values.size),
    )
    return out


def time_calls(fn: Callable[[object], object], inputs: list, warmup: int) -> list[float]:
    """Call ``fn`` once per input after ``warmup`` untimed calls.

    Args:
        fn: the call to time; its result is discarded.
        inputs: one timed call per item, in order.
        warmup: untimed calls first, cycling through ``inputs``.

    Returns:
        Per-call wall time in seconds, CUDA-synchronised on both sides.
    """
    if not inputs:
        raise ValueError("no inputs to time")
    for i in range(max(warmup, 0)):
        fn(inputs[i % len(inputs)])
    synchronize()
    durations = []
    for item in inputs:
        start = time.perf_counter()
        fn(item)
        synchronize()
        durations.append(time.perf_counter() - start)
    return durations


def measure_latency(fn: Callable[[object], object], inputs: list, warmup: int = 5) -> dict:
    """Latency summary (see ``summarize_latency``) of one ``fn`` call per input, warm-up excluded."""
    summary = summarize_latency(time_calls(fn, inputs, warmup))
    summary["warmup"] = int(max(warmup, 0))
    return summary


@contextlib.contextmanager
def stopwatch() -> Iterator[dict]:
    """Wall time of a block, synchronised on CUDA: ``with stopwatch() as t: ...; t['seconds']``."""
    box: dict = {}
    synchronize()
    start = time.perf_counter()
    try:
        yield box
    finally:
        synchronize()
        box["seconds"] = time.perf_counter() - start


# ----- memory ----------------------------------------------------------------------------------------------


def peak_rss_bytes() -> int:
    """The kernel's RSS high-water mark for this process (since start, or since the last phase reset)."""
    hwm = _status_kib("VmHWM")
    return hwm if hwm is not None else _ru_maxrss_bytes()


def current_rss_bytes() -> int:
    """Resident set size of this process now."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        try:
            import psutil

            return int(psutil.Process().memory_info().rss)
        except ImportError:
            return peak_rss_bytes()


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", handle.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def _ru_maxrss_bytes() -> int:
    """The process-wide RSS maximum: getrusage on POSIX, the peak working set on Windows, else 0 (the
    sampling thread then carries the phase's peak)."""
    try:
        import resource  # POSIX only; the package imports without it
    except ImportError:
        try:
            import psutil

            return int(getattr(psutil.Process().memory_info(), "peak_wset", 0) or 0)
        except (ImportError, OSError):
            return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _reset_rss_high_water_mark() -> bool:
    # Linux >= 4.0: writing "5" resets VmHWM to the current RSS, which gives an exact per-phase peak.
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


@dataclass
class PhaseMemory:
    """Memory seen during one phase (training or inference)."""

    phase: str
    rss_start_bytes: int = 0
    rss_peak_bytes: int = 0
    rss_method: str = "sampled"
    cuda_start_allocated_bytes: int | None = None
    cuda_peak_allocated_bytes: int | None = None
    cuda_peak_reserved_bytes: int | None = None

    def as_dict(self) -> dict:
        return {
            "rss_start_bytes": self.rss_start_bytes,
            "rss_peak_bytes": self.rss_peak_bytes,
            "rss_method": self.rss_method,
            "cuda_start_allocated_bytes": self.cuda_start_allocated_bytes,
            "cuda_peak_allocated_bytes": self.cuda_peak_allocated_bytes,
            "cuda_peak_reserved_bytes": self.cuda_peak_reserved_bytes,
        }


class _RssSampler:
    """Samples RSS in a thread: the fallback where the kernel's high-water mark cannot be reset."""

    def __init__(self, interval_s: float = 0.01):
        self.interval_s = interval_s
        self.peak = current_rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, current_rss_bytes())

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_bytes())


# Phases open right now: resetting the high-water mark for an inner phase must not lose an outer phase's peak.
_open_phases: list[PhaseMemory] = []
_phase_lock = threading.Lock()


@contextlib.contextmanager
def track_memory(phase: str) -> Iterator[PhaseMemory]:
    """Peak process RSS and (on CUDA) peak allocated/reserved GPU memory within the ``with`` block.

    Args:
        phase: a name for the record (``"train"``, ``"inference"``).

    Yields:
        A ``PhaseMemory`` filled in when the block exits.
    """
    torch = _torch_if_loaded()
    record = PhaseMemory(phase=phase)
    with _phase_lock:
        high_water = _status_kib("VmHWM")
        for outer in _open_phases:
            if outer.rss_method == "high-water-mark" and high_water is not None:
                outer.rss_peak_bytes = max(outer.rss_peak_bytes, high_water)
        exact = _reset_rss_high_water_mark()
        record.rss_method = "high-water-mark" if exact else "sampled"
        _open_phases.append(record)
    record.rss_start_bytes = record.rss_peak_bytes = current_rss_bytes()
    # Without a resettable mark: a process-wide maximum that grew during the phase was reached in it.
    ru_start = _ru_maxrss_bytes()
    # The exact mark needs no sampling thread, which would otherwise wake up inside timed regions.
    sampler = contextlib.nullcontext() if exact else _RssSampler()
    cuda = torch is not None and torch.cuda.is_available()
    try:
        if cuda:
            # The model may still be on the CPU here (it moves inside fit); start CUDA now so the reset applies.
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            record.cuda_start_allocated_bytes = int(torch.cuda.memory_allocated())
        with sampler:
            yield record
            synchronize()
    finally:
        with _phase_lock:
            _open_phases.remove(record)
            if exact:
                record.rss_peak_bytes = max(record.rss_peak_bytes, peak_rss_bytes())
            else:
                ru_end = _ru_maxrss_bytes()
                record.rss_peak_bytes = max(
                    record.rss_peak_bytes,
                    sampler.peak,
                    current_rss_bytes(),
                    ru_end if ru_end > ru_start else 0,
                )
        if cuda:
            record.cuda_peak_allocated_bytes = int(torch.cuda.max_memory_allocated())
            record.cuda_peak_reserved_bytes = int(torch.cuda.max_memory_reserved())


# ----- model FLOPs utilisation -----------------------------------------------------------------------------

# Dense (no structured sparsity) peak FLOP/s per GPU from the vendors' data sheets, tensor cores where the
# precision uses them. "tf32" is what fp32 matmuls run at when PyTorch allows TF32; otherwise plain fp32.
# Matched against torch.cuda.get_device_name in order: more specific names first.
PEAK_DENSE_FLOPS: list[tuple[str, dict[str, float]]] = [
    (r"H100.*NVL|H200.*NVL", {"bf16": 835e12, "fp16": 835e12, "tf32": 417.5e12, "fp32": 60e12}),
    (r"H100.*PCIe", {"bf16": 756e12, "fp16": 756e12, "tf32": 378e12, "fp32": 51e12}),
    (r"H100|H200|GH200", {"bf16": 989.4e12, "fp16": 989.4e12, "tf32": 494.7e12, "fp32": 66.9e12}),
    (r"B200", {"bf16": 2250e12, "fp16": 2250e12, "tf32": 1100e12}),
    (r"A100", {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12}),
    (r"A800", {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12}),
    (r"L40S", {"bf16": 362.05e12, "fp16": 362.05e12, "tf32": 183e12, "fp32": 91.6e12}),
    (r"L40\b", {"bf16": 181e12, "fp16": 181e12, "tf32": 90.5e12, "fp32": 90.5e12}),
    (r"\bL4\b", {"bf16": 121e12, "fp16": 121e12, "tf32": 60e12, "fp32": 30.3e12}),
    (r"A10\b", {"bf16": 125e12, "fp16": 125e12, "tf32": 62.5e12, "fp32": 31.2e12}),
    (r"RTX 4090", {"bf16": 165.2e12, "fp16": 165.2e12, "tf32": 82.6e12, "fp32": 82.6e12}),
    (r"RTX 3090", {"bf16": 71e12, "fp16": 71e12, "tf32": 35.6e12, "fp32": 35.6e12}),
    (r"V100.*PCIE", {"fp16": 112e12, "fp32": 14e12}),
    (r"V100", {"fp16": 125e12, "fp32": 15.7e12}),
    (r"\bT4\b", {"fp16": 65e12, "fp32": 8.1e12}),
    (r"MI300X", {"bf16": 1307.4e12, "fp16": 1307.4e12, "tf32": 653.7e12, "fp32": 163.4e12}),
]


def _tf32_enabled(torch) -> bool:
    # allow_tf32 and the float32 matmul precision are one setting: "high"/"medium" let matmuls use TF32.
    return torch is not None and torch.get_float32_matmul_precision() != "highest"


def device_peak_flops(precision: str, device_name: str | None = None) -> float | None:
    """Dense peak FLOP/s of the GPU for a training precision, or ``None`` when unknown (and on CPU).

    Args:
        precision: ``"bf16"``, ``"fp16"``, ``"fp32"`` or ``"no"`` (fp32); fp32 uses the TF32 peak when
            PyTorch lets matmuls run in TF32.
        device_name: a CUDA device name; defaults to the current device when CUDA is available.
    """
    torch = _torch_if_loaded()
    if device_name is None:
        if torch is None or not torch.cuda.is_available():
            return None
        device_name = torch.cuda.get_device_name()
    key = {"no": "fp32", "fp32": "fp32", "bf16": "bf16", "fp16": "fp16"}.get(str(precision).lower())
    if key is None:
        return None
    if key == "fp32" and _tf32_enabled(torch):
        key = "tf32"
    for pattern, peaks in PEAK_DENSE_FLOPS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return peaks.get(key)
    return None


MFU_CONVENTION = (
    "model-FLOPs utilisation = 6 x non-embedding parameters x real (unpadded) tokens / seconds / the card's dense "
    "bf16 peak, for every precision (an fp32 recipe is measured against the same peak)"
)


def mfu_peak_flops(device_name: str | None = None) -> float | None:
    """The one denominator of every MFU figure: the card's dense bf16 peak (fp16 on cards without bf16)."""
    return device_peak_flops("bf16", device_name) or device_peak_flops("fp16", device_name)


def model_flops_utilization(
    non_embedding_parameters: int, real_tokens: int, seconds: float, peak_flops: float | None
) -> float | None:
    """Training MFU: 6 x non-embedding parameters x real tokens / time / device peak (``None`` if unknown)."""
    if not peak_flops or not seconds or not non_embedding_parameters or not real_tokens:
        return None
    return 6.0 * non_embedding_parameters * real_tokens / seconds / peak_flops


# ----- what it ran on --------------------------------------------------------------------------------------


def thread_info() -> dict:
    """Thread settings that change CPU timings: torch intra/inter-op, BLAS/OpenMP pools, usable cores."""
    info: dict = {
        "usable_cores": usable_cores(),
        "env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
            if k in os.environ
        },
    }
    torch = _torch_if_loaded()
    if torch is not None:
        info["torch_intra_op"] = torch.get_num_threads()
        info["torch_inter_op"] = torch.get_num_interop_threads()
    try:
        from threadpoolctl import threadpool_info

        info["pools"] = sorted({f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info()})
    except Exception:  # noqa: BLE001 - optional detail; never fail a run over it
        pass
    return info


def device_info() -> dict:
    """What the numbers were measured on, so nobody compares a CPU latency with a GPU one."""
    import platform

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": "cpu",
        "device_name": _cpu_name(),
        "threads": thread_info(),
        # The run's share of the usable cores (harness.metrics.machine): all of them alone, a part beside others.
        "thread_share": thread_share(),
    }
    torch = _torch_if_loaded()
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info.update(
                device="cuda",
                device_name=torch.cuda.get_device_name(0),
                device_count=torch.cuda.device_count(),
                cuda_memory_bytes=int(props.total_memory),
                cuda_capability=f"{props.major}.{props.minor}",
                cuda_version=torch.version.cuda,
                tf32_matmul=_tf32_enabled(torch),
                peak_dense_flops={
                    p: device_peak_flops(p, torch.cuda.get_device_name(0)) for p in ("bf16", "fp32")
                },
            )
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return f"CPU: {line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    import platform

    return f"CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"
