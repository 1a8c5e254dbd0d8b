"""The machine a run shares: the cores it may use, its share of them beside other runs, and how busy it was.

- Usable cores: the process's CPU affinity, not the machine's count (a container or ``taskset`` gives fewer).
- Thread share: runs the harness starts side by side (``--parallel N``, ``--devices``, Ray tasks) each get
  ``usable cores // runs at once`` threads (at least 1), passed to the run's process in its environment
  (``TEXTCLF_BENCH_THREADS``, and ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` so the native
  pools are sized when they load, before torch starts). N runs each taking every core oversubscribe the machine
  N times: OpenMP pools then spin against each other and each run is slower than N runs one after another. A
  run alone keeps every usable core. A lower thread count the user set in those variables still wins.
- Load: each timed window (training, the throughput pass, the latency calls) records the process's CPU time
  against its wall time and the load average against the usable cores, before and after; :func:`busy_reason`
  says when the numbers were measured on a busy machine.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

THREADS_ENV = "TEXTCLF_BENCH_THREADS"
RUNS_AT_ONCE_ENV = "TEXTCLF_BENCH_RUNS_AT_ONCE"
GIVEN_BY_ENV = "TEXTCLF_BENCH_THREADS_GIVEN_BY"
LIBRARY_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

# A run is said to be measured on a busy machine when, in a timed window,
# - the load average was above BUSY_LOAD_FACTOR x the usable cores: the load counts runnable threads, ours
#   included, so at 1.5x at least a third of them were waiting for a core at any moment and a timing is
#   stretched by about 1.5x or more. Just above 1x is not enough: the load average lags by a minute (it still
#   counts a run that just ended) and counts tasks waiting on I/O, so a small excess is noise, not contention;
# - or the process got less than BUSY_CORES_USED of a core of CPU time per second of wall time (CPU only: on a
#   GPU it waits on the device). Every window is compute-bound on at least one thread (the latency loop, the
#   evaluation pass, the training steps), which alone uses about one core (0.8-1.0 measured on a quiet shared
#   machine); under half a core means it waited for a core more than half the time, so its times are at least
#   doubled. This sees contention the 1-minute load average is too slow to show in a window of seconds.
#   Windows shorter than MIN_WINDOW_S are not judged this way: one time slice lost is a large part of them.
BUSY_LOAD_FACTOR = 1.5
BUSY_CORES_USED = 0.5
MIN_WINDOW_S = 0.05


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _positive(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() and int(value) > 0 else None


# ----- thread shares -------------------------------------------------------------------------------------


def share_of_cores(runs_at_once: int, cores: int | None = None) -> int:
    """Threads for each of ``runs_at_once`` runs side by side: the usable cores divided, at least 1."""
    return max(1, (cores or usable_cores()) // max(1, runs_at_once))


def share_env(threads: int, runs_at_once: int | None, given_by: str) -> dict[str, str]:
    """The environment that gives a run's process ``threads`` threads (a lower user setting is kept)."""
    env = {THREADS_ENV: str(threads), GIVEN_BY_ENV: given_by}
    if runs_at_once is not None:
        env[RUNS_AT_ONCE_ENV] = str(runs_at_once)
    for name in LIBRARY_THREAD_ENV:
        user = _positive(os.environ.get(name))
        env[name] = str(min(threads, user) if user else threads)
    return env


def thread_share() -> dict:
    """The share this process runs under: ``threads``, ``runs_at_once``, ``usable_cores``, ``given_by``.

    A process given no share (a run alone) has every usable core."""
    cores = usable_cores()
    given = _positive(os.environ.get(THREADS_ENV))
    if given is None:
        share = {"threads": cores, "runs_at_once": 1, "usable_cores": cores, "given_by": "one run at a time"}
    else:
        share = {"threads": min(given, cores), "runs_at_once": _positive(os.environ.get(RUNS_AT_ONCE_ENV)),
                 "usable_cores": cores, "given_by": os.environ.get(GIVEN_BY_ENV) or THREADS_ENV}
    if _OTHERS["taken"]:
        share["beside_other_commands"] = threads_beside_other_commands()
    return share


def shared() -> bool:
    """Whether this process was given a share (it runs beside others started by the same command)."""
    return _positive(os.environ.get(THREADS_ENV)) is not None


def apply_thread_share() -> dict:
    """Size this process's thread pools to its share: torch where already loaded (else its pool reads
    ``OMP_NUM_THREADS`` when it starts), and the BLAS/OpenMP pools numpy and scikit-learn use."""
    share = thread_share()
    if not shared():
        return share
    threads = share["threads"]
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # only before the first inter-op work; the worker is that early
            torch.set_num_interop_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    except Exception:  # noqa: BLE001 - the environment variables already size pools loaded later
        pass
    return share


