"""Schema versions of the agent's and the keeper's SQLite databases, and the steps between them.

The version is SQLite's ``PRAGMA user_version`` (in the file's header, so it changes inside the
same transaction as the tables it describes). docs/deployment.md, "Upgrades and downgrades".

- Version 1 is the schema of release fb328ab, which stamped nothing: a file with
  ``user_version`` 0 that already has tables is such a file, and is taken as version 1.
- A new (empty) file gets the latest schema and the latest version in one transaction.
- An older file is brought forward one :class:`Migration` at a time, in order; each step and
  its new version commit together, so a power cut or a full disk in the middle leaves the file
  at the last version that fully applied, and the next start goes on from there.
- A file of a version newer than this code knows (written by a later release, then downgraded)
  is refused with :class:`SchemaTooNew`: it is never used, changed, or replaced.

The agent's database (``agent.db``) and the keeper's (``keeper.db``) have separate lists. A step
belongs in a list only when a release changed a table or what its rows hold.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.errors import StationAgentError

log = logging.getLogger(__name__)

# The version of an unversioned file that has tables: release fb328ab's schema.
UNVERSIONED = 1


@dataclass(frozen=True)
class Migration:
    """One step: brings a database from ``version - 1`` to ``version``.

    ``apply`` runs inside the step's transaction; it must use ``conn.execute`` (not
    ``executescript``, which would commit half-way).
    """

    version: int
    description: str
    apply: Callable[[sqlite3.Connection], None]


class SchemaTooNew(StationAgentError):
    """The database was written by a newer release: its schema version is above this code's.

    Carries ``advice`` like :class:`agent.storage.StorageUnusable` (the CLI prints it and exits
    with status 3).
    """

    code = "schema_too_new"

    def __init__(self, path: Path, found: int, known: int) -> None:
        self.path = path
        self.found = found
        self.known = known
        self.advice = (
            f"The database {path} has schema version {found}, but this station-agent knows "
            f"versions up to {known}: it was written by a newer release, and this older one "
            f"cannot use it safely. Nothing was changed and the agent has not started. Install "
            f"the release that wrote it (or a newer one) again. To run this release instead, "
            f"stop the service and move {path} (and {path.name}-wal, {path.name}-shm beside it) "
            f"aside: it then starts with an empty database, without the jobs and unsent events "
            f"the file holds.")
        super().__init__(f"the database {path} has schema version {found}; this release knows "
                         f"up to {known}")


class MigrationError(StationAgentError):
    """A migration step failed for a reason other than storage (a bug); nothing of it applied."""

    code = "migration_failed"


def latest(migrations: Sequence[Migration]) -> int:
    return migrations[-1].version if migrations else UNVERSIONED


def check(migrations: Sequence[Migration]) -> None:
    """The steps go 2, 3, 4, ... with no gap or repeat."""
    for expected, step in enumerate(migrations, start=UNVERSIONED + 1):
        if step.version != expected:
            raise ValueError(f"migration {step.description!r} is numbered {step.version}, "
                             f"expected {expected}")


def version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _has_tables(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()
    return int(row[0]) > 0


def refuse_newer(conn: sqlite3.Connection, path: Path, migrations: Sequence[Migration]) -> None:
    """Raise :class:`SchemaTooNew` if the file is newer than ``migrations`` know (reads only:
    call it before anything that writes, even a ``journal_mode`` pragma)."""
    found, known = version(conn), latest(migrations)
    if found > known:
        raise SchemaTooNew(path, found, known)


def prepare(conn: sqlite3.Connection, path: Path, schema: str,
            migrations: Sequence[Migration]) -> int:
    """Bring the database on ``conn`` to the latest version; return the version it had.

    ``schema`` is the latest schema (``CREATE ... IF NOT EXISTS``). ``conn`` is in autocommit
    mode (``isolation_level=None``). Raises :class:`SchemaTooNew`; storage errors come out as
    the ``sqlite3`` / ``OSError`` they are, for the caller to classify.
    """
    check(migrations)
    refuse_newer(conn, path, migrations)
    known, found = latest(migrations), version(conn)
    if found == 0 and not _has_tables(conn):
        # New file. The script commits (or, failing, is rolled back below) as one transaction.
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{schema}\nPRAGMA user_version = {known};\n"
                               f"COMMIT;")
        except BaseException:
            _rollback(conn)
            raise
        return 0
    current = found or UNVERSIONED
    for step in migrations:
        if step.version <= current:
            continue
        _apply(conn, path, step)
        current = step.version
    if found == 0:
        # Release fb328ab's file with nothing to migrate: stamp it, so a later release knows.
        conn.execute(f"PRAGMA user_version = {current}")
    # Tables and indexes added in the latest schema without a step of their own.
    conn.executescript(schema)
    return found


def _apply(conn: sqlite3.Connection, path: Path, step: Migration) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        step.apply(conn)
        conn.execute(f"PRAGMA user_version = {step.version}")
        conn.execute("COMMIT")
    except (sqlite3.Error, OSError):
        _rollback(conn)
        raise
    except BaseException as exc:
        _rollback(conn)
        if isinstance(exc, Exception) and not isinstance(exc, StationAgentError):
            raise MigrationError(f"migrating {path} to version {step.version} "
                                 f"({step.description}) failed: {exc!r}; the file is unchanged "
                                 f"at version {step.version - 1}") from exc
        raise
    log.warning("migrated %s to schema version %d: %s", path, step.version, step.description)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("rollback failed: %s", exc)


# -- the steps ---------------------------------------------------------------------------------


def _replies_name_their_station(conn: sqlite3.Connection) -> None:
    """Release fb328ab queued a station's answers to the keeper (``pool`` outbox rows) on
    ``<prefix>/pools/<pool>/replies``; the keeper now reads them only on
    ``.../replies/<station>`` (the topic the broker's ACL pins to that station) and ignores the
    old one. Unsent answers (``taken``, ``rejected``, ``handback``: the ones that decide where
    a pool job is) are moved to the new topic, named by the ``station`` in their own payload."""
    rows = conn.execute(
        "SELECT id, topic, payload, size FROM outbox WHERE kind = 'pool' AND topic LIKE "
        "'%/pools/%/replies'").fetchall()
    for row_id, topic, payload, size in rows:
        try:
            station = json.loads(bytes(payload))["station"]
        except (ValueError, KeyError, TypeError):
            station = None
        if not isinstance(station, str) or not station or any(c in station for c in "/+#"):
            log.warning("outbox row %d on %s names no usable station: left as it is (the "
                        "keeper will ignore it)", row_id, topic)
            continue
        new = f"{topic}/{station}"
        conn.execute("UPDATE outbox SET topic = ?, size = ? WHERE id = ?",
                     (new, int(size) + len(new) - len(topic), row_id))


# agent.db (the station's): meta, jobs, outbox, pool_assignments.
AGENT_MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "pool answers in the outbox go to replies/<station>",
              _replies_name_their_station),
)

# keeper.db: pool_jobs (and the same meta and outbox tables, which never hold pool answers).
# Unchanged since release fb328ab: its "<session>-<number>" tokens are still read as they are.
KEEPER_MIGRATIONS: tuple[Migration, ...] = ()
