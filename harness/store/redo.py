"""A ``--force`` redo never costs the finished run it redoes, and never passes off that run as its own.

Before a redo starts, the finished run's folder is moved aside, beside it (``runs/<model>/.seed-<n>.previous``:
the store's readers only see ``seed-<n>``), under the run's lock. The redo then writes into an empty folder, so
nothing it leaves can mix with the earlier files, and only a result the redo itself wrote counts as done. The copy
aside is dropped once the redo has finished; a redo that fails, is interrupted or dies (the model's process or the
whole command, SIGKILL included) gets it put back: at once while the command lives, else by the next command that
takes the run's lock, before it decides whether the run is done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from harness.store.results_store import ResultsStore

ASIDE_SUFFIX = ".previous"
DISCARD_SUFFIX = ".unfinished-redo"
KEPT = "the redo did not finish: the earlier finished result is kept"
RESTORED = ("an earlier --force redo of this run did not finish: the finished result it was redoing is restored "
            "(the redo's partial files are removed)")


def aside_path(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}{ASIDE_SUFFIX}"


def set_aside(run_dir: Path) -> Path:
    """Move the finished run out of the way of its redo; returns where it now lies."""
    run_dir = Path(run_dir)
    aside = aside_path(run_dir)
    if aside.exists():  # settled by recover() before any redo: only a copy already superseded can be here
        shutil.rmtree(aside)
    os.replace(run_dir, aside)
    return aside


def put_back(run_dir: Path) -> None:
    """The redo did not finish: its folder goes, the earlier run comes back to its place."""
    run_dir = Path(run_dir)
    aside = aside_path(run_dir)
    if run_dir.exists():
        # Renamed away first, so a kill mid-removal never leaves the redo's files half gone in the run's place.
        discard = run_dir.parent / f".{run_dir.name}{DISCARD_SUFFIX}"
        if discard.exists():
            shutil.rmtree(discard)
        os.replace(run_dir, discard)
        os.replace(aside, run_dir)
        shutil.rmtree(discard, ignore_errors=True)
    else:
        os.replace(aside, run_dir)


def drop_aside(run_dir: Path) -> None:
    """The redo finished: the earlier copy is no longer needed."""
    shutil.rmtree(aside_path(run_dir), ignore_errors=True)


def finished(store: ResultsStore, run_dir: Path, fingerprint: str | None = None) -> bool:
    """Whether ``run_dir`` holds a whole finished run (of ``fingerprint``, when given)."""
    result = store.load_result(run_dir)
    if result is None or not result.completed:
        return False
    if fingerprint is not None and result.fingerprint != fingerprint:
        return False
    return store.predictions_problem(run_dir, result) is None


def recover(store: ResultsStore, run_dir: Path) -> str | None:
    """Settle what a redo left when its command died: returns a note when the earlier run was put back.

    Called under the run's lock, so no redo of this run is in progress. A redo that finished keeps its result
    (its command died just before dropping the copy aside); anything else is not the redo's result.
    """
    run_dir = Path(run_dir)
    with contextlib.suppress(OSError):
        shutil.rmtree(run_dir.parent / f".{run_dir.name}{DISCARD_SUFFIX}")
    if not aside_path(run_dir).is_dir():
        return None
    if finished(store, run_dir):
        drop_aside(run_dir)
        return None
    put_back(run_dir)
    return RESTORED