# ----- sharing with other commands ------------------------------------------------------------------------
# A command's own runs share the cores by the share above; two commands started apart (two shells, two users)
# know nothing of each other's shares, and each would take every core. Between training steps a run therefore
# counts the harness runs of other commands training on this host now (``run.running`` registers every run and
# hands the count in here: the layers below the run layer may not read the registry themselves) and sizes
# torch's pool to its part of the cores; when the others end it grows back to its share. Checked every
# REBALANCE_EVERY_S seconds: a look at a few small files, nothing beside a training step.
REBALANCE_EVERY_S = 2.0
_OTHERS: dict = {"count": None, "checked": float("-inf"), "taken": [], "restore": None}


def share_with_other_commands(count_others: Callable[[], int] | None) -> None:
    """Install (or, with None, remove) the count of other commands' runs training on this host now.

    Removing it gives torch its own share back, so the next run of this process starts from it."""
    torch = sys.modules.get("torch")
    if count_others is None and _OTHERS.get("restore") and torch is not None:
        torch.set_num_threads(_OTHERS["restore"])
    _OTHERS.update(count=count_others, checked=float("-inf"), taken=[], restore=None)


def rebalanced_threads(others: int, share: dict | None = None) -> int:
    """This run's threads beside ``others`` runs of other commands: the usable cores over every run training
    now (its own command's included), never above its own share, at least 1."""
    share = share or thread_share()
    own = share.get("runs_at_once") or 1
    return max(1, min(share["threads"], share["usable_cores"] // (own + max(0, others))))


def rebalance_threads(force: bool = False) -> int | None:
    """Size torch's intra-op pool to this run's part of the cores now (see above); the threads set, or None
    when nothing is installed, torch is not loaded or the last look was under REBALANCE_EVERY_S ago."""
    count, torch = _OTHERS["count"], sys.modules.get("torch")
    now = time.monotonic()
    if count is None or torch is None or (not force and now - _OTHERS["checked"] < REBALANCE_EVERY_S):
        return None
    _OTHERS["checked"] = now
    try:
        others = int(count())
    except Exception:  # noqa: BLE001 - an unreadable registry leaves the threads as they are
        return None
    threads = rebalanced_threads(others)
    if torch.get_num_threads() != threads:
        _OTHERS["restore"] = _OTHERS.get("restore") or torch.get_num_threads()
        torch.set_num_threads(threads)
    if others and threads not in _OTHERS["taken"]:
        _OTHERS["taken"].append(threads)
    return threads


def threads_beside_other_commands() -> list[int]:
    """The thread counts this run took while other commands' runs trained here (empty: it never met one)."""
    return sorted(_OTHERS["taken"])


# ----- load while timing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One look at the machine: wall clock, this process's CPU time (every thread), the 1-minute load average."""

    wall: float
    cpu: float
    load: float | None


def load_average() -> float | None:
    """The 1-minute load average; psutil's where the OS has none (Windows), else None."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        try:
            import psutil

            return float(psutil.getloadavg()[0])
        except Exception:  # noqa: BLE001 - no load figure on this platform: the CPU-time measure still holds
            return None


def read_machine() -> Reading:
    """The reading every window takes at its start and end (tests replace it to fake a busy machine)."""
    return Reading(wall=time.perf_counter(), cpu=time.process_time(), load=load_average())


def window_record(before: Reading, after: Reading, threads: int, cores: int, on_gpu: bool) -> dict:
    """What a window records: its wall and CPU seconds, the cores it used, the load before and after."""
    wall = max(after.wall - before.wall, 0.0)
    cpu = max(after.cpu - before.cpu, 0.0)
    record = {
        "wall_seconds": round(wall, 6),
        "cpu_seconds": round(cpu, 6),
        "cores_used": round(cpu / wall, 3) if wall > 0 else None,
        "load_before": None if before.load is None else round(before.load, 2),
        "load_after": None if after.load is None else round(after.load, 2),
        "usable_cores": cores,
        "threads": threads,
        "on_gpu": on_gpu,
    }
    record["busy"] = busy_reason(record)
    return record


def busy_reason(record: dict) -> str | None:
    """Why a window's timings were taken on a busy machine ("load 3.9 on 2 cores"), or None (see the
    thresholds above)."""
    cores = record.get("usable_cores") or 1
    loads = [v for v in (record.get("load_before"), record.get("load_after")) if v is not None]
    if loads and max(loads) > BUSY_LOAD_FACTOR * cores:
        return f"load {max(loads):.1f} on {cores} core{'s' if cores != 1 else ''}"
    used, wall = record.get("cores_used"), record.get("wall_seconds") or 0.0
    if not record.get("on_gpu") and used is not None and wall >= MIN_WINDOW_S and used < BUSY_CORES_USED:
        return f"the run's process got {used:.2f} of a core while timed ({cores} core{'s' if cores != 1 else ''})"
    return None


@contextlib.contextmanager
def measure_load(threads: int | None = None) -> Iterator[dict]:
    """The machine's load over a ``with`` block: ``with measure_load() as load: ...; load['busy']``."""
    box: dict = {}
    before = read_machine()
    try:
        yield box
    finally:
        after = read_machine()
        # Asked at the end: a training window starts CUDA inside itself.
        torch = sys.modules.get("torch")
        on_gpu = bool(torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized())
        box.update(window_record(before, after, threads or thread_share()["threads"], usable_cores(), on_gpu))
