"""Wires the station together, explicitly, in one asyncio.TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from agent.config import AgentConfig
from agent.jobs.store import JobStore
from agent.link.mqtt_client import MqttError
from agent.link.outbox import Outbox
from agent.link.session import BrokerLink
from agent.link.topics import StationTopics
from agent.profiles import load_profile
from agent.reporter import Reporter
from agent.station import Station
from agent.storage import Database

log = logging.getLogger(__name__)


@dataclass
class Agent:
    """Handles to a running agent (tests and the demo look inside)."""

    config: AgentConfig
    db: Database
    station: Station
    link: BrokerLink
    reporter: Reporter


def build_agent(config: AgentConfig) -> Agent:
    profile = load_profile(config.profile)
    db = Database(config.storage.dir / "agent.db")
    session = db.bump_counter("session")
    topics = StationTopics(config.mqtt.topic_prefix, config.station_id)
    outbox = Outbox(db, config.station_id, max_bytes=config.storage.outbox_max_bytes)
    reporter = Reporter(outbox, topics, session)
    store = JobStore(db)
    station = Station(config, profile, db, store, reporter)
    link = BrokerLink(config.mqtt, config.station_id, topics, db, outbox, station.handle,
                      reporter.offline_payload())
    reporter.live_telemetry = link.publish_telemetry
    return Agent(config, db, station, link, reporter)


async def run_agent(config: AgentConfig, *, stop: asyncio.Event | None = None,
                    on_ready: Callable[[Agent], None] | None = None) -> None:
    """Run until ``stop`` is set (or the task is cancelled), then shut down cleanly.

    A clean shutdown publishes the retained ``offline`` status itself, since the broker sends
    the Will only when a connection dies.
    """
    agent = build_agent(config)
    stop = stop or asyncio.Event()
    station = agent.station
    try:
        interrupted = station.runner.recover()
        if interrupted:
            log.warning("jobs interrupted by the last stop: %s", ", ".join(interrupted))
        agent.reporter.info(station.info())
        station.refresh_status()
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(station.device.run(), name="device"),
                tg.create_task(station.runner.run(), name="runner"),
                tg.create_task(agent.link.run(), name="broker-link"),
            ]
            if on_ready is not None:
                on_ready(agent)
            try:
                await stop.wait()
            finally:
                await _say_goodbye(agent)
                for task in tasks:
                    task.cancel()
    finally:
        agent.db.close()


async def _say_goodbye(agent: Agent) -> None:
    conn = agent.link.connection
    if conn is None or not agent.link.connected.is_set():
        return
    with contextlib.suppress(MqttError, TimeoutError):
        await conn.publish(agent.reporter.topics.status, agent.reporter.offline_payload(),
                           qos=1, retain=True, timeout=2.0)
