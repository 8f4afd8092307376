"""GRBL at the wire's limit: the whole agent process against the GRBL wire model.

What runs, each in its own process: a Mosquitto on a free loopback port (started here), the
GRBL emulator in wire mode (``station-agent emulate grbl --wire-model --stats --record``:
115,200 baud paced byte by byte, 128-byte receive buffer that loses bytes, one ``ok`` per line
2 ms after its newline, ``?`` answered at once; see agent/emulators/grbl_wire_model.py), and
``python -m agent.cli run --config`` with profile ``grbl-1.1``. The job goes in over MQTT like a
planner's and is watched to ``succeeded``.

Jobs: T-shirt front outlines (agent.garments.tshirt_body) cut as short G1 segments, one job
whose every line is 17 bytes on the wire (``G1X123.45Y678.90`` and its newline) and one of 25
(``G1X123.456Y678.901F12000``).

Figures per line size (median of ``--runs`` runs, each run listed):

- ``link_share``: the emulator's busy time of the host-to-controller wire over the time from
  the job's first line byte to its last (the model's idle-wire counter gives the rest, by cause);
- ``lines_per_s``, ``lost_bytes`` (must be 0; the record file must hold every line);
- ``cpu_us_per_line`` (user and system apart): the agent process's CPU from ``/proc/PID/stat``
  between the job's ``started`` and ``succeeded`` events, over the lines streamed;
- ``outside_driver_share``: one more run with a stack sampler thread in the agent (1 kHz,
  ``sys._current_frames``): the share of the samples in which the main thread was running
  (not waiting in the selector) with no frame of agent/drivers or agent/transport on its stack
  but one of the agent's other modules (MQTT link, jobs, progress, telemetry, storage) or
  asyncio's own. Rough: a sample is taken when the agent lets go of the GIL.

Run: ``.venv/bin/python bench/grbl_wire.py [--lines N] [--runs 3]``; writes
bench/results/grbl_wire.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.garments import tshirt_body  # noqa: E402
from agent.link.mqtt_client import ConnectOptions, IncomingMessage, MqttConnection  # noqa: E402
from agent.link.topics import StationTopics  # noqa: E402
from tests.support.broker import Broker  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "grbl_wire.json"
PREFIX = "mf"
STATION = "cutter-wire"
TICK = os.sysconf("SC_CLK_TCK")
LINE_FORMATS = {
    17: "G1X{x:06.2f}Y{y:06.2f}",
    25: "G1X{x:07.3f}Y{y:07.3f}F12000",
}

_SAMPLER = r"""
import gc, json, os, signal, sys, threading, time
samples = []
collections = []
_gc_start = [0.0]
def on_gc(phase, info):
    if phase == "start":
        _gc_start[0] = time.monotonic()
    elif time.monotonic() - _gc_start[0] > 0.001:
        collections.append((_gc_start[0], time.monotonic() - _gc_start[0], info["generation"]))
gc.callbacks.append(on_gc)
main = threading.main_thread().ident
SEP = os.sep + "agent" + os.sep
DRIVER = (SEP + "drivers" + os.sep, SEP + "transport" + os.sep)
def classify(frame):
    if frame.f_code.co_filename.endswith("selectors.py"):
        return "waiting", ""
    names = []
    while frame is not None:
        names.append((frame.f_code.co_filename, frame.f_code.co_name))
        frame = frame.f_back
    kind = "other"
    if any(d in n for n, _ in names for d in DRIVER):
        kind = "driver"
    else:
        for n, _ in names:
            if SEP in n:
                kind = "agent/" + n.split(SEP, 1)[1].split(os.sep)[0].removesuffix(".py")
                break
    inner = next((f"{n.split(SEP, 1)[1]}:{c}" for n, c in names if SEP in n), "")
    return kind, inner
def sample():
    while True:
        time.sleep(0.001)
        frame = sys._current_frames().get(main)
        if frame is not None:
            samples.append((time.monotonic(), *classify(frame)))
started = [0.0]
def reset(*_):
    started[0] = time.monotonic()
