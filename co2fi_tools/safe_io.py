"""What every long job relies on: a folder lock, a settings fingerprint, atomic writes and
one-line OS errors (docs/RELIABILITY.md).

- :class:`FolderLock` locks a folder a job writes (``<folder>/.lock``, ``fcntl.flock``): a second
  job gets :class:`LockHeld`, naming the holder's pid, host, command and start time. The kernel
  drops the lock when its process dies, so a lock file left by a dead process is taken over
  (and said so). Re-entrant within one process.
- :func:`check_settings` compares the settings a result was made with (recorded as JSON) with
  those of a rerun and raises :class:`SettingsMismatch`, naming each setting that differs and
  what to do, instead of reusing or mixing old work.
- :func:`atomic_write_text`, :func:`atomic_write_bytes` and :func:`atomic_path` write through a
  temporary file in the same folder and ``os.replace``: readers see the old file or the whole
  new one, never a truncated one; a failed write leaves nothing behind.
- :func:`os_error_line` turns an ``OSError`` into one line naming the path and the cause
  (disk full, permission, read-only file system, ...).

Standard library only: ``data_prep`` imports it as well as ``co2fi_tools``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

LOCK_NAME = ".lock"

# --- atomic writes --------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block ends
    without an exception, removed otherwise. For writers that want a file name (h5py, Caffe;
    ``suffix=path.suffix`` for those that choose the format by the name: matplotlib, OpenCV).

    >>> with atomic_path("out/model.caffemodel") as tmp:
    ...     net.save(str(tmp))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:  # a writer's error names no file (matplotlib, h5py): name ``path``
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise with_path(exc, path) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` so that readers see either the old or the whole new file. An OSError
    names ``path`` (a full disk: ``<path>: no space left on device (disk full)``)."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:  # the temporary's name would mean nothing to the user
        raise with_path(exc, path, replace=True) from None


def with_path(exc: OSError, path: str | os.PathLike[str], replace: bool = False) -> OSError:
    """``exc`` naming ``path`` when it names no file (a write, flush or fsync that failed),
    or in any case with ``replace``."""
    if exc.errno is None or (exc.filename is not None and not replace):
        return exc
    return type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), os.fspath(path))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) so that readers see either the old or the whole new file."""
    atomic_write_bytes(path, text.encode("utf-8"))


# --- OS errors ------------------------------------------------------------------------------

_CAUSES = {
    errno.ENOSPC: "no space left on device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a path component is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EEXIST: "already exists",
    errno.ENOENT: "no such file or folder",
    errno.EIO: "input/output error (failing disk or network file system)",
}


def os_error_cause(exc: OSError) -> str:
    """The cause of an OSError in words (``no space left on device (disk full)``)."""
    return _CAUSES.get(exc.errno or -1) or exc.strerror or str(exc) or type(exc).__name__


def os_error_line(exc: OSError, path: str | os.PathLike[str] | None = None) -> str:
    """``<path>: <cause>`` for an OSError (``path`` defaults to the error's file name)."""
    where = os.fspath(path) if path is not None else (exc.filename or "")
    return f"{where}: {os_error_cause(exc)}" if where else os_error_cause(exc)


def disk_full(path: str | os.PathLike[str], margin: int = 1 << 20) -> bool:
    """Whether the file system of ``path`` has (nearly) no space left for us."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < margin


def check_space(path: str | os.PathLike[str]) -> None:
    """OSError ``<path>: no space left on device (disk full)`` when ``path``'s disk is full:
    for a step that failed in many small ways, to say the cause in one line."""
    if disk_full(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))


def error_line(exc: BaseException) -> str:
    """The one line a CLI prints for ``exc``: OSErrors as ``<path>: <cause>`` (without Python's
    ``[Errno N]``), others as their message."""
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.filename is not None:
            return os_error_line(exc)
        if exc.strerror:
            return exc.strerror
    return str(exc)


def writable_folder(path: str | os.PathLike[str], flag: str = "output folder") -> Path:
    """Create ``path`` (parents too); ValueError naming ``flag`` when it is a file or cannot be
    made."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path}: is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{flag} {os_error_line(exc, exc.filename or path)}") from None
    return path


# --- folder locks ---------------------------------------------------------------------------


class LockHeld(RuntimeError):
    """Another live process holds the folder's lock."""


