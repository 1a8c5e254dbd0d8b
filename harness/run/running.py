"""The harness runs in progress on this machine, so a run can name the others that trained beside it.

Each run writes one small file under ``<cache root>/running/`` (the cache root is per user and per machine,
like the precision probes; never the results store, which two machines may share while their loads are
separate): its host, pid, what it runs, when it started and, once done, when it ended. The store's lock and
holder files would not do: they exist only for a run's own (configuration, model, seed) and vanish with it,
while the question here is "who else trained on this machine meanwhile", across stores and configurations.

A finished run's file is kept a while (``KEEP_S``) with its end time, so a run that started and ended inside a
long training is still seen by the training when it ends. Files whose process is gone are cleaned by whoever
reads them: one that never recorded an end (its process was killed) is given its start as its end; files ended
more than ``KEEP_S`` ago are removed. Only files of this host count: a cache on a shared disk is read by
several machines, whose runs do not compete for these cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from harness.models.cache import cache_root

RUNNING_DIR = "running"
# One command's runs (--parallel, Ray tasks) share its id: they were given their shares of the cores to run side
# by side, so they are not named as each other's neighbours.
COMMAND_ENV = "TEXTCLF_BENCH_COMMAND"
KEEP_S = 24 * 3600.0  # a day: longer than any training that could still be asking about an ended run


def _folder() -> Path:
    return cache_root() / RUNNING_DIR


def _host() -> str:
    return socket.gethostname()


def command_id() -> str:
    """This command's id (set once by the command, inherited by its runs' processes)."""
    return os.environ.setdefault(COMMAND_ENV, f"{_host()}-{os.getpid()}-{time.time():.0f}")


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (signal 0 on POSIX, psutil elsewhere)."""
    if pid <= 0:
        return False
    if os.name == "posix":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process: it exists
            return True
        return True
    try:
        import psutil

        return psutil.pid_exists(pid)
    except ImportError:
        return True  # cannot tell: keep the file rather than lose a run in progress


def _write(path: Path, entry: dict) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(entry) + "\n")
    os.replace(tmp, path)


def register(run: str) -> Path | None:
    """Say this process runs ``run`` from now; None when the cache root cannot be written (nothing is lost
    then but the naming of neighbours)."""
    entry = {"host": _host(), "pid": os.getpid(), "run": run, "command": command_id(), "started": time.time(),
             "ended": None}
    path = _folder() / f"{entry['host']}-{entry['pid']}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, entry)
    except OSError:
        return None
    return path


def finish(path: Path | None) -> None:
    """Record this run's end (kept ``KEEP_S`` so runs it overlapped can still see it)."""
    if path is None:
        return
    with contextlib.suppress(OSError, ValueError):
        entry = json.loads(path.read_text())
        entry["ended"] = time.time()
        _write(path, entry)


def _entries() -> list[tuple[Path, dict]]:
    out = []
    for path in sorted(_folder().glob("*.json")) if _folder().is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            entry = json.loads(path.read_text())
            if isinstance(entry, dict) and isinstance(entry.get("pid"), int):
                out.append((path, entry))
    return out


def _settle(path: Path, entry: dict, now: float) -> dict | None:
    """The entry with an end where its process is gone without one; None once it is removed as stale."""
    with contextlib.suppress(OSError, ValueError, TypeError):
        if entry.get("ended") is None and not process_alive(entry["pid"]):
            # Killed without an end: it is known to have run only at its start (counting it until now would
            # name a run that died before this one began).
            entry["ended"] = entry.get("started") or now
            _write(path, entry)
        if entry.get("ended") is not None and now - float(entry["ended"]) > KEEP_S:
            path.unlink(missing_ok=True)
            return None
    return entry


def others_between(start: float, end: float, own: Path | None = None) -> list[dict]:
    """Other runs of this host, not of this command, whose time overlapped [start, end] (``time.time()``
    seconds): ``{"pid", "host", "run"}`` each, in pid order."""
    host, now, found, command = _host(), time.time(), [], command_id()
    for path, entry in _entries():
        if path == own or entry.get("host") != host or entry.get("pid") == os.getpid():
            continue
        if entry.get("command") == command:
            continue
        entry = _settle(path, entry, now)
        if entry is None:
            continue
        began, ended = float(entry.get("started") or 0.0), entry.get("ended")
        if began <= end and (ended is None or float(ended) >= start):
            found.append({"pid": entry["pid"], "host": host, "run": str(entry.get("run") or "?")})
    return sorted(found, key=lambda e: e["pid"])


def training_elsewhere(own: Path | None = None) -> int:
    """Runs of other commands on this host that are running now (alive, not ended): what this run's threads
    are shared with (``harness.metrics.machine.rebalance_threads``)."""
    host, command, count = _host(), command_id(), 0
    for path, entry in _entries():
        if path == own or entry.get("host") != host or entry.get("pid") == os.getpid():
            continue
        if entry.get("command") == command or entry.get("ended") is not None:
            continue
        with contextlib.suppress(TypeError):
            count += process_alive(int(entry["pid"]))
    return count
