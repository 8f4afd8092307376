"""Durability figures: durable enqueue rate, replay rate after an outage, memory during backlog.

1. Enqueue: 100,000 events through the agent's own Reporter into the SQLite outbox, each event
   its own transaction (as the runner writes them), with the WAL fsynced once per 64 events (the
   publisher's group commit) -- the fsync policy documented in docs/deployment.md.
2. Replay: those 100,000 events, queued while "offline", are published by the agent's BrokerLink
   to a private Mosquitto once it connects; the clock stops when the broker has acknowledged the
   last one and a subscriber has received every seq.
3. Memory: this process's peak RSS (VmHWM) while holding the backlog and replaying it.

Run: ``.venv/bin/python bench/durability.py [events]``; writes bench/results/durability.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.aio import wait_within
from agent.config import MqttConfig
from agent.demo import free_port, start_broker
from agent.link.mqtt_client import ConnectOptions, IncomingMessage, MqttConnection, WillMessage
from agent.link.outbox import Outbox
from agent.link.session import BrokerLink, Inbound
from agent.link.topics import StationTopics, TopicName
from agent.reporter import Reporter
from agent.schemas.event import EventType
from agent.storage import Database

RESULTS = Path(__file__).resolve().parent / "results" / "durability.json"


def _rss_mib(field: str = "VmHWM") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _noop(name: TopicName, payload: bytes) -> None:
    del name, payload


async def run_async(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        db = Database(tmp / "agent.db")
        topics = StationTopics("mf", "cutter-01")
        outbox = Outbox(db, "cutter-01", max_bytes=1 << 30)
        reporter = Reporter(outbox, topics, session=1)
        rss_start = _rss_mib("VmRSS")
        t0 = time.perf_counter()
        for i in range(n):
            reporter.event(EventType.PROGRESS, f"SO-{i // 1000:04d}-front",
                           {"lines_total": 1000, "lines_done": i % 1000, "percent": i % 100})
            if i % 64 == 63:
                db.sync()
        db.sync()
        enqueue_s = time.perf_counter() - t0

        port = free_port()
        # The queueing limits of deploy/mosquitto/durability.conf (the default 1000 queued
        # messages per client would silently drop most of a 100,000-event replay).
        broker = start_broker(tmp, port, "max_queued_messages 0\nmax_inflight_messages 100\n")
        try:
            received: set[int] = set()
            done = asyncio.Event()

            def on_message(msg: IncomingMessage) -> None:
                received.add(json.loads(msg.payload)["seq"])
                sub.ack(msg.mid, msg.qos)
                if len(received) >= n:
                    done.set()

            sub = MqttConnection(ConnectOptions(host="127.0.0.1", port=port, client_id="bench-sub",
                                                receive_maximum=1000), on_message)
            await sub.connect()
            await sub.subscribe([(topics.events, 1)])
            inbound = Inbound(topics.subscriptions(pools=False), topics.incoming, _noop)
            will = WillMessage(topics.status, b'{"state":"offline"}')
            link = BrokerLink(MqttConfig(host="127.0.0.1", port=port),
                              "station-agent-cutter-01", inbound, db, outbox, will)
            t1 = time.perf_counter()
            task = asyncio.create_task(link.run())
            await wait_within(done.wait(), 600)
            while outbox.count:  # noqa: ASYNC110 - the outbox has no "empty" event to wait on
                await asyncio.sleep(0.01)
            replay_s = time.perf_counter() - t1
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sub.close()
        finally:
            broker.terminate()
            broker.wait(timeout=10)
        db.close()
    return {
        "benchmark": "durability",
        "events": n,
        "fsync_policy": "WAL, synchronous=NORMAL, one fsync per 64 events (group commit)",
        "enqueue_events_per_s": round(n / enqueue_s),
        "replay_events_per_s": round(n / replay_s),
        "replay_seconds": round(replay_s, 2),
        "rss_start_mib": round(rss_start, 1),
        "peak_rss_mib": round(_rss_mib(), 1),
        "goals": {"enqueue_events_per_s": ">= 5000", "replay_events_per_s": ">= 2000",
                  "peak_rss_mib": "< 60"},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "command": ".venv/bin/python bench/durability.py",
    }


def run_benchmark(events: int = 100_000) -> dict[str, Any]:
    return asyncio.run(run_async(events))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    r = run_benchmark(n)
    print(f"durability: {r['events']} events; {r['fsync_policy']}")
    print(f"  enqueue  {r['enqueue_events_per_s']:>8} events/s")
    print(f"  replay   {r['replay_events_per_s']:>8} events/s ({r['replay_seconds']} s)")
    print(f"  peak RSS {r['peak_rss_mib']:>8} MiB (at start {r['rss_start_mib']} MiB)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
