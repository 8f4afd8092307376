"""The agent-owned broker connection loop: connect, subscribe, drain the outbox, reconnect.

- A persistent session (fixed client id, clean start off, session expiry from the config), so
  jobs published while the station is away are delivered when it comes back.
- A job or command is acknowledged to the broker only after the station has handled it and the
  database is synced: a crash before that makes the broker deliver it again, and the job_id
  de-duplication makes the second delivery harmless.
- A message the handler could not store (:class:`StorageError`: disk full or failing) is not
  acknowledged. It is held in memory and handled again (in arrival order) when storage works
  again (:meth:`BrokerLink.retry_held`) or every :data:`HELD_RETRY_S`; if the agent stops
  first, the broker delivers it again on the next connection.
- The outbox is replayed from its oldest row after every reconnect, then follows new rows.
- Reconnects back off exponentially with full jitter, capped, over the configured brokers in turn.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from agent.aio import wait_within
from agent.config import MqttConfig
from agent.errors import SubscriptionRefused, TlsError, TlsStep
from agent.link.mqtt_client import (
    ConnectOptions,
    IncomingMessage,
    MqttConnection,
    MqttError,
    PublishRejected,
    WillMessage,
)
from agent.link.outbox import Outbox
from agent.storage import Database, StorageError

log = logging.getLogger(__name__)

PUBLISH_WINDOW = 64
# How often a message that could not be stored is tried again while storage is faulted.
HELD_RETRY_S = 5.0


class LinkState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKING_OFF = "backing_off"


R = TypeVar("R")


@dataclass
class LinkStats:
    connects: int = 0
    published: int = 0
    rejected_by_broker: int = 0
    received: int = 0
    ignored_topics: int = 0
    # Messages not acknowledged because they could not be stored (counted at each attempt).
    not_stored: int = 0


def tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    """The TLS context for ``[mqtt.tls]`` (None without it): the agent's and the doctor's.

    Raises :class:`TlsError` (step ``load_files``) when the files cannot be read or the key
    does not belong to the certificate."""
    tls = config.tls
    if tls is None:
        return None
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
        ctx.check_hostname = tls.check_hostname
        if tls.cert_file is not None:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot load the TLS files: {exc}", step=TlsStep.LOAD_FILES,
                       reason=getattr(exc, "reason", None)) from None
    return ctx


async def subscribe_all(conn: MqttConnection, topics: list[tuple[str, int]]) -> None:
    """Subscribe, raising :class:`SubscriptionRefused` naming any topic the broker refused."""
    codes = await conn.subscribe(topics)
    refused = {topic: code for (topic, _), code in zip(topics, codes, strict=False)
               if code >= 0x80}
    if refused:
        raise SubscriptionRefused(refused)


@dataclass(frozen=True)
class Inbound(Generic[R]):
    """What a link subscribes to, and how it turns a topic into what its handler takes."""

    subscriptions: list[tuple[str, int]]
    route: Callable[[str], R | None]
    handler: Callable[[R, bytes], Awaitable[None]]


class BrokerLink(Generic[R]):
    def __init__(self, config: MqttConfig, client_id: str, inbound: Inbound[R], db: Database,
                 outbox: Outbox, will: WillMessage | None,
                 on_connected: Callable[[], None] | None = None) -> None:
        self.config = config
        self.client_id = client_id
        self.inbound = inbound
        self.db = db
        self.outbox = outbox
        self.will = will
        self.on_connected = on_connected
        self.state = LinkState.CONNECTING
        self.connection: MqttConnection | None = None
        self.connected = asyncio.Event()
        self.stats = LinkStats()
        self._tls = tls_context(config)
        self._incoming: asyncio.Queue[IncomingMessage | None] | None = None
        # Messages of this connection not acknowledged because they could not be stored yet.
        self.held = 0

    def publish_now(self, topic: str, payload: bytes, qos: int = 0,
                    expiry_s: int | None = None, retain: bool = False) -> bool:
        """Straight out while connected, not through the outbox; False if it could not go."""
        conn = self.connection
        if conn is None or not self.connected.is_set():
            return False
        fut = conn.publish_nowait(topic, payload, qos=qos, retain=retain, expiry_s=expiry_s)
        if qos:
            fut.add_done_callback(_consume_result)
        return not (fut.done() and fut.exception() is not None)

    async def run(self) -> None:
        attempt = 0
        brokers = self.config.brokers
        index = 0
        while True:
            broker = brokers[index % len(brokers)]
            self.state = LinkState.CONNECTING
            try:
                await self._session(broker.host, broker.port)
                attempt = 0
            except (MqttError, OSError, StorageError) as exc:
                log.warning("broker %s:%d: %s", broker.host, broker.port, exc)
                index += 1
            finally:
                self.connected.clear()
                self.connection = None
                self.held = 0  # the broker delivers them again on the next connection
            self.state = LinkState.BACKING_OFF
            cap = min(self.config.reconnect_max_s, self.config.reconnect_min_s * (2 ** attempt))
            attempt = min(attempt + 1, 30)
            await asyncio.sleep(random.uniform(self.config.reconnect_min_s, max(cap, 0.001)))

    async def _session(self, host: str, port: int) -> None:
        incoming: asyncio.Queue[IncomingMessage | None] = asyncio.Queue()
        self._incoming = incoming
        options = ConnectOptions(
            host=host, port=port, client_id=self.client_id, keepalive_s=self.config.keepalive_s,
            clean_start=False, session_expiry_s=self.config.session_expiry_s,
            username=self.config.username, password=self.config.password, tls=self._tls,
            will=self.will,
        )
        conn = MqttConnection(options, incoming.put_nowait)
        async with conn:
            self.connection = conn
            self.stats.connects += 1
            await subscribe_all(conn, self.inbound.subscriptions)
            self.state = LinkState.CONNECTED
            self.connected.set()
            log.info("connected to %s:%d (session present: %s)", host, port, conn.session_present)
            if self.on_connected is not None:
                self.on_connected()
            tasks = [
                asyncio.create_task(self._publish_outbox(conn), name="outbox-publisher"),
                asyncio.create_task(self._consume(conn, incoming), name="mqtt-intake"),
            ]
            try:
                await asyncio.wait([*tasks, conn.disconnected],
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                results = await asyncio.gather(*tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(
                    result, MqttError | asyncio.CancelledError
                ):
                    raise result
            raise MqttError("connection ended")

    def retry_held(self) -> None:
        """Storage works again: handle the messages not acknowledged for want of it, now."""
        if self._incoming is not None:
            self._incoming.put_nowait(None)

    async def _consume(self, conn: MqttConnection,
                       incoming: asyncio.Queue[IncomingMessage | None]) -> None:
        # Not stored (held) and handled but not yet synced (unsynced): both unacknowledged.
        held: list[IncomingMessage] = []
        unsynced: list[IncomingMessage] = []
        self.held = 0
        while True:
            first: IncomingMessage | None
            if held or unsynced:
                try:
                    first = await wait_within(incoming.get(), HELD_RETRY_S)
                except TimeoutError:
                    first = None
            else:
                first = await incoming.get()
            batch = [first]
            while not incoming.empty() and len(batch) < 256:
                batch.append(incoming.get_nowait())
            todo, held = held, []
            for msg in batch:
                if msg is not None:
                    self.stats.received += 1
                    todo.append(msg)
            for msg in todo:
                route = self.inbound.route(msg.topic)
                if route is None:
                    self.stats.ignored_topics += 1
                    log.warning("ignoring message on unexpected topic %r", msg.topic[:200])
                    unsynced.append(msg)
                    continue
                try:
                    await self.inbound.handler(route, msg.payload)
                except StorageError as exc:
                    self.stats.not_stored += 1
                    if not held:
                        log.error(  # noqa: TRY400 - the fault is the message, not a bug
                            "a message on %s could not be stored (%s): not acknowledged, the "
                            "broker keeps it; tried again when storage works",
                            msg.topic[:200], exc.message)
                    held.append(msg)
                    continue
                unsynced.append(msg)
            self.held = len(held)
            if not unsynced:
                continue
            # One fsync for the whole batch, then acknowledge: stored before acknowledged.
            # Off the loop: a slow disk must not stall a job streaming meanwhile.
            try:
                await self.db.sync_off_loop()
            except StorageError:
                continue  # acknowledged after a later sync works
            for msg in unsynced:
                conn.ack(msg.mid, msg.qos)
            unsynced = []

    async def _publish_outbox(self, conn: MqttConnection) -> None:
        last_id = 0
        in_flight: list[tuple[int, asyncio.Future[None]]] = []
        while True:
            room = PUBLISH_WINDOW - len(in_flight)
            rows = self.outbox.pending(room, after_id=last_id) if room > 0 else []
            if rows:
                try:
                    # Nothing leaves before it is on disk; the fsync runs off the loop, so a
                    # slow disk does not stall a job streaming meanwhile.
                    await self.db.sync_off_loop()
                except StorageError:
                    await asyncio.sleep(HELD_RETRY_S)
                    continue
                for row in rows:
                    fut = conn.publish_nowait(row.topic, row.payload, row.qos, row.retain)
                    in_flight.append((row.id, fut))
                    last_id = row.id
            if not in_flight:
                self.outbox.changed.clear()
                if not self.outbox.pending(1, after_id=last_id):
                    await self.outbox.changed.wait()
                continue
            # Wait for the oldest; PUBACKs come back in order on one connection.
            done_ids: list[int] = []
            row_id, fut = in_flight[0]
            try:
                await fut
            except PublishRejected as exc:
                self.stats.rejected_by_broker += 1
                log.error("broker refused outbox row %d: %s; dropping it", row_id, exc)  # noqa: TRY400
            done_ids.append(row_id)
            in_flight.pop(0)
            while in_flight and in_flight[0][1].done():
                rid, f = in_flight.pop(0)
                exc2 = f.exception()
                if isinstance(exc2, PublishRejected):
                    self.stats.rejected_by_broker += 1
                    log.error("broker refused outbox row %d: %s; dropping it", rid, exc2)
                elif exc2 is not None:
                    raise exc2
                done_ids.append(rid)
            self.outbox.remove(done_ids)
            self.stats.published += len(done_ids)


def _consume_result(fut: asyncio.Future[Any]) -> None:
    """A fire-and-forget QoS 1 publish: its failure is not an error worth raising anywhere."""
    if not fut.cancelled():
        fut.exception()
