"""Schema versions: new files at the latest version, release fb328ab's files migrated in order,
files from a newer release refused (agent/migrations.py)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent import migrations
from agent.doctor import CheckResult, CheckStatus, check_database
from agent.jobs.states import JobState
from agent.jobs.store import JobStore
from agent.link.outbox import Outbox, RowKind
from agent.migrations import (
    AGENT_MIGRATIONS,
    KEEPER_MIGRATIONS,
    Migration,
    MigrationError,
    SchemaTooNew,
)
from agent.pools.dispatch import Dispatcher
from agent.pools.store import KEEPER_SCHEMA, PoolJobState, PoolJobStore
from agent.storage import Database, StorageError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "db-v1"


def _version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _release_copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copyfile(FIXTURES / name, target)
    assert _version(target) == 0, "the fixture must be unversioned, as release fb328ab wrote it"
    return target


# -- new files ---------------------------------------------------------------------------------


def test_new_files_start_at_the_latest_version(tmp_path: Path) -> None:
    Database(tmp_path / "agent.db").close()
    Database(tmp_path / "keeper.db", extra_schema=KEEPER_SCHEMA,
             migrations=KEEPER_MIGRATIONS).close()
    assert _version(tmp_path / "agent.db") == migrations.latest(AGENT_MIGRATIONS) == 2
    assert _version(tmp_path / "keeper.db") == migrations.latest(KEEPER_MIGRATIONS) == 1


def test_a_new_file_skips_the_steps(tmp_path: Path) -> None:
    ran: list[int] = []
    steps = (Migration(2, "two", lambda c: ran.append(2)),
             Migration(3, "three", lambda c: ran.append(3)))
    db = Database(tmp_path / "agent.db", migrations=steps)
    assert ran == [] and db.found_version == 0
    db.close()
    assert _version(tmp_path / "agent.db") == 3
    # Opened again: nothing to do.
    Database(tmp_path / "agent.db", migrations=steps).close()
    assert ran == []


# -- injected steps: order, transactions, resumption --------------------------------------------


def _old_file(path: Path) -> None:
    """An unversioned file with tables (release fb328ab's kind), one job row in it."""
    db = Database(path)
    db.conn.execute("PRAGMA user_version = 0")
    db.conn.execute("INSERT INTO meta (key, value) VALUES ('marker', 7)")
    db.close()
    assert _version(path) == 0


def _add_column(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE meta ADD COLUMN note TEXT")
    conn.execute("UPDATE meta SET note = 'v2'")


def test_steps_run_in_order_from_an_unversioned_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    _old_file(path)
    seen: list[tuple[int, int]] = []

    def record(n: int) -> Migration:
        def apply(conn: sqlite3.Connection) -> None:
            assert conn.in_transaction, "each step runs inside a transaction"
            seen.append((n, int(conn.execute("PRAGMA user_version").fetchone()[0])))
        return Migration(n, f"step {n}", apply)

    steps = (Migration(2, "a column", _add_column), record(3), record(4))
    db = Database(path, migrations=steps)
    assert db.found_version == 0
    # Step 3 saw the file at 2, step 4 at 3: one after the other, each committed with its
    # version.
    assert seen == [(3, 2), (4, 3)]
    assert db.conn.execute("SELECT value, note FROM meta WHERE key = 'marker'").fetchone() == (
        7, "v2")
    db.close()
    assert _version(path) == 4


def test_a_failing_step_leaves_the_file_at_the_last_whole_version(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    _old_file(path)

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = 999 WHERE key = 'marker'")
        raise RuntimeError("a bug in step 3")

    with pytest.raises(MigrationError) as caught:
        Database(path, migrations=(Migration(2, "a column", _add_column),
                                   Migration(3, "broken", half_then_fail)))
    assert "version 3" in caught.value.message and "unchanged at version 2" in caught.value.message
    assert _version(path) == 2
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value, note FROM meta WHERE key = 'marker'").fetchone() == (
        7, "v2"), "step 3's half-done write was rolled back, step 2's kept"
    conn.close()

    # Fixed in the next release: it goes on from version 2 (step 2 does not run again).
    ran: list[int] = []
    db = Database(path, migrations=(Migration(2, "a column", lambda c: ran.append(2)),
                                    Migration(3, "fixed", lambda c: ran.append(3))))
    assert ran == [3] and db.found_version == 2
    db.close()
    assert _version(path) == 3


def test_steps_must_be_numbered_without_gaps(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected 3"):
        Database(tmp_path / "agent.db", migrations=(Migration(2, "a", lambda c: None),
                                                    Migration(4, "b", lambda c: None)))


# -- newer files -------------------------------------------------------------------------------


def test_a_file_from_a_newer_release_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = _release_copy(tmp_path, "agent.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 9")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(SchemaTooNew) as caught:
        Database(path)
    err = caught.value
    assert (err.found, err.known, err.path) == (9, 2, path)
    assert err.code == "schema_too_new"
    for part in (str(path), "schema version 9", "versions up to 2", "newer release",
                 "Install the release that wrote it", "move"):
        assert part in err.advice, part
    assert path.read_bytes() == before, "a refused file is not touched"
    assert _version(path) == 9

    # The keeper's database too.
    keeper = _release_copy(tmp_path, "keeper.db")
    conn = sqlite3.connect(keeper)
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    with pytest.raises(SchemaTooNew, match="knows up to 1"):
        Database(keeper, extra_schema=KEEPER_SCHEMA, migrations=KEEPER_MIGRATIONS)


# -- release fb328ab's files (tests/fixtures/db-v1, made by make_release_db.py) ------------------


def test_the_release_station_database_is_migrated_and_loses_nothing(tmp_path: Path) -> None:
    path = _release_copy(tmp_path, "agent.db")
    raw = sqlite3.connect(path)
    rows_before = raw.execute("SELECT id, kind, seq, topic, payload, qos, retain FROM outbox "
                              "ORDER BY id").fetchall()
    raw.close()

    db = Database(path)
    assert db.found_version == 0
    assert _version(path) == 2
    store = JobStore(db)
    queued = store.queued()
    assert [j.job_id for j in queued] == ["tshirt-m-001", "pool-tshirt-7"]
    assert all(j.state is JobState.QUEUED and j.lines_total > 300 for j in queued)
    assert len(store.program("tshirt-m-001")) == queued[0].lines_total
    assert json.loads(queued[0].request)["meta"] == {"garment": "tshirt-m", "order": "PO-1142"}
    assert db.conn.execute("SELECT token, pool, job_id, answer FROM pool_assignments").fetchall(
    ) == [("1-4", "cutting", "pool-tshirt-7", "taken")]

    outbox = Outbox(db, "cutter-01", max_bytes=64 * 1024 * 1024)
    pending = outbox.pending(100)
    assert len(pending) == len(rows_before) == 5
    assert [r.seq for r in pending if r.kind is RowKind.EVENT] == [1, 2]
    for row, old in zip(pending, rows_before, strict=True):
        assert (row.id, row.kind.value, row.seq, row.payload, row.qos, row.retain) == (
            old[0], old[1], old[2], bytes(old[4]), old[5], bool(old[6]))
        if row.kind is RowKind.POOL:
            # The one real change: today's keeper reads answers only on replies/<station>.
            assert old[3] == "mf/pools/cutting/replies"
            assert row.topic == "mf/pools/cutting/replies/cutter-01"
        else:
            assert row.topic == old[3]
    size = db.conn.execute("SELECT SUM(size) FROM outbox").fetchone()[0]
    assert size == sum(len(r.payload) + len(r.topic) + 48 for r in pending)
    # Numbering goes on where the release left it.
    assert db.counter("next_seq") == 2 and db.counter("next_arrival") == 2
    db.close()

    # Opened again (the next start): already at 2, nothing changes.
    again = Database(path)
    assert again.found_version == 2
    assert again.conn.execute("SELECT topic FROM outbox WHERE kind = 'pool'").fetchall() == [
        ("mf/pools/cutting/replies/cutter-01",)]
    again.close()


def test_the_release_keeper_database_is_stamped_and_its_answers_settle(tmp_path: Path) -> None:
    path = _release_copy(tmp_path, "keeper.db")
    db = Database(path, extra_schema=KEEPER_SCHEMA, migrations=KEEPER_MIGRATIONS)
    assert db.found_version == 0 and _version(path) == 1
    assert db.conn.execute("SELECT job_id, state, station, token, answer FROM pool_jobs "
                           "ORDER BY arrival").fetchall() == [
        ("pool-tshirt-6", "done", "cutter-02", "1-2", "taken"),
        ("pool-tshirt-7", "assigned", "cutter-01", "1-4", None),
        ("pool-tshirt-8", "waiting", None, None, None),
    ]
    d = Dispatcher(PoolJobStore(db), db.bump_counter("session"), offer_timeout_s=5.0,
                   max_payload_bytes=16 * 1024 * 1024)
    assert {j.job_id: j.state for j in d.jobs.values()} == {
        "pool-tshirt-7": PoolJobState.ASSIGNED, "pool-tshirt-8": PoolJobState.WAITING}

    # The station's unsent answer, as its migrated outbox holds it, is believed by today's
    # keeper on the topic it now goes to (the release's "<session>-<n>" token still counts).
    station_db = Database(_release_copy(tmp_path, "agent.db"))
    topic, payload = station_db.conn.execute(
        "SELECT topic, payload FROM outbox WHERE kind = 'pool'").fetchone()
    station_db.close()
    _, _, pool, _, station = topic.split("/")
    d.on_reply(pool, station, bytes(payload), 10.0)
    assert d.ignored_replies == 0
    assert db.conn.execute("SELECT state, answer FROM pool_jobs WHERE job_id = 'pool-tshirt-7'"
                           ).fetchone() == ("done", "taken")
    db.close()


def test_an_answer_without_a_station_is_left_alone(tmp_path: Path) -> None:
    path = _release_copy(tmp_path, "agent.db")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE outbox SET payload = ? WHERE kind = 'pool'", (b"not json",))
    conn.commit()
    conn.close()
    db = Database(path)
    assert db.conn.execute("SELECT topic FROM outbox WHERE kind = 'pool'").fetchone() == (
        "mf/pools/cutting/replies",)
    assert _version(path) == 2
    db.close()


def test_doctor_shows_the_schema_version(tmp_path: Path) -> None:
    config = SimpleNamespace(storage=SimpleNamespace(dir=tmp_path))
    _release_copy(tmp_path, "agent.db")

    def row() -> CheckResult:
        return {r.check: r for r in check_database(config)}["schema version"]  # type: ignore[arg-type]

    assert row().status is CheckStatus.OK and "migrated to 2 at the next start" in row().detail
    Database(tmp_path / "agent.db").close()
    assert row().status is CheckStatus.OK and row().detail == "2, the latest"
    conn = sqlite3.connect(tmp_path / "agent.db")
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    assert row().status is CheckStatus.FAIL and "newer than this release knows (2)" in row().detail


def test_a_full_disk_during_a_step_is_a_storage_error_and_changes_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    _old_file(path)

    def full(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET value = 1")
        raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(StorageError) as caught:
        Database(path, migrations=(Migration(2, "fills the disk", full),))
    assert caught.value.reason == "disk_full"
    assert _version(path) == 0
    # Space again: the next start migrates.
    Database(path, migrations=(Migration(2, "fits", _add_column),)).close()
    assert _version(path) == 2
