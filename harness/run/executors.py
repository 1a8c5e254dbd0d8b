"""Where the runs of a grid execute: one after another here, several at once here, or as Ray tasks.

A comparison is a grid (models x seeds x train filters); its runs are independent. An executor only decides
where and when each run happens; what a run is and whether it is done is decided by the results store, which is
the meeting point: every run is executed through :func:`execute_job`, which

- skips a run the store already holds finished (whoever finished it, wherever),
- takes the run's own lock, so no two processes anywhere run the same (configuration, model, seed) at once
  (a run locked by another process is left to it: "running elsewhere"),
- runs it in its own process (peak memory its own; a crash fails that run alone) and records a process that
  dies without a result as a failed run, which the next command retries.

Executors:

- :class:`LocalExecutor`: on this machine, ``parallel`` runs at once (default 1), or one run per entry of
  ``devices`` at once with ``CUDA_VISIBLE_DEVICES`` set to it; runs at once each get their share of the usable
  cores (``harness.metrics.machine``), a run alone every core;
- :class:`RayExecutor`: each run a Ray task with the CPUs/GPUs it needs, on the cluster at ``address`` (or
  ``RAY_ADDRESS``), or on a local Ray instance started for the command; a task's ``num_cpus`` are its threads. Workers on several machines must see the
  results store and the data at the same paths (a shared filesystem).
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.core.errors import HarnessInputError
from harness.metrics.machine import share_env, share_of_cores, usable_cores
from harness.run import running
from harness.run.forecast import RunDeclined
from harness.run.job import Job
from harness.run.runner import ResultNotRecorded, run_job
from harness.run.worker import DECLINED, INTERRUPTED, STORE_FAILED
from harness.store import redo
from harness.store.results import RESULT_FILE, RunError, RunResult, TrialRecord
from harness.store.results_store import ResultsStore, atomic_write_bytes, write_result


@dataclass
class Outcome:
    """What became of one job, small enough to come back from a Ray worker."""

    status: str  # completed | failed | store_failed | skipped | busy | secondary | interrupted | bad_input
    message: str = ""
    seconds: float = 0.0
    accuracy: float | None = None
    f1_macro: float | None = None
    notes: tuple[str, ...] = ()


# ----- one run in its own process ----------------------------------------------------------------------------


def _load_libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    # Runs in the child between fork and exec. Without it, a run killed with SIGKILL leaves its model's
    # process behind, still writing into the store while the rerun starts the same model again.
    _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(137)


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def record_death(job: Job, store: ResultsStore, process_code: int, write: bool = True) -> RunResult:
    """The failed run of a process that ended without writing its result (written unless ``write`` is False)."""
    code = process_code
    how = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    if code == -signal.SIGKILL:
        how += " (often the out-of-memory killer)"
    kind, message = "ChildProcessDied", f"the run's process {how} before writing its result"
    if code == STORE_FAILED:
        kind, message = "ResultNotWritten", "the run's process could not write its result to the results store"
        if not write:
            message += " (the earlier finished result is kept)"
    result = RunResult(
        status="failed",
        benchmark=job.benchmark,
        model=job.model,
        seed=job.seed,
        family=job.model_spec.family,
        configuration=job.configuration,
        fingerprint=job.fingerprint,
        train_filter=job.train_filter,
        error=RunError(type=kind, message=message),
        trial=TrialRecord(number=job.trial.number, params=job.trial.params, status="failed") if job.trial else None,
        tuning=job.tuning,
    )
    try:
        if write:
            write_result(job.run_dir(store) / RESULT_FILE, result)
    except OSError as exc:
        # The child's cause is known here; losing it to a traceback would also stop every later model.
        raise ResultNotRecorded(result, exc) from None
    return result


def run_isolated(job: Job, store: ResultsStore, env: dict[str, str] | None = None) -> RunResult:
    """Run the job in a child process; a child that dies without a result is recorded as failed."""
    job_path = job.run_dir(store) / "job.json"
    atomic_write_bytes(job_path, job.model_dump_json().encode("utf-8"))
    setup = functools.partial(_die_with_parent, os.getpid()) if _LIBC is not None else None
    # The child must import this same harness even when it is not installed and the cwd is elsewhere.
    child_env = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.run(
        [sys.executable, "-m", "harness.run.worker", str(job_path)], check=False, preexec_fn=setup, env=child_env
    )
    if process.returncode == 2:
        raise HarnessInputError(f"model '{job.model}'", "bad input (see the message above)", "fix it and rerun")
    if process.returncode == INTERRUPTED:
        raise KeyboardInterrupt
    if process.returncode == DECLINED:
        raise RunDeclined(f"declined at the time forecast of {job.model} (seed {job.seed})")
    if process.returncode == STORE_FAILED:
        # Whatever result.json holds is not this attempt's: record the attempt as failed where the store lets us,
        # but never over a finished result of this same run (a --force redo): nothing finished is lost.
        earlier = store.load_result(job.run_dir(store))
        keep = earlier is not None and earlier.completed and earlier.fingerprint == job.fingerprint
        return record_death(job, store, process.returncode, write=not keep)
    result = store.load_result(job.run_dir(store))
    if result is None or result.fingerprint != job.fingerprint:
        result = record_death(job, store, process.returncode)
    return result


def _keep_earlier(run_dir: Path, notes: list[str]) -> None:
    """Put the finished run back after a redo that did not finish; a store refusing it leaves it for the next
    command (it lies aside, never counted), which puts it back before anything else."""
    try:
        redo.put_back(run_dir)
        notes.append(redo.KEPT)
    except OSError as exc:
        notes.append(f"the redo did not finish; the earlier finished result lies at {redo.aside_path(run_dir)} "
                     f"and the next run puts it back ({exc.strerror or exc})")


def execute_job(
    job: Job,
    *,
    force: bool = False,
    isolate: bool = True,
    env: dict[str, str] | None = None,
    exclusive: bool = True,
    on_start: Callable[[Job, list[str]], None] | None = None,
) -> Outcome:
    """Skip, run or retry one job wherever this is called; whatever happens to it, the other jobs go on.

    Args:
        job: the run.
        force: redo it even when the store holds it finished.
        isolate: in its own process (the default) or in this one.
        env: extra environment for its process (e.g. ``CUDA_VISIBLE_DEVICES``).
        exclusive: take the run's lock. Off only under a distributed launcher, where every rank must train
            every run together (the launcher, not the store, keeps one writer).
        on_start: called with the job and the notes so far just before it starts (progress lines).
    """
    store = ResultsStore(Path(job.settings.results_dir))
    run_dir = job.run_dir(store)
    done, _ = store.check_run(run_dir, job.fingerprint)
    # A copy left aside by a redo whose command died is settled under the run's lock first.
    pending = redo.aside_path(run_dir).exists()
    if done and not force and not pending:
        return Outcome("skipped", "already complete, skipped (--force to redo)")
    with store.run_lock(run_dir) if exclusive else contextlib.nullcontext() as holder:
        if holder is not None:
            return Outcome("busy", f"being run by {holder}, left to it")
        # A --force redo whose command died left the finished run aside: put back before anything is decided.
        restored = redo.recover(store, run_dir) if is_main_process() else None
        # Checked again under the lock: another process may have finished it meanwhile.
        done, reason = store.check_run(run_dir, job.fingerprint)
        if done and not force:
            if restored or pending:
                notes = (restored,) if restored else ()
                return Outcome("skipped", "already complete, skipped (--force to redo)", notes=notes)
            return Outcome("skipped", "finished elsewhere meanwhile, skipped")
        notes = [restored] if restored else []
        notes += [f"stored run not used: {reason}"] if reason and not force else []
        if on_start is not None:
            on_start(job, notes)
            notes = []
        start = time.perf_counter()
        aside = None
        try:
            if done and force and is_main_process():
                # The redo writes into an empty folder; the finished run comes back unless the redo finishes.
                aside = redo.set_aside(run_dir)
            elif not done and reason and is_main_process():
                moved = store.supersede(run_dir, job.configuration.label, job.benchmark)
                if moved is not None:
                    notes.append(f"the earlier run (another registry entry) is kept at {moved}")
            try:
                result = run_isolated(job, store, env) if isolate else run_job(job)
            except BaseException:
                if aside is not None:
                    _keep_earlier(run_dir, notes)
                raise
            if aside is not None:
                if result is not None and redo.finished(store, run_dir, job.fingerprint):
                    redo.drop_aside(run_dir)
                else:
                    _keep_earlier(run_dir, notes)
        except ResultNotRecorded as exc:
            # The run failed and the store would not take the record: say so, then the next job goes on.
            return Outcome("store_failed", exc.describe(), notes=tuple(notes))
        except OSError as exc:
            # The store itself failed (disk full, read-only): say so; the next job goes on.
            message = f"could not write to the results store ({exc.strerror or exc})"
            return Outcome("store_failed", message, notes=tuple(notes))
        took = time.perf_counter() - start
    if result is None:  # a secondary process of a distributed run: only the main one records
        return Outcome("secondary")
    if result.completed:
        return Outcome("completed", "", took, result.metrics.accuracy, result.metrics.f1_macro, tuple(notes))
    return Outcome("failed", f"{result.error.type}: {result.error.message}", took, notes=tuple(notes))


def _ray_task_env(asked_cpus: float) -> dict[str, str]:
    """The task's CPUs as Ray assigned them (what it asked for where the runtime does not say) as its threads."""
    cpus = asked_cpus
    with contextlib.suppress(Exception):
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", asked_cpus)
    threads = max(1, int(cpus))
    return share_env(threads, None, f"Ray task num_cpus={threads}")