def dump(*_):
    with open(os.environ["GRBL_WIRE_SAMPLES"], "w") as f:
        json.dump({"samples": samples, "gc": collections, "started": started[0]}, f)
signal.signal(signal.SIGUSR1, reset)
signal.signal(signal.SIGUSR2, dump)
threading.Thread(target=sample, daemon=True).start()
sys.argv = ["station-agent", *sys.argv[1:]]
from agent.cli import main as _main
sys.exit(_main())
"""


def tshirt_front_job(line_bytes: int, n_lines: int) -> str:
    """T-shirt front outlines as ~0.5 mm G1 segments, every line ``line_bytes`` on the wire."""
    fmt = LINE_FORMATS[line_bytes]
    body = tshirt_body(neck_depth_mm=80, detail=48)
    points: list[tuple[float, float]] = []
    for (x0, y0), (x1, y1) in zip(body, [*body[1:], body[0]], strict=True):
        steps = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / 0.5))
        points += [(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps) for i in range(steps)]
    lines = ["G21G90G94", "G1F3000"]
    i = 0
    while len(lines) < n_lines:
        x, y = points[i % len(points)]
        # Shirts side by side, 10 mm apart, so that every coordinate keeps three digits.
        lines.append(fmt.format(x=100 + x + (i // len(points)) % 3 * 0.01, y=100 + y))
        i += 1
    for line in lines[2:]:
        assert len(line) + 1 == line_bytes, line
    return "\n".join(lines) + "\n"


def _proc_cpu(pid: int) -> tuple[float, float, float]:
    """User and system CPU seconds of the whole process, and the seconds its threads spent
    runnable but waiting for a CPU (schedstat: how much other processes got in the way)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            waited += int((task / "schedstat").read_text().split()[1])
    return int(fields[11]) / TICK, int(fields[12]) / TICK, waited / 1e9


def _proc_syscalls(pid: int) -> tuple[int, int]:
    """Read- and write-family system calls of the whole process so far (/proc/PID/io)."""
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(io["syscr"]), int(io["syscw"])


def _wait_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # written by a signal handler: let it finish


def _wait_path(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.02)


@contextlib.contextmanager
def _process(cmd: list[str], log: Path, env: dict[str, str] | None = None
             ) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, cwd=ROOT, env=env)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


async def _watch_job(port: int, job: dict[str, Any], agent_pid: int, timeout: float,
                     *, sampled: bool) -> dict[str, Any]:
    topics = StationTopics(PREFIX, STATION)
    queue: asyncio.Queue[IncomingMessage] = asyncio.Queue()
    options = ConnectOptions(host="127.0.0.1", port=port, client_id="bench-grbl-wire",
                             clean_start=True)
    async with MqttConnection(options, queue.put_nowait) as conn:
        await conn.subscribe([(topics.events, 1), (topics.status, 1)])
        ready = False
        while not ready:
            msg = await asyncio.wait_for(queue.get(), 60)
            conn.ack(msg.mid, msg.qos)
            if msg.topic == topics.status:
                ready = json.loads(msg.payload).get("state") == "idle"
        # The agent's own start-up lines ($I) must end their wire run before the job's begins.
        await asyncio.sleep(1.5)
        await conn.publish(topics.job, json.dumps(job).encode(), qos=1)
        cpu0 = t0 = None
        io0 = (0, 0)
        deadline = time.monotonic() + timeout
        while True:
            msg = await asyncio.wait_for(queue.get(), max(1.0, deadline - time.monotonic()))
            conn.ack(msg.mid, msg.qos)
            if msg.topic != topics.events:
                continue
            event = json.loads(msg.payload)
            if event.get("job_id") != job["job_id"]:
                continue
            name = event.get("event")
            if name == "started":
                cpu0, t0 = _proc_cpu(agent_pid), time.monotonic()
                io0 = _proc_syscalls(agent_pid)
                if sampled:
                    os.kill(agent_pid, signal.SIGUSR1)
            elif name in ("succeeded", "failed", "canceled", "rejected"):
                cpu1, t1 = _proc_cpu(agent_pid), time.monotonic()
                io1 = _proc_syscalls(agent_pid)
                if sampled:
                    os.kill(agent_pid, signal.SIGUSR2)
                if name != "succeeded" or cpu0 is None or t0 is None:
                    raise RuntimeError(f"job ended {name}: {event.get('detail')}")
                return {"user_s": cpu1[0] - cpu0[0], "system_s": cpu1[1] - cpu0[1],
                        "runqueue_wait_s": cpu1[2] - cpu0[2], "wall_s": t1 - t0,
                        "read_calls": io1[0] - io0[0], "write_calls": io1[1] - io0[1],
                        "detail": event.get("detail", {})}


