"""`station-agent submit`: publish a job and, with --watch, follow it to the end."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

from agent.aio import wait_within
from agent.link.mqtt_client import ConnectOptions, IncomingMessage, MqttConnection
from agent.link.topics import StationTopics

TERMINAL_EVENTS = {"succeeded", "failed", "canceled", "interrupted", "rejected"}


def load_job_file(path: Path) -> dict[str, Any]:
    """A JSON job, or a bare G-code / HP-GL file wrapped into one (job id from the file name)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a job file holds one JSON object")
        return data
    kind = "hpgl" if path.suffix.lower() in (".hpgl", ".plt", ".hgl") else "gcode"
    return {"job_id": f"{path.stem}-{uuid.uuid4().hex[:8]}", "kind": kind, "program": text}


def progress_bar(percent: int, width: int = 30) -> str:
    filled = width * percent // 100
    return f"[{'#' * filled}{'.' * (width - filled)}] {percent:3d}%"


async def submit(job: dict[str, Any], *, station: str, host: str, port: int, prefix: str = "mf",
                 watch: bool = False, timeout_s: float | None = None,
                 out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout  # looked up now: stdout may be redirected
    topics = StationTopics(prefix, station)
    job_id = str(job.get("job_id"))
    events: asyncio.Queue[IncomingMessage] = asyncio.Queue()
    options = ConnectOptions(host=host, port=port, client_id=f"submit-{uuid.uuid4().hex[:12]}",
                             clean_start=True)
    async with MqttConnection(options, events.put_nowait) as conn:
        if watch:
            await conn.subscribe([(topics.events, 1)])
        payload = json.dumps(job).encode("utf-8")
        await conn.publish(topics.job, payload, qos=1)
        print(f"submitted {job_id} to {station} ({len(payload)} bytes)", file=out)
        if not watch:
            return 0
        return await _watch(conn, events, job_id, out, timeout_s)


async def _watch(conn: MqttConnection, events: asyncio.Queue[IncomingMessage], job_id: str,
                 out: TextIO, timeout_s: float | None) -> int:
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    tty = out.isatty()
    while True:
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            print("\ntimed out waiting for the job to end", file=out)
            return 2
        try:
            msg = await wait_within(events.get(), remaining)
        except TimeoutError:
            continue
        conn.ack(msg.mid, msg.qos)
        try:
            ev = json.loads(msg.payload)
        except ValueError:
            continue
        if ev.get("job_id") != job_id:
            continue
        name = ev.get("event")
        detail = ev.get("detail") or {}
        if name == "progress":
            line = (f"{progress_bar(int(detail.get('percent', 0)))} "
                    f"{detail.get('lines_done')}/{detail.get('lines_total')} lines")
            print(("\r" + line) if tty else line, end="" if tty else "\n", file=out, flush=True)
            continue
        if tty:
            print(file=out)
        if name == "duplicate":
            print(f"{job_id}: already known to the station ({detail.get('state')})", file=out)
            return 0 if detail.get("state") == "succeeded" else 3
        error = detail.get("error")
        suffix = f": {error.get('code')}: {error.get('message')}" if isinstance(error, dict) else ""
        print(f"{job_id}: {name}{suffix}", file=out, flush=True)
        if name in TERMINAL_EVENTS:
            return 0 if name == "succeeded" else 1
