"""The planner's side in tests: a real MQTT client that publishes jobs and records what the
station says (events in arrival order, every retained status)."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Self

from agent.link.mqtt_client import ConnectOptions, IncomingMessage, MqttConnection
from tests.support.eventually import eventually


class Planner:
    def __init__(self, host: str, port: int, station: str = "cutter-01", prefix: str = "mf",
                 *, client_id: str | None = None, persistent: bool = False,
                 tls: ssl.SSLContext | None = None, username: str | None = None,
                 password: str | None = None) -> None:
        self.host, self.port = host, port
        self.station, self.prefix = station, prefix
        self.client_id = client_id or f"planner-{uuid.uuid4().hex[:8]}"
        self.persistent = persistent
        self.tls = tls
        self.credentials = (username, password)
        self.events: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.telemetry: list[dict[str, Any]] = []
        self.queues: list[dict[str, Any]] = []  # the retained queue views, in order
        self.other: list[IncomingMessage] = []
        self._changed = asyncio.Event()
        # The tasks a wait depends on, asked afresh at each wait (a rig's agent restarts).
        self.watch: Callable[[], Iterable[asyncio.Task[Any] | None]] = tuple
        self.conn: MqttConnection | None = None

    def topic(self, name: str) -> str:
        return f"{self.prefix}/{self.station}/{name}"

    async def connect(self) -> None:
        options = ConnectOptions(host=self.host, port=self.port, client_id=self.client_id,
                                 clean_start=not self.persistent,
                                 session_expiry_s=3600 if self.persistent else 0,
                                 receive_maximum=1000, tls=self.tls,
                                 username=self.credentials[0], password=self.credentials[1])
        self.conn = MqttConnection(options, self._on_message)
        await self.conn.connect()
        await self.conn.subscribe([(self.topic("events"), 1), (self.topic("status"), 1),
                                   (self.topic("telemetry"), 0), (self.topic("info"), 1),
                                   (self.topic("queue"), 1)])

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _on_message(self, msg: IncomingMessage) -> None:
        if self.conn is not None:
            self.conn.ack(msg.mid, msg.qos)
        try:
            data = json.loads(msg.payload)
        except ValueError:
            self.other.append(msg)
            return
        if msg.topic.endswith("/events"):
            self.events.append(data)
        elif msg.topic.endswith("/status"):
            self.statuses.append(data)
        elif msg.topic.endswith("/telemetry"):
            self.telemetry.append(data)
        elif msg.topic.endswith("/queue"):
            self.queues.append(data)
        else:
            self.other.append(msg)
        self._changed.set()

    async def publish(self, name: str, payload: bytes | dict[str, Any]) -> None:
        assert self.conn is not None
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await self.conn.publish(self.topic(name), data, qos=1)

    async def submit(self, job: dict[str, Any]) -> None:
        await self.publish("job", job)

    async def command(self, cmd: str, **fields: Any) -> None:
        await self.publish("cmd", {"cmd": cmd, **fields})

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0,
                       what: str = "condition") -> Any:
        """Re-checked on every message; a failure of a task in ``watch`` (the emulator, the
        agent a rig runs) is raised at once instead of as this wait's timeout."""
        return await eventually(predicate, what=what, timeout=timeout, watch=self.watch(),
                                wake=self._changed, context=self.recent_events)

    def recent_events(self) -> list[tuple[Any, Any, Any]]:
        """The last events as (seq, event, job_id): what a failed wait quotes."""
        return [(e["seq"], e["event"], e["job_id"]) for e in self.events[-15:]]

    def events_for(self, job_id: str | None) -> list[dict[str, Any]]:
        return [e for e in self.events if e["job_id"] == job_id]

    def names_for(self, job_id: str | None) -> list[str]:
        return [e["event"] for e in self.events_for(job_id)]

    async def wait_event(self, job_id: str | None, event: str,
                         timeout: float = 30.0) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for e in self.events:
                if e["job_id"] == job_id and e["event"] == event:
                    return e
            return None

        result: dict[str, Any] = await self.wait_for(find, timeout, f"{event} for {job_id}")
        return result

    async def wait_terminal(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        terminal = {"succeeded", "failed", "canceled", "interrupted", "rejected"}

        def find() -> dict[str, Any] | None:
            for e in self.events:
                if e["job_id"] == job_id and e["event"] in terminal:
                    return e
            return None

        result: dict[str, Any] = await self.wait_for(find, timeout, f"end of {job_id}")
        return result

    async def wait_status(self, state: str, timeout: float = 30.0) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            if self.statuses and self.statuses[-1]["state"] == state:
                return self.statuses[-1]
            return None

        result: dict[str, Any] = await self.wait_for(find, timeout, f"status {state}")
        return result