def _one_run(work: Path, broker: Broker, line_bytes: int, n_lines: int, run: int,
             sampled: bool) -> dict[str, Any]:
    tag = f"{line_bytes}b-{run}{'-sampled' if sampled else ''}"
    link = work / f"tty-{tag}"
    stats_path, record = work / f"stats-{tag}.json", work / f"record-{tag}.txt"
    samples = work / f"samples-{tag}.txt"
    config = work / f"agent-{tag}.toml"
    config.write_text("\n".join([
        f'station_id = "{STATION}"', 'profile = "grbl-1.1"', "[mqtt]", 'host = "127.0.0.1"',
        f"port = {broker.port}", f'topic_prefix = "{PREFIX}"', "[serial]", f'port = "{link}"',
        "baud = 115200", "[storage]", f'dir = "{work / ("state-" + tag)}"']) + "\n")
    emulate = [sys.executable, "-m", "agent.cli", "emulate", "grbl", "--wire-model", "--link",
               str(link), "--stats", str(stats_path), "--record", str(record)]
    if sampled:
        agent_cmd = [sys.executable, "-c", _SAMPLER, "run", "--config", str(config)]
    else:
        agent_cmd = [sys.executable, "-m", "agent.cli", "run", "--config", str(config)]
    program = tshirt_front_job(line_bytes, n_lines)
    job = {"job_id": f"tshirt-front-{tag}", "kind": "gcode", "program": program}
    with _process(emulate, work / f"emulator-{tag}.log", _env()) as emu:
        _wait_path(link, emu, 20)
        env = _env({"GRBL_WIRE_SAMPLES": str(samples)})
        with _process(agent_cmd, work / f"agent-{tag}.log", env) as agent:
            cpu = asyncio.run(_watch_job(broker.port, job, agent.pid, timeout=600,
                                        sampled=sampled))
            if sampled:
                _wait_file(samples, 10)
        emu.terminate()
        emu.wait(timeout=15)
    stats = json.loads(stats_path.read_text())
    recorded = record.read_text().splitlines()
    sent = [line for line in program.splitlines() if line]
    job_run = stats["job"]
    lines_done = int(cpu["detail"].get("lines_done", 0))
    out: dict[str, Any] = {
        "link_share": job_run["link_share"],
        "lines_per_s": job_run["lines_per_s"],
        "lost_bytes": stats["lost_bytes"],
        # The driver ends a job with its G4P0 fence, which is not a program line.
        "record_intact": [r for r in recorded if r != "G4P0"][-len(sent):] == sent,
        "idle_episodes": stats["idle_episodes"],
        "lines_streamed": lines_done,
        "cpu_us_per_line": round((cpu["user_s"] + cpu["system_s"]) / lines_done * 1e6, 1),
        "cpu_user_us_per_line": round(cpu["user_s"] / lines_done * 1e6, 1),
        "cpu_system_us_per_line": round(cpu["system_s"] / lines_done * 1e6, 1),
        "idle_s": job_run["idle_s"],
        # Time the agent was ready to run but another process had the CPU (a loaded machine).
        "agent_runqueue_wait_ms": round(cpu["runqueue_wait_s"] * 1000, 1),
        # Wake-ups show here: about one read (a reply) and one write (a line) per line.
        "read_calls_per_line": round(cpu["read_calls"] / lines_done, 2),
        "write_calls_per_line": round(cpu["write_calls"] / lines_done, 2),
        "wire_elapsed_s": job_run["elapsed_s"],
    }
    if sampled and samples.exists():
        sampled_data = json.loads(samples.read_text())
        out.update(_sample_figures(sampled_data["samples"], stats["longest_idle"],
                                   sampled_data["started"]))
        # Garbage collections over 1 ms during the job: (start, seconds, generation).
        out["gc_pauses_over_1ms"] = [[round(t, 4), round(d * 1000, 2), g]
                                     for t, d, g in sampled_data["gc"]]
    return out


