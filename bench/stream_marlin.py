"""Streaming throughput to a Marlin board: windowed numbered lines vs stop-and-wait.

10,000 short G1 segments (a sleeve cap traced at about 0.5 mm per move) go to the Marlin emulator
on a pseudo-terminal, at 1 ms and 5 ms reply latency, with and without ADVANCED_OK. The emulator
runs in its own process (128-byte receive buffer, BUFSIZE 4, 0.2 ms per command, no baud limit:
native USB), so ``time.process_time()`` of this process is the agent's CPU alone. The baseline is
the same driver with the profile's ``stop_and_wait`` (one line in flight, like OctoPrint).

Run: ``.venv/bin/python bench/stream_marlin.py [--lines N]``; prints a table and writes
``bench/results/stream_marlin.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.dialects.marlin import prepare_marlin_program  # noqa: E402
from agent.drivers.base import QuietListener  # noqa: E402
from agent.drivers.marlin import MarlinDriver  # noqa: E402
from agent.garments import short_segment_outline  # noqa: E402
from agent.profiles import load_profile  # noqa: E402
from agent.profiles.marlin import MarlinProfile  # noqa: E402
from agent.transport.serial_port import SerialLink  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "stream_marlin.json"



def _profile(*, stop_and_wait: bool) -> MarlinProfile:
    base = load_profile("marlin-2")
    assert isinstance(base, MarlinProfile)
    settings = base.marlin.model_copy(update={"stop_and_wait": stop_and_wait, "boot_wait_s": 0.5})
    return base.model_copy(update={"marlin": settings})


def _program(lines: int) -> tuple[str, ...]:
    text = short_segment_outline(lines).replace("G21G90G94", "G21\nG90", 1)
    return prepare_marlin_program(text, _profile(stop_and_wait=False)).lines


async def _stream(link_path: Path, program: tuple[str, ...], *, stop_and_wait: bool
                  ) -> tuple[int, float, float, bool]:
    profile = _profile(stop_and_wait=stop_and_wait)
    link = await SerialLink.open(str(link_path), profile.baud)
    driver = MarlinDriver(link, QuietListener(), profile)
    try:
        await driver.open()
        run = asyncio.create_task(driver.run())
        try:
            cpu0, t0 = time.process_time(), time.perf_counter()
            result = await driver.stream(program, lambda n: None)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        finally:
            run.cancel()
            with contextlib.suppress(BaseException):
                await run
    finally:
        await link.close()
    return result.lines_done, wall, cpu, driver.caps.advanced_ok


def _run_once(
    program: tuple[str, ...], latency_ms: float, *, advanced_ok: bool, stop_and_wait: bool
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        link_path = Path(tmp) / "marlin"
        cmd = [sys.executable, __file__, "--serve", str(link_path), "--latency-ms",
               str(latency_ms)]
        if advanced_ok:
            cmd.append("--advanced-ok")
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            child.stdout.readline()  # the emulator is up
            n, wall, cpu, detected = asyncio.run(
                _stream(link_path, program, stop_and_wait=stop_and_wait)
            )
        finally:
            child.terminate()
            out, _ = child.communicate(timeout=10)
        stats = json.loads(out.strip().splitlines()[-1])
    return {
        "latency_ms": latency_ms,
        "advanced_ok": advanced_ok,
        "mode": "stop-and-wait" if stop_and_wait else "windowed",
        "lines": n,
        "seconds": round(wall, 3),
        "lines_per_s": round(n / wall, 1),
        "agent_cpu_us_per_line": round(cpu / n * 1e6, 1),
        "rx_overflows": stats["rx_overflows"],
        "resend_requests": stats["resend_requests"],
        # Everything the agent sent ran exactly once: the program, M110, the M400 fence and the
        # M105 barrier (plus an M105 per 200 lines without ADVANCED_OK).
        "executed_commands": stats["executed"],
        "advanced_ok_detected": detected,
    }


def run_benchmark(lines: int = 10_000) -> dict[str, object]:
    program = _program(lines)
    rows: list[dict[str, Any]] = []
    for latency in (1.0, 5.0):
        baseline = _run_once(program, latency, advanced_ok=False, stop_and_wait=True)
        rows.append(baseline)
        for advanced in (False, True):
            row = _run_once(program, latency, advanced_ok=advanced, stop_and_wait=False)
            row["speedup_vs_stop_and_wait"] = round(
                row["lines_per_s"] / baseline["lines_per_s"], 2
            )
            rows.append(row)
    at5 = [r for r in rows if r["latency_ms"] == 5.0 and r["mode"] == "windowed"]
    report: dict[str, object] = {
        "benchmark": "stream_marlin",
        "program": f"{lines} short G1 segments (sleeve cap, ~0.5 mm each)",
        "emulator": "separate process; 128-byte RX buffer, BUFSIZE 4, 0.2 ms per command, "
        "no baud limit",
        "rows": rows,
        "goal_5x_at_5ms": all(r["speedup_vs_stop_and_wait"] >= 5 for r in at5),
        "goal_zero_overflows": all(r["rx_overflows"] == 0 for r in rows),
        "goal_cpu_under_50us": all(r["agent_cpu_us_per_line"] < 50 for r in rows
                                   if r["mode"] == "windowed"),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _print_table(report: dict[str, object]) -> None:
    rows = report["rows"]
    assert isinstance(rows, list)
    print(f"{'latency':>8} {'ADV_OK':>6} {'mode':>14} {'lines/s':>9} {'x S&W':>6} "
          f"{'CPU us/line':>11} {'overflows':>9} {'resends':>7}")
    for r in rows:
        print(f"{r['latency_ms']:>6.0f}ms {('yes' if r['advanced_ok'] else 'no'):>6} "
              f"{r['mode']:>14} {r['lines_per_s']:>9.0f} "
              f"{r.get('speedup_vs_stop_and_wait', 1.0):>6.2f} "
              f"{r['agent_cpu_us_per_line']:>11.1f} {r['rx_overflows']:>9} "
              f"{r['resend_requests']:>7}")
    for key in ("goal_5x_at_5ms", "goal_zero_overflows", "goal_cpu_under_50us"):
        print(f"{key}: {report[key]}")


async def _serve(link: Path, latency_ms: float, advanced_ok: bool) -> None:
    from agent.emulators.marlin import MarlinEmulator
    from agent.emulators.pty import PtyEndpoint

    async with PtyEndpoint(link, baud=None, latency_s=latency_ms / 1000) as endpoint:
        emulator = MarlinEmulator(endpoint, advanced_ok=advanced_ok)
        emulator.start()
        print("ready", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await emulator.stop()
        print(json.dumps({
            "rx_overflows": emulator.rx_overflows,
            "resend_requests": emulator.resend_requests,
            "executed": len(emulator.executed) - 4,  # M110 ping, M115, M155, M113 of open()
        }), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--latency-ms", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--advanced-ok", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(_serve(args.serve, args.latency_ms, args.advanced_ok))
        return
    report = run_benchmark(args.lines)
    _print_table(report)
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
