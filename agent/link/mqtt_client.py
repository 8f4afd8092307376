"""A small asyncio adapter over paho-mqtt 2.x, owned by the agent.

Why not aiomqtt: aiomqtt 2.x acknowledges a QoS 1 message as soon as it lands in its in-memory
queue (a crash then loses the job) and does not surface MQTT 5 PUBACK reason codes. Here paho
runs with ``manual_ack=True`` so a job is acknowledged only once it is on disk, and every QoS 1
publish resolves with the broker's reason code. paho's socket callbacks drive the event loop
exactly as aiomqtt does it; the blocking TCP/TLS connect runs in a worker thread.

One :class:`MqttConnection` is one connection: ``async with`` connects (raising a
:class:`MqttConnectError` that says which step failed: :class:`BrokerUnreachable`,
:class:`TlsError`, :class:`BrokerRefused`, :class:`BrokerNoConnack`), ``disconnected`` completes
when it ends; reconnecting is the caller's loop (agent.link.session), with a fresh connection
each time. ``station-agent doctor`` connects with this same class, so it cannot pass where the
agent fails.

An unexpected exception in a socket callback (a bug, or an ``on_message`` that raises) drops
the connection at once instead of leaving it half-alive with the reader still registered: the
caller reconnects, and the broker delivers again whatever was not acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.aio import wait_within
from agent.errors import (
    BrokerNoConnack,
    BrokerRefused,
    BrokerUnreachable,
    MqttConnectError,
    MqttDisconnected,
    MqttError,
    MqttTimeout,
    PublishRejected,
    TlsError,
    TlsStep,
)

log = logging.getLogger(__name__)

__all__ = [
    "BrokerNoConnack", "BrokerRefused", "BrokerUnreachable", "ConnectOptions",
    "ConnectionState", "IncomingMessage", "MqttConnectError", "MqttConnection",
    "MqttDisconnected", "MqttError", "MqttTimeout", "PublishRejected", "TlsError", "TlsStep",
    "WillMessage", "connect_error",
]

# Errors of an established TCP connection: during connect() they can only come from the TLS
# handshake that follows it (a refused or unreachable TCP connect raises others).
_CLOSED_BY_PEER = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class ConnectionState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSING = "closing"


@dataclass(frozen=True)
class IncomingMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


@dataclass(frozen=True)
class WillMessage:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class ConnectOptions:
    host: str
    port: int
    client_id: str
    keepalive_s: int = 15
    clean_start: bool = False
    session_expiry_s: int = 0
    # Unacknowledged QoS 1 messages the broker may have in flight to us (MQTT 5 Receive
    # Maximum): bounds memory under a flood, since we acknowledge only after storing.
    receive_maximum: int = 32
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    will: WillMessage | None = None
    connect_timeout_s: float = 10.0


class MqttConnection:
    def __init__(self, options: ConnectOptions,
                 on_message: Callable[[IncomingMessage], None]) -> None:
        self.options = options
        self._on_message_cb = on_message
        self._loop = asyncio.get_running_loop()
        self.state = ConnectionState.DISCONNECTED
        self.session_present = False
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self.disconnected: asyncio.Future[None] = self._loop.create_future()
        self._pending_pub: dict[int, asyncio.Future[None]] = {}
        self._pending_sub: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._sock: Any = None
        self._misc_timer: asyncio.TimerHandle | None = None
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=paho.MQTTv5,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        client.connect_timeout = options.connect_timeout_s
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        if options.username is not None:
            client.username_pw_set(options.username, options.password)
        if options.tls is not None:
            client.tls_set_context(options.tls)
        if options.will is not None:
            w = options.will
            client.will_set(w.topic, w.payload, w.qos, w.retain)
        self._client = client

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> MqttConnection:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def connect(self) -> None:
        o = self.options
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = o.session_expiry_s
        props.ReceiveMaximum = o.receive_maximum
        self.state = ConnectionState.CONNECTING
        try:
            await self._loop.run_in_executor(
                None,
                lambda: self._client.connect(
                    o.host, o.port, o.keepalive_s, clean_start=o.clean_start, properties=props
                ),
            )
        except (OSError, ValueError) as exc:
            self.state = ConnectionState.DISCONNECTED
            self._teardown_socket()
            raise connect_error(exc, o.host, o.port, tls=o.tls is not None) from None
        try:
            await wait_within(asyncio.shield(self._connected), o.connect_timeout_s)
        except TimeoutError:
            await self.close()
            raise BrokerNoConnack(f"no CONNACK from {o.host}:{o.port} within "
                                  f"{o.connect_timeout_s:g} s", closed=False) from None
        except MqttConnectError:
            await self.close()
            raise
        except MqttDisconnected as exc:
            await self.close()
            raise BrokerNoConnack(f"{o.host}:{o.port} closed the connection before its CONNACK "
                                  f"({exc.message})", closed=True) from None
        self.state = ConnectionState.CONNECTED

    async def close(self) -> None:
        """Disconnect cleanly if connected (the Will is then not sent) and release the socket."""
        if self.state is ConnectionState.CONNECTED:
            self.state = ConnectionState.CLOSING
            self._client.disconnect()
            with contextlib.suppress(TimeoutError, MqttError):
                await wait_within(asyncio.shield(self.disconnected), 2.0)
        self._teardown_socket()
        self._finish(MqttDisconnected("connection closed"))
        self.state = ConnectionState.DISCONNECTED

    def _teardown_socket(self) -> None:
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
            self._sock = None
        # paho has no public call that drops a socket whose CONNECT was never answered.
        with contextlib.suppress(Exception):
            self._client._sock_close()

    def _finish(self, exc: MqttError) -> None:
        if self._misc_timer is not None:
            self._misc_timer.cancel()
            self._misc_timer = None
        if not self._connected.done():
            self._connected.set_exception(exc)
            self._connected.exception()
        if not self.disconnected.done():
            self.disconnected.set_exception(exc)
            self.disconnected.exception()  # retrieved: nobody has to await it
        for fut in list(self._pending_pub.values()) + list(self._pending_sub.values()):
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # a caller that stopped waiting must not trigger a warning
        self._pending_pub.clear()
        self._pending_sub.clear()

    # -- operations ------------------------------------------------------------------------

    def publish_nowait(self, topic: str, payload: bytes, qos: int = 1,
                       retain: bool = False, expiry_s: int | None = None) -> asyncio.Future[None]:
        """Start a publish; the future resolves on PUBACK (QoS 1) or once written (QoS 0).

        ``expiry_s``: MQTT 5 message expiry; the broker discards the message if it has not
        reached a subscriber by then (an offer must not wait for a station that is away).
        """
        fut: asyncio.Future[None] = self._loop.create_future()
        if self.state is not ConnectionState.CONNECTED:
            fut.set_exception(MqttDisconnected("not connected"))
            return fut
        props = None
        if expiry_s is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.MessageExpiryInterval = expiry_s
        info = self._client.publish(topic, payload, qos, retain, properties=props)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            fut.set_exception(MqttDisconnected(f"publish failed: {paho.error_string(info.rc)}"))
            return fut
        if qos == 0:
            fut.set_result(None)
        else:
            self._pending_pub[info.mid] = fut
        return fut

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                      timeout: float = 30.0) -> None:
        fut = self.publish_nowait(topic, payload, qos, retain)
        try:
            await wait_within(fut, timeout)
        except TimeoutError:
            raise MqttTimeout(f"no PUBACK for {topic} within {timeout:g} s") from None

    async def subscribe(self, topics: list[tuple[str, int]], timeout: float = 10.0) -> list[int]:
        if self.state is not ConnectionState.CONNECTED:
            raise MqttDisconnected("not connected")
        rc, mid = self._client.subscribe(
            [(t, SubscribeOptions(qos=q)) for t, q in topics]
        )
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            raise MqttDisconnected(f"subscribe failed: {paho.error_string(rc)}")
        fut: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._pending_sub[mid] = fut
        try:
            codes = await wait_within(fut, timeout)
        except TimeoutError:
            raise MqttTimeout("no SUBACK") from None
        return [c.value for c in codes]

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a received message to the broker (we store before we acknowledge)."""
        if self.state is ConnectionState.CONNECTED and qos > 0:
            self._client.ack(mid, qos)

    # -- paho callbacks (event loop thread, except socket open/write during connect) -------

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any,
                    reason_code: ReasonCode, properties: Any = None) -> None:
        if self._connected.done():
            return
        if reason_code.is_failure:
            self._connected.set_exception(BrokerRefused(str(reason_code), reason_code.value))
        else:
            self.session_present = bool(getattr(flags, "session_present", False))
            self._connected.set_result(None)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any,
                       reason_code: ReasonCode, properties: Any = None) -> None:
        if self.state is ConnectionState.CLOSING and not self.disconnected.done():
            self.disconnected.set_result(None)
        self._finish(MqttDisconnected(f"disconnected: {reason_code}"))

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self._on_message_cb(
            IncomingMessage(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), msg.mid)
        )

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int,
                    reason_code: ReasonCode, properties: Any = None) -> None:
        fut = self._pending_pub.pop(mid, None)
        if fut is None or fut.done():
            return
        if reason_code.is_failure:
            fut.set_exception(PublishRejected(str(reason_code), reason_code.value))
        else:
            fut.set_result(None)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int,
                      reason_codes: list[ReasonCode], properties: Any = None) -> None:
        fut = self._pending_sub.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(reason_codes)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # Our packets are small and each one matters now (a claim, a PUBACK): Nagle's algorithm
        # would hold one back until the peer's delayed ACK, tens of milliseconds on a quiet link.
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def register() -> None:
            if self.disconnected.done():
                return  # closed before this callback from the connecting thread ran
            self._sock = sock
            self._loop.add_reader(sock, self._read)
            if self._misc_timer is None:
                self._misc_timer = self._loop.call_later(1.0, self._misc)

        self._call_in_loop(register)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        def unregister() -> None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
            self._sock = None

        self._call_in_loop(unregister)

    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._call_in_loop(lambda: self._loop.add_writer(sock, self._write))

    def _on_socket_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        def unregister() -> None:
            with contextlib.suppress(Exception):
                self._loop.remove_writer(sock)

        self._call_in_loop(unregister)

    def _call_in_loop(self, fn: Callable[[], None]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _read(self) -> None:
        try:
            rc = self._client.loop_read()  # runs on_message and the other paho callbacks
        except Exception as exc:  # noqa: BLE001 - any failure ends the connection, cleanly
            self._drop("reading", exc)
            return
        if rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_AGAIN):
            self._finish(MqttDisconnected(f"connection lost: {paho.error_string(rc)}"))

    def _write(self) -> None:
        try:
            rc = self._client.loop_write()
        except Exception as exc:  # noqa: BLE001 - any failure ends the connection, cleanly
            self._drop("writing", exc)
            return
        if rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_AGAIN):
            self._finish(MqttDisconnected(f"connection lost: {paho.error_string(rc)}"))

    def _drop(self, doing: str, exc: Exception) -> None:
        """An unexpected exception in a socket callback: close the socket and end the connection
        (the broker sees the socket close and sends the Will; nothing unacknowledged is lost).
        Left alone, asyncio would log it and call the reader again on a client whose state is
        unknown."""
        log.error("MQTT connection to %s:%d: unexpected %s while %s; dropping the connection",
                  self.options.host, self.options.port, type(exc).__name__, doing, exc_info=exc)
        self.state = ConnectionState.DISCONNECTED
        self._teardown_socket()
        self._finish(MqttDisconnected(f"connection dropped: unexpected {type(exc).__name__} "
                                      f"while {doing}: {exc}"))

    def _misc(self) -> None:
        """Keepalive pings and timeouts, once a second (a timer, not a task: nothing to leak)."""
        self._misc_timer = None
        try:
            rc = self._client.loop_misc()
        except Exception as exc:  # noqa: BLE001 - any failure ends the connection, cleanly
            self._drop("keeping alive", exc)
            return
        if rc != paho.MQTT_ERR_SUCCESS and self.state is ConnectionState.CONNECTED:
            self._finish(MqttDisconnected(f"connection lost: {paho.error_string(rc)}"))
            return
        if not self.disconnected.done():
            self._misc_timer = self._loop.call_later(1.0, self._misc)


def connect_error(exc: OSError | ValueError, host: str, port: int, *, tls: bool
                  ) -> MqttConnectError:
    """The typed error for what ``paho.Client.connect`` raised (TCP connect, then TLS)."""
    where = f"{host}:{port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TlsError(f"TLS: the certificate of {where} was rejected: {exc.verify_message}",
                        step=TlsStep.VERIFY_BROKER, reason=exc.reason)
    if isinstance(exc, ssl.SSLError):
        return TlsError(f"TLS handshake with {where} failed: {exc.reason or exc}",
                        step=TlsStep.HANDSHAKE, reason=exc.reason)
    if tls and isinstance(exc, _CLOSED_BY_PEER):
        return TlsError(f"TLS handshake with {where} failed: the broker closed the connection "
                        f"({exc.strerror or exc})", step=TlsStep.HANDSHAKE)
    if isinstance(exc, OSError):
        return BrokerUnreachable(f"cannot reach {where}: TCP connect failed: "
                                 f"{exc.strerror or exc}",
                                 errno=exc.errno)
    return MqttConnectError(f"cannot connect to {where}: {exc}")
