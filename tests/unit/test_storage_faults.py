"""The database, the outbox, the lock and the doctor on a real full, damaged or shared disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.dialects.program import Program
from agent.doctor import CheckStatus, check_database
from agent.instance_lock import AlreadyRunning, InstanceLock
from agent.jobs.runner import JobRunner, PendingFinal
from agent.jobs.states import JobState, Trigger
from agent.jobs.store import JobStore
from agent.link.outbox import Outbox, RowKind
from agent.link.topics import StationTopics
from agent.reporter import Reporter
from agent.schemas.event import EventType
from agent.storage import Database, ReservedFile, StorageError, StorageUnusable
from tests.support.tmpfs import fill, small_tmpfs


def test_full_disk_write_raises_storage_error_and_the_database_recovers(
        tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        db = Database(disk / "agent.db")
        faults: list[StorageError] = []
        recovered: list[bool] = []
        db.on_fault.append(faults.append)
        db.on_recover.append(lambda: recovered.append(True))
        db.bump_counter("before")
        filler = fill(disk)
        big = "x" * 200_000

        def write_big() -> None:
            with db.transaction():
                db.conn.execute("INSERT INTO meta (key, value) VALUES ('big', length(?))", (big,))
                db.conn.execute("CREATE TABLE junk (t TEXT)")
                db.conn.execute("INSERT INTO junk VALUES (?)", (big,))

        with pytest.raises(StorageError) as caught:
            write_big()
        assert caught.value.reason == "disk_full"
        assert db.fault is caught.value and len(faults) == 1
        assert not db.conn.in_transaction  # rolled back: the next write is not refused for that
        assert db.probe() is False and db.fault is not None
        filler.unlink()
        assert db.probe() is True
        assert db.fault is None and recovered == [True]
        assert db.bump_counter("after") == 1
        assert db.counter("big") == 0  # the failed transaction left nothing behind
        db.close()


def test_outbox_rows_published_on_a_full_disk_are_not_sent_again(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        db = Database(disk / "agent.db")
        outbox = Outbox(db, "cutter-01", max_bytes=1 << 20)
        for i in range(3):
            outbox.add_message(RowKind.POOL, "t", b"x" * 100 + bytes([i]))
        rows = outbox.pending(10)
        filler = fill(disk)
        for _ in range(50):  # until the WAL has no room left either
            try:
                with db.transaction():
                    db.conn.execute("INSERT INTO meta (key, value) VALUES (?, 1)",
                                    (os.urandom(8).hex() * 100,))
            except StorageError:
                break
        outbox.remove([rows[0].id, rows[1].id])  # must not raise
        assert [r.id for r in outbox.pending(10)] == [rows[2].id]
        filler.unlink()
        outbox.retry_removals()
        assert [r.id for r in outbox.pending(10)] == [rows[2].id]
        assert outbox.count == 1
        db.close()


def test_damaged_database_is_unusable_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    path.write_bytes(b"\x00garbage" * 512)
    with pytest.raises(StorageUnusable) as caught:
        Database(path)
    assert caught.value.reason == "corrupt"
    assert str(path) in caught.value.advice and "mv " in caught.value.advice


def test_second_lock_on_a_directory_names_the_holder(tmp_path: Path) -> None:
    with InstanceLock(tmp_path, "agent", "station agent"):
        with pytest.raises(AlreadyRunning) as caught:
            InstanceLock(tmp_path, "agent", "station agent").acquire()
        assert caught.value.pid == os.getpid()
        assert f"PID {os.getpid()}" in caught.value.message
        # Another name in the same directory is another service: allowed.
        with InstanceLock(tmp_path, "keeper", "pool keeper"):
            pass
    with InstanceLock(tmp_path, "agent", "station agent"):
        pass  # released with the first holder


def _config(tmp_path: Path) -> object:
    return parse_config({"station_id": "cutter-01", "profile": "grbl-1.1",
                         "serial": {"port": "/dev/null"},
                         "storage": {"dir": str(tmp_path)}})


def test_doctor_says_the_database_is_damaged_and_who_holds_the_lock(tmp_path: Path) -> None:
    config = _config(tmp_path)
    Database(tmp_path / "agent.db").close()
    rows = {r.check: r for r in check_database(config)}  # type: ignore[arg-type]
    assert rows["database"].status is CheckStatus.OK
    with InstanceLock(tmp_path, "agent", "station agent"):
        rows = {r.check: r for r in check_database(config)}  # type: ignore[arg-type]
        assert str(os.getpid()) in rows["agent lock"].detail
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"agent.db{suffix}").unlink(missing_ok=True)
    (tmp_path / "agent.db").write_bytes(b"not a database" * 300)
    rows = {r.check: r for r in check_database(config)}  # type: ignore[arg-type]
    assert rows["database"].status is CheckStatus.FAIL
    assert "damaged" in rows["database"].detail and "mv " in rows["database"].hint


def _runner(db: Database, path: Path) -> JobRunner:
    reporter = Reporter(Outbox(db, "cutter-01", max_bytes=1 << 20),
                        StationTopics("mf", "cutter-01"), 1)
    runner = JobRunner(db, JobStore(db), reporter, None,  # type: ignore[arg-type]
                       may_start=lambda: None, on_change=lambda: None)
    runner.journal = ReservedFile(path)
    return runner


def test_end_kept_in_the_reserved_file_is_recorded_by_the_next_start(tmp_path: Path) -> None:
    db = Database(tmp_path / "agent.db")
    store = JobStore(db)
    store.add("front-1", "gcode", "{}", Program.from_text("1\tG0X1\n2\tG0X2\n3\tG0X3"))
    store.transition("front-1", Trigger.START)
    store.transition("front-1", Trigger.PAUSE)  # its resume was never recorded
    first = _runner(db, tmp_path / "pending-ends")
    assert first.journal is not None and first.journal.open() == b""
    first.pending["front-1"] = PendingFinal("front-1", Trigger.SUCCEED, EventType.SUCCEEDED,
                                            {"lines_total": 3, "lines_done": 3}, lines_done=3)
    assert first._save_pending()
    first.journal.close()
    assert (tmp_path / "pending-ends").stat().st_size == 64 * 1024  # its space, taken up front

    again = _runner(db, tmp_path / "pending-ends")  # the next start
    assert again.recover() == []  # not interrupted: it had ended
    record = store.get("front-1")
    assert record is not None and record.state is JobState.SUCCEEDED
    assert record.lines_done == 3
    last = again.reporter.outbox.pending(100)[-1]
    assert b'"event":"succeeded"' in last.payload and b'"recorded_late":true' in last.payload
    assert again.journal is not None and again.journal.open() == b"[]"  # cleared
    db.close()