def _holder_text(info: Mapping[str, Any]) -> str:
    if not info:
        return "another process (no details recorded)"
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {when} "
            f"({info.get('command', '?')})")


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine with that pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_gone(info: Mapping[str, Any]) -> bool:
    """Whether the recorded holder was a process of this machine that no longer runs."""
    try:
        pid = int(info["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    return info.get("host") == socket.gethostname() and not pid_alive(pid)


def held_lock_fds(folder: str | os.PathLike[str] | None = None) -> list[int]:
    """The descriptors of the locks this process holds (of ``folder``'s lock only, if given):
    pass them to a child (``pass_fds``) that must keep the folder locked while it runs."""
    if folder is None:
        return [fd for fd, _ in _HELD.values()]
    key = os.path.realpath(Path(folder) / LOCK_NAME)
    return [_HELD[key][0]] if key in _HELD else []


_HELD: dict[str, list] = {}  # realpath of lock file -> [fd, depth]


class FolderLock:
    """An exclusive lock on ``folder`` for one job (``with FolderLock(out, "extraction"):``).

    Raises :class:`LockHeld` at once (no waiting) when another live process holds it. The
    holder's pid, host, command and start time are kept in ``<folder>/.lock`` for that message.
    The file is removed on release (a job that opened it before checks that it locked the file
    still there); a killed job leaves it behind, and the next job takes it over. Children given
    the lock (``held_lock_fds``, inherited by a fork) keep it after their killed parent: a
    rerun waits for them (``orphan_wait_s``, said on stderr), then refuses naming them."""

    def __init__(self, folder: str | os.PathLike[str], job: str = "job",
                 announce_takeover: bool = True, name: str = LOCK_NAME,
                 orphan_wait_s: float = 120.0) -> None:
        self.folder = Path(folder)
        self.orphan_wait_s = orphan_wait_s
        self.job = job
        self.path = self.folder / name
        self.announce_takeover = announce_takeover
        self.took_over: dict[str, Any] | None = None
        self._key: str | None = None

    def _read(self, fd: int) -> dict[str, Any]:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            raw = os.read(fd, 65536).decode("utf-8", "replace")
            return json.loads(raw) if raw.strip() else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> FolderLock:
        writable_folder(self.folder, f"{self.job} folder")
        key = os.path.realpath(self.path)
        if key in _HELD:
            _HELD[key][1] += 1
            self._key = key
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                self._flock(fd)
            except BaseException:
                os.close(fd)
                raise
            try:  # the holder we waited on may have removed the file: lock the one there now
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        old = self._read(fd)
        if old.get("pid") and old.get("pid") != os.getpid():
            self.took_over = old
            if self.announce_takeover:
                alive = old.get("host") == socket.gethostname() and pid_alive(int(old["pid"]))
                state = "" if alive else " (no longer running)"
                print(f"note: {self.folder}: taking over the lock of an earlier "
                      f"{old.get('job', 'job')}, {_holder_text(old)}{state}", file=sys.stderr)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "job": self.job,
                "started": time.time(), "command": " ".join(sys.argv)[:300]}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        except OSError as exc:  # a full disk: one line naming the lock file
            os.close(fd)
            raise with_path(exc, self.path) from None
        _HELD[key] = [fd, 1]
        self._key = key
        return self

    def _flock(self, fd: int) -> None:
        """Lock ``fd``; LockHeld when a live job holds it. A holder that died (SIGKILL) may
        have left children that inherited the lock (a solver finishing its snapshot, pool
        workers finishing a video): they are waited for, up to ``orphan_wait_s``."""
        deadline, said = None, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                holder = self._read(fd)
            if not _holder_gone(holder):
                raise LockHeld(
                    f"{self.folder}: in use by another {self.job}: {_holder_text(holder)}; wait "
                    f"for it to finish or stop it (its lock is {self.path})")
            deadline = deadline or time.monotonic() + self.orphan_wait_s
            if time.monotonic() >= deadline:
                raise LockHeld(
                    f"{self.folder}: still locked by processes that a stopped {self.job} "
                    f"started ({_holder_text(holder)}, no longer running) after "
                    f"{self.orphan_wait_s:g} s; stop them (fuser {self.path}) and rerun")
            if not said and self.announce_takeover:
                print(f"note: {self.folder}: waiting for the processes that a stopped "
                      f"{holder.get('job', 'job')} (pid {holder.get('pid')}) started to exit",
                      file=sys.stderr)
                said = True
            time.sleep(0.2)

    @property
    def fd(self) -> int | None:
        """The locked file's descriptor while held (a child given it keeps the lock)."""
        held = _HELD.get(self._key) if self._key else None
        return held[0] if held else None

    def release(self) -> None:
        key, self._key = self._key, None
        if key is None or key not in _HELD:
            return
        _HELD[key][1] -= 1
        if _HELD[key][1] > 0:
            return
        fd = _HELD.pop(key)[0]
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # still holding the lock: a job that opened it retries
        os.close(fd)  # closing drops the flock

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# --- settings fingerprints ------------------------------------------------------------------


class SettingsMismatch(ValueError):
    """A result was made with other settings than a rerun asks for."""


def _normal(value: Any) -> Any:
    """JSON's view of a value (tuples become lists, paths strings), for comparisons."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def settings_diff(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """``"<key>: <recorded> before, <wanted> now"`` for each key of ``wanted`` whose value
    differs from (or is missing in) ``recorded``; keys only in ``recorded`` are ignored."""
    diffs = []
    for key in sorted(wanted):
        want = _normal(wanted[key])
        if key not in recorded:
            diffs.append(f"{key}: not recorded before, {json.dumps(want)} now")
        elif _normal(recorded[key]) != want:
            diffs.append(f"{key}: {json.dumps(_normal(recorded[key]))} before, "
                         f"{json.dumps(want)} now")
    return diffs


def check_settings(what: str | os.PathLike[str], recorded: Mapping[str, Any],
                   wanted: Mapping[str, Any], remedy: str) -> None:
    """Raise :class:`SettingsMismatch` (one line: ``what``, each difference, ``remedy``) when
    ``wanted`` differs from ``recorded``."""
    diffs = settings_diff(recorded, wanted)
    if diffs:
        raise SettingsMismatch(f"{os.fspath(what)}: made with other settings ("
                               + "; ".join(diffs) + f"); {remedy}")


def read_settings(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The settings recorded in a JSON file, None when there is none; ValueError naming the
    file when it is not JSON."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); delete it to start over") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of settings")
    return data


def record_settings(path: str | os.PathLike[str], settings: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(_normal(dict(settings)), indent=2, sort_keys=True) + "\n")
