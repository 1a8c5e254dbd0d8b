"""Lines for people on stdout, whose reader may leave early (``report | head``, ``run | head``).

A closed pipe is the reader's choice, not a failure of the command: the lines still to come go nowhere, quietly,
and nothing that is running stops for it (a run's forecast line must not fail the run).
"""

from __future__ import annotations

import logging
import os
import sys


def stdout_closed() -> None:
    """Point stdout at /dev/null: the lines still to come and Python's flush at exit go nowhere instead of raising
    BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file descriptor behind sys.stdout (captured, replaced)
        pass


def say(line: str) -> None:
    """print(), except that a reader gone away ends the output instead of raising."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        stdout_closed()


class StdoutHandler(logging.StreamHandler):
    """Plain log lines on stdout; a reader that closes it ends the output, quietly, not the command or its runs."""

    def __init__(self):
        super().__init__(sys.stdout)

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            stdout_closed()
            return
        super().handleError(record)
