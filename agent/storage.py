"""The agent's one SQLite database: jobs, the outbox and counters, in WAL mode.

Durability policy (documented in docs/durability.md):
- ``journal_mode=WAL``, ``synchronous=NORMAL``: every commit is in the operating system's page
  cache when it returns, so it survives the agent being killed.
- Nothing leaves the process before it is on disk: :meth:`Database.sync` fsyncs the WAL file,
  and it is called before a job is acknowledged to the broker, before the first line of a job
  is sent to the machine, and before every batch the outbox publishes (group commit). So a power
  cut can lose only what nobody outside has seen yet, and ``seq`` numbers are never reused.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

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
    def __init__(self, path: Path, extra_schema: str = "") -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        # Keep the WAL file between checkpoints so the fd we fsync stays the live one.
        self.conn.execute("PRAGMA journal_size_limit=67108864")
        self.conn.executescript(SCHEMA + extra_schema)
        self._wal_fd: int | None = None
        self._depth = 0

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
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self._depth = 0
            self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self.conn.execute("COMMIT")

    def sync(self) -> None:
        """Make every commit so far survive a power cut (one fsync of the WAL)."""
        wal = Path(f"{self.path}-wal")
        if self._wal_fd is None:
            try:
                self._wal_fd = os.open(wal, os.O_RDONLY)
            except FileNotFoundError:
                return  # nothing written through the WAL yet
        try:
            os.fsync(self._wal_fd)
        except OSError:
            os.close(self._wal_fd)
            self._wal_fd = None
            raise

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
