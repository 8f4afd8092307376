"""Wires the station together, explicitly, in one asyncio.TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.aio import wait_event
from agent.config import AgentConfig
from agent.instance_lock import InstanceLock
from agent.jobs.store import JobStore
from agent.link.mqtt_client import WillMessage
from agent.link.outbox import Outbox, RowKind
from agent.link.session import BrokerLink, Inbound
from agent.link.topics import StationTopics, TopicName
from agent.profiles import load_profile
from agent.reporter import Reporter
from agent.safety import SafetyPanel, StackLight, hardware_pin_factory
from agent.sdnotify import Notifier, ProgressWatchdog
from agent.signing import JobVerifier
from agent.station import Station
from agent.storage import Database, ReservedFile, StorageError, StorageUnusable
from agent.trace_server import TraceServer

# While the disk is full or failing: how often a write is tried again.
STORAGE_RETRY_S = 2.0

log = logging.getLogger(__name__)


@dataclass
class Agent:
    """Handles to a running agent (tests and the demo look inside)."""

    config: AgentConfig
    db: Database
    station: Station
    link: BrokerLink[TopicName]
    reporter: Reporter


def build_agent(config: AgentConfig) -> Agent:
    profile = load_profile(config.profile)
    db = Database(config.storage.dir / "agent.db")
    try:
        session = db.bump_counter("session")
    except BaseException:
        db.close()
        raise
    topics = StationTopics(config.mqtt.topic_prefix, config.station_id)
    outbox = Outbox(db, config.station_id, max_bytes=config.storage.outbox_max_bytes)
    reporter = Reporter(outbox, topics, session)
    store = JobStore(db)
    station = Station(config, profile, db, store, reporter)
    station.runner.journal = ReservedFile(config.storage.dir / "pending-ends")
    inbound = Inbound(topics.subscriptions(pools=bool(config.pools)), topics.incoming,
                      station.handle)
    will = WillMessage(topics.status, reporter.offline_payload(), qos=1, retain=True)
    link: BrokerLink[TopicName] = BrokerLink(config.mqtt, f"station-agent-{config.station_id}",
                                             inbound, db, outbox, will)
    reporter.live = link.publish_now
    reporter.live_retained = lambda topic, payload: link.publish_now(topic, payload, qos=1,
                                                                     retain=True)
    station.on_storage_recovered.append(link.retry_held)
    station.storage_backlog = lambda: link.held
    return Agent(config, db, station, link, reporter)


async def _start_storage(config: AgentConfig, stop: asyncio.Event,
                         notifier: Notifier) -> Agent | None:
    """Open the database and settle the last run's jobs, waiting while the disk is full.

    A full or failing disk at start-up is waited out, not a reason to exit (systemd would only
    start the agent again and again); a damaged or read-only database raises StorageUnusable.
    None if ``stop`` was set meanwhile.
    """
    told = False
    while True:
        try:
            agent = build_agent(config)
        except StorageUnusable:
            raise
        except StorageError as exc:
            error = exc
        else:
            try:
                interrupted = agent.station.runner.recover()
            except StorageUnusable:
                _close(agent)
                raise
            except StorageError as exc:
                _close(agent)
                error = exc
            else:
                if interrupted:
                    log.warning("jobs interrupted by the last stop: %s", ", ".join(interrupted))
                return agent
        if not told:
            log.error("cannot write the database in %s (%s: %s); waiting for the disk, trying "
                      "again every %g s", config.storage.dir, error.reason, error.message,
                      STORAGE_RETRY_S)
            notifier.status(f"storage error: {error.message}; waiting for the disk")
            told = True
        if await wait_event(stop, STORAGE_RETRY_S):
            return None


def _close(agent: Agent) -> None:
    if agent.station.runner.journal is not None:
        agent.station.runner.journal.close()
    agent.db.close()


async def watch_storage(db: Database, interval_s: float | None = None) -> None:
    """While a write has failed, try one again every few seconds; recovery runs the listeners."""
    while True:
        await asyncio.sleep(interval_s if interval_s is not None else STORAGE_RETRY_S)
        if db.fault is not None:
            db.probe()


async def run_agent(config: AgentConfig, *, stop: asyncio.Event | None = None,
                    on_ready: Callable[[Agent], None] | None = None,
                    pin_factory: Any = None, notifier: Notifier | None = None) -> None:
    """Run until ``stop`` is set (or the task is cancelled), then shut down cleanly.

    ``pin_factory`` is gpiozero's (tests pass a MockFactory; a Pi gets lgpio). A clean shutdown
    publishes the retained ``offline`` status itself, since the broker sends the Will only when
    a connection dies.
    """
    notifier = notifier or Notifier()
    stop = stop or asyncio.Event()
    # One agent per storage directory, for the process's life (AlreadyRunning otherwise).
    with InstanceLock(config.storage.dir, "agent", "station agent"):
        agent = await _start_storage(config, stop, notifier)
        if agent is None:
            return
        await _run_started(agent, stop, on_ready, pin_factory, notifier)


async def _run_started(agent: Agent, stop: asyncio.Event,
                       on_ready: Callable[[Agent], None] | None, pin_factory: Any,
                       notifier: Notifier) -> None:
    config = agent.config
    station = agent.station
    loop = asyncio.get_running_loop()
    agent.db.on_fault.append(
        lambda err: notifier.status(f"storage error: {err.message}; taking no new jobs"))
    agent.db.on_recover.append(lambda: notifier.status("storage works again"))
    with contextlib.ExitStack() as hardware:
        if config.signing.enabled:
            station.verifier = JobVerifier.from_config(config.signing)
        if config.gpio is not None:
            factory = pin_factory if pin_factory is not None else hardware_pin_factory()
            station.light = hardware.enter_context(StackLight(config.gpio, factory))
            panel = hardware.enter_context(SafetyPanel(config.gpio, factory, loop, station))
            station.estop_input_pressed = panel.estop_pressed
            station.door_open = panel.door_open
        watchdog = ProgressWatchdog(notifier)
        watchdog.register("device", max_silence_s=max(10.0, config.serial.reopen_interval_s * 5))
        station.device.heartbeat = lambda: watchdog.beat("device")

        def on_connected() -> None:
            notifier.status(f"connected to the broker; machine "
                            f"{'online' if station.device.online.is_set() else 'offline'}")
            if agent.db.fault is not None:
                station.refresh_status(force=True)  # storage_error goes around the outbox

        agent.link.on_connected = on_connected
        trace_server = TraceServer(config.storage.dir, station.device.trace.snapshot)
        try:
            await _start_trace_server(trace_server)
            agent.reporter.info(station.info())
            station.refresh_status()
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(station.device.run(), name="device"),
                    tg.create_task(station.runner.run(), name="runner"),
                    tg.create_task(agent.link.run(), name="broker-link"),
                    tg.create_task(watchdog.run(), name="watchdog"),
                    tg.create_task(watch_storage(agent.db), name="storage-watch"),
                ]
                # Ready once local set-up is done; the broker may well be down at boot.
                notifier.ready("local set-up done; connecting to the broker")
                if on_ready is not None:
                    on_ready(agent)
                try:
                    await stop.wait()
                finally:
                    notifier.stopping("shutting down")
                    _last_chance_to_record(agent)
                    await _say_goodbye(agent)
                    for task in tasks:
                        task.cancel()
                    await station.close_background()
        finally:
            await trace_server.close()
            _close(agent)


async def _start_trace_server(server: TraceServer) -> None:
    """``station-agent trace`` is a diagnosis aid: the station runs without it if need be."""
    try:
        await server.start()
    except OSError as exc:
        log.warning("no serial trace on %s (%s): `station-agent trace` will not answer; the "
                    "MQTT trace command still does", server.path, exc)


def _last_chance_to_record(agent: Agent) -> None:
    """Stopping with final states the disk never took: one more try, else say what is lost."""
    if agent.db.fault is not None:
        agent.db.probe()
    runner = agent.station.runner
    kept = runner.pending and runner._save_pending()
    for job_id, final in runner.pending.items():
        if kept:
            log.warning("job %s %s on the machine; the database has not taken it yet: the next "
                        "start records it", job_id, final.event.value)
        else:
            log.error("job %s %s on the machine, but the disk never took it: the next start "
                      "reports it interrupted (lines done: %s)", job_id, final.event.value,
                      final.lines_done if final.lines_done is not None else "unknown")


async def _say_goodbye(agent: Agent, timeout_s: float = 2.0) -> None:
    """The retained ``offline`` status, published in order after what is queued (briefly)."""
    if not agent.reporter.going_offline():
        return  # the disk is full: it went straight out
    if agent.link.connection is None or not agent.link.connected.is_set():
        return  # the broker gets it from the outbox on the next start, or the Will meanwhile
    deadline = asyncio.get_running_loop().time() + timeout_s
    while agent.reporter.outbox.pending_kind(RowKind.STATUS):
        if asyncio.get_running_loop().time() > deadline or not agent.link.connected.is_set():
            log.warning("could not publish the offline status before stopping")
            return
        await asyncio.sleep(0.02)
