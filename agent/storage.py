"""The agent's one SQLite database: jobs, the outbox and counters, in WAL mode.

Durability policy (documented in docs/deployment.md):
- ``journal_mode=WAL``, ``synchronous=NORMAL``: every commit is in the operating system's page
  cache when it returns, so it survives the agent being killed.
- Nothing leaves the process before it is on disk: :meth:`Database.sync` fsyncs the WAL file,
  and it is called before a job is acknowledged to the broker, before the first line of a job
  is sent to the machine, and before every batch the outbox publishes (group commit). So a power
  cut can lose only what nobody outside has seen yet, and ``seq`` numbers are never reused.

Storage faults (docs/deployment.md, "When the disk is full"):
- A write that fails because the disk is full or failing raises :class:`StorageError` (never a
  bare ``sqlite3`` error) and marks the database faulted; :attr:`Database.fault` stays set until
  :meth:`Database.probe` manages a write again. Whoever wrote decides what that means: a job is
  then not acknowledged to the broker, a finished job keeps its final state in memory, progress
  and telemetry are skipped.
- A database that cannot be used at all (damaged, read-only, unreadable) raises
  :class:`StorageUnusable` when opened, with a message that says what to do.

Schema versions (docs/deployment.md, "Upgrades and downgrades"): opening a database brings it
to the latest version (agent/migrations.py); one from a newer release raises
:class:`agent.migrations.SchemaTooNew` before anything in it is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from agent import migrations as schema_versions
from agent.errors import StationAgentError

log = logging.getLogger(__name__)

# SQLite primary result codes (the low byte of an extended code).
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


class StorageError(StationAgentError):
    """A write to the database failed for a reason outside the agent: disk full or failing.

    ``reason`` is ``disk_full``, ``io_error``, ``read_only`` or ``corrupt``.
    """

    code = "storage_error"

    def __init__(self, message: str, *, reason: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.path = path


class StorageUnusable(StorageError):
    """The database cannot be used at all; the agent stops with :attr:`advice`."""

    def __init__(self, message: str, *, reason: str, path: Path, advice: str) -> None:
        super().__init__(message, reason=reason, path=path)
        self.advice = advice


def storage_error(exc: BaseException, path: Path | None = None) -> StorageError | None:
    """The :class:`StorageError` an sqlite3 or OS error stands for, or None if it is not one."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, OSError):
        reason = "disk_full" if exc.errno in _FULL_ERRNOS else (
            "read_only" if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else "io_error")
        return StorageError(f"{exc.strerror or exc}", reason=reason, path=path)
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if primary == _SQLITE_FULL or "database or disk is full" in text:
        return StorageError(text, reason="disk_full", path=path)
    if primary in (_SQLITE_READONLY, _SQLITE_CANTOPEN) or "readonly" in text:
        return StorageError(text, reason="read_only", path=path)
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "malformed" in text:
        return StorageError(text, reason="corrupt", path=path)
    if primary == _SQLITE_IOERR or "disk I/O error" in text:
        return StorageError(text, reason="io_error", path=path)
    return None


def unusable(exc: BaseException, path: Path) -> StorageUnusable | None:
    """What to tell a person when the database cannot even be opened (None: a transient fault).

    A full disk is transient (the agent waits for space); a damaged file, a read-only file or
    file system, or one the agent may not open are not: they need a person.
    """
    err = storage_error(exc, path)
    if err is None or err.reason in ("disk_full", "io_error"):
        return None
    files = f"{path} (and {path.name}-wal, {path.name}-shm beside it)"
    if err.reason == "corrupt":
        return StorageUnusable(
            f"the database {path} is damaged ({err.message})", reason="corrupt",
            path=path,
            advice=f"The database {path} is damaged and cannot be read ({err.message}). "
                   f"The agent has not started, so nothing was sent to the machine. Stop the "
                   f"service, move {files} aside (for example `mv {path} {path}.damaged`) and "
                   f"start the agent again: it starts with an empty database, so jobs it held "
                   f"and events it had not yet sent are not in it; the planner's copy is. If it "
                   f"happens again, check the SD card (`dmesg`, `station-agent doctor`).")
    return StorageUnusable(
        f"cannot write the database {path} ({err.message})", reason="read_only",
        path=path,
        advice=f"The agent cannot write the database {path} ({err.message}): the file, its "
               f"directory or the file system is read-only or not the agent's. The agent has "
               f"not started. Give the file and directory back to the agent's user (`sudo chown "
               f"-R station-agent: {path.parent}`), make {files} writable, or remount the file "
               f"system read-write (a card the kernel remounted read-only after I/O errors is "
               f"failing: check `dmesg` and replace it), then start the agent again.")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    arrival INTEGER NOT NULL UNIQUE,
    state TEXT NOT NULL,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
    program TEXT NOT NULL,
    lines_total INTEGER NOT NULL,
    lines_done INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    created_ts TEXT NOT NULL,
    updated_ts TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, arrival);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    seq INTEGER,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    droppable INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_droppable ON outbox (droppable, kind, id);
