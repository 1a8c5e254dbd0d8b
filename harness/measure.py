"""Latency and memory trackers, measured the way benchmarking tools do it.

- Warm-up calls are run and discarded before timing (first calls pay for allocation, kernel choice).
- On CUDA every timed region is bracketed by ``torch.cuda.synchronize`` so the clock sees the work,
  not just the launch.
- Peak memory is reset at the start of each phase, so training and inference peaks are separate.
- Percentiles are computed on the raw samples (numpy's linear interpolation), never averaged away.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def _torch_if_loaded():
    # Never import torch for a model that does not use it (the TF-IDF path stays torch-free).
    return sys.modules.get("torch")


def synchronize() -> None:
    torch = _torch_if_loaded()
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def summarize_latency(samples_s: list[float] | np.ndarray) -> dict:
    """Mean and percentiles in milliseconds from per-call durations in seconds."""
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
    """Call ``fn`` on each input after ``warmup`` untimed calls; returns per-call seconds."""
    for i in range(max(warmup, 0)):
        fn(inputs[i % len(inputs)])
    synchronize()
    durations = []
    for item in inputs:
        synchronize()
        start = time.perf_counter()
        fn(item)
        synchronize()
        durations.append(time.perf_counter() - start)
    return durations


def measure_latency(fn: Callable[[object], object], inputs: list, warmup: int = 5) -> dict:
    """Batch-1 style latency of ``fn`` over ``inputs`` (one call each) with ``warmup`` discarded calls."""
    return summarize_latency(time_calls(fn, inputs, warmup))


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports kilobytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_bytes()


@dataclass
class PhaseMemory:
    """Memory seen during one phase (training or inference)."""

    phase: str
    rss_start_bytes: int = 0
    rss_peak_bytes: int = 0
    cuda_peak_allocated_bytes: int | None = None
    cuda_peak_reserved_bytes: int | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "rss_start_bytes": self.rss_start_bytes,
            "rss_peak_bytes": self.rss_peak_bytes,
            "cuda_peak_allocated_bytes": self.cuda_peak_allocated_bytes,
            "cuda_peak_reserved_bytes": self.cuda_peak_reserved_bytes,
        }


class _RssSampler:
    """Samples RSS in a thread: ru_maxrss only ever grows, so a later phase could not see its own peak."""

    def __init__(self, interval_s: float = 0.02):
        import threading

        self.interval_s = interval_s
        self.peak = current_rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

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


@contextlib.contextmanager
def track_memory(phase: str) -> Iterator[PhaseMemory]:
    """Peak process RSS and (on CUDA) peak allocated/reserved GPU memory within the ``with`` block."""
    record = PhaseMemory(phase=phase, rss_start_bytes=current_rss_bytes())
    torch = _torch_if_loaded()
    cuda = torch is not None and torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with _RssSampler() as sampler:
        yield record
        synchronize()
    record.rss_peak_bytes = sampler.peak
    if cuda:
        record.cuda_peak_allocated_bytes = int(torch.cuda.max_memory_allocated())
        record.cuda_peak_reserved_bytes = int(torch.cuda.max_memory_reserved())


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


def device_info() -> dict:
    """What the numbers were measured on, so nobody compares a CPU latency with a GPU one."""
    import platform

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": "cpu",
        "device_name": _cpu_name(),
    }
    torch = _torch_if_loaded()
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["device"] = "cuda"
            info["device_name"] = torch.cuda.get_device_name(0)
            info["device_count"] = torch.cuda.device_count()
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
