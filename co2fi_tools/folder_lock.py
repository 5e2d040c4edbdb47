"""An exclusive lock on a folder a long job writes (a training run folder).

``FolderLock(folder)`` takes an advisory ``flock`` on ``<folder>/.lock`` and writes the holder
(pid, host, command, start time) into it. The kernel drops the lock when its process dies, so a
lock left behind by a killed job is taken over by the next one; a live holder makes
``FolderLockedError`` name it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = ".lock"


class FolderLockedError(RuntimeError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """``with FolderLock(folder, what="training"):`` -- one job a folder at a time."""

    def __init__(self, folder: str | os.PathLike, what: str = "job") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.read(fd, 4096))
            os.close(fd)
            raise FolderLockedError(
                f"{self.folder} is in use by another {self.what} ({holder}); wait for it or "
                "stop it, or use another folder") from None
        except BaseException:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe(raw: bytes) -> str:
    try:
        info = json.loads(raw.decode() or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "holder unknown"
    if not info:
        return "holder unknown"
    return (f"pid {info.get('pid')} on {info.get('host')}, since {info.get('started')}: "
            f"{' '.join(info.get('argv', []))}")