-- Pool assignments this station has answered: the same assignment delivered again gets the
-- same answer, and a job handed back is never run from a stale delivery.
CREATE TABLE IF NOT EXISTS pool_assignments (
    token TEXT PRIMARY KEY,
    pool TEXT NOT NULL,
    job_id TEXT NOT NULL,
    answer TEXT NOT NULL,
    reason TEXT
);
"""


class Database:
    def __init__(self, path: Path, extra_schema: str = "",
                 migrations: Sequence[schema_versions.Migration] = (
                     schema_versions.AGENT_MIGRATIONS)) -> None:
        """Open (or create) the database and bring it to the latest schema version.

        Raises :class:`StorageUnusable`, or :class:`agent.migrations.SchemaTooNew` for a file
        written by a newer release (agent/migrations.py).
        """
        self.path = path
        self._wal_fd: int | None = None
        self._depth = 0
        self._undo: list[Callable[[], object]] = []
        # Set by the first failed write, cleared by a successful probe().
        self.fault: StorageError | None = None
        self.fault_since: float | None = None
        self.on_fault: list[Callable[[StorageError], object]] = []
        self.on_recover: list[Callable[[], object]] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise self._open_error(exc) from None
        try:
            schema_versions.refuse_newer(self.conn, path, migrations)  # before any write
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            # Keep the WAL file between checkpoints so the fd we fsync stays the live one.
            self.conn.execute("PRAGMA journal_size_limit=67108864")
            # Creates a new file at the latest version, or migrates an older one, in order.
            self.found_version = schema_versions.prepare(self.conn, path, SCHEMA + extra_schema,
                                                         migrations)
            # Every table read once: a damaged file says so now, not in the middle of a job.
            for table in ("meta", "jobs", "outbox"):
                self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()  # noqa: S608
        except (sqlite3.Error, OSError) as exc:
            self.conn.close()
            raise self._open_error(exc) from None
        except BaseException:
            self.conn.close()
            raise

    def _open_error(self, exc: BaseException) -> StorageError:
        bad = unusable(exc, self.path)
        if bad is not None:
            return bad
        err = storage_error(exc, self.path)
        if err is not None:
            return err
        raise exc

    # -- faults ----------------------------------------------------------------------------

    def failed(self, exc: BaseException) -> StorageError:
        """Turn a write's failure into :class:`StorageError` and mark the database faulted.

        Anything that is not a storage fault (a bug, a constraint) is raised as it is.
        """
        err = storage_error(exc, self.path)
        if err is None:
            raise exc
        if self.fault is None:
            self.fault = err
            self.fault_since = time.time()
            log.error("storage fault on %s: %s (%s); what needs a write waits until one succeeds "
                      "again", self.path, err.message, err.reason)
            for callback in list(self.on_fault):
                try:
                    callback(err)
                except Exception:
                    log.exception("a storage fault listener failed")
        return err

    def probe(self) -> bool:
        """Try one small write and sync; on success clear the fault (and tell the listeners)."""
        try:
            with self.transaction():
                self.set_counter("storage_probe", self.counter("storage_probe") + 1)
            self.sync()
        except StorageError:
            return False
        if self.fault is not None:
            log.warning("storage on %s works again after %.0f s", self.path,
                        time.time() - (self.fault_since or time.time()))
            self.fault = None
            self.fault_since = None
            for callback in list(self.on_recover):
                try:
                    callback()
                except StorageError:
                    log.warning("storage failed again while recovering")
                    return False
                except Exception:
                    log.exception("a storage recovery listener failed")
        return self.fault is None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write; nested uses join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except (sqlite3.Error, OSError) as exc:
            raise self.failed(exc) from exc
        self._depth = 1
        self._undo = []
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException as exc:
            self._depth = 0
            self._rollback()
            undo, self._undo = self._undo, []
            for fn in reversed(undo):
                fn()
            if isinstance(exc, sqlite3.Error | OSError):
                raise self.failed(exc) from exc
            raise
        self._depth = 0
        self._undo = []

    @property
    def in_transaction(self) -> bool:
        """Inside :meth:`transaction` (a failure there fails the whole outer transaction)."""
        return self._depth > 0

    def on_rollback(self, fn: Callable[[], object]) -> None:
        """Inside a transaction: call ``fn`` if it is rolled back (to undo in-memory state)."""
        if self._depth:
            self._undo.append(fn)

    def _rollback(self) -> None:
        # SQLite may already have rolled back on its own (it does on SQLITE_FULL in a commit);
        # a ROLLBACK then fails, and must not hide the error that got us here.
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.warning("rollback failed: %s", exc)

    def sync(self) -> None:
        """Make every commit so far survive a power cut (one fsync of the WAL)."""
        fd = self._wal()
        if fd is None:
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            self._forget_wal()
            raise self.failed(exc) from exc

    async def sync_off_loop(self) -> None:
        """:meth:`sync` with the fsync in a worker thread: the event loop, and a job streaming
        on it, goes on while the disk works (an SD card's fsync can take tens of ms, longer
        than a GRBL stream's buffer lasts). Every commit made before the call is durable when
        it returns. The thread gets its own duplicate of the WAL's fd, so a :meth:`close`
        meanwhile cannot make it sync another file; failures are handled here, on the loop."""
        fd = self._wal()
        if fd is None:
            return
        try:
            await asyncio.to_thread(_fsync_copy, os.dup(fd))
        except OSError as exc:
            self._forget_wal()
            raise self.failed(exc) from exc

    def _wal(self) -> int | None:
        """The WAL's fd, opened on first use; None while nothing went through the WAL."""
        if self._wal_fd is None:
            try:
                self._wal_fd = os.open(Path(f"{self.path}-wal"), os.O_RDONLY)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise self.failed(exc) from exc
        return self._wal_fd

    def _forget_wal(self) -> None:
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None

    def counter(self, key: str) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def set_counter(self, key: str, value: int) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def bump_counter(self, key: str) -> int:
        with self.transaction():
            value = self.counter(key) + 1
            self.set_counter(key, value)
        return value

    def close(self) -> None:
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        self.conn.close()


def _fsync_copy(fd: int) -> None:
    """In a worker thread: fsync a duplicated fd, then close it."""
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ReservedFile:
    """A small file whose space is taken at start-up and then rewritten in place.

    Overwriting blocks a file already owns needs no free space, so this can still be written
    when the disk is full (on ext4 and tmpfs; not on copy-on-write file systems). The job runner
    keeps there the ends of jobs the database could not take, so a restart before space returns
    reports them as they happened rather than ``interrupted``.
    """

    def __init__(self, path: Path, size: int = 64 * 1024) -> None:
        self.path = path
        self.size = size
        self._fd: int | None = None

    def open(self) -> bytes:
        """Claim the space (if the disk allows) and return what the file holds."""
        self.close()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            log.warning("cannot open %s: %s", self.path, exc.strerror)
            return b""
        content = os.pread(fd, self.size, 0).rstrip(b"\0")
        try:
            if os.fstat(fd).st_size < self.size:
                os.pwrite(fd, b"\0" * (self.size - len(content)), len(content))
                os.fsync(fd)
        except OSError as exc:
            log.warning("cannot reserve %s (%s): ends of jobs kept in memory during a storage "
                        "fault are lost if the agent stops before the fault ends", self.path,
                        exc.strerror)
            os.close(fd)
            return content
        self._fd = fd
        return content

    def write(self, data: bytes) -> bool:
        """Replace the content, durably; False if it cannot (not reserved, too big, I/O error)."""
        if self._fd is None or len(data) > self.size:
            return False
        try:
            os.pwrite(self._fd, data + b"\0" * (self.size - len(data)), 0)
            os.fdatasync(self._fd)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc.strerror)
            return False
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

