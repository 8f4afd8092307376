"""The SQLite outbox: every event and status waits here until the broker has acknowledged it.

- Events get ``seq`` from a counter in the same database, in the same transaction as the job
  state change they report, so seq grows by exactly one per event and is never reused.
- Rows leave the outbox in id order and only after the broker's PUBACK (QoS 1); a replay after
  a reconnect therefore goes out in seq order before anything new.
- A retained status or info row supersedes any older unpublished one (only the latest matters).
- The outbox is capped: telemetry is dropped first, then progress and warning events; lifecycle
  events are never dropped (the cap is exceeded rather than lose one). What was dropped is
  reported in a ``storage_pressure`` event.
- On a full or failing disk (:class:`agent.storage.StorageError`) nothing is added; rows the
  broker has acknowledged but that cannot be deleted yet are remembered in memory, never
  published twice by this process, and deleted when a write succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from agent.schemas.base import utc_now_rfc3339
from agent.schemas.event import LIFECYCLE_EVENTS, Event, EventType
from agent.storage import Database, StorageError

SEQ_KEY = "next_seq"


class RowKind(enum.StrEnum):
    EVENT = "event"
    STATUS = "status"
    INFO = "info"
    QUEUE = "queue"
    TELEMETRY = "telemetry"
    POOL = "pool"


@dataclass(frozen=True)
class OutboxRow:
    id: int
    kind: RowKind
    seq: int | None
    topic: str
    payload: bytes
    qos: int
    retain: bool


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Outbox:
    def __init__(self, db: Database, station: str, *, max_bytes: int,
                 on_pressure: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.db = db
        self.station = station
        self.max_bytes = max_bytes
        self.changed = asyncio.Event()
        row = db.conn.execute("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM outbox").fetchone()
        self.size = int(row[0])
        self.count = int(row[1])
        self._pressure_pending: dict[str, int] = {}
        self._on_pressure = on_pressure
        # Published (PUBACKed) rows whose DELETE failed on a full disk: skipped, deleted later.
        self._published: set[int] = set()
        # While the disk is faulted the live status is published around the outbox: an older
        # status row still in here must not replace it.
        self.hold_status = False

    # -- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """The database's transaction; the in-memory size and count roll back with it."""
        with self.db.transaction():
            size, count = self.size, self.count
            self.db.on_rollback(lambda: self._restore(size, count))
            yield

    def _restore(self, size: int, count: int) -> None:
        self.size, self.count = size, count

    def add_event(self, topic: str, event: EventType, job_id: str | None,
                  detail: dict[str, Any] | None = None) -> Event:
        """Record an event (inside the caller's transaction, if any)."""
        with self._transaction():
            seq = self.db.counter(SEQ_KEY) + 1
            self.db.set_counter(SEQ_KEY, seq)
            ev = Event(station=self.station, seq=seq, ts=utc_now_rfc3339(), event=event,
                       job_id=job_id, detail=detail or {})
            payload = dumps(ev.model_dump(mode="json"))
            droppable = event not in LIFECYCLE_EVENTS
            self._insert(RowKind.EVENT, seq, topic, payload, 1, False, droppable)
        return ev

    def add_retained(self, kind: RowKind, topic: str, payload: bytes) -> None:
        """A retained status or info message; an older unpublished one is superseded."""
        with self._transaction():
            for row_id, size in self.db.conn.execute(
                "SELECT id, size FROM outbox WHERE kind = ? AND topic = ?", (kind.value, topic)
            ).fetchall():
                self.db.conn.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
                self.size -= size
                self.count -= 1
            self._insert(kind, None, topic, payload, 1, True, False)

    def add_message(self, kind: RowKind, topic: str, payload: bytes) -> None:
        """A QoS 1 message that must not be lost (a pool member's answer to the keeper)."""
        with self._transaction():
            self._insert(kind, None, topic, payload, 1, False, False)

    def add_telemetry(self, topic: str, payload: bytes) -> None:
        with self._transaction():
            self._insert(RowKind.TELEMETRY, None, topic, payload, 0, False, True)

    def _insert(self, kind: RowKind, seq: int | None, topic: str, payload: bytes, qos: int,
                retain: bool, droppable: bool) -> None:
        size = len(payload) + len(topic) + 48
        if self.size + size > self.max_bytes:
            self._make_room(size)
            if self.size + size > self.max_bytes and droppable:
                self._note_dropped(kind.value, 1)
                return
        self.db.conn.execute(
            "INSERT INTO outbox (kind, seq, topic, payload, qos, retain, droppable, size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (kind.value, seq, topic, payload, qos, int(retain), int(droppable), size),
        )
        self.size += size
        self.count += 1
        self.changed.set()

    def _make_room(self, needed: int) -> None:
        """Drop the oldest telemetry, then the oldest progress/warning events.

        A tenth of the cap is freed at once, so a flood does not pay for a purge per row.
        Lifecycle events are never candidates: they are stored with droppable = 0.
        """
        target = self.max_bytes - needed - self.max_bytes // 10
        for kind in (RowKind.TELEMETRY, RowKind.EVENT):
            while self.size > target:
                rows = self.db.conn.execute(
                    "SELECT id, size FROM outbox WHERE droppable = 1 AND kind = ? "
                    "ORDER BY id LIMIT 2048",
                    (kind.value,),
                ).fetchall()
                if not rows:
                    break
                freed = 0
                ids = []
                for row_id, size in rows:
                    ids.append(row_id)
                    freed += size
                    if self.size - freed <= target:
                        break
                self.db.conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
                self.size -= freed
                self.count -= len(ids)
                self._note_dropped(kind.value, len(ids))

    def _note_dropped(self, kind: str, n: int) -> None:
        self._pressure_pending[kind] = self._pressure_pending.get(kind, 0) + n

    def take_pressure_report(self) -> dict[str, int] | None:
        """What was dropped since the last report (the caller emits storage_pressure)."""
        if not self._pressure_pending:
            return None
        report, self._pressure_pending = self._pressure_pending, {}
        return report

    # -- reading ---------------------------------------------------------------------------

    def pending(self, limit: int, after_id: int = 0) -> list[OutboxRow]:
        skip = len(self._published)
        out: list[OutboxRow] = []
        while True:
            rows = self.db.conn.execute(
                "SELECT id, kind, seq, topic, payload, qos, retain FROM outbox WHERE id > ? "
                "ORDER BY id LIMIT ?",
                (after_id, limit + skip),
            ).fetchall()
            for r in rows:
                if r[0] in self._published or (self.hold_status and r[1] == RowKind.STATUS):
                    continue
                out.append(OutboxRow(r[0], RowKind(r[1]), r[2], r[3], bytes(r[4]), r[5],
                                     bool(r[6])))
                if len(out) == limit:
                    return out
            if len(rows) < limit + skip or not rows:
                return out
            after_id = int(rows[-1][0])

    def pending_kind(self, kind: RowKind) -> int:
        row = self.db.conn.execute("SELECT COUNT(*) FROM outbox WHERE kind = ?",
                                   (kind.value,)).fetchone()
        return int(row[0])

    def remove(self, ids: list[int]) -> None:
        """Delete published rows; on a full disk they are remembered and deleted later."""
        if self._published:
            ids = [*sorted(self._published), *ids]
        if not ids:
            return
        try:
            self._delete(ids)
        except StorageError:
            self._published.update(ids)
            return
        self._published.clear()

    def retry_removals(self) -> None:
        """Delete what :meth:`remove` could not (called when the disk works again)."""
        self.remove([])

    def _delete(self, ids: list[int]) -> None:
        with self._transaction():
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                row = self.db.conn.execute(
                    f"SELECT COALESCE(SUM(size), 0), COUNT(*) FROM outbox WHERE id IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchone()
                self.db.conn.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)  # noqa: S608
                self.size -= int(row[0])
                self.count -= int(row[1])
