"""Database.sync_off_loop: the WAL's fsync runs in a worker thread while the loop goes on."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path

import pytest

from agent.storage import Database, StorageError


async def test_the_loop_runs_while_the_wal_is_synced(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(tmp_path / "agent.db")
    db.bump_counter("written")
    loop_ran = threading.Event()
    synced: list[tuple[str, int]] = []
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        # The fsync does not finish until the event loop has run a callback meanwhile: on the
        # loop's own thread this would wait for ever (the timeout below fails the test).
        assert loop_ran.wait(timeout=5), "the event loop did not run during the fsync"
        synced.append((threading.current_thread().name, os.fstat(fd).st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    sync = asyncio.create_task(db.sync_off_loop())
    await asyncio.sleep(0)
    asyncio.get_running_loop().call_soon(loop_ran.set)
    await sync
    wal_inode = os.stat(f"{db.path}-wal").st_ino
    assert synced == [(synced[0][0], wal_inode)]
    assert synced[0][0] != threading.current_thread().name
    db.close()


async def test_a_failed_fsync_off_the_loop_faults_the_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(tmp_path / "agent.db")
    db.bump_counter("written")
    faults: list[StorageError] = []
    db.on_fault.append(faults.append)

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StorageError) as caught:
        await db.sync_off_loop()
    assert caught.value.reason == "io_error"
    assert db.fault is caught.value and faults == [caught.value]
    monkeypatch.undo()
    await db.sync_off_loop()  # the WAL is opened again: the next sync works
    db.close()
