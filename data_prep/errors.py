"""The one exception type of the data pipeline: its message names the file and the problem."""

from __future__ import annotations

import os


class DataError(Exception):
    """Bad or missing data: a split file, a video, a frame folder, a frame file, a list."""

    def __init__(self, path: str | os.PathLike[str], problem: str, line: int | None = None):
        self.path = os.fspath(path)
        self.problem = problem
        self.line = line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):  # crosses process boundaries (extraction and prefetch workers)
        return (type(self), (self.path, self.problem, self.line))
