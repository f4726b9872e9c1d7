"""Exceptions with messages a user can act on (file, line, problem)."""

from __future__ import annotations

from pathlib import Path


class SsegError(Exception):
    """Base class for every error sseg raises on purpose."""

    exit_code = 1


class InputError(SsegError, ValueError):
    """Bad user input: names the file (and line) and what is wrong with it."""

    exit_code = 2

    def __init__(self, problem: str, path: str | Path | None = None, line: int | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
            where += ": "
        super().__init__(f"{where}{problem}")


class VideoError(InputError):
    """A video that cannot be opened or decoded."""

    exit_code = 3
