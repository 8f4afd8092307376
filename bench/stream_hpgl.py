"""HP-GL link utilisation: the agent's driver beside fixed-delay senders, same run, same plotter.

The plotter is the HP-GL emulator in a child process (so the CPU figures are the sender's own),
on a pty at 9600 baud (a typical cutter) with 2 ms adapter latency, a 1024-byte buffer and a
simulated pen. Each sender plots the same job from scratch on a fresh emulator:

- ``agent``: HpglDriver with ESC.B buffer-query flow control (profile defaults);
- ``fixed-delay``: Inkcut-style, send a chunk then sleep a fixed time, no feedback.

Figures per sender and job: payload bytes/s from the first byte until the plotter reports its
buffer empty, utilisation = that / (baud / 10), overflows (emulator I/O error 16 episodes),
whether the recorded plot equals the program, and the sender process's CPU time.

Run: ``.venv/bin/python bench/stream_hpgl.py`` (prints a table, writes
``bench/results/stream_hpgl.json``). Jobs come from ``tests/hpgl/plots.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.aio import wait_within  # noqa: E402
from agent.dialects.hpgl import prepare_hpgl_program  # noqa: E402
from agent.drivers.base import QuietListener  # noqa: E402
from agent.drivers.hpgl import HpglDriver  # noqa: E402
from agent.emulators.hpgl import HpglEmulator  # noqa: E402
from agent.emulators.pty import PtyEndpoint  # noqa: E402
from agent.profiles import load_profile  # noqa: E402
from agent.profiles.hpgl import HpglProfile  # noqa: E402
from agent.transport.serial_port import SerialLink  # noqa: E402
from tests.hpgl.plots import chest_logo_vinyl, graded_nest  # noqa: E402

BAUD = 9600
LATENCY_MS = 2.0
BUFFER = 1024
PEN_SPEED_MM_S = 400.0
RESULTS = ROOT / "bench" / "results" / "stream_hpgl.json"


@dataclass
class Job:
    name: str
    profile: str
    lines: tuple[str, ...]
    strokes: list[Any]

    @property
    def payload(self) -> bytes:
        return "".join(self.lines).encode("ascii")


@dataclass
class Row:
    job: str
    sender: str
    payload_bytes: int
    seconds: float
    bytes_per_s: float
    utilisation: float
    overflows: int
    bytes_lost: int
    plot_correct: bool
    cpu_s: float
    cpu_ms_per_kb: float


def jobs() -> list[Job]:
    out = []
    text, strokes = chest_logo_vinyl(speed_cm_s=6, copies=2)
    profile = load_profile("roland-camm-gl3")
    assert isinstance(profile, HpglProfile)
    out.append(Job("2 glitter-vinyl chest logos, VS6", profile.name,
                   prepare_hpgl_program(text, profile).lines, strokes))
    text, strokes = graded_nest(sizes=(110,), step_mm=0.5)
    profile = load_profile("hpgl-7475a")
    assert isinstance(profile, HpglProfile)
    out.append(Job("T-shirt 110 nest, 0.5 mm segments", profile.name,
                   prepare_hpgl_program(text, profile).lines, strokes))
    return out


# -- the emulator child process -----------------------------------------------------------------


async def serve_emulator(args: argparse.Namespace) -> None:
    async with PtyEndpoint(args.link, baud=BAUD, latency_s=LATENCY_MS / 1000) as endpoint:
        emulator = HpglEmulator(endpoint, buffer_bytes=BUFFER, pen_speed_mm_s=PEN_SPEED_MM_S)
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await emulator.serve()
        except asyncio.CancelledError:
            pass
        finally:
            write_summary(Path(args.summary), emulator)


def write_summary(path: Path, emulator: HpglEmulator) -> None:
    path.write_text(json.dumps({
        "overflow_errors": emulator.overflow_errors,
        "bytes_dropped": emulator.bytes_dropped,
        "strokes": [[s.pen, [list(p) for p in s.points]] for s in emulator.strokes],
    }))


class _Quiet(QuietListener):
    """Hears nothing but warnings."""

    def on_warning(self, message: str, detail: dict[str, Any]) -> None:
        print(f"  warning: {message} {detail}", file=sys.stderr)


# -- senders --------------------------------------------------------------------------------


async def send_with_agent(link: SerialLink, job: Job) -> None:
    profile = load_profile(job.profile)
    assert isinstance(profile, HpglProfile)
    profile = profile.model_copy(update={"baud": BAUD})
    driver = HpglDriver(link, _Quiet(), profile)
    await driver.open()
    run = asyncio.create_task(driver.run())
    try:
        await driver.stream(job.lines, lambda n: None)
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await run


def fixed_delay_sender(chunk: int, delay_s: float) -> Callable[[SerialLink, Job],
                                                                 Awaitable[None]]:
    async def send(link: SerialLink, job: Job) -> None:
        payload = job.payload
        for k in range(0, len(payload), chunk):
            link.write(payload[k : k + chunk])
            await asyncio.sleep(delay_s)
        await wait_plotter_empty(link)

    return send


async def wait_plotter_empty(link: SerialLink) -> None:
    """Poll ESC.O until the buffer-empty bit (how the bench knows a plot has finished)."""
    pending = bytearray()
    await asyncio.sleep(0.2)
    while True:
        link.write(b"\x1b.O")
        async with asyncio.timeout(30):
            while b"\r" not in pending:
                pending += await link.read()
        text, _, rest = bytes(pending).partition(b"\r")
        pending = bytearray(rest)
        if text.strip().isdigit() and int(text) & 8:
            return
        await asyncio.sleep(0.1)


async def measure(job: Job, sender: str,
                  send: Callable[[SerialLink, Job], Awaitable[None]]) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        link_path = Path(tmp) / "ttyPLOTTER"
        summary = Path(tmp) / "summary.json"
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--serve-emulator", "--link", str(link_path),
            "--summary", str(summary))
        try:
            async with asyncio.timeout(10):
                while True:
                    if link_path.exists():
                        break
                    await asyncio.sleep(0.01)
            link = await SerialLink.open(str(link_path), BAUD)
            cpu0, t0 = time.process_time(), time.monotonic()
            await send(link, job)
            seconds = time.monotonic() - t0
            cpu = time.process_time() - cpu0
            await link.close()
        finally:
            child.send_signal(signal.SIGTERM)
            await wait_within(child.wait(), 30)
        result = read_summary(summary)
    strokes = [(pen, tuple(tuple(p) for p in pts)) for pen, pts in result["strokes"]]
    payload = len(job.payload)
    rate = payload / seconds
    return Row(
        job=job.name, sender=sender, payload_bytes=payload, seconds=round(seconds, 2),
        bytes_per_s=round(rate, 1), utilisation=round(rate / (BAUD / 10), 3),
        overflows=result["overflow_errors"], bytes_lost=result["bytes_dropped"],
        plot_correct=strokes == job.strokes, cpu_s=round(cpu, 3),
        cpu_ms_per_kb=round(1000 * cpu / (payload / 1024), 2),
    )


def read_summary(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


SENDERS: list[tuple[str, Callable[[SerialLink, Job], Awaitable[None]]]] = [
    ("agent (ESC.B buffer query)", send_with_agent),
    ("fixed-delay 64 B / 100 ms", fixed_delay_sender(64, 0.100)),
    ("fixed-delay 256 B / 200 ms", fixed_delay_sender(256, 0.200)),
]


async def run_all() -> list[Row]:
    rows = []
    for job in jobs():
        for name, send in SENDERS:
            row = await measure(job, name, send)
            rows.append(row)
            print(f"  {job.name} / {name}: {row.bytes_per_s} B/s", file=sys.stderr)
    return rows


def run_benchmark() -> dict[str, object]:
    """Run every sender on every job; write and return the results."""
    rows = asyncio.run(run_all())
    result: dict[str, object] = {
        "benchmark": "stream_hpgl",
        "baud": BAUD,
        "wire_bytes_per_s": BAUD / 10,
        "latency_ms": LATENCY_MS,
        "buffer_bytes": BUFFER,
        "pen_speed_mm_s": PEN_SPEED_MM_S,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "rows": [asdict(r) for r in rows],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return result


def print_table(result: dict[str, object]) -> None:
    rows = result["rows"]
    assert isinstance(rows, list)
    header = (f"{'job':42} {'sender':27} {'bytes':>7} {'s':>7} {'B/s':>7} {'util':>6} "
              f"{'ovf':>4} {'lost':>6} {'plot ok':>7} {'cpu s':>6} {'ms/KB':>6}")
    print(f"HP-GL streaming at {BAUD} baud ({BAUD / 10:.0f} B/s wire), {BUFFER}-byte buffer, "
          f"pen {PEN_SPEED_MM_S:g} mm/s, {LATENCY_MS:g} ms latency")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['job']:42} {r['sender']:27} {r['payload_bytes']:>7} {r['seconds']:>7} "
              f"{r['bytes_per_s']:>7} {r['utilisation']:>6} {r['overflows']:>4} "
              f"{r['bytes_lost']:>6} {('yes' if r['plot_correct'] else 'NO'):>7} "
              f"{r['cpu_s']:>6} {r['cpu_ms_per_kb']:>6}")
    print(f"results: {RESULTS.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-emulator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--link", help=argparse.SUPPRESS)
    parser.add_argument("--summary", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        asyncio.run(serve_emulator(args))
        return
    print_table(run_benchmark())


if __name__ == "__main__":
    main()
