"""What one wake-up of the event loop costs, next to what the GRBL driver does in it.

The GRBL stream's CPU per line (bench/stream_grbl.py) is almost all wake-ups: one per reply
chunk, ~0.7 per line with the emulator. This splits the figure, in process CPU time:

- a reader wake-up: a reader callback woken by a 4-byte reply from another process on a pty
  (what each GRBL ``ok`` costs the agent before any of its own code runs);
- a timer wake-up: a ``call_later`` chain, nothing else to do (what holding the reader and
  waking on a timer instead would cost per wake-up);
- the driver's own Python per reply chunk (parse, answer, refill), with a link that only counts
  bytes, for chunks of one and of two ``ok``.

Run: ``.venv/bin/python bench/wake_cost.py [wake-ups]``; writes bench/results/wake_cost.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.aio import wait_within
from agent.dialects.grbl import prepare_grbl_program
from agent.drivers.base import QuietListener
from agent.drivers.grbl import GrblDriver
from agent.garments import short_segment_outline
from agent.profiles import load_profile
from agent.profiles.grbl import GrblProfile

RESULTS = Path(__file__).resolve().parent / "results" / "wake_cost.json"
PERIOD_S = 0.002

_REPLIER = """
import os, sys, time
fd, n, period = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
for _ in range(n):
    time.sleep(period)
    os.write(fd, b"ok\\r\\n")
"""


async def _reader_wakes(n: int) -> float:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(slave, False)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _REPLIER, str(master), str(2 * n + 100), str(PERIOD_S),
        pass_fds=[master])
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    seen = [0]

    def on_readable() -> None:
        seen[0] += os.read(slave, 4096).count(b"ok")
        if seen[0] >= n and not done.done():
            done.set_result(None)

    loop.add_reader(slave, on_readable)
    try:
        await asyncio.sleep(0.05)
        seen[0] = 0
        cpu0 = time.process_time()
        await wait_within(done, 4 * n * PERIOD_S + 10)
        return (time.process_time() - cpu0) / seen[0]
    finally:
        loop.remove_reader(slave)
        child.kill()
        await child.wait()
        os.close(master)
        os.close(slave)


async def _timer_wakes(n: int) -> float:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = [0]

    def tick() -> None:
        count[0] += 1
        if count[0] >= n:
            done.set_result(None)
        else:
            loop.call_later(PERIOD_S, tick)

    cpu0 = time.process_time()
    loop.call_later(PERIOD_S, tick)
    await done
    return (time.process_time() - cpu0) / n



class _CountingLink:
    """Takes the driver's writes and counts them; no I/O."""

    name = "counting"

    def __init__(self) -> None:
        self.written = 0

    async def read(self) -> bytes:
        await asyncio.Event().wait()
        return b""

    def set_receiver(self, receiver: Callable[[bytes], None] | None) -> None:
        pass

    async def wait_lost(self) -> None:
        await asyncio.Event().wait()

    def hold_reads(self, seconds: float) -> None:
        pass

    def write(self, data: bytes, *, urgent: bool = False) -> None:
        self.written += len(data)

    async def drain(self) -> None:
        pass

    def set_flow_paused(self, paused: bool) -> None:
        pass

    async def close(self) -> None:
        pass


async def _driver_python(n: int, oks_per_chunk: int) -> float:
    profile = load_profile("grbl-1.1")
    assert isinstance(profile, GrblProfile)
    lines = prepare_grbl_program(short_segment_outline(n * oks_per_chunk + 1000), profile).lines
    driver = GrblDriver(_CountingLink(), QuietListener(), profile)
    stream = asyncio.create_task(driver.stream(lines, lambda done: None))
    await asyncio.sleep(0)  # the job's first lines are in flight
    chunk = b"ok\r\n" * oks_per_chunk
    on_bytes = driver._on_bytes  # the reader callback's body, as the link calls it
    t0 = time.perf_counter()
    for _ in range(n):
        on_bytes(chunk)
    per_chunk = (time.perf_counter() - t0) / n
    stream.cancel()
    return per_chunk


async def run_async(n: int) -> dict[str, Any]:
    reader = await _reader_wakes(n)
    timer = await _timer_wakes(n)
    one = await _driver_python(n * 5, 1)
    two = await _driver_python(n * 5, 2)
    return {
        "benchmark": "wake_cost",
        "wakeups": n,
        "reader_wakeup_us": round(reader * 1e6, 1),
        "timer_wakeup_us": round(timer * 1e6, 1),
        "driver_python_us_per_chunk": {"1_ok": round(one * 1e6, 2), "2_ok": round(two * 1e6, 2)},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "kernel": platform.release(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "command": ".venv/bin/python bench/wake_cost.py",
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    result = asyncio.run(run_async(n))
    print(f"CPU per wake-up of the event loop ({n} wake-ups, {PERIOD_S * 1000:g} ms apart)")
    print(f"  reader woken by a 4-byte reply on a pty: {result['reader_wakeup_us']:6.1f} us")
    print(f"  call_later timer:                        {result['timer_wakeup_us']:6.1f} us")
    py = result["driver_python_us_per_chunk"]
    print(f"  GRBL driver's own Python per chunk: {py['1_ok']} us (1 ok), {py['2_ok']} us (2 ok)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
