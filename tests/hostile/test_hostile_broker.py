"""Hostile brokers: down when the agent boots, refusing the station's publishes (ACL), and
subscribers that stall. The machine's stream never waits for any of them.

Real Mosquitto (private, on a free port), the GRBL emulator on a real pty, the agent in-process.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from agent.dialects.grbl import prepare_grbl_program
from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint
from agent.garments import tshirt_knife_job
from agent.jobs.states import JobState
from agent.link.mqtt_client import ConnectOptions, IncomingMessage, MqttConnection
from agent.profiles import load_profile
from agent.profiles.grbl import GrblProfile
from tests.support.broker import Broker, running_broker
from tests.support.eventually import eventually
from tests.support.planner import Planner
from tests.support.rig import grbl_rig
from tests.support.station import agent_config, background, running_agent
from tests.support.subscriber import PersistentSubscriber

pytestmark = pytest.mark.timeout(180)

STATION = "cutter-01"
LABEL = "G21 G90\nG0 X30 Y900\nG1 Z-1 F600\nG1 X70 Y900 F1500\nG1 X70 Y930\nG0 Z5\n"


def _grbl_lines(program: str) -> list[str]:
    profile = load_profile("grbl-1.1")
    assert isinstance(profile, GrblProfile)
    return list(prepare_grbl_program(program, profile).lines)


async def _wait(predicate: Any, timeout: float = 60.0, what: str = "condition") -> None:
    await eventually(predicate, what=what, timeout=timeout)


# -- the broker is down when the agent starts ---------------------------------------------------


async def test_agent_starts_and_cuts_with_the_broker_down(tmp_path: Path, broker: Broker) -> None:
    link = tmp_path / "ttyGRBL"
    config = agent_config(tmp_path, broker, link)
    async with PersistentSubscriber(broker.host, broker.port, f"mf/{STATION}/events",
                                    "planner-boot") as sub:
        # First run: broker up, no machine plugged in. The job is accepted and waits.
        async with Planner(broker.host, broker.port) as planner, running_agent(config) as agent:
            await agent.wait_broker()
            await planner.wait_status("device_offline")
            await planner.submit({"job_id": "SO-1042-label-boot", "kind": "gcode",
                                  "program": LABEL})
            await planner.wait_event("SO-1042-label-boot", "accepted")
        seen_before = len(sub.received)
        broker.stop()
        # Second run: the machine is there, the broker is not. The agent must not wait for it.
        async with PtyEndpoint(link, baud=115_200) as endpoint:
            emulator = GrblEmulator(endpoint)
            async with background(emulator.run, "grbl"), running_agent(config) as agent:
                assert agent.agent is not None
                await agent.wait_device_online()
                expected = [*_grbl_lines(LABEL), "G4P0"]
                await _wait(lambda: emulator.executed == expected, 30, "the queued job to run")
                store = agent.agent.station.store
                await _wait(lambda: (rec := store.get("SO-1042-label-boot")) is not None
                            and rec.state is JobState.SUCCEEDED, 20, "the job to succeed")
                assert not agent.agent.link.connected.is_set()
                assert agent.agent.link.stats.connects == 0
                assert len(sub.received) == seen_before  # nothing can have reached anyone
                broker.start()
                await agent.wait_broker(timeout=30)
                await _wait(lambda: any(e["event"] == "succeeded" for e in sub.received), 30,
                            "the queued events to be delivered")
    events = [e for e in sub.received if e["job_id"] == "SO-1042-label-boot"]
    names = [e["event"] for e in events]
    assert names[0] == "accepted"
    assert "started" in names and names[-1] == "succeeded"
    started = names.index("started")
    assert set(names[started + 1:-1]) <= {"progress"}
    seqs = sub.unique_seqs()
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap or reordering in seq"
    assert emulator.executed == expected  # run once, not again after the reconnect


# -- the broker refuses the station's events (ACL) ----------------------------------------------


class _NamedPlanner(Planner):
    """A planner that logs in with a username, for the broker's ACL."""

    def __init__(self, host: str, port: int, username: str) -> None:
        super().__init__(host, port)
        self.username = username

    async def connect(self) -> None:
        options = ConnectOptions(host=self.host, port=self.port, client_id=self.client_id,
                                 clean_start=True, receive_maximum=1000, username=self.username)
        self.conn = MqttConnection(options, self._on_message)
        await self.conn.connect()
        codes = await self.conn.subscribe([(self.topic("events"), 1), (self.topic("status"), 1)])
        assert all(c < 0x80 for c in codes), codes


def _acl(path: Path) -> Path:
    # Keyed on the username, as a site's ACL is: a station logs in as its station id and reads
    # its job and cmd topics, may write status, info and telemetry, but not events: every event
    # publish is answered PUBACK 0x87 (not authorised). The planner may do the opposite.
    path.write_text("\n".join([
        "pattern read mf/%u/job",
        "pattern read mf/%u/cmd",
        "pattern write mf/%u/status",
        "pattern write mf/%u/info",
        "pattern write mf/%u/telemetry",
        "",
        "user planner",
        f"topic write mf/{STATION}/job",
        f"topic write mf/{STATION}/cmd",
        f"topic read mf/{STATION}/#",
        "",
    ]))
    return path


