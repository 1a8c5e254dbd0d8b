"""Child-process entry point: ``python -m harness.run.worker JOB.json`` runs one job and exits.

Each model runs in its own process so one model's peak memory never shows up in another's numbers,
and a crash (out of memory, a segfault) ends only that model's run.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

# Exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130
# Exit status of a run whose result (or failure record) the results store would not take (disk full, read-only).
STORE_FAILED = 3
# Exit status of a run the user stopped at its time forecast: nothing recorded, nothing more runs.
DECLINED = 4


def main(argv: list[str] | None = None) -> int:
    """Run the job whose JSON file is ``argv[0]``.

    Returns 0 completed, 1 failed (recorded), 2 bad input, 3 the store would not take the result, 4 declined at
    the time forecast, 130 Ctrl-C.
    """
    argv = sys.argv[1:] if argv is None else argv
    # Ctrl-C reaches every process of the terminal's group, this one included: the parent says what happened
    # and how to resume, so the child stops without a traceback. Imports sit inside for the same reason.
    try:
        # Beside other runs of the command, this run's share of the cores, set before torch or any model
        # library starts its thread pools (the environment already sizes those loaded later).
        from harness.metrics.machine import apply_thread_share

        apply_thread_share()
        from harness.core.errors import HarnessInputError
        from harness.run.forecast import RunDeclined
        from harness.run.job import Job
        from harness.run.runner import ResultNotRecorded, run_job

        try:
            job = Job.model_validate_json(Path(argv[0]).read_text())
            if not job.settings.show_progress:
                from harness.models import quiet_libraries

                quiet_libraries()
            result = run_job(job)
        except HarnessInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except RunDeclined:
            return DECLINED  # the parent says what stopped and what is kept
        except OSError as exc:
            # The store failed, not the model: one line with the cause; the parent records what it can.
            what = exc.describe() if isinstance(exc, ResultNotRecorded) else f"the results store failed ({exc.strerror or exc})"
            print(f"error: {Path(argv[0]).parent}: {what}", file=sys.stderr)
            return STORE_FAILED
        return 0 if result is None or result.completed else 1
    except KeyboardInterrupt:
        return INTERRUPTED


def _exit_on_interrupt(signum, frame) -> None:
    # Leave at once: a KeyboardInterrupt raised inside library code (an import, a finaliser) still prints
    # "Exception ignored ... KeyboardInterrupt". Nothing is lost: results are written atomically, the parent
    # records the run as interrupted, and the rerun redoes it.
    os._exit(INTERRUPTED)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _exit_on_interrupt)
    sys.exit(main())