def _sample_figures(all_samples: list[list[Any]], longest_idle: list[dict[str, Any]],
                    started: float) -> dict[str, Any]:
    """Shares of the running samples by part of the agent from the job's ``started`` event on,
    and what ran just before and during each of the longest idle episodes (the emulator and
    the agent share CLOCK_MONOTONIC; the job's wire run begins before ``started`` arrives)."""
    running_all = [s for s in all_samples if s[1] != "waiting"]
    samples = [s for s in all_samples if s[0] >= started]
    running = [s for s in samples if s[1] != "waiting"]
    counts = Counter(s[1] for s in running)
    total = len(running) or 1
    before = []
    for episode in longest_idle[:8]:
        at = episode["at"]
        until = at + episode["ms"] / 1000
        seen = Counter(s[2] or s[1] for s in running_all if at - 0.005 <= s[0] <= until)
        before.append({**episode, "agent_ran": dict(seen.most_common(5))})
    return {
        "samples": len(samples),
        "samples_running": dict(counts.most_common()),
        "outside_driver_share": round(1 - counts.get("driver", 0) / total, 3),
        "top_running": dict(Counter(s[2] or s[1] for s in running).most_common(15)),
        "during_longest_idle": before,
        "job_started_event_at": round(started, 4),
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def run_benchmark(n_lines: int, runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="grbl-wire-") as tmp:
        work = Path(tmp)
        broker = Broker(work)
        broker.start()
        try:
            for line_bytes in LINE_FORMATS:
                measured = [_one_run(work, broker, line_bytes, n_lines, i, sampled=False)
                            for i in range(runs)]
                sampled = _one_run(work, broker, line_bytes, n_lines, runs, sampled=True)
                results[f"{line_bytes}_byte_lines"] = {
                    "link_share": _median(measured, "link_share"),
                    "lines_per_s": _median(measured, "lines_per_s"),
                    "lost_bytes": max(r["lost_bytes"] for r in measured),
                    "record_intact": all(r["record_intact"] for r in measured),
                    "cpu_us_per_line": _median(measured, "cpu_us_per_line"),
                    "cpu_user_us_per_line": _median(measured, "cpu_user_us_per_line"),
                    "cpu_system_us_per_line": _median(measured, "cpu_system_us_per_line"),
                    "outside_driver_share": sampled.get("outside_driver_share"),
                    "runs": measured,
                    "sampled_run": sampled,
                }
        finally:
            broker.stop()
    return {
        "benchmark": "grbl_wire",
        "model": "GRBL 1.1 wire model: 115200 baud paced byte by byte, 128-byte RX that loses "
                 "bytes, one ok per line 2 ms after its newline, ? answered at once",
        "job": f"{n_lines} lines of T-shirt front outlines as ~0.5 mm G1 segments",
        "results": results,
        "goals": {"link_share": ">= 0.99", "cpu_us_per_line": "< 30", "lost_bytes": "0"},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "command": f".venv/bin/python bench/grbl_wire.py --lines {n_lines} --runs {runs}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    result = run_benchmark(args.lines, args.runs)
    for name, r in result["results"].items():
        print(f"{name}: link share {r['link_share']:.4f}, {r['lines_per_s']:.0f} lines/s, "
              f"lost {r['lost_bytes']} bytes, record intact {r['record_intact']}, CPU "
              f"{r['cpu_us_per_line']:.1f} us/line (user {r['cpu_user_us_per_line']:.1f}, "
              f"system {r['cpu_system_us_per_line']:.1f}), outside the driver "
              f"{r['outside_driver_share']}")
        print(f"  idle by cause (first run): {r['runs'][0]['idle_s']}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
