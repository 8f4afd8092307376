"""A socket callback that raises ends the MQTT connection cleanly (real Mosquitto): the broker
sees it go, the agent reconnects, and the message that was being handled is delivered again."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from agent.aio import wait_within
from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint
from agent.errors import MqttDisconnected
from agent.link import session
from agent.link.mqtt_client import (
    ConnectionState,
    ConnectOptions,
    IncomingMessage,
    MqttConnection,
    WillMessage,
)
from tests.support.broker import Broker
from tests.support.planner import Planner
from tests.support.station import agent_config, background, running_agent


def _options(broker: Broker, client_id: str, **kw: Any) -> ConnectOptions:
    return ConnectOptions(host=broker.host, port=broker.port, client_id=client_id,
                          connect_timeout_s=5, **kw)


async def test_raising_on_message_drops_the_connection_and_loses_nothing(
        broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    wills: asyncio.Queue[IncomingMessage] = asyncio.Queue()
    async with MqttConnection(_options(broker, "watcher", clean_start=True),
                              wills.put_nowait) as watcher:
        await watcher.subscribe([("t/will", 1)])

        def explode(message: IncomingMessage) -> None:
            raise RuntimeError(f"bug while handling {message.topic}")

        persistent = {"clean_start": False, "session_expiry_s": 60}
        victim = MqttConnection(
            _options(broker, "victim", will=WillMessage("t/will", b"gone", retain=False),
                     **persistent), explode)
        await victim.connect()
        await victim.subscribe([("t/jobs", 1)])
        await watcher.publish("t/jobs", b"job-1", qos=1)
        # The connection ends by itself, with the reason, not left half-alive.
        with pytest.raises(MqttDisconnected, match="RuntimeError"):
            await wait_within(victim.disconnected, 10)
        assert victim.state is ConnectionState.DISCONNECTED
        assert victim._sock is None
        # The broker saw the socket close (a clean DISCONNECT would have withheld the Will).
        will = await wait_within(wills.get(), 10)
        assert will.payload == b"gone"
        await victim.close()
        assert any("dropping the connection" in r.getMessage() for r in caplog.records)

        # Nothing lost: the message was never acknowledged, so the session delivers it again.
        again: asyncio.Queue[IncomingMessage] = asyncio.Queue()
        async with MqttConnection(_options(broker, "victim", **persistent),
                                  again.put_nowait) as second:
            redelivered = await wait_within(again.get(), 10)
            second.ack(redelivered.mid, redelivered.qos)
    assert redelivered.topic == "t/jobs"
    assert redelivered.payload == b"job-1"


class _FlakyConnection(MqttConnection):
    """The agent's own connection class, whose message callback fails on the first job."""

    failures = 0

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic.endswith("/job") and _FlakyConnection.failures == 0:
            _FlakyConnection.failures += 1
            raise RuntimeError("a bug in the message callback")
        super()._on_message(client, userdata, msg)


async def test_agent_reconnects_after_a_callback_failure_and_runs_the_job(
        tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "MqttConnection", _FlakyConnection)
    monkeypatch.setattr(_FlakyConnection, "failures", 0)
    link = tmp_path / "ttyGRBL"
    async with PtyEndpoint(link, baud=115_200) as endpoint:
        emulator = GrblEmulator(endpoint)
        async with background(emulator.run, "grbl"), Planner(broker.host, broker.port) as planner:
            async with running_agent(agent_config(tmp_path, broker, link)) as agent:
                await agent.wait_device_online()
                await agent.wait_broker()
                assert agent.agent is not None
                stats = agent.agent.link.stats
                await planner.submit({"job_id": "label-7", "kind": "gcode",
                                      "program": "G21 G90\nG0 X10 Y10\nG1 X50 Y10 F3000\n"})
                end = await planner.wait_terminal("label-7")
                connects = stats.connects
    assert _FlakyConnection.failures == 1
    assert connects >= 2  # the first connection ended, the link made a new one
    assert end["event"] == "succeeded"
    accepted = [e for e in planner.events if e["event"] == "accepted"]
    assert [e["job_id"] for e in accepted] == ["label-7"]
