"""The agent beside other GRBL senders (issue 14): cncjs, grbl-streamer and stop-and-wait.

Every sender streams the same job (a T-shirt front cut with a drag knife: ~3,000 G01 lines of
18-20 bytes, bench/peers/job.py) to the same device, ``station-agent emulate grbl`` with its
``--wire-model`` when it has one (bench/peers/device.py), through a tap that logs every byte on
the wire with its time. Runs go round the senders in turn, ``--runs`` times (default 3), a
fresh device each run; each figure in a sender's row is the median over its runs (summary.py),
every run kept in the JSON.

- the agent: ``station-agent run`` with a config, a private Mosquitto, the job over MQTT;
- cncjs 1.11 (npm), headless, driven over socket.io with a token signed with its own secret;
- grbl-streamer 2.0 (PyPI) in a venv of its own;
- stop-and-wait: one line, wait for its ok, the next (the floor).

Figures per sender: lines/s and share of the link over the job's span on the wire (its first
byte to the reply to its last line, bench/peers/wire.py), job lines the device did not execute
as sent (receive-buffer overflows), error replies, and the sender process's CPU per job line,
user and system apart (/proc/<pid>/stat). cncjs and grbl-streamer are installed under
~/.cache/station-agent/bench-peers on first use; one that cannot be installed is skipped with
the reason, and the benchmark still succeeds.

Run: ``.venv/bin/python bench/grbl_peers.py [--runs 3] [--cut-lines 3000]
[--senders agent,cncjs,grbl-streamer,stop-and-wait] [--device-cmd "..."]``;
writes bench/results/grbl_peers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from peers import agent_runner, cncjs_peer, streamer_peer
from peers.device import (
    BAUD,
    DEFAULT_COMMAND,
    DeviceCommand,
    device,
    device_command,
    device_stats_figures,
)
from peers.job import tshirt_front_job
from peers.procs import CpuTimes, SenderProcess, drive, per_line_us
from peers.summary import goal, sender_row
from peers.wire import figures

from agent.demo import free_port, start_broker

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results" / "grbl_peers.json"
STOP_AND_WAIT = BENCH / "peers" / "stop_and_wait.py"
SENDERS = ("agent", "cncjs", "grbl-streamer", "stop-and-wait")

Runner = Callable[[Path, str], tuple[CpuTimes, dict[str, Any]]]


def _stop_and_wait(host_link: Path, job_file: Path, work: Path,
                   name: str) -> tuple[CpuTimes, dict[str, Any]]:
    sender = SenderProcess([sys.executable, str(STOP_AND_WAIT), str(host_link), str(job_file)],
                           work / f"{name}-stop-and-wait.log")
    try:
        return drive(sender, sender.pid)
    finally:
        sender.stop()


def _installs(wanted: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(versions, skipped with the reason) of the peers that need installing."""
    versions, skipped = {}, {}
    for name, install in (("cncjs", cncjs_peer.install), ("grbl-streamer", streamer_peer.install)):
        if name not in wanted:
            continue
        print(f"peers: {name}: installed under {cncjs_peer.CACHE}, or installing it now",
              flush=True)
        version, why = install()
        if version:
            versions[name] = version
        else:
            skipped[name] = why
            print(f"peers: skipping {name}: {why}", flush=True)
    return versions, skipped


def _runners(stack: ExitStack, work: Path, job: list[str], job_file: Path,
             active: list[str], skipped: dict[str, str]) -> dict[str, Runner]:
    runners: dict[str, Runner] = {}
    if "agent" in active:
        broker_port = free_port()
        broker = start_broker(work, broker_port)
        stack.callback(broker.wait, 10)
        stack.callback(broker.terminate)
        runners["agent"] = lambda link, name: agent_runner.run(link, job, work, name,
                                                               broker_port, ROOT)
    if "cncjs" in active:
        try:
            cncjs = stack.enter_context(cncjs_peer.server(work))
        except (RuntimeError, OSError) as exc:
            skipped["cncjs"] = str(exc)
        else:
            runners["cncjs"] = lambda link, name: cncjs_peer.run(link, job_file, work, name,
                                                                 cncjs)
    if "grbl-streamer" in active:
        runners["grbl-streamer"] = lambda link, name: streamer_peer.run(link, job_file, work,
                                                                        name)
    if "stop-and-wait" in active:
        runners["stop-and-wait"] = lambda link, name: _stop_and_wait(link, job_file, work, name)
    return runners


