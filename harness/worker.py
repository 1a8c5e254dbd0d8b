"""Child-process entry point: ``python -m harness.worker JOB.json`` runs one job and exits.

Each model runs in its own process so one model's peak memory never shows up in another's numbers,
and a crash (out of memory, a segfault) ends only that model's run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.errors import HarnessInputError
from harness.runner import Job, run_job


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = Job.model_validate_json(Path(argv[0]).read_text())
    try:
        result = run_job(job)
    except HarnessInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if result is None or result.completed else 1


if __name__ == "__main__":
    sys.exit(main())
