"""Flood figures: 10,000 jobs published in one burst at a station agent running as its own process.

`station-agent run` (``python -m agent.cli run``) is started as a child process against a private
Mosquitto, with no machine attached (its serial port does not exist), so every accepted job stays
queued and the queue fills to ``limits.max_queued_jobs``. A planner client then publishes all the
jobs (care labels, each placed on its own spot of the bed) as fast as the broker acknowledges them
and counts the answers on the events topic.

Reported: accepted and rejected counts by code, the time to publish the burst and the time until
the last job was answered, and the agent process's memory (VmRSS before the flood, VmHWM peak
after it, from ``/proc/<pid>/status``).

Run: ``.venv/bin/python bench/flood.py [jobs] [max_queued_jobs]``; writes bench/results/flood.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from agent.aio import wait_within
from agent.demo import free_port, start_broker
from agent.link.mqtt_client import ConnectOptions, IncomingMessage, MqttConnection

RESULTS = Path(__file__).resolve().parent / "results" / "flood.json"
ROOT = Path(__file__).resolve().parent.parent
STATION = "cutter-01"
# Queue the flood's jobs for the agent (Mosquitto's default of 1,000 queued messages per client
# would drop most of the burst before the agent saw it), as deploy/mosquitto/durability.conf does.
PUBLISH_WINDOW = 20_000
BROKER_CONF = "max_queued_messages 100000\nmax_inflight_messages 100\nmessage_size_limit 0"


def _care_label_job(i: int) -> bytes:
    x0, y0 = 10 + (i % 100) * 15, 10 + (i // 100 % 100) * 9
    x1, y1 = x0 + 40, y0 + 60
    program = (f"G21 G90\nG0 Z5\nG0 X{x0} Y{y0}\nG1 Z-1 F600\nG1 X{x1} Y{y0} F3000\n"
               f"G1 X{x1} Y{y1}\nG1 X{x0} Y{y1}\nG1 X{x0} Y{y0}\nG0 Z5\n")
    return json.dumps({"job_id": f"SO-1042-label-{i:05d}", "kind": "gcode", "program": program,
                       "meta": {"order": "SO-1042", "garment": "care label"}}).encode()


def _write_config(path: Path, port: int, state: Path, max_queued_jobs: int) -> None:
    path.write_text("\n".join([
        f'station_id = "{STATION}"', 'profile = "grbl-1.1"',
        "[mqtt]", 'host = "127.0.0.1"', f"port = {port}", 'topic_prefix = "mf"',
        "reconnect_min_s = 0.05", "reconnect_max_s = 0.5",
        "[serial]", f'port = "{state / "no-such-tty"}"', "reopen_interval_s = 1.0",
        "[storage]", f'dir = "{state}"',
        "[limits]", f"max_queued_jobs = {max_queued_jobs}",
    ]) + "\n")


def _proc_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _Planner:
    """Counts the station's answers; notes when its own status first arrives."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.answers: Counter[str] = Counter()
        self.answered = 0
        self.all_answered = asyncio.Event()
        self.station_up = asyncio.Event()
        self.last_answer_at = 0.0
        self.conn: MqttConnection | None = None

    def on_message(self, msg: IncomingMessage) -> None:
        if self.conn is not None:
            self.conn.ack(msg.mid, msg.qos)
        data = json.loads(msg.payload)
        if msg.topic.endswith("/status"):
            if data.get("state") != "offline":
                self.station_up.set()
            return
        event = data.get("event")
        if event == "rejected":
            self.answers[f"rejected:{data['detail']['error']['code']}"] += 1
        elif event in ("accepted", "duplicate"):
            self.answers[event] += 1
        else:
            return
        self.answered += 1
        if self.answered >= self.n:
            self.last_answer_at = time.perf_counter()
            self.all_answered.set()


async def _flood(port: int, pid: int, jobs: int, timeout: float) -> dict[str, Any]:
    planner = _Planner(jobs)
    options = ConnectOptions(host="127.0.0.1", port=port, client_id="bench-planner",
                             clean_start=True, receive_maximum=1000)
    async with MqttConnection(options, planner.on_message) as conn:
        planner.conn = conn
        await conn.subscribe([(f"mf/{STATION}/events", 1), (f"mf/{STATION}/status", 1)])
        await wait_within(planner.station_up.wait(), 30)
        await asyncio.sleep(0.5)  # let the agent settle after start-up
        rss_before = _proc_mib(pid, "VmRSS")
        payloads = [_care_label_job(i) for i in range(jobs)]
        topic = f"mf/{STATION}/job"
        t0 = time.perf_counter()
        # paho holds at most 65,535 unacknowledged publishes (its message ids): larger floods go
        # out in back-to-back windows.
        for start in range(0, jobs, PUBLISH_WINDOW):
            futures = [conn.publish_nowait(topic, p, qos=1)
                       for p in payloads[start:start + PUBLISH_WINDOW]]
            await wait_within(asyncio.gather(*futures), timeout)
        published = time.perf_counter()
        await wait_within(planner.all_answered.wait(), timeout)
        answered = planner.last_answer_at
        peak = _proc_mib(pid, "VmHWM")
        rss_after = _proc_mib(pid, "VmRSS")
    return {
        "answers": dict(sorted(planner.answers.items())),
        "publish_s": round(published - t0, 3),
        "answer_all_s": round(answered - t0, 3),
        "jobs_answered_per_s": round(jobs / (answered - t0)),
        "agent_rss_before_mib": round(rss_before, 1),
        "agent_rss_after_mib": round(rss_after, 1),
        "agent_peak_rss_mib": round(peak, 1),
    }


def run_benchmark(jobs: int = 10_000, max_queued_jobs: int = 1000) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmpdir:
        tmp = Path(tmpdir)
        port = free_port()
        broker = start_broker(tmp, port, BROKER_CONF)
        state = tmp / "state"
        state.mkdir()
        config = tmp / "agent.toml"
        _write_config(config, port, state, max_queued_jobs)
        log_path = tmp / "agent.log"
        agent: subprocess.Popen[bytes] | None = None
        try:
            with log_path.open("wb") as log:
                agent = subprocess.Popen(
                    [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
                    stdout=log, stderr=log, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
            figures = asyncio.run(_flood(port, agent.pid, jobs, timeout=600))
            if agent.poll() is not None:
                raise SystemExit(f"the agent exited: {log_path.read_text()[-2000:]}")
        finally:
            if agent is not None and agent.poll() is None:
                agent.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    agent.wait(timeout=15)
                if agent.poll() is None:
                    agent.kill()
                    agent.wait()
            broker.terminate()
            broker.wait(timeout=10)
    answers = figures["answers"]
    return {
        "jobs": jobs,
        "max_queued_jobs": max_queued_jobs,
        "machine_attached": False,
        "accepted": answers.get("accepted", 0),
        "rejected_queue_full": answers.get("rejected:queue_full", 0),
        **figures,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    r = run_benchmark(jobs, limit)
    print(f"flood: {r['jobs']} jobs in one burst, queue limit {r['max_queued_jobs']}, no machine")
    print(f"  answers     {r['answers']}")
    print(f"  published   {r['publish_s']} s; every job answered after {r['answer_all_s']} s "
          f"({r['jobs_answered_per_s']} jobs/s)")
    print(f"  agent RSS   {r['agent_rss_before_mib']} MiB before, peak {r['agent_peak_rss_mib']} "
          f"MiB, {r['agent_rss_after_mib']} MiB after")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
