"""A planner-side subscriber with a persistent session that reconnects by itself, as a real
controller would: it sees every event even across a broker restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from agent.aio import wait_within
from agent.link.mqtt_client import ConnectOptions, IncomingMessage, MqttConnection, MqttError


class PersistentSubscriber:
    def __init__(self, host: str, port: int, topic: str, client_id: str) -> None:
        self.host, self.port, self.topic, self.client_id = host, port, topic, client_id
        self.received: list[dict[str, Any]] = []
        self.connects = 0
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def __aenter__(self) -> PersistentSubscriber:
        self._task = asyncio.create_task(self._run(), name=f"subscriber-{self.client_id}")
        await wait_within(self._subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            holder: list[MqttConnection] = []

            def on_message(msg: IncomingMessage, holder: list[MqttConnection] = holder) -> None:
                self.received.append(json.loads(msg.payload))
                if holder:
                    holder[0].ack(msg.mid, msg.qos)

            options = ConnectOptions(host=self.host, port=self.port, client_id=self.client_id,
                                     clean_start=False, session_expiry_s=3600,
                                     receive_maximum=1000, connect_timeout_s=2)
            conn = MqttConnection(options, on_message)
            holder.append(conn)
            try:
                async with conn:
                    self.connects += 1
                    await conn.subscribe([(self.topic, 1)])
                    self._subscribed.set()
                    with contextlib.suppress(MqttError):
                        await conn.disconnected
            except MqttError:
                pass
            await asyncio.sleep(0.1)

    def unique_seqs(self) -> list[int]:
        """Seqs in arrival order with duplicates dropped, as a subscriber de-duplicates."""
        seen: set[int] = set()
        out = []
        for ev in self.received:
            if ev["seq"] not in seen:
                seen.add(ev["seq"])
                out.append(ev["seq"])
        return out