def _execute_serialised(job_json: str, force: bool, cpus: float = 1.0) -> dict:
    """The Ray task: a job crosses as JSON and its outcome comes back as a plain dict."""
    try:
        return asdict(execute_job(Job.model_validate_json(job_json), force=force, env=_ray_task_env(cpus)))
    except HarnessInputError as exc:
        return asdict(Outcome("bad_input", str(exc)))
    except KeyboardInterrupt:
        return asdict(Outcome("interrupted", "interrupted"))


# ----- executors -----------------------------------------------------------------------------------------------

Execute = Callable[[Job, dict[str, str]], Outcome]


class LocalExecutor:
    """Runs on this machine: ``parallel`` at once, or one per device in ``devices`` at once."""

    def __init__(self, parallel: int = 1, devices: list[str] | None = None):
        self.devices = list(devices or [])
        self.slots = len(self.devices) or max(1, parallel)

    def share(self) -> dict[str, str]:
        """The environment of each run when several run at once: its share of the usable cores (on a CPU the
        runs compete for them; beside a GPU each, a run's CPU work still does); nothing for one at a time."""
        if self.slots == 1:
            return {}
        given_by = f"--devices {','.join(self.devices)}" if self.devices else f"--parallel {self.slots}"
        return share_env(share_of_cores(self.slots), self.slots, given_by)

    def map(self, jobs: list[Job], execute: Execute) -> Iterator[tuple[Job, Outcome]]:
        """Yields each job with its outcome, in completion order (job order when one at a time)."""
        if self.slots == 1:
            env = {"CUDA_VISIBLE_DEVICES": self.devices[0]} if self.devices else {}
            for job in jobs:
                yield job, execute(job, env)
            return
        free: queue.Queue = queue.Queue()
        for slot in self.devices or [None] * self.slots:
            free.put(slot)
        share = self.share()

        # Set at Ctrl-C (seen by the main thread or by a run it stopped): no queued job starts after it.
        stopping = threading.Event()

        def on_a_slot(job: Job) -> Outcome:
            slot = free.get()
            try:
                if stopping.is_set():
                    raise KeyboardInterrupt
                return execute(job, {**share, **({"CUDA_VISIBLE_DEVICES": slot} if slot is not None else {})})
            except KeyboardInterrupt:
                stopping.set()
                raise
            finally:
                free.put(slot)

        pool = ThreadPoolExecutor(max_workers=self.slots)
        try:
            futures = {pool.submit(on_a_slot, job): job for job in jobs}
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            # Ctrl-C (or a caller that stops reading): the queued runs are cancelled, never started; the runs in
            # flight got the same Ctrl-C and are waited for, so what they finished is in the store.
            stopping.set()
            pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Each run a Ray task, on an existing cluster (``address`` or ``RAY_ADDRESS``) or a local instance.

    A task asks for its CPUs and ``gpus_per_run`` GPUs, so Ray places at most as many runs on a node
    as it has cores and devices for; the run itself still executes in its own process (``execute_job``) on that
    node, with the task's CPUs as its threads. On a cluster (or an instance already started) a task asks for one
    CPU; on a local instance for this command, ``parallel`` runs (default: one per usable core) each ask for
    their share of the cores.
    """

    def __init__(self, address: str | None = None, parallel: int | None = None, gpus_per_run: float = 0.0,
                 force: bool = False):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise HarnessInputError(
                "--executor ray", "Ray is not installed", "pip install 'textclf-bench[ray]'"
            ) from None
        self.address = address or os.environ.get("RAY_ADDRESS")
        self.parallel = parallel
        self.gpus_per_run = gpus_per_run
        self.force = force

    def map(self, jobs: list[Job], execute: Execute | None = None) -> Iterator[tuple[Job, Outcome]]:
        import ray

        started_here = not ray.is_initialized()
        # An instance someone else started (a cluster, or one already up) may have fewer CPUs than a share.
        cpus = share_of_cores(self.parallel or usable_cores()) if started_here and not self.address else 1
        if started_here:
            options = {"include_dashboard": False, "log_to_driver": True}
            if self.address:
                ray.init(address=self.address, **options)
            else:
                # A local instance for this command: the workers import this same harness.
                env = {"PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])),
                       running.COMMAND_ENV: running.command_id()}
                # Room for exactly ``parallel`` tasks of their share each (one per usable core by default).
                ray.init(num_cpus=(self.parallel or usable_cores()) * cpus, runtime_env={"env_vars": env}, **options)
        try:
            task = ray.remote(num_cpus=cpus, num_gpus=self.gpus_per_run)(_execute_serialised)
            pending = {task.remote(job.model_dump_json(), self.force, cpus): job for job in jobs}
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ready)
                try:
                    outcome = Outcome(**ray.get(ready))
                except Exception as exc:  # noqa: BLE001 - the worker itself was lost: the next command retries
                    outcome = Outcome("failed", f"Ray lost the task ({type(exc).__name__}); rerun to retry it")
                yield job, outcome
        finally:
            if started_here:
                with contextlib.suppress(Exception):
                    ray.shutdown()
