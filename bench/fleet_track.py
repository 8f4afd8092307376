"""The fleet benchmark's bookkeeping: its host processes, and what the fleet says on the events
topics (who started what and when, who is free again)."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.aio import wait_within
from agent.link.mqtt_client import IncomingMessage, MqttConnection

BENCH = Path(__file__).resolve().parent
TERMINAL = frozenset({"succeeded", "failed", "canceled", "interrupted", "rejected"})
_TICK = os.sysconf("SC_CLK_TCK")
# The GRBL driver follows every job with a G4P0 fence (agent/drivers/grbl.py), which the machine
# executes as one more line.
FENCE_LINES = 1

JobBuilder = Callable[[str, int], bytes]


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a live process (all its threads)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def proc_rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def percentile(values: list[float], pct: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


class Host:
    """One bench/fleet_hosts.py process, spoken to over its stdin and stdout."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.pid = proc.pid
        self.log = log
        self.ready: dict[str, Any] = {}

    @classmethod
    async def start(cls, work: Path, name: str, mode: str, spec: dict[str, Any]) -> Host:
        spec_path = work / f"{name}.json"
        spec_path.write_text(json.dumps(spec))
        log = work / f"{name}.log"
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(BENCH / "fleet_hosts.py"), mode, str(spec_path),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                limit=1 << 22)
        return cls(name, proc, log)

    async def _line(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await wait_within(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
        data: dict[str, Any] = json.loads(line)
        return data

    async def wait_ready(self, timeout: float) -> None:
        self.ready = await self._line(timeout)

    async def finish(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stop\n")
        await self.proc.stdin.drain()
        data = await self._line(60)
        await wait_within(self.proc.wait(), 30)
        return data

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


class Tracker:
    """The planner's view: every event from every station, and which stations are free."""

    def __init__(self, knives: list[str], lasers: list[str]) -> None:
        self.knives, self.lasers = knives, lasers
        self.conn: MqttConnection | None = None
        self.free: dict[str, deque[str]] = {"knife": deque(knives), "laser": deque(lasers)}
        self.busy: dict[str, str] = {}  # station -> direct job the bench sent it
        self.sent_to: dict[str, str] = {}  # direct job -> station
        self._freed = asyncio.Event()
        self.published: dict[str, float] = {}
        self.is_pool: dict[str, bool] = {}
        self.started: dict[str, list[tuple[str, float]]] = defaultdict(list)
        self.ended_at: dict[str, float] = {}
        self.terminal: dict[str, str] = {}
        self.lines_total: dict[str, int] = {}
        self.station_jobs: dict[str, list[str]] = defaultdict(list)
        self.event_counts: Counter[str] = Counter()
        self.pool_events: Counter[str] = Counter()
        self.pool_replies: Counter[str] = Counter()
        self.run_jobs: list[str] = []
        self.waited_for_station = 0
        self._waiting_for: set[str] = set()
        self._all_done = asyncio.Event()

    @staticmethod
    def group(station: str) -> str:
        return "knife" if station.startswith("knife") else "laser"

    def on_message(self, msg: IncomingMessage) -> None:
        now = time.monotonic()
        if self.conn is not None:
            self.conn.ack(msg.mid, msg.qos)
        try:
            data = json.loads(msg.payload)
        except ValueError:
            self.event_counts["(not JSON)"] += 1
            return
        if "/replies/" in msg.topic:  # stations answering the keeper's offers
            self.pool_replies[str(data.get("answer"))] += 1
            return
        if "/pools/" in msg.topic:  # the keeper's own complaints (a malformed pool job)
            self.pool_events[str(data.get("event"))] += 1
            return
        station, event, job_id = data["station"], data["event"], data.get("job_id")
        self.event_counts[event] += 1
        if job_id is None:
            return
        detail = data.get("detail") or {}
        if event == "started":
            self.started[job_id].append((station, now))
            self.station_jobs[station].append(job_id)
            self.lines_total[job_id] = int(detail.get("lines_total", 0))
        elif event in TERMINAL and job_id not in self.terminal:
            self.terminal[job_id] = event
            self.ended_at[job_id] = now
            if self.busy.get(station) == job_id:
                del self.busy[station]
                self.free[self.group(station)].append(station)
                self._freed.set()
            self._waiting_for.discard(job_id)
            if not self._waiting_for:
                self._all_done.set()

    async def _take_free(self, group: str, job_id: str) -> str:
        if not self.free[group]:
            self.waited_for_station += 1
        while not self.free[group]:
            self._freed.clear()
            await self._freed.wait()
        station = self.free[group].popleft()
        self.busy[station] = job_id
        self.sent_to[job_id] = station
        return station

    def _expect(self, job_ids: list[str]) -> None:
        self._waiting_for = {j for j in job_ids if j not in self.terminal}
        if self._waiting_for:
            self._all_done.clear()
        else:
            self._all_done.set()

    async def warm_up(self, conn: MqttConnection, prefix: str, label: JobBuilder,
                      flap: JobBuilder, timeout: float) -> dict[str, float]:
        jobs = [f"warmup-{s}" for s in self.knives + self.lasers]
        self._expect(jobs)
        futures = []
        for i, job_id in enumerate(jobs):
            group = "knife" if job_id.startswith("warmup-knife") else "laser"
            station = await self._take_free(group, job_id)
            payload = (flap if group == "knife" else label)(job_id, i)
            futures.append(conn.publish_nowait(f"{prefix}/{station}/job", payload, qos=1))
        await asyncio.gather(*futures)
        await wait_within(self._all_done.wait(), timeout)
        durations: dict[str, list[float]] = {"knife": [], "laser": []}
        for job_id in jobs:
            station, t_start = self.started[job_id][0]
            durations[self.group(station)].append(self.ended_at[job_id] - t_start)
        return {f"{g}_s": statistics.median(d) if d else 1.0 for g, d in durations.items()}

    async def publish_all(self, conn: MqttConnection, prefix: str, pool: str, plan: list[bool],
                          rate: float, use_pools: bool, label: JobBuilder,
                          flap: JobBuilder) -> None:
        """Publish at ``rate`` jobs/s; a late job (no free station) never causes a catch-up
        burst: the next one waits its full interval."""
        self.run_jobs = [f"SO-2207-{'flap' if p else 'label'}-{i:05d}"
                         for i, p in enumerate(plan)]
        self._expect(self.run_jobs)
        loop = asyncio.get_running_loop()
        interval = 1.0 / rate
        due = loop.time()
        futures = []
        for i, (job_id, to_pool) in enumerate(zip(self.run_jobs, plan, strict=True)):
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            payload = (flap if to_pool else label)(job_id, i)
            if to_pool and use_pools:
                topic = f"{prefix}/pools/{pool}/job"
            else:
                station = await self._take_free("knife" if to_pool else "laser", job_id)
                topic = f"{prefix}/{station}/job"
            self.is_pool[job_id] = to_pool
            self.published[job_id] = time.monotonic()
            futures.append(conn.publish_nowait(topic, payload, qos=1))
            due = max(due + interval, loop.time())
        await asyncio.gather(*futures)

    async def wait_all_done(self, timeout: float) -> None:
        try:
            await wait_within(self._all_done.wait(), timeout)
        except TimeoutError:
            print(f"fleet: {len(self._waiting_for)} jobs unfinished after {timeout:.0f} s",
                  flush=True)

    def latencies_ms(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"all": [], "pool": [], "direct": []}
        for job_id in self.run_jobs:
            if not self.started.get(job_id):
                continue
            ms = (self.started[job_id][0][1] - self.published[job_id]) * 1000
            out["all"].append(ms)
            out["pool" if self.is_pool[job_id] else "direct"].append(ms)
        return out

    def count_terminal(self, event: str) -> int:
        return sum(1 for j in self.run_jobs if self.terminal.get(j) == event)

    def terminal_of_run(self) -> list[str]:
        return [j for j in self.run_jobs if j in self.terminal]

    def started_twice(self) -> int:
        """Jobs (warm-up ones included) with more than one `started`, on any station."""
        return sum(1 for starts in self.started.values() if len(starts) > 1)

    def started_elsewhere(self) -> int:
        """Direct jobs started by another station than the one addressed, pool jobs started by
        a station outside the pool."""
        wrong = 0
        for job_id in self.run_jobs:
            for station, _ in self.started.get(job_id, []):
                if job_id in self.sent_to:
                    wrong += station != self.sent_to[job_id]
                else:
                    wrong += self.group(station) != "knife"
        return wrong

    def expected_lines(self, station: str) -> int:
        """Lines a machine executes if it ran each job it was seen to start exactly once."""
        return sum(self.lines_total[j] + FENCE_LINES for j in self.station_jobs.get(station, []))