async def test_broker_refusing_events_does_not_stop_the_machine(tmp_path: Path) -> None:
    workdir = tmp_path / "broker-acl"
    workdir.mkdir()
    acl = _acl(tmp_path / "acl")
    link = tmp_path / "ttyGRBL"
    program = tshirt_knife_job(min_lines=300)
    with running_broker(workdir, extra_conf=f"acl_file {acl}") as acl_broker:
        config = agent_config(tmp_path, acl_broker, link, mqtt={"username": STATION})
        async with PtyEndpoint(link, baud=115_200) as endpoint:
            emulator = GrblEmulator(endpoint)
            async with background(emulator.run, "grbl"), _NamedPlanner(
                    acl_broker.host, acl_broker.port, "planner") as planner, \
                    running_agent(config) as agent:
                assert agent.agent is not None
                stats = agent.agent.link.stats
                store = agent.agent.station.store
                await agent.wait_device_online()
                await agent.wait_broker()
                await planner.wait_status("idle")
                await planner.submit({"job_id": "SO-1042-tshirt-acl", "kind": "gcode",
                                      "program": program})
                await _wait(lambda: (rec := store.get("SO-1042-tshirt-acl")) is not None
                            and rec.state is JobState.SUCCEEDED, 90, "the job to succeed")
                await _wait(lambda: stats.rejected_by_broker > 0, 20, "a refused publish")
                # Still running and still taking jobs: the next one runs too.
                await planner.submit({"job_id": "SO-1042-label-acl", "kind": "gcode",
                                      "program": LABEL})
                await _wait(lambda: (rec := store.get("SO-1042-label-acl")) is not None
                            and rec.state is JobState.SUCCEEDED, 30, "the second job")
                # Refused rows are dropped, not retried forever: the outbox empties.
                outbox = agent.agent.link.outbox
                await _wait(lambda: not outbox.pending(1), 20, "the outbox to drain")
                assert agent.agent.link.connected.is_set()
                assert agent.task is not None and not agent.task.done()
                await planner.wait_status("idle")
    assert emulator.executed == [*_grbl_lines(program), "G4P0", *_grbl_lines(LABEL), "G4P0"]
    assert emulator.overflow_bytes == 0
    assert planner.events == []  # the ACL really held every event back
    assert stats.rejected_by_broker >= 6  # accepted, started, succeeded for each job at least
    assert any(s["state"] == "busy" for s in planner.statuses)


# -- subscribers that stall -----------------------------------------------------------------------


def _mqtt_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _stalled_tcp_subscriber(host: str, port: int, topic: str) -> socket.socket:
    """An MQTT 3.1.1 client that subscribes at QoS 1 and then never reads its socket again,
    so the broker's writes to it back up (the worst a planner on a hung host can do)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    # CONNECT: protocol level 4, clean session, keepalive 0 (the broker never times it out).
    body = _mqtt_string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0) + \
        _mqtt_string("planner-hung-tcp")
    sock.sendall(bytes([0x10]) + _remaining_length(len(body)) + body)
    connack = sock.recv(4)
    assert connack[:1] == b"\x20" and connack[3:4] == b"\x00", connack
    body = struct.pack("!H", 1) + _mqtt_string(topic) + bytes([1])
    sock.sendall(bytes([0x82]) + _remaining_length(len(body)) + body)
    suback = sock.recv(5)
    assert suback[:1] == b"\x90", suback
    return sock


async def test_stalled_subscribers_do_not_slow_the_machine(tmp_path: Path,
                                                          broker: Broker) -> None:
    program = tshirt_knife_job(min_lines=1000)
    held: list[IncomingMessage] = []
    # A persistent session with Receive Maximum 1 that never acknowledges: the broker may send
    # it one message and must queue the rest.
    stalled = MqttConnection(ConnectOptions(
        host=broker.host, port=broker.port, client_id="planner-stalled", clean_start=False,
        session_expiry_s=3600, receive_maximum=1), held.append)
    await stalled.connect()
    hung = await asyncio.to_thread(_stalled_tcp_subscriber, broker.host, broker.port,
                                   f"mf/{STATION}/#")
    try:
        assert all(c < 0x80 for c in await stalled.subscribe([(f"mf/{STATION}/#", 1)]))
        async with grbl_rig(tmp_path, broker, latency_s=0.001) as rig:
            emulator, planner = rig.emulator, rig.planner
            await planner.submit({"job_id": "SO-1042-tshirt-S", "kind": "gcode",
                                  "program": program})
            end = await planner.wait_terminal("SO-1042-tshirt-S", timeout=150)
            assert rig.agent.agent is not None
            assert rig.agent.agent.link.connected.is_set()
    finally:
        hung.close()
        await stalled.close()
    assert end["event"] == "succeeded", end
    assert emulator.executed == [*_grbl_lines(program), "G4P0"]
    # The stall was real: one QoS 1 message delivered, never acknowledged, the rest held back
    # (QoS 0 telemetry is not bounded by Receive Maximum and may still trickle through).
    assert len([m for m in held if m.qos > 0]) == 1
    # Every progress event (one a second at most) reached the live planner, in order.
    progress = [e for e in planner.events_for("SO-1042-tshirt-S") if e["event"] == "progress"]
    done = [e["detail"]["lines_done"] for e in progress]
    assert len(done) >= 3
    assert done == sorted(done)
    assert progress[-1]["detail"]["percent"] == 100
