"""Fleet scale (issue 9): N station agents, each with its own emulated GRBL machine, against one
Mosquitto on this machine; M jobs split between a pool topic and stations' own job topics.

The fleet: ``--pool-share`` of the agents are drag-knife cutters (profile grbl-knife) in the pool
``knife-cutters``, cutting shirt pocket flaps; the rest are lasers (grbl-laser) engraving care
labels, addressed directly. The same share of the jobs goes to the pool. Every job is a
device-neutral toolpaths job; every machine is a GRBL emulator with motion on (a job takes the
seconds its moves take), on a real pseudo-terminal at 115,200 baud with 2 ms of adapter latency.

Agents run as ``run_agent()`` tasks, ``--per-host`` to a process, and the emulators in processes
of their own (bench/fleet_hosts.py), so the agent processes' CPU is the agents' alone. The
pool keeper is ``station-agent pool-keeper`` in its own process; with ``--no-keeper`` (or a tree
without ``agent.pools``) the pool's share of jobs goes straight to free knife stations instead.
The broker is tests/support/broker.py's (the deployment's queueing limits, persistence on) with
``set_tcp_nodelay true`` as deploy/mosquitto/station-agent.conf sets it (``--nagle`` leaves it
out: Mosquitto's default, ~40 ms more per hop on a quiet link); ``--broker-conf LINE`` adds a
mosquitto.conf line.

Jobs are published QoS 1 at a steady rate: ``--load`` (default 0.5) of what the fleet can run,
estimated from a warm-up job on every station, or ``--rate`` jobs/s. A direct job goes to a
station the bench has seen finish its previous job (as a planner would pick a free machine), so
dispatch latency -- publish to the ``started`` event reaching the bench's subscriber on
``<prefix>/+/events`` -- is not queueing behind a busy machine. Reported: dispatch latency
p50/p99/max (all jobs, pool, direct), jobs completed, jobs started more than once (from the
events, and from the emulators' executed lines), agent RSS (per process, per agent) and CPU
(idle and running, per job), broker and keeper CPU. Dispatch latency is measured, never judged:
the JSON carries the goals beside the figures.

Run: ``.venv/bin/python bench/fleet.py [--agents 200] [--jobs 1000]``; writes
bench/results/fleet.json. A development run: ``--agents 10 --jobs 50``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fleet_jobs import KNIFE_PROFILE, LASER_PROFILE, care_label_job, flap_job
from fleet_track import Host, Tracker, cpu_s, percentile, proc_rss_kib

from agent.config import AgentConfig
from agent.link.mqtt_client import ConnectOptions, MqttConnection
from tests.support.broker import Broker

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results" / "fleet.json"
PREFIX = "mf"
POOL = "knife-cutters"
IDLE_WINDOW_S = 3.0


def pools_available() -> bool:
    return ("pools" in AgentConfig.model_fields
            and importlib.util.find_spec("agent.pools.keeper") is not None)


def _agent_config(station: str, profile: str, port: int, work: Path,
                  pools: list[str] | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "station_id": station, "profile": profile,
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": PREFIX},
        "serial": {"port": str(work / "tty" / station)},
        "storage": {"dir": str(work / "state" / station)},
    }
    if pools is not None:
        config["pools"] = pools
    return config


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def _start_hosts(work: Path, port: int, knives: list[str], lasers: list[str],
                       per_host: int, use_pools: bool,
                       started: list[Host]) -> tuple[list[Host], list[Host]]:
    """Emulators first, then agents; every process started is added to ``started`` at once,
    so a failed start-up still ends them all."""
    (work / "tty").mkdir()
    (work / "state").mkdir()
    profile = dict.fromkeys(knives, KNIFE_PROFILE) | dict.fromkeys(lasers, LASER_PROFILE)
    stations = knives + lasers
    # Emulators are cheap next to agents: twice as many to a process.
    emulator_hosts = []
    for n, group in enumerate(_chunks(stations, per_host * 2)):
        spec = {"links": {s: str(work / "tty" / s) for s in group}, "motion": True}
        emulator_hosts.append(await Host.start(work, f"emulators-{n}", "emulators", spec))
        started.append(emulator_hosts[-1])
    await asyncio.gather(*(h.wait_ready(60) for h in emulator_hosts))
    agent_hosts = []
    for n, group in enumerate(_chunks(stations, per_host)):
        configs = [_agent_config(s, profile[s], port, work,
                                 ([POOL] if s in knives else []) if use_pools else None)
                   for s in group]
        agent_hosts.append(await Host.start(work, f"agents-{n}", "agents", {"configs": configs}))
        started.append(agent_hosts[-1])
    await asyncio.gather(*(h.wait_ready(300) for h in agent_hosts))
    return emulator_hosts, agent_hosts


def _start_keeper(work: Path, port: int) -> subprocess.Popen[bytes]:
    conf = work / "keeper.toml"
    conf.write_text("\n".join([
        'keeper_id = "keeper-01"', "[mqtt]", 'host = "127.0.0.1"', f"port = {port}",
        f'topic_prefix = "{PREFIX}"', "[storage]", f'dir = "{work / "keeper"}"']) + "\n")
    log = (work / "keeper.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "agent.cli", "pool-keeper", "--config",
                             str(conf)], stdout=log, stderr=log, cwd=ROOT)


def _source_state() -> dict[str, Any]:
    """Which agent code was measured: the commit, and whether agent/ had uncommitted changes
    (other work in progress in the same checkout)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "agent_uncommitted_changes": bool(git("status", "--porcelain", "--", "agent"))}


