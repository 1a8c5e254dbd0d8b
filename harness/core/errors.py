"""Errors that reach the user as one line: where the problem is, what is wrong, how to fix it."""

from __future__ import annotations


class OneLineError(Exception):
    """An error whose text is one line: ``<where>: <problem> (fix: <fix>)``."""

    def __init__(self, where: str, problem: str, fix: str | None = None):
        self.where = where
        self.problem = problem
        self.fix = fix
        message = f"{where}: {problem}"
        if fix:
            message += f" (fix: {fix})"
        super().__init__(" ".join(message.split()))


class HarnessInputError(OneLineError):
    """Bad input from a user: a YAML file, a data file or a command-line flag.

    The CLI prints ``str(error)`` as a single line and exits with code 2, without a traceback.
    """


class ModelRunError(Exception):
    """A model failed while training or predicting; recorded as a failed run, the others go on."""


class TrainingDiverged(ModelRunError):
    """The loss became NaN/inf or exploded: training stops instead of continuing on garbage."""


class DataChanged(OneLineError):
    """A data file no longer holds the bytes its configuration was made from (edited while a grid runs).

    The run fails alone, in one line, before any training: its numbers would be filed under a configuration
    that names other data. A rerun of the command hashes the new data and makes a new configuration for it.
    """
