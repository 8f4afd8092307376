"""Serial trace cost: what recording one chunk costs the serial link, and what a dump costs.

Recording runs on every read and write of the port (a GRBL job at 115200 baud is a few
thousand chunks a second), so it must stay far below the cost of the ``os.write`` or
``os.read`` it follows; rendering runs only when a job fails or someone asks.

Measured with the ring full (every record also evicts the oldest chunk), best of several runs:
- ``record_ns``: one :meth:`SerialTrace.record` for a G-code line sent, a 1-byte realtime
  command, and a 4 KiB read of replies;
- ``render_ms``: turning a full 64 KiB ring of G-code lines and ``ok`` replies into lines,
  the whole of it (``station-agent trace``) and the clipped copy a ``failed`` event carries.

Run: ``.venv/bin/python bench/serial_trace.py [records]``; writes bench/results/serial_trace.json.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from agent.transport.trace import DEFAULT_MAX_BYTES, Direction, SerialTrace

RESULTS = Path(__file__).resolve().parent / "results" / "serial_trace.json"
REPEATS = 5

CHUNKS = {
    "gcode_line_tx": (Direction.TX, b"G1X512.125Y230.500F3000\n"),
    "realtime_byte": (Direction.URGENT, b"?"),
    "reply_read_4k": (Direction.RX, b"ok\r\n" * 1024),
}


def _full_ring() -> SerialTrace:
    trace = SerialTrace("/dev/ttyUSB0")
    i = 0
    while trace.evicted_bytes == 0:
        trace.record(Direction.TX, f"G1X{i % 1000}.125Y230.500F3000\n".encode())
        trace.record(Direction.RX, b"ok\r\n")
        i += 1
    return trace


def _record_ns(direction: Direction, data: bytes, count: int) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        trace = _full_ring()
        record = trace.record
        start = time.perf_counter_ns()
        for _ in range(count):
            record(direction, data)
        best = min(best, (time.perf_counter_ns() - start) / count)
    return best


def _best_ms(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        fn()
        best = min(best, (time.perf_counter_ns() - start) / 1e6)
    return best


def run_benchmark(count: int) -> dict[str, object]:
    record = {name: round(_record_ns(d, data, count), 1) for name, (d, data) in CHUNKS.items()}
    ring = _full_ring()
    return {
        "benchmark": "serial_trace",
        "what": "SerialTrace.record per chunk with the ring full; rendering a full ring",
        "records_per_run": count,
        "ring_bytes": DEFAULT_MAX_BYTES,
        "ring_chunks": len(ring),
        "ring_lines": len(ring.lines()),
        "record_ns": record,
        "render_ms": {
            "all_lines": round(_best_ms(ring.snapshot), 2),
            "failed_event_clip": round(_best_ms(ring.for_event), 2),
        },
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    result = run_benchmark(count)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    record = result["record_ns"]
    render = result["render_ms"]
    assert isinstance(record, dict)
    assert isinstance(render, dict)
    for name, ns in record.items():
        print(f"record {name}: {ns} ns/chunk ({ns / 1000:.3f} us)")
    print(f"full ring ({result['ring_chunks']} chunks, {result['ring_lines']} lines): render all "
          f"{render['all_lines']} ms, failed-event clip {render['failed_event_clip']} ms")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