def _plan(jobs: int, pool_share: float) -> list[bool]:
    """True for a pool job; the pool's share spread evenly through the run."""
    plan, acc = [], 0.0
    for _ in range(jobs):
        acc += pool_share
        plan.append(acc >= 1.0 - 1e-9)
        if plan[-1]:
            acc -= 1.0
    return plan


async def run(args: argparse.Namespace) -> dict[str, Any]:
    use_pools = pools_available() and args.pool_share > 0 and not args.no_keeper
    n_knife = round(args.agents * args.pool_share)
    knives = [f"knife-{i:03d}" for i in range(n_knife)]
    lasers = [f"laser-{i:03d}" for i in range(args.agents - n_knife)]
    plan = _plan(args.jobs, args.pool_share if knives else 0.0)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmpdir:
        work = Path(tmpdir)
        deployed = [] if args.nagle else ["set_tcp_nodelay true"]
        broker = Broker(work, extra_conf="\n".join(["max_connections -1", *deployed,
                                                     *args.broker_conf]))
        broker.start()
        keeper = _start_keeper(work, broker.port) if use_pools else None
        hosts: list[Host] = []
        try:
            t_up = time.monotonic()
            emulator_hosts, agent_hosts = await _start_hosts(
                work, broker.port, knives, lasers, args.per_host, use_pools, hosts)
            fleet_up_s = time.monotonic() - t_up
            print(f"fleet: {args.agents} agents up in {fleet_up_s:.1f} s "
                  f"({len(agent_hosts)} agent processes, {len(emulator_hosts)} emulator processes)"
                  f"; pools: {'keeper' if use_pools else 'no keeper (direct jobs only)'}",
                  flush=True)
            tracker = Tracker(knives, lasers)
            options = ConnectOptions(host="127.0.0.1", port=broker.port, client_id="bench-planner",
                                     receive_maximum=1000)
            async with MqttConnection(options, tracker.on_message) as conn:
                tracker.conn = conn
                await conn.subscribe([(f"{PREFIX}/+/events", 1),
                                      (f"{PREFIX}/pools/+/events", 1),
                                      (f"{PREFIX}/pools/+/replies/+", 1)])
                result = await _measure(args, conn, tracker, plan, use_pools, broker,
                                        keeper, agent_hosts, emulator_hosts)
            result["fleet_up_s"] = round(fleet_up_s, 1)
            # Agents first, so none sees its machine vanish.
            agent_finals = await asyncio.gather(*(h.finish() for h in agent_hosts))
            emulator_finals = await asyncio.gather(*(h.finish() for h in emulator_hosts))
            result.update(_emulator_check(tracker, emulator_finals))
            result["agent_hwm_per_process_mib"] = round(
                max(f["hwm_kib"] for f in agent_finals) / 1024, 1)
        finally:
            for h in hosts:
                h.kill()
            if keeper is not None:
                keeper.terminate()
                keeper.wait(timeout=10)
            broker.stop()
    return result


