"""A station and a keeper upgraded from release fb328ab: their databases (tests/fixtures/db-v1,
written by the release's own code with tests/fixtures/make_release_db.py) are migrated, and
then the queued jobs run, the unsent events are published and the pool answer settles the job
at today's keeper. A database from a newer release is refused by the CLI, without a traceback.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.broker import Broker
from tests.support.pool import PoolPlanner, PoolStation, keeper_config, running_keeper
from tests.support.station import agent_config, write_config_file

pytestmark = pytest.mark.timeout(240)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "db-v1"
POOL = "cutting"


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


async def test_release_databases_upgrade_and_nothing_is_lost(tmp_path: Path,
                                                             broker: Broker) -> None:
    # Where the station and the keeper keep their databases (tests/support's layout).
    (tmp_path / "state-cutter-01").mkdir()
    (tmp_path / "keeper").mkdir()
    shutil.copyfile(FIXTURES / "agent.db", tmp_path / "state-cutter-01" / "agent.db")
    shutil.copyfile(FIXTURES / "keeper.db", tmp_path / "keeper" / "keeper.db")

    async with PoolPlanner(broker) as planner, \
            running_keeper(keeper_config(tmp_path, broker)) as keeper:
        assert keeper.keeper is not None
        dispatcher = keeper.keeper.dispatcher
        assert set(dispatcher.jobs) == {"pool-tshirt-7", "pool-tshirt-8"}
        async with PoolStation(tmp_path, broker, "cutter-01", pools=(POOL,)) as station:
            # The two jobs the release had queued run to the end, in their order.
            for job_id in ("tshirt-m-001", "pool-tshirt-7"):
                end = await planner.wait_terminal(job_id, timeout=120)
                assert end["event"] == "succeeded", end
            # The release's unsent answer ("taken") went out on replies/cutter-01, and today's
            # keeper believed it: the job is settled there.
            await planner.wait_for(lambda: any(r["job_id"] == "pool-tshirt-7"
                                               and r["answer"] == "taken"
                                               for r in planner.replies), 30, "the answer")
            await planner.wait_for(lambda: "pool-tshirt-7" not in dispatcher.jobs, 30,
                                   "pool-tshirt-7 settled at the keeper")
            # The job the release's keeper still held waiting is given to the upgraded station.
            end = await planner.wait_terminal("pool-tshirt-8", timeout=120)
            assert end["event"] == "succeeded", end
            assert station.agent.agent is not None
            assert station.agent.agent.db.found_version == 0

    # The release's unsent events were published: seq 1 and 2 (its two "accepted"), and the
    # numbering went on from there without a gap.
    mine = [e for e in planner.events if e["station"] == "cutter-01"]
    accepted = [(e["seq"], e["job_id"]) for e in mine if e["event"] == "accepted"]
    assert accepted[:2] == [(1, "tshirt-m-001"), (2, "pool-tshirt-7")]
    seqs = sorted({e["seq"] for e in mine})
    assert seqs == list(range(1, len(seqs) + 1))
    assert dispatcher.ignored_replies == 0
    assert _user_version(tmp_path / "state-cutter-01" / "agent.db") == 2
    assert _user_version(tmp_path / "keeper" / "keeper.db") == 1


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_a_database_from_a_newer_release_is_refused_by_the_cli(tmp_path: Path,
                                                               broker: Broker) -> None:
    config = agent_config(tmp_path, broker, tmp_path / "ttyNONE")
    config.storage.dir.mkdir(parents=True)
    db = config.storage.dir / "agent.db"
    shutil.copyfile(FIXTURES / "agent.db", db)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    before = db.read_bytes()

    result = _run_cli("run", "--config", str(write_config_file(tmp_path / "agent.toml", config)))
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert "station-agent: schema_too_new:" in result.stderr
    for part in (str(db), "schema version 7", "versions up to 2", "Install the release"):
        assert part in result.stderr, part
    assert db.read_bytes() == before, "the newer file is neither used nor changed"

    keeper_dir = tmp_path / "keeper"
    keeper_dir.mkdir()
    shutil.copyfile(FIXTURES / "keeper.db", keeper_dir / "keeper.db")
    conn = sqlite3.connect(keeper_dir / "keeper.db")
    conn.execute("PRAGMA user_version = 5")
    conn.close()
    toml = tmp_path / "keeper.toml"
    toml.write_text(f'keeper_id = "keeper-test"\n[mqtt]\nhost = "{broker.host}"\n'
                    f"port = {broker.port}\n[storage]\ndir = \"{keeper_dir}\"\n")
    result = _run_cli("pool-keeper", "--config", str(toml))
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert "schema version 5" in result.stderr and "versions up to 1" in result.stderr
    assert _user_version(keeper_dir / "keeper.db") == 5
