"""One process per storage directory: an agent (or a keeper) holds a lock on it for its life.

Two ``station-agent run`` on one storage directory both started before this: each kicked the
other off the broker (same client id), the second reported the first one's running job as
``interrupted``, and the first then crashed. Now the second exits at once with
:data:`EXIT_ALREADY_RUNNING` and a message naming the first one's PID.

The lock is ``fcntl.flock`` on ``<dir>/<name>.lock``, held by an open file descriptor until the
process ends (the kernel releases it even after ``kill -9``: no stale lock to clean up). The file
holds the owner's PID for the message; it is never deleted (deleting a lock file lets two
processes each lock a different inode).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from agent.errors import StationAgentError
from agent.storage import StorageUnusable

# Exit status of a second instance (sysexits' EX_TEMPFAIL would invite a restart loop).
EXIT_ALREADY_RUNNING = 4


class AlreadyRunning(StationAgentError):
    code = "already_running"

    def __init__(self, what: str, path: Path, pid: int | None) -> None:
        owner = f"PID {pid}" if pid is not None else "another process (PID unknown)"
        super().__init__(
            f"another {what} is already running on {path.parent} ({owner} holds {path}). Two "
            f"on one storage directory would take each other's broker session and jobs: stop "
            f"that one first (`systemctl stop station-agent`, or `kill {pid or '<pid>'}`), or "
            f"give this one its own [storage] dir."
        )
        self.pid = pid
        self.path = path


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    return None


class InstanceLock:
    """``with InstanceLock(dir, "agent", "station agent"):``, or acquire() and release()."""

    def __init__(self, directory: Path, name: str, what: str) -> None:
        self.path = directory / f"{name}.lock"
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> InstanceLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            directory = self.path.parent
            raise StorageUnusable(
                f"cannot open {self.path}: {exc.strerror}", reason="read_only", path=self.path,
                advice=f"The {self.what} cannot write its storage directory {directory} "
                       f"({exc.strerror}: {self.path}). It has not started. Give the directory "
                       f"to the service's user (`sudo chown -R station-agent: {directory}`), "
                       f"or remount the file system read-write (a card the kernel remounted "
                       f"read-only after I/O errors is failing: check `dmesg` and replace it), "
                       f"then start it again.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(self.what, self.path, pid) from None
        except BaseException:
            os.close(fd)
            raise
        # The PID is for the message only: on a full disk it may not be written, and the lock
        # still holds.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> InstanceLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def holder_pid(directory: Path, name: str) -> int | None:
    """The PID of the process that holds the lock now, or None if nobody does (for the doctor)."""
    path = directory / f"{name}.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
