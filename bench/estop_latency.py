"""E-stop latency: from the e-stop pin changing to the stop bytes leaving the serial port.

The chain measured is the one a station runs: an NC e-stop on a (mock) GPIO pin is pressed on
another thread (as lgpio's callback thread delivers it on a Pi); the SafetyPanel hands the edge to
the event loop; the listener writes ``!`` (feed hold) and 0x18 (soft reset) to a SerialLink as
urgent bytes, exactly as the agent's e-stop handler does; the clock stops when both bytes are read
from the device end of the pseudo-terminal. Goal: p99 under 10 ms.

Run: ``.venv/bin/python bench/estop_latency.py [presses]``; writes bench/results/estop_latency.json.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gpiozero.pins.mock import MockFactory, MockPin

from agent.emulators.pty import PtyEndpoint
from agent.safety import GpioConfig, SafetyPanel
from agent.transport.serial_port import SerialLink

RESULTS = Path(__file__).resolve().parent / "results" / "estop_latency.json"
ESTOP_PIN = 17
STOP_BYTES = b"!\x18"  # GRBL feed hold, then soft reset
GOAL_P99_MS = 10.0
# The press path never waits for the debounce; a short window keeps each release quick.
DEBOUNCE_MS = 5
TIMEOUT_S = 5.0


class _EstopHandler:
    """The part of the agent's SafetyListener that matters here: stop the machine at once."""

    def __init__(self, link: SerialLink) -> None:
        self.link = link
        self.released = asyncio.Event()

    def on_estop(self, pressed: bool) -> None:
        if pressed:
            self.released.clear()
            self.link.write(STOP_BYTES, urgent=True)
        else:
            self.released.set()

    def on_door(self, open: bool) -> None:
        pass

    def on_start_pressed(self) -> None:
        pass

    def on_reset_pressed(self) -> None:
        pass


async def _receive_stop(device: PtyEndpoint) -> int:
    """Wait for the stop bytes at the device end; the time they arrived (perf_counter_ns)."""
    data = b""
    while len(data) < len(STOP_BYTES):
        data += await device.receive()
    arrived = time.perf_counter_ns()
    if data != STOP_BYTES:
        raise RuntimeError(f"device received {data!r}, expected {STOP_BYTES!r}")
    return arrived


def _press(pin: MockPin) -> int:
    """On the operator's thread: open the NC contact; the time it happened."""
    pressed_at = time.perf_counter_ns()
    pin.drive_high()
    return pressed_at


async def _measure(presses: int) -> list[float]:
    factory = MockFactory()
    config = GpioConfig.model_validate({"estop": {"pin": ESTOP_PIN, "debounce_ms": DEBOUNCE_MS}})
    loop = asyncio.get_running_loop()
    latencies_ms: list[float] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="operator") as operator:
        async with PtyEndpoint(baud=None, latency_s=0.0) as device:
            link = await SerialLink.open(device.path, 115_200)
            handler = _EstopHandler(link)
            panel = SafetyPanel(config, factory, loop, handler)
            try:
                pin: MockPin = factory.pin(ESTOP_PIN)
                pin.drive_low()  # wired and released before the panel's first look
                await asyncio.sleep(0.05)
                for _ in range(presses):
                    receiving = asyncio.ensure_future(_receive_stop(device))
                    pressed_at = await loop.run_in_executor(operator, _press, pin)
                    arrived = await asyncio.wait_for(receiving, TIMEOUT_S)
                    latencies_ms.append((arrived - pressed_at) / 1e6)
                    pin.drive_low()
                    await asyncio.wait_for(handler.released.wait(), TIMEOUT_S)
            finally:
                panel.close()
                await link.close()
    factory.close()
    return latencies_ms


def _percentile(sorted_ms: list[float], fraction: float) -> float:
    index = min(len(sorted_ms) - 1, max(0, round(fraction * len(sorted_ms)) - 1))
    return sorted_ms[index]


def run_benchmark(presses: int = 1000) -> dict[str, object]:
    """Press the e-stop ``presses`` times; latency figures in milliseconds."""
    latencies = sorted(asyncio.run(_measure(presses)))
    p99 = _percentile(latencies, 0.99)
    return {
        "benchmark": "estop_latency",
        "what": "e-stop pin edge (other thread) -> b'!\\x18' read at the pty device end",
        "presses": presses,
        "p50_ms": round(_percentile(latencies, 0.50), 4),
        "p99_ms": round(p99, 4),
        "max_ms": round(latencies[-1], 4),
        "mean_ms": round(statistics.fmean(latencies), 4),
        "goal_p99_ms": GOAL_P99_MS,
        "goal_met": p99 < GOAL_P99_MS,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> None:
    # One "e-stop pressed" warning per press would bury the figures.
    logging.getLogger("agent.safety").setLevel(logging.ERROR)
    presses = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    result = run_benchmark(presses)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"e-stop latency over {presses} presses: p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms "
        f"(goal p99 < {GOAL_P99_MS} ms: {'met' if result['goal_met'] else 'NOT met'})"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