async def _sample(pids: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_s(p) for p in group) for name, group in pids.items()}


async def _measure(args: argparse.Namespace, conn: MqttConnection, tracker: Tracker,
                   plan: list[bool], use_pools: bool, broker: Broker, keeper: Any,
                   agent_hosts: list[Host], emulator_hosts: list[Host]) -> dict[str, Any]:
    assert broker.proc is not None
    pids = {"agents": [h.pid for h in agent_hosts], "emulators": [h.pid for h in emulator_hosts],
            "broker": [broker.proc.pid], "bench": [os.getpid()],
            "keeper": [keeper.pid] if keeper is not None else []}
    # Warm-up: one job on every station at once (first compiles, first stream), which also
    # tells how long each kind of job runs on the emulated machines.
    warm = await tracker.warm_up(conn, PREFIX, care_label_job, flap_job, timeout=120)
    print(f"fleet: warm-up, one job per station: label {warm['laser_s']:.2f} s, flap "
          f"{warm['knife_s']:.2f} s (start to finish)", flush=True)
    await asyncio.sleep(1.0)
    c0, t0 = await _sample(pids), time.monotonic()
    await asyncio.sleep(IDLE_WINDOW_S)
    c1, t1 = await _sample(pids), time.monotonic()
    idle = {k: (c1[k] - c0[k]) / (t1 - t0) for k in c0}
    n_pool = sum(plan)
    rate = args.rate or _sustainable_rate(args.load, len(tracker.knives), len(tracker.lasers),
                                          n_pool / len(plan), warm)
    print(f"fleet: publishing {len(plan)} jobs ({n_pool} to the pool topic"
          f"{'' if use_pools else ', sent direct: no keeper'}) at {rate:.1f} jobs/s", flush=True)
    rss_before = {h.name: proc_rss_kib(h.pid) for h in agent_hosts}
    c2, t2 = await _sample(pids), time.monotonic()
    await tracker.publish_all(conn, PREFIX, POOL, plan, rate, use_pools, care_label_job,
                              flap_job)
    published_s = time.monotonic() - t2
    await tracker.wait_all_done(timeout=len(plan) / rate + 180)
    c3, t3 = await _sample(pids), time.monotonic()
    await asyncio.sleep(1.0)  # a late second `started` would still be counted
    run_s = t3 - t2
    busy = {k: (c3[k] - c2[k]) / run_s for k in c2}
    rss_after = {h.name: proc_rss_kib(h.pid) for h in agent_hosts}
    n_jobs = len(plan)
    ready = [h.ready for h in agent_hosts]
    per_agent = [(r["rss_all_kib"] - r["rss_one_kib"]) / max(1, r["agents"] - 1) for r in ready]
    lat = tracker.latencies_ms()
    return {
        "benchmark": "fleet",
        "agents": args.agents, "knife_stations_in_pool": len(tracker.knives),
        "laser_stations_direct": len(tracker.lasers),
        "agents_per_process": args.per_host, "agent_processes": len(agent_hosts),
        "emulator_processes": len(emulator_hosts),
        "pool_mode": "keeper" if use_pools else "no keeper: pool share sent direct",
        "jobs": n_jobs, "jobs_pool": n_pool, "jobs_direct": n_jobs - n_pool,
        "rate_jobs_per_s": round(rate, 2),
        "rate_basis": "--rate" if args.rate else f"--load {args.load} of warm-up capacity",
        "achieved_publish_rate_jobs_per_s": round(n_jobs / published_s, 2),
        "direct_jobs_waiting_for_a_free_station": tracker.waited_for_station,
        "warm_up_job_s": {"care_label": round(warm["laser_s"], 2),
                          "pocket_flap": round(warm["knife_s"], 2)},
        "run_s": round(run_s, 1),
        "dispatch_ms": {
            "all": _stats(lat["all"]), "pool": _stats(lat["pool"]),
            "direct": _stats(lat["direct"])},
        "jobs_completed": tracker.count_terminal("succeeded"),
        "jobs_failed": tracker.count_terminal("failed"),
        "jobs_rejected": tracker.count_terminal("rejected"),
        "jobs_unfinished": n_jobs - len(tracker.terminal_of_run()),
        "jobs_started_more_than_once": tracker.started_twice(),
        "jobs_started_on_a_wrong_station": tracker.started_elsewhere(),
        "pool_events": dict(tracker.pool_events),
        "pool_replies": dict(tracker.pool_replies),
        "events_received": dict(tracker.event_counts),
        "cpu_pct_of_one_core": {
            "idle": {k: round(v * 100, 1) for k, v in idle.items()},
            "running": {k: round(v * 100, 1) for k, v in busy.items()}},
        "agent_cpu_ms_per_job": round((busy["agents"] - idle["agents"]) * run_s / n_jobs * 1000,
                                      2),
        "agent_cpu_ms_per_job_note": "agent processes' CPU while running, less their idle rate, "
                                     "per job",
        "agent_idle_cpu_pct_per_agent": round(idle["agents"] * 100 / args.agents, 3),
        "agent_rss_process_with_one_agent_mib": round(
            sum(r["rss_one_kib"] for r in ready) / len(ready) / 1024, 1),
        "agent_rss_imports_only_mib": round(
            sum(r["rss_base_kib"] for r in ready) / len(ready) / 1024, 1),
        "agent_rss_per_added_agent_mib": round(sum(per_agent) / len(per_agent) / 1024, 2),
        "agent_rss_per_process_mib": {
            "fleet_up": round(sum(r["rss_all_kib"] for r in ready) / len(ready) / 1024, 1),
            "before_run": round(sum(rss_before.values()) / len(rss_before) / 1024, 1),
            "after_run": round(sum(rss_after.values()) / len(rss_after) / 1024, 1)},
        "agent_rss_per_agent_after_run_mib": round(sum(
            (rss_after[h.name] - h.ready["rss_base_kib"]) / h.ready["agents"]
            for h in agent_hosts) / len(agent_hosts) / 1024, 2),
        "agent_rss_total_mib": round(sum(rss_after.values()) / 1024, 1),
        "broker_rss_mib": round(proc_rss_kib(pids["broker"][0]) / 1024, 1),
        "broker_conf_extra": [*([] if args.nagle else ["set_tcp_nodelay true"]),
                              *args.broker_conf],
        "keeper_alive_at_end": keeper is None or keeper.poll() is None,
        "goals": {"jobs_completed": "all", "jobs_started_more_than_once": "0",
                  "dispatch_p99_ms": "< 250"},
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_1min_at_end": round(os.getloadavg()[0], 2)},
        "source": _source_state(),
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([".venv/bin/python bench/fleet.py", *sys.argv[1:]]),
    }


