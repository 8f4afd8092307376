"""Issue 14: a Marlin that fills its command queue only in idle(), fed by the old and new window.

The configuration of the issue: 5 ms reply latency, 0.2 ms per command, BUFSIZE 4, a 128-byte
receive buffer, bytes arriving as fast as written (instant wire), a 3,000-line garment cut (a
sleeve cap in ~0.5 mm G1 segments), with and without ADVANCED_OK. The flow and the emulator's
model run on one simulated clock (``agent/emulators/marlin_sim.py``), so lines/s are simulated
seconds (host CPU not counted) and the same seed gives the same figures. Replies come back with
up to 5 ms of seeded jitter, so oks arrive in clumps and the flow writes bursts. "old" is the
window before issue 14 (the oldest BUFSIZE unacknowledged lines taken to be queued already),
re-created here by overriding its size test; "new" is ``MarlinFlow`` as it is.

Run: ``.venv/bin/python bench/marlin_overflow.py [--lines N] [--seeds N]``; prints a table and
writes ``bench/results/marlin_overflow.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.dialects.marlin import prepare_marlin_program  # noqa: E402
from agent.emulators.marlin_sim import pre_issue14_flow, simulate  # noqa: E402
from agent.garments import short_segment_outline  # noqa: E402
from agent.profiles import load_profile  # noqa: E402
from agent.profiles.marlin import MarlinProfile  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "marlin_overflow.json"
CONFIG: dict[str, Any] = {"latency_s": 0.005, "command_time_s": 0.0002, "bufsize": 4,
                          "rx_buffer_bytes": 128, "jitter_s": 0.005}


def _profile() -> MarlinProfile:
    base = load_profile("marlin-2")
    assert isinstance(base, MarlinProfile)
    return base


def _program(lines: int) -> tuple[str, ...]:
    text = short_segment_outline(lines).replace("G21G90G94", "G21\nG90", 1)
    return prepare_marlin_program(text, _profile()).lines


def run_benchmark(lines: int = 3000, seeds: int = 5) -> dict[str, Any]:
    program = _program(lines)
    settings = _profile().marlin
    rows: list[dict[str, Any]] = []
    for advanced in (False, True):
        for window in ("old", "new"):
            factory = pre_issue14_flow if window == "old" else None
            for seed in range(seeds):
                cpu0 = time.process_time()
                run = simulate(program, settings, advanced_ok=advanced, seed=seed,
                               flow_factory=factory, **CONFIG)
                cpu = time.process_time() - cpu0
                ran = [c for c in run.executed if c not in ("M110 N0", "M105", "M400")]
                rows.append({
                    "window": window,
                    "advanced_ok": advanced,
                    "seed": seed,
                    "lines": run.lines,
                    "simulated_s": round(run.seconds, 4),
                    "lines_per_s": round(run.lines_per_s, 1),
                    "rx_overflows": run.rx_overflows,
                    "resend_requests": run.resend_requests,
                    "max_rx_bytes": run.max_rx_bytes,
                    "max_in_flight": run.max_in_flight,
                    "every_line_once_in_order": ran == list(program),
                    "sim_cpu_s": round(cpu, 3),
                })
    report: dict[str, Any] = {
        "benchmark": "marlin_overflow",
        "program": f"{len(program)} lines (sleeve cap, ~0.5 mm G1 segments)",
        "config": {"latency_ms": 5, "command_ms": 0.2, "bufsize": 4, "rx_buffer_bytes": 128,
                   "reply_jitter_ms": 5, "wire": "instant", "clock": "simulated"},
        "rows": rows,
        "summary": _summary(rows),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for advanced in (False, True):
        for window in ("old", "new"):
            sel = [r for r in rows if r["window"] == window and r["advanced_ok"] == advanced]
            out.append({
                "window": window,
                "advanced_ok": advanced,
                "runs": len(sel),
                "lines_per_s_mean": round(sum(r["lines_per_s"] for r in sel) / len(sel), 1),
                "rx_overflows_total": sum(r["rx_overflows"] for r in sel),
                "runs_with_overflow": sum(1 for r in sel if r["rx_overflows"]),
                "resend_requests_total": sum(r["resend_requests"] for r in sel),
                "all_lines_once_in_order": all(r["every_line_once_in_order"] for r in sel),
            })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    report = run_benchmark(args.lines, args.seeds)
    print(f"{'window':>6} {'ADV_OK':>6} {'runs':>4} {'lines/s':>8} {'overflows':>9} "
          f"{'runs w/ overflow':>16} {'resends':>7} {'exactly once':>12}")
    for s in report["summary"]:
        print(f"{s['window']:>6} {('yes' if s['advanced_ok'] else 'no'):>6} {s['runs']:>4} "
              f"{s['lines_per_s_mean']:>8.0f} {s['rx_overflows_total']:>9} "
              f"{s['runs_with_overflow']:>16} {s['resend_requests_total']:>7} "
              f"{s['all_lines_once_in_order']!s:>12}")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
