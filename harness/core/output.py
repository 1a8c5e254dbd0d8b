"""Lines for people: results on stdout, whose reader may leave early (``report | head``, ``run | head``), and log
lines and warnings on stderr.

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


def tell(line: str) -> None:
    """A line for the person running the command, not a result: on stderr, beside the log lines."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        pass


class StderrHandler(logging.StreamHandler):
    """Plain log lines on stderr (the stream current when each line is written); a reader that closes it ends
    those lines, quietly, not the command or its runs."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # logging.StreamHandler sets it; the current sys.stderr is always used
        pass

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            return
        super().handleError(record)
