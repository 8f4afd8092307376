"""Pool fixtures: a keeper in the test's event loop, stations with GRBL emulators on ptys."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from agent.aio import wait_within
from agent.config import KeeperConfig
from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint
from agent.link.mqtt_client import ConnectOptions, IncomingMessage, MqttConnection
from agent.pools.keeper import Keeper, run_keeper
from tests.support.broker import Broker
from tests.support.planner import Planner
from tests.support.station import RunningAgent, agent_config, background

POOL = "knife-cutters"


def keeper_config(tmp: Path, broker: Broker, **overrides: Any) -> KeeperConfig:
    data: dict[str, Any] = {
        "keeper_id": "keeper-test",
        "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": "mf",
                 "reconnect_min_s": 0.05, "reconnect_max_s": 0.5, "keepalive_s": 5},
        "storage": {"dir": str(tmp / "keeper")},
        **overrides,
    }
    return KeeperConfig.model_validate(data)


class RunningKeeper:
    def __init__(self, config: KeeperConfig) -> None:
        self.config = config
        self.stop = asyncio.Event()
        self.keeper: Keeper | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> RunningKeeper:
        ready = asyncio.Event()

        def on_ready(keeper: Keeper) -> None:
            self.keeper = keeper
            ready.set()

        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run_keeper(self.config, stop=self.stop,
                                                   on_ready=on_ready), name="keeper-under-test")
        await wait_within(ready.wait(), 10)
        assert self.keeper is not None
        await wait_within(self.keeper.link.connected.wait(), 20)
        return self

    async def shutdown(self) -> None:
        if self.task is None:
            return
        self.stop.set()
        await wait_within(self.task, 15)
        self.task = None

    async def crash(self) -> None:
        """Gone without a goodbye: cancelled wherever it is (what it committed stays)."""
        assert self.task is not None
        self.task.cancel()
        done, _ = await asyncio.wait([self.task], timeout=15)
        assert self.task in done, "the keeper did not end within 15 s of its cancel"
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.task = None


@contextlib.asynccontextmanager
async def running_keeper(config: KeeperConfig) -> AsyncIterator[RunningKeeper]:
    keeper = await RunningKeeper(config).start()
    try:
        yield keeper
    finally:
        await keeper.shutdown()


class PoolStation:
    """A station of the pool: its own GRBL emulator on a pty and an agent in this loop."""

    def __init__(self, tmp: Path, broker: Broker, name: str, *, pools: tuple[str, ...] = (POOL,),
                 motion: bool = False, **overrides: Any) -> None:
        self.name = name
        self.link = tmp / f"tty-{name}"
        self.record = tmp / f"record-{name}.gcode"
        self.config = agent_config(tmp, broker, self.link, station=name, pools=list(pools),
                                   **overrides)
        self.motion = motion
        self.agent = RunningAgent(self.config)
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> PoolStation:
        endpoint = await self._stack.enter_async_context(PtyEndpoint(self.link, baud=115_200))
        emulator = GrblEmulator(endpoint, motion=self.motion, record_path=self.record)
        await self._stack.enter_async_context(background(emulator.run, f"grbl-{self.name}"))
        await self.start_agent()
        return self

    async def start_agent(self) -> None:
        self.agent = RunningAgent(self.config)
        await self.agent.start()
        await self.agent.wait_device_online()
        await self.agent.wait_broker()

    async def __aexit__(self, *exc: object) -> None:
        await self.agent.shutdown()
        await self._stack.aclose()

    def executed(self) -> str:
        return self.record.read_text() if self.record.exists() else ""


class PoolPlanner(Planner):
    """Sees every station's events and the pool's own; publishes to pool and station topics."""

    def __init__(self, broker: Broker, **login: str) -> None:
        super().__init__(broker.host, broker.port, station="+", **login)  # type: ignore[arg-type]
        self.pool_events: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []

    async def connect(self) -> None:
        await super().connect()
        assert self.conn is not None
        await self.conn.subscribe([(f"{self.prefix}/pools/+/events", 1),
                                   (f"{self.prefix}/pools/+/replies/+", 1)])

    def _on_message(self, msg: Any) -> None:
        if "/pools/" in msg.topic:
            if self.conn is not None:
                self.conn.ack(msg.mid, msg.qos)
            into = self.replies if "/replies/" in msg.topic else self.pool_events
            into.append(json.loads(msg.payload))
            self._changed.set()
            return
        super()._on_message(msg)

    async def to_pool(self, job: dict[str, Any] | bytes, pool: str = POOL) -> None:
        assert self.conn is not None
        data = job if isinstance(job, bytes) else json.dumps(job).encode()
        await self.conn.publish(f"{self.prefix}/pools/{pool}/job", data, qos=1)

    async def to_station(self, station: str, name: str, payload: dict[str, Any]) -> None:
        assert self.conn is not None
        await self.conn.publish(f"{self.prefix}/{station}/{name}",
                                json.dumps(payload).encode(), qos=1)

    async def wait_status_of(self, station: str, state: str, timeout: float = 30.0) -> None:
        def latest() -> bool:
            mine = [s for s in self.statuses if s["station"] == station]
            return bool(mine) and mine[-1]["state"] == state

        await self.wait_for(latest, timeout, f"{station} {state}")

    def started(self, job_id: str) -> list[str]:
        return [e["station"] for e in self.events
                if e["job_id"] == job_id and e["event"] == "started"]

    def accepted_by(self, job_id: str) -> list[str]:
        return [e["detail"]["station"] for e in self.events
                if e["job_id"] == job_id and e["event"] == "accepted"]


class FakeMember:
    """A scripted pool member on the wire: its retained info and idle status, and a record of
    the offers and assignments the keeper sends it. It answers only when the test says so."""

    def __init__(self, broker: Broker, name: str, pools: tuple[str, ...], *,
                 prefix: str = "mf", **login: str) -> None:
        self.name, self.pools, self.prefix = name, pools, prefix
        self.offers: list[dict[str, Any]] = []
        self.assignments: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        options = ConnectOptions(host=broker.host, port=broker.port, client_id=f"fake-{name}",
                                 receive_maximum=100, username=login.get("username"),
                                 password=login.get("password"))
        self.conn = MqttConnection(options, self._on_message)

    def _on_message(self, msg: IncomingMessage) -> None:
        self.conn.ack(msg.mid, msg.qos)
        into = self.offers if msg.topic.endswith("/offer") else self.assignments
        into.append(json.loads(msg.payload))
        self._changed.set()

    async def __aenter__(self) -> FakeMember:
        await self.conn.connect()
        await self.conn.subscribe([(f"{self.prefix}/{self.name}/offer", 1),
                                   (f"{self.prefix}/{self.name}/pool_job", 1)])
        info = {"station": self.name, "pools": list(self.pools), "job_kinds": ["gcode"]}
        await self.conn.publish(f"{self.prefix}/{self.name}/info", json.dumps(info).encode(),
                                retain=True)
        await self.conn.publish(f"{self.prefix}/{self.name}/status",
                                json.dumps({"station": self.name, "state": "idle"}).encode(),
                                retain=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()

    async def wait(self, what: list[dict[str, Any]], count: int = 1,
                   timeout: float = 20.0) -> dict[str, Any]:
        async def enough() -> None:
            while len(what) < count:
                self._changed.clear()
                await self._changed.wait()

        await wait_within(enough(), timeout)
        return what[count - 1]

    async def reply(self, pool: str, job_id: str, answer: str, token: str) -> None:
        """Answer as a station does: on ``<prefix>/pools/<pool>/replies/<own name>``."""
        payload = {"v": 1, "station": self.name, "pool": pool, "job_id": job_id,
                   "answer": answer, "token": token}
        await self.conn.publish(f"{self.prefix}/pools/{pool}/replies/{self.name}",
                                json.dumps(payload).encode())