def _one_run(runner: Runner, command: DeviceCommand, work: Path, name: str,
             job: list[str]) -> dict[str, Any]:
    with device(command, work, name, cwd=ROOT) as dev:
        cpu, said = runner(dev.host_link, name)
    out = figures(dev.wire, job, dev.executed, BAUD)
    out.update(per_line_us(cpu, len(job)))
    out.update({"cpu_user_s": round(cpu.user_s, 3), "cpu_sys_s": round(cpu.sys_s, 3),
                "sender_said": said})
    if dev.stats is not None:
        out["device_longest_run"] = device_stats_figures(dev.stats)
    return out


def run_benchmark(runs: int, cut_lines: int, senders: list[str], device_cmd: str,
                  keep: Path | None = None) -> dict[str, Any]:
    load_before = [round(x, 2) for x in os.getloadavg()]
    job = tshirt_front_job(cut_lines)
    command = device_command(device_cmd, cwd=ROOT)
    print(f"peers: device {command.describe()}", flush=True)
    versions, skipped = _installs(senders)
    active = [s for s in senders if s not in skipped]
    all_runs: dict[str, list[dict[str, Any]]] = {s: [] for s in active}
    with ExitStack() as stack:
        work = keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-peers-")))
        work.mkdir(parents=True, exist_ok=True)
        job_file = work / "tshirt-front.nc"
        job_file.write_text("\n".join(job) + "\n")
        runners = _runners(stack, work, job, job_file, active, skipped)
        for n in range(runs):
            for sender, runner in runners.items():
                if sender in skipped:
                    continue
                print(f"peers: run {n + 1}/{runs}: {sender}", flush=True)
                try:
                    all_runs[sender].append(_one_run(runner, command, work, f"{sender}-{n}", job))
                except (RuntimeError, TimeoutError, OSError, ValueError) as exc:
                    if sender != "cncjs":  # a peer's failure is a skip; ours, or the floor's, not
                        raise
                    skipped["cncjs"] = f"cncjs failed during run {n + 1}: {exc}"
    rows = {s: sender_row(s, r) for s, r in all_runs.items() if r and s not in skipped}
    return {
        "benchmark": "grbl_peers",
        "device": {"command": command.describe(), "wire_model": command.wire_model,
                   "baud": BAUD},
        "job": {"name": "T-shirt front, men's M, drag knife", "lines": len(job),
                "bytes": sum(len(x) + 1 for x in job),
                "mean_line_bytes": round(sum(len(x) + 1 for x in job) / len(job), 2)},
        "runs_per_sender": runs,
        "versions": versions,
        "skipped": skipped,
        "rows": list(rows.values()),
        "runs": {s: r for s, r in all_runs.items() if s not in skipped},
        "goal": goal(rows),
        "load_average": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "command": ".venv/bin/python bench/grbl_peers.py",
    }


def _print(result: dict[str, Any]) -> None:
    job = result["job"]
    print(f"\nGRBL peers: {job['name']}, {job['lines']} lines ({job['mean_line_bytes']} B mean), "
          f"{result['device']['baud']} baud; device: {result['device']['command']}")
    print(f"medians of {result['runs_per_sender']} runs; load average before "
          f"{result['load_average']['before']}, after {result['load_average']['after']}")
    print(f"{'sender':15} {'lines/s':>8} {'link':>6} {'(best)':>6} {'overflow':>8} {'errors':>6} "
          f"{'CPU us/line':>11} {'user':>6} {'sys':>6}")
    for r in result["rows"]:
        print(f"{r['sender']:15} {r['lines_per_s']:8.1f} {r['link_share']:6.3f} "
              f"{r['link_share_best']:6.3f} {r['overflow_lines']:8d} {r['error_replies']:6d} "
              f"{r['cpu_us_per_line']:11.1f} {r['user_us_per_line']:6.1f} "
              f"{r['sys_us_per_line']:6.1f}")
    for name, why in result["skipped"].items():
        print(f"{name:15} skipped: {why}")
    goal = result["goal"]
    print(f"goal ({goal['text']}): "
          + ("not judged: " + goal["why"] if goal["met"] is None else
             f"{'met' if goal['met'] else 'NOT met'} (link share "
             f"{'ok' if goal['link_share_met'] else 'short'}, CPU ratio "
             f"{goal['cpu_ratio_agent_to_cncjs']})"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cut-lines", type=int, default=3000)
    parser.add_argument("--senders", default=",".join(SENDERS))
    parser.add_argument("--device-cmd", default=DEFAULT_COMMAND,
                        help="the GRBL device's command, before --link/--baud/--record")
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this folder and keep its logs (wire, device, senders)")
    args = parser.parse_args()
    senders = [s for s in args.senders.split(",") if s]
    unknown = set(senders) - set(SENDERS)
    if unknown:
        parser.error(f"unknown senders: {', '.join(sorted(unknown))}")
    result = run_benchmark(args.runs, args.cut_lines, senders, args.device_cmd, args.keep)
    _print(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