def _sustainable_rate(load: float, n_knife: int, n_laser: int, pool_share: float,
                      warm: dict[str, float]) -> float:
    """``load`` times the rate at which the busier group of machines would be fully used."""
    gap_s = 0.3  # between a job's end and the next one's start (events, status)
    worst = 0.0
    for n, share, d in ((n_knife, pool_share, warm["knife_s"]),
                        (n_laser, 1 - pool_share, warm["laser_s"])):
        if n and share:
            worst = max(worst, share * (d + gap_s) / n)
    return load / worst


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(percentile(values, 50), 1),
            "p99": round(percentile(values, 99), 1), "max": round(max(values), 1),
            "mean": round(sum(values) / len(values), 1)}


def _emulator_check(tracker: Tracker, finals: list[dict[str, Any]]) -> dict[str, Any]:
    """Each machine executed exactly the lines of the jobs it was seen to start, once each."""
    executed: dict[str, int] = {}
    for f in finals:
        executed.update(f["executed"])
    mismatched = {s: {"executed": n, "expected": tracker.expected_lines(s)}
                  for s, n in executed.items() if n != tracker.expected_lines(s)}
    return {"emulator_lines_executed": sum(executed.values()),
            "emulator_lines_expected": sum(tracker.expected_lines(s) for s in executed),
            "emulator_stations_mismatched": mismatched,
            "emulator_overflow_bytes": sum(f["overflow_bytes"] for f in finals),
            "emulator_alarms": sum(f["alarms"] for f in finals),
            "emulator_errors": sum(f["errors"] for f in finals)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--pool-share", type=float, default=0.5,
                        help="share of agents in the pool and of jobs sent to it")
    parser.add_argument("--per-host", type=int, default=25, help="agents per process")
    parser.add_argument("--load", type=float, default=0.5,
                        help="publish rate as a share of the fleet's capacity (warm-up)")
    parser.add_argument("--rate", type=float, default=0.0, help="jobs/s (overrides --load)")
    parser.add_argument("--no-keeper", action="store_true",
                        help="send the pool's share straight to free knife stations instead")
    parser.add_argument("--nagle", action="store_true",
                        help="leave out set_tcp_nodelay (Mosquitto's default)")
    parser.add_argument("--broker-conf", action="append", default=[], metavar="LINE",
                        help="an extra mosquitto.conf line, e.g. 'set_tcp_nodelay true'")
    args = parser.parse_args()
    r = asyncio.run(run(args))
    d = r["dispatch_ms"]
    print(f"fleet: {r['agents']} agents, {r['jobs']} jobs ({r['jobs_pool']} pool, "
          f"{r['jobs_direct']} direct; {r['pool_mode']}) at {r['rate_jobs_per_s']} jobs/s")
    for name in ("all", "pool", "direct"):
        if d[name].get("n"):
            print(f"  dispatch {name:<6} p50 {d[name]['p50']} ms, p99 {d[name]['p99']} ms, "
                  f"max {d[name]['max']} ms (n={d[name]['n']})")
    print(f"  completed {r['jobs_completed']} of {r['jobs']}; failed {r['jobs_failed']}, "
          f"unfinished {r['jobs_unfinished']}; started more than once: "
          f"{r['jobs_started_more_than_once']}, on a wrong station: "
          f"{r['jobs_started_on_a_wrong_station']}; emulator lines {r['emulator_lines_executed']} "
          f"(expected {r['emulator_lines_expected']})")
    cpu = r["cpu_pct_of_one_core"]
    print(f"  CPU % of one core, idle / running: agents {cpu['idle']['agents']} / "
          f"{cpu['running']['agents']}, emulators {cpu['idle']['emulators']} / "
          f"{cpu['running']['emulators']}, broker {cpu['idle']['broker']} / "
          f"{cpu['running']['broker']}, keeper {cpu['idle']['keeper']} / "
          f"{cpu['running']['keeper']}, bench {cpu['running']['bench']}")
    print(f"  agent CPU {r['agent_cpu_ms_per_job']} ms per job, idle "
          f"{r['agent_idle_cpu_pct_per_agent']} % per agent")
    print(f"  agent RSS: process with one agent {r['agent_rss_process_with_one_agent_mib']} MiB "
          f"(imports {r['agent_rss_imports_only_mib']} MiB), +{r['agent_rss_per_added_agent_mib']}"
          f" MiB per added agent at start, {r['agent_rss_per_agent_after_run_mib']} MiB after the"
          f" run; {r['agents_per_process']} per process: "
          f"{r['agent_rss_per_process_mib']['after_run']} MiB; all agents "
          f"{r['agent_rss_total_mib']} MiB")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
