"""A full, failing, damaged or read-only disk, and a second agent on the same storage: issue 13.

The storage directory is a real small tmpfs (mounted by the test; root, as in CI) filled by a
real file until the kernel says ENOSPC; the broker is a real Mosquitto, the machine the GRBL
emulator on a pty, and the CLI tests run ``station-agent`` as a child process.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

import agent.app as app_module
import agent.link.session as session_module
from agent.aio import wait_within
from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint
from agent.garments import knife_gcode, tshirt_pieces
from agent.instance_lock import EXIT_ALREADY_RUNNING
from agent.jobs.states import JobState
from agent.storage import Database
from tests.support.broker import Broker
from tests.support.eventually import eventually, eventually_sync
from tests.support.planner import Planner
from tests.support.rig import Rig, grbl_rig
from tests.support.station import (
    AgentProcess,
    RunningAgent,
    agent_config,
    background,
    running_agent,
    write_config_file,
)
from tests.support.tmpfs import fill, remount, small_tmpfs

pytestmark = pytest.mark.timeout(240)

LABEL = "G21 G90\nG0 X30 Y900\nG1 X70 Y900 F1200\n"
LABEL_CUT = "G1X70Y900F1200"
ESTOP, DOOR, START, RESET = 17, 27, 22, 23
GPIO = {"estop": {"pin": ESTOP}, "door": {"pin": DOOR}, "start": {"pin": START},
        "reset": {"pin": RESET}, "light_red": {"pin": 13}}


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process agents try the disk again often, so the tests do not wait for the defaults.
    monkeypatch.setattr(app_module, "STORAGE_RETRY_S", 0.2)
    monkeypatch.setattr(session_module, "HELD_RETRY_S", 0.3)


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.reset()
    factory.close()


async def _until(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    await eventually(predicate, what=what, timeout=timeout)


def _assert_seq_unbroken(events: list[dict[str, Any]]) -> None:
    seqs = [e["seq"] for e in events]
    assert len(seqs) == len(set(seqs)), "an event was published twice"
    assert sorted(seqs) == list(range(seqs[0], seqs[0] + len(seqs))), "an event went missing"


def _config(tmp_path: Path, broker: Broker, link: Path, state: Path, **extra: Any) -> Any:
    return agent_config(tmp_path, broker, link, **_storage(state), **extra)


def _storage(state: Path) -> dict[str, Any]:
    return {"storage": {"dir": str(state), "outbox_max_bytes": 256 * 1024}}


# -- a job arriving while the disk is full ----------------------------------------------------


async def test_job_on_a_full_disk_is_not_acknowledged_and_runs_once_space_returns(
        tmp_path: Path, broker: Broker) -> None:
    state = tmp_path / "state"
    with small_tmpfs(state, "8m"):
        async with grbl_rig(tmp_path, broker, latency_s=0.001, motion=True,
                            config=_storage(state)) as rig:
            emulator, planner, running = rig.emulator, rig.planner, rig.agent
            await planner.wait_status("idle")
            agent = running.agent
            assert agent is not None
            filler = fill(state)
            await planner.submit({"job_id": "label-full", "kind": "gcode",
                                  "program": LABEL})
            status = await planner.wait_status("storage_error")
            assert status["job_id"] is None
            # Tried again and again, never stored, never acknowledged, never run.
            await rig.eventually(lambda: agent.link.stats.not_stored >= 3, "retries")
            assert agent.station.store.get("label-full") is None
            assert planner.names_for("label-full") == []
            assert LABEL_CUT not in emulator.executed
            assert running.task is not None and not running.task.done()
            filler.unlink()
            done = await planner.wait_terminal("label-full", timeout=60)
            assert done["event"] == "succeeded"
            await planner.wait_status("idle")
    names = planner.names_for("label-full")
    assert names[0] == "accepted" and names[-1] == "succeeded"
    assert names.count("accepted") == 1 and names.count("started") == 1
    assert emulator.executed.count(LABEL_CUT) == 1
    storage = [e for e in planner.events if e["event"] == "storage_error"]
    assert storage and storage[-1]["detail"]["resolved"] is True
    assert storage[-1]["detail"]["error"]["code"] == "disk_full"
    assert storage[-1]["detail"]["path"].endswith("agent.db")
    _assert_seq_unbroken(planner.events)


async def test_job_not_stored_is_redelivered_by_the_broker_after_a_restart(
        tmp_path: Path, broker: Broker) -> None:
    state = tmp_path / "state"
    with small_tmpfs(state, "8m"):
        async with grbl_rig(tmp_path, broker, latency_s=0.001, motion=True,
                            config=_storage(state)) as rig:
            emulator, planner = rig.emulator, rig.planner
            await planner.wait_status("idle")
            filler = fill(state)
            await planner.submit({"job_id": "label-later", "kind": "gcode", "program": LABEL})
            await planner.wait_status("storage_error")
            agent = rig.agent.agent
            assert agent is not None
            await rig.eventually(lambda: agent.link.stats.not_stored >= 1, "not stored")
            await rig.stop_agent()
            # Stopped while the disk is still full: the job lives only at the broker.
            await planner.wait_status("offline")
            filler.unlink()
            assert LABEL_CUT not in emulator.executed
            await rig.start_agent()
            done = await planner.wait_terminal("label-later", timeout=60)
            assert done["event"] == "succeeded"
    names = planner.names_for("label-later")
    assert names.count("accepted") == 1 and names.count("succeeded") == 1
    assert emulator.executed.count(LABEL_CUT) == 1


async def test_agent_starting_on_a_full_disk_waits_for_space_instead_of_exiting(
        tmp_path: Path, broker: Broker) -> None:
    link, state = tmp_path / "ttyGRBL", tmp_path / "state"
    with small_tmpfs(state, "8m"):
        config = _config(tmp_path, broker, link, state)
        async with PtyEndpoint(link, baud=115_200, latency_s=0.001) as endpoint:
            emulator = GrblEmulator(endpoint, motion=True)
            async with background(emulator.run, "grbl"), Planner(
                broker.host, broker.port
            ) as planner:
                async with running_agent(config) as first:  # the last run: its session, its db
                    await first.wait_broker()
                filler = fill(state)
                await planner.submit({"job_id": "label-boot", "kind": "gcode",
                                      "program": LABEL})
                running = RunningAgent(config)
                task = asyncio.create_task(app_module.run_agent(
                    config, stop=running.stop, on_ready=running._on_ready))
                running.task = task
                try:
                    await asyncio.sleep(1.5)  # several storage retries
                    assert not task.done(), "the agent exited on a full disk"
                    assert running.agent is None  # not started: nothing it could not record
                    filler.unlink()
                    await wait_within(running._ready.wait(), 20)
                    done = await planner.wait_terminal("label-boot", timeout=60)
                finally:
                    await running.shutdown()
    assert done["event"] == "succeeded"
    assert emulator.executed.count(LABEL_CUT) == 1


# -- the disk filling while a job is cutting ----------------------------------------------------


async def _wire_up(rig: Rig[GrblEmulator], pins: MockFactory) -> None:
    """The safety inputs connected, the boot e-stop released and reset, the station started."""
    station = rig.station
    pins.pin(ESTOP).drive_low()  # NC contacts closed: released
    pins.pin(DOOR).drive_low()
    await rig.eventually(lambda: not station.estop_input_pressed and not station.door_open,
                         "e-stop released and door shut")
    await _press(pins, RESET)
    await rig.eventually(lambda: not station.estop_latched, "the latch to clear")
    await _press(pins, START)  # after an e-stop and reset, a person starts the station
    await rig.eventually(lambda: station.runner.start_hold is None, "the start")


async def _press(pins: MockFactory, pin: int) -> None:
    pins.pin(pin).drive_low()
    await asyncio.sleep(0.1)
    pins.pin(pin).drive_high()


async def test_disk_full_mid_job_the_cut_finishes_and_its_end_is_recorded_when_space_returns(
        tmp_path: Path, broker: Broker, pins: MockFactory) -> None:
    state = tmp_path / "state"
    program = knife_gcode(tshirt_pieces()[:2], feed_mm_min=30_000)
    with small_tmpfs(state, "8m"):
        async with grbl_rig(tmp_path, broker, latency_s=0.001, motion=True, pin_factory=pins,
                            config={**_storage(state), "gpio": GPIO}) as rig:
            emulator, planner, running = rig.emulator, rig.planner, rig.agent
            await _wire_up(rig, pins)
            station = rig.station
            await planner.wait_status("idle")
            await planner.submit({"job_id": "front-full", "kind": "gcode", "program": program})
            started = await planner.wait_event("front-full", "started")
            total = started["detail"]["lines_total"]
            await rig.eventually(lambda: len(emulator.executed) > 30, "cutting")
            filler = fill(state)
            status = await planner.wait_status("storage_error")
            assert status["job_id"] == "front-full"
            # The machine keeps cutting to the end; the end waits in memory.
            await rig.eventually(lambda: "front-full" in station.runner.pending,
                                 "the machine finishing the job", 120)
            assert station.runner.pending["front-full"].event.value == "succeeded"
            assert running.task is not None and not running.task.done()
            ended = {"succeeded", "failed", "interrupted", "canceled"}
            assert not ended & set(planner.names_for("front-full"))
            # The e-stop still stops the machine and shows, with the disk full.
            resets = emulator.resets
            pins.pin(ESTOP).drive_high()
            await rig.eventually(lambda: station.estop_latched and emulator.resets > resets,
                                 "the e-stop latched and the machine reset")
            await planner.wait_status("estop")
            assert pins.pin(13).state  # the red light
            pins.pin(ESTOP).drive_low()
            await rig.eventually(lambda: not station.estop_input_pressed, "e-stop released")
            await _press(pins, RESET)
            await rig.eventually(lambda: not station.estop_latched, "the latch to clear")
            await planner.wait_status("storage_error")
            # Space returns: the end is recorded, as it happened, and work goes on.
            filler.unlink()
            done = await planner.wait_terminal("front-full", timeout=60)
            await planner.wait_status("awaiting_operator")  # the e-stop's start hold
            await _press(pins, START)
            await planner.wait_status("idle")
            await planner.submit({"job_id": "label-after", "kind": "gcode", "program": LABEL})
            after = await planner.wait_terminal("label-after", timeout=60)
            await rig.stop_agent()
            assert done["event"] == "succeeded"
            assert done["detail"]["recorded_late"] is True
            assert done["detail"]["lines_done"] == total
            assert after["event"] == "succeeded"
            # Across a restart (no GPIO this time) the job stays succeeded: nothing reported
            # interrupted.
            again = await rig.start_agent(_config(tmp_path, broker, rig.link, state))
            await planner.wait_status("idle")
            assert again.agent is not None
            record = again.agent.station.store.get("front-full")
            assert record is not None and record.state is JobState.SUCCEEDED
    names = planner.names_for("front-full")
    assert "interrupted" not in names and names.count("succeeded") == 1
    storage = [e for e in planner.events if e["event"] == "storage_error"]
    assert storage[-1]["detail"]["resolved"] is True
    # In the order it happened: the storage fault, then the job's end.
    order = [e["event"] for e in planner.events if e["event"] in ("storage_error", "succeeded")]
    assert order.index("storage_error") < order.index("succeeded")
    _assert_seq_unbroken(planner.events)


async def test_job_finished_on_a_full_disk_stays_finished_across_a_restart(
        tmp_path: Path, broker: Broker) -> None:
    """Stopped before space returns: the end kept in the reserved file is recorded on start."""
    state = tmp_path / "state"
    program = knife_gcode(tshirt_pieces()[:1], feed_mm_min=30_000)
    with small_tmpfs(state, "8m"):
        async with grbl_rig(tmp_path, broker, latency_s=0.001, motion=True,
                            config=_storage(state)) as rig:
            emulator, planner = rig.emulator, rig.planner
            await planner.wait_status("idle")
            agent = rig.agent.agent
            assert agent is not None
            await planner.submit({"job_id": "back-full", "kind": "gcode", "program": program})
            started = await planner.wait_event("back-full", "started")
            await rig.eventually(lambda: len(emulator.executed) > 20, "cutting")
            filler = fill(state)
            await rig.eventually(lambda: "back-full" in agent.station.runner.pending,
                                 "the machine finishing the job", 120)
            assert "succeeded" not in planner.names_for("back-full")
            await rig.stop_agent()
            # Stopped with the disk still full; then space returns and it starts again.
            await planner.wait_status("offline")
            filler.unlink()
            again = await rig.start_agent()
            done = await planner.wait_terminal("back-full", timeout=60)
            await planner.wait_status("idle")
            assert again.agent is not None
            record = again.agent.station.store.get("back-full")
    assert done["event"] == "succeeded"
    assert done["detail"]["recorded_late"] is True
    assert done["detail"]["lines_done"] == started["detail"]["lines_total"]
    assert record is not None and record.state is JobState.SUCCEEDED
    names = planner.names_for("back-full")
    assert "interrupted" not in names and names.count("succeeded") == 1
    _assert_seq_unbroken(planner.events)


# -- a database the agent cannot use: one paragraph and a clean exit ------------------------------


def _run_cli(config_path: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", "run", "--config", str(config_path)],
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_damaged_database_stops_the_cli_with_what_to_do(tmp_path: Path, broker: Broker) -> None:
    state = tmp_path / "state"
    state.mkdir()
    db = state / "agent.db"
    db.write_bytes(b"this is not an SQLite database, a card ate it\n" * 200)
    config = _config(tmp_path, broker, tmp_path / "ttyNONE", state)
    done = _run_cli(write_config_file(tmp_path / "agent.toml", config))
    out = done.stdout + done.stderr
    assert done.returncode == 3, out
    assert "Traceback" not in out
    assert str(db) in out and "damaged" in out and "mv " in out


def test_read_only_database_stops_the_cli_with_what_to_do(tmp_path: Path,
                                                          broker: Broker) -> None:
    state = tmp_path / "state"
    with small_tmpfs(state, "4m"):
        Database(state / "agent.db").close()
        remount(state, "ro")
        config = _config(tmp_path, broker, tmp_path / "ttyNONE", state)
        done = _run_cli(write_config_file(tmp_path / "agent.toml", config))
    out = done.stdout + done.stderr
    assert done.returncode == 3, out
    assert "Traceback" not in out
    assert str(state) in out and "read-only" in out and "remount" in out


# -- one agent per storage directory ------------------------------------------------------------


async def test_second_agent_on_the_same_storage_exits_and_the_first_runs_on(
        tmp_path: Path, broker: Broker) -> None:
    link = tmp_path / "ttyGRBL"
    config = agent_config(tmp_path, broker, link)
    config_path = write_config_file(tmp_path / "agent.toml", config)
    first = AgentProcess(config_path, tmp_path / "first.log")
    async with PtyEndpoint(link, baud=115_200, latency_s=0.001) as endpoint:
        emulator = GrblEmulator(endpoint, motion=True)
        async with background(emulator.run, "grbl"), Planner(broker.host,
                                                              broker.port) as planner:
            first.start()
            try:
                await planner.wait_status("idle", timeout=30)
                mark = len(planner.statuses)
                second = await asyncio.to_thread(_run_cli, config_path, 30)
                assert first.alive()
                await planner.submit({"job_id": "label-one", "kind": "gcode",
                                      "program": LABEL})
                done = await planner.wait_terminal("label-one", timeout=60)
                # Read before the first one's own clean stop says "offline" (a race otherwise).
                during = planner.statuses[mark:]
            finally:
                first.terminate()
    assert first.proc is None
    out = second.stdout + second.stderr
    assert second.returncode == EXIT_ALREADY_RUNNING, out
    assert "already running" in out and "Traceback" not in out
    assert done["event"] == "succeeded"
    assert emulator.executed.count(LABEL_CUT) == 1
    # The first was never kicked off: no offline status, no interrupted job.
    assert all(s["state"] != "offline" for s in during)
    assert "interrupted" not in [e["event"] for e in planner.events]
    # The message names the first one by its PID (read back from its lock file).
    pid = (config.storage.dir / "agent.lock").read_text().strip()
    assert f"PID {pid}" in out


def _keeper_config(tmp_path: Path, broker: Broker) -> Path:
    path = tmp_path / "keeper.toml"
    path.write_text("\n".join([
        'keeper_id = "keeper-test"', "[mqtt]", f'host = "{broker.host}"',
        f"port = {broker.port}", 'topic_prefix = "mf"', "reconnect_min_s = 0.05",
        "reconnect_max_s = 0.5", "[storage]", f'dir = "{tmp_path / "keeper"}"', ""]))
    return path


def test_second_keeper_on_the_same_storage_exits_and_the_first_runs_on(
        tmp_path: Path, broker: Broker) -> None:
    path = _keeper_config(tmp_path, broker)
    cmd = [sys.executable, "-m", "agent.cli", "pool-keeper", "--config", str(path)]
    log = (tmp_path / "keeper.log").open("wb")
    first = subprocess.Popen(cmd, stdout=log, stderr=log)
    try:
        lock = tmp_path / "keeper" / "keeper.lock"

        def locked() -> bool:
            assert first.poll() is None, (tmp_path / "keeper.log").read_text()
            return lock.exists() and lock.read_text().strip() == str(first.pid)

        eventually_sync(locked, what="the keeper to take its lock", timeout=30)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        assert first.poll() is None, "the first keeper stopped"
    finally:
        first.terminate()
        rc = first.wait(timeout=15)
        log.close()
    out = second.stdout + second.stderr
    assert second.returncode == EXIT_ALREADY_RUNNING, out
    assert f"PID {first.pid}" in out and "pool keeper" in out and "Traceback" not in out
    assert rc == 0
