"""`make bench`: run every benchmark, then write docs/benchmarks.md from their JSON results.

Benchmarks print and record; they assert nothing. Each runs as its own process so one's
memory and CPU do not colour another's.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
DOC = ROOT / "docs" / "benchmarks.md"

Row = tuple[str, str, str]  # figure, measured, goal


def _grbl(d: dict[str, Any]) -> list[Row]:
    agent, base = d["results"]
    m = d["motion_run"]
    return [
        ("GRBL link utilisation, 10k short moves, 115200 baud, 2 ms latency",
         f"{agent['link_utilisation_pct']} % (stop-and-wait: {base['link_utilisation_pct']} %)",
         ">= 97 %"),
        ("GRBL lines/s", f"{agent['lines_per_s']} (stop-and-wait: {base['lines_per_s']})", ""),
        ("GRBL agent CPU per streamed line (median of the runs)",
         f"{agent['cpu_us_per_line']} µs (runs: "
         f"{', '.join(str(r['cpu_us_per_line']) for r in d.get('agent_runs', []))})",
         "< 30 µs"),
        ("GRBL planner empty while lines remain (motion on)",
         f"{m['planner_starved_samples']} of {m['status_samples']} status samples", "0"),
    ]


def _peers(d: dict[str, Any]) -> list[Row]:
    device = "wire model" if d["device"]["wire_model"] else "plain emulator"
    rows: list[Row] = [(f"GRBL peers ({device}), {d['job']['lines']}-line T-shirt front, "
                        f"{r['sender']}",
                        f"{r['lines_per_s']} lines/s, link {r['link_share']:.3f} (best "
                        f"{r['link_share_best']:.3f}), "
                        f"{r['overflow_lines']} overflows, {r['cpu_us_per_line']} µs CPU/line",
                        "") for r in d["rows"]]
    rows += [(f"GRBL peers: {name}", f"skipped: {why}", "") for name, why in d["skipped"].items()]
    goal = d["goal"]
    rows.append(("GRBL peers: agent vs cncjs", "not judged" if goal["met"] is None else
                 f"{'met' if goal['met'] else 'not met'} (CPU ratio "
                 f"{goal['cpu_ratio_agent_to_cncjs']})", goal["text"]))
    return rows


def _marlin(d: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for r in d["rows"]:
        if r["mode"] != "windowed":
            continue
        aok = "on" if r["advanced_ok"] else "off"
        name = f"Marlin {r['latency_ms']:g} ms latency, ADVANCED_OK {aok}"
        rows.append((f"{name}: lines/s (x stop-and-wait)",
                     f"{r['lines_per_s']} ({r['speedup_vs_stop_and_wait']}x)",
                     ">= 5x at 5 ms" if r["latency_ms"] == 5 else ""))
        rows.append((f"{name}: agent CPU per line, overflows",
                     f"{r['agent_cpu_us_per_line']} µs, {r['rx_overflows']}", "< 50 µs, 0"))
    return rows


def _marlin_overflow(d: dict[str, Any]) -> list[Row]:
    return [(f"Marlin issue 14 model (5 ms, 0.2 ms/cmd, BUFSIZE 4, RX 128, instant wire), "
             f"{s['window']} window, ADVANCED_OK {'on' if s['advanced_ok'] else 'off'}",
             f"{s['lines_per_s_mean']} lines/s (simulated), {s['rx_overflows_total']} overflows "
             f"in {s['runs']} runs", "0 overflows") for s in d["summary"]]


def _hpgl(d: dict[str, Any]) -> list[Row]:
    return [(f"HP-GL {r['job']}: {r['sender']}",
             f"{r['bytes_per_s']} B/s ({r['utilisation'] * 100:.1f} % of 9600 baud), "
             f"{r['overflows']} overflows, plot {'correct' if r['plot_correct'] else 'WRONG'}",
             "0 overflows") for r in d["rows"]]


def _durability(d: dict[str, Any]) -> list[Row]:
    return [
        ("Durable enqueue rate (" + d["fsync_policy"] + ")",
         f"{d['enqueue_events_per_s']} events/s", ">= 5000 events/s"),
        (f"Replay after a {d['events']}-event outage", f"{d['replay_events_per_s']} events/s",
         ">= 2000 events/s"),
        ("Agent peak RSS during the backlog", f"{d['peak_rss_mib']} MiB", "< 60 MiB"),
    ]


def _estop(d: dict[str, Any]) -> list[Row]:
    w = d["while_streaming"]
    return [(f"E-stop pin to stop byte on the serial port, {d['presses']} presses",
             f"p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms (streaming: p99 {w['p99_ms']} ms)",
             "p99 < 10 ms")]


def _compile(d: dict[str, Any]) -> list[Row]:
    return [(f"Compile a 100,000-point toolpaths job for {r['profile']}",
             f"{r['compile_s']} s, peak {r['compile_peak_mib']} MiB, {r['program_lines']} lines",
             "") for r in d["results"]]


def _patterns(d: dict[str, Any]) -> list[Row]:
    big, tee = d["big_pattern"], d["tshirt_marker"]
    return [
        (f"Pattern job: parse + place + compile, {big['blocks']}-block AAMA DXF "
         f"({big['copies_placed']} copies of one size, grbl-knife)",
         f"{big['total_s']} s, peak RSS {big['peak_rss_mib']} MiB "
         f"({big['rss_after_imports_mib']} MiB after imports)", "< 2 s, < 80 MiB"),
        (f"T-shirt S-XL marker utilisation ({tee['copies']} copies)",
         f"{tee['utilisation'] * 100:.1f} % (bounding-box shelves: "
         f"{tee['shelf_baseline_utilisation'] * 100:.1f} %, +{tee['gain_points']} points)",
         ">= +10 points"),
    ]


def _flood(d: dict[str, Any]) -> list[Row]:
    return [(f"Flood of {d['jobs']} jobs in a burst (queue limit {d['max_queued_jobs']})",
             f"{d['accepted']} accepted, {d['rejected_queue_full']} queue_full, all answered in "
             f"{d['answer_all_s']} s; agent peak RSS {d['agent_peak_rss_mib']} MiB",
             "bounded queue and memory")]


def _fleet(d: dict[str, Any]) -> list[Row]:
    lat = d["dispatch_ms"]
    by_topic = ", ".join(f"{name} p99 {lat[name]['p99']} ms" for name in ("pool", "direct")
                         if lat[name].get("n"))
    return [
        (f"Fleet: {d['agents']} agents (emulated GRBL each), one Mosquitto, {d['jobs']} jobs "
         f"({d['jobs_pool']} pool, {d['jobs_direct']} direct) at {d['rate_jobs_per_s']} jobs/s",
         f"{d['jobs_completed']} of {d['jobs']} done, {d['jobs_started_more_than_once']} twice; "
         f"dispatch p50 {lat['all']['p50']} ms, p99 {lat['all']['p99']} ms ({by_topic})",
         "all done, 0 twice, p99 < 250 ms"),
        ("Fleet: agent cost",
         f"{d['agent_cpu_ms_per_job']} ms CPU per job, {d['agent_idle_cpu_pct_per_agent']} % of a "
         f"core per idle agent; RSS {d['agent_rss_process_with_one_agent_mib']} MiB for a process "
         f"with one agent, +{d['agent_rss_per_agent_after_run_mib']} MiB per agent after the run",
         ""),
        ("Fleet: broker and keeper CPU while running (% of one core)",
         f"broker {d['cpu_pct_of_one_core']['running']['broker']} %, keeper "
         f"{d['cpu_pct_of_one_core']['running']['keeper']} % ({d['pool_mode']})", ""),
    ]


def _grbl_wire(d: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name, r in d["results"].items():
        size = name.split("_")[0]
        rows.append((f"GRBL whole agent on the wire model ({size}-byte lines, {d['job']}, "
                     "via Mosquitto): link share, lines/s, bytes lost",
                     f"{r['link_share']:.4f}, {r['lines_per_s']:.0f}, {r['lost_bytes']}",
                     f"{d['goals']['link_share']}, , {d['goals']['lost_bytes']}"))
        rows.append((f"GRBL whole agent on the wire model ({size}-byte lines): CPU per line "
                     "(user / system), share outside the driver",
                     f"{r['cpu_us_per_line']:.0f} µs ({r['cpu_user_us_per_line']:.0f} / "
                     f"{r['cpu_system_us_per_line']:.0f}), {r['outside_driver_share']:.2f}",
                     f"{d['goals']['cpu_us_per_line']} µs"))
    return rows


def _serial_trace(d: dict[str, Any]) -> list[Row]:
    ns = d["record_ns"]
    return [("Serial trace: record one chunk into a full 64 KiB ring (G-code line, `?`, 4 KiB "
             "read)", f"{ns['gcode_line_tx']} / {ns['realtime_byte']} / {ns['reply_read_4k']} ns",
             "small beside a line's ~40 µs"),
            ("Serial trace: render the whole ring / a failed event's clip",
             f"{d['render_ms']['all_lines']} ms / {d['render_ms']['failed_event_clip']} ms", "")]


def _estimate_grbl(d: dict[str, Any]) -> list[Row]:
    if "skipped" in d:
        return [("GRBL time estimate vs real GRBL 1.1h (grbl-sim)", f"skipped: {d['skipped']}",
                 "within 5 %")]
    return [(f"GRBL time estimate vs real GRBL 1.1h (grbl-sim): {j['job']} ({j['lines']} lines)",
             f"{j['estimate_s']} s vs {j['grbl_sim_s']} s ({100 * j['error']:+.1f} %)",
             "within 5 %") for j in d["jobs"]]


BENCHMARKS: list[tuple[str, str, Callable[[dict[str, Any]], list[Row]]]] = [
    ("stream_grbl.py", "stream_grbl.json", _grbl),
    ("grbl_wire.py", "grbl_wire.json", _grbl_wire),
    ("grbl_peers.py", "grbl_peers.json", _peers),
    ("stream_marlin.py", "stream_marlin.json", _marlin),
    ("marlin_overflow.py", "marlin_overflow.json", _marlin_overflow),
    ("stream_hpgl.py", "stream_hpgl.json", _hpgl),
    ("durability.py", "durability.json", _durability),
    ("flood.py", "flood.json", _flood),
    ("estop_latency.py", "estop_latency.json", _estop),
    ("compile_toolpaths.py", "compile_toolpaths.json", _compile),
    ("patterns.py", "patterns.json", _patterns),
    ("fleet.py", "fleet.json", _fleet),
    ("serial_trace.py", "serial_trace.json", _serial_trace),
    ("estimate_grbl.py", "estimate_grbl.json", _estimate_grbl),
]


def _measured_on(path: Path) -> str:
    """The day a result was written: its last commit, or the file's own time if it changed
    since (a fresh clone's file times say nothing)."""
    changed = subprocess.run(["git", "status", "--porcelain", "--", str(path)], cwd=ROOT,
                             capture_output=True, text=True, check=False).stdout.strip()
    if not changed:
        day = subprocess.run(["git", "log", "-1", "--format=%cs", "--", str(path)], cwd=ROOT,
                             capture_output=True, text=True, check=False).stdout.strip()
        if day:
            return day
    return time.strftime("%Y-%m-%d", time.localtime(path.stat().st_mtime))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    """``run_all.py [--table-only] [script.py ...]``: run all (or the named) benchmarks, then
    rewrite docs/benchmarks.md from every result on disk, each dated by when it was measured."""
    args = sys.argv[1:]
    table_only = "--table-only" in args
    only = {a for a in args if a != "--table-only"}
    failures = []
    for script, _, _ in BENCHMARKS:
        if table_only or (only and script not in only):
            continue
        print(f"== bench/{script}", flush=True)
        rc = subprocess.call([sys.executable, str(BENCH / script)], cwd=ROOT)
        if rc != 0:
            failures.append(script)
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {_cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}. Table written: {time.strftime('%Y-%m-%d')}; "
        "each source says the day its figures were measured. "
        "Command: `make bench` (or `.venv/bin/python bench/<name>.py`, then "
        "`bench/run_all.py --table-only`).",
        "",
        "Benchmarks print and record; tests never assert timings. Raw figures are in "
        "[`bench/results/`](../bench/results/).",
        "",
        "| figure | measured | goal | source |",
        "| --- | --- | --- | --- |",
    ]
    for script, result, summarise in BENCHMARKS:
        path = RESULTS / result
        if not path.exists():
            lines.append(f"| bench/{script} | not run | | |")
            continue
        for figure, measured, goal in summarise(json.loads(path.read_text())):
            link = f"[{result}](../bench/results/{result}) ({_measured_on(path)})"
            lines.append(f"| {figure} | {measured} | {goal} | {link} |")
    if failures:
        lines += ["", "Failed to run: " + ", ".join(failures)]
    DOC.write_text("\n".join(lines) + "\n")
    print(f"wrote {DOC}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
