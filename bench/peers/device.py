"""The device every sender streams to: ``station-agent emulate grbl`` on a pty, behind a wire tap.

The emulator runs with ``--wire-model`` when its ``--help`` lists it (115,200 baud paced byte
by byte, a 128-byte receive buffer that loses bytes, one ``ok`` per line 2 ms after its newline);
otherwise the plain emulator at 115,200 baud with 2 ms of reply latency (a USB adapter's latency
timer). The command is configurable (``--device-cmd``), so another GRBL model can stand in. A
fresh device serves each run; it appends every line it executes to a record file, which says
whether the job's lines all arrived whole, and, when it can (``--stats``), its own idle-wire
counter. The tap (tap.py) sits between it and the sender and
logs every byte with its time; wire.py reads the log.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peers.procs import SenderProcess
from peers.wire import Wire, load_records, read_wire

BAUD = 115_200
LATENCY_MS = 2  # the plain emulator's reply latency; the wire model has its own 2 ms
TAP = Path(__file__).resolve().parent / "tap.py"
DEFAULT_COMMAND = f"{shlex.quote(sys.executable)} -m agent.cli emulate grbl"


@dataclass(frozen=True)
class DeviceCommand:
    argv: tuple[str, ...]
    wire_model: bool
    stats: bool = False  # it writes its own idle-wire counter (--stats FILE) at exit

    def describe(self) -> str:
        mode = ("--wire-model" if self.wire_model
                else f"plain emulator, --latency-ms {LATENCY_MS} (no --wire-model in its --help)")
        return f"{shlex.join(self.argv)} ({mode})"

    def argv_for(self, link: Path, record: Path, stats: Path) -> list[str]:
        argv = [*self.argv, "--link", str(link), "--baud", str(BAUD), "--record", str(record)]
        if not self.wire_model:
            return [*argv, "--latency-ms", str(LATENCY_MS)]
        return [*argv, "--wire-model", *(["--stats", str(stats)] if self.stats else [])]


def wire_model_listed(help_text: str) -> bool:
    return "--wire-model" in help_text


def device_stats_figures(stats: dict[str, Any]) -> dict[str, Any]:
    """The device's own account (the wire model's longest run of streaming): its link share
    from busy wire time, lost bytes, and idle wire time by cause. A run is line bytes with no
    gap over half a second, so for a sender that sends lines while it waits (grbl-streamer's
    ``$G`` polls) it takes in the wait before the job: the tap's span is the job's figure."""
    job = stats.get("job") or {}
    return {"link_share": job.get("link_share"), "lines": job.get("lines"),
            "lost_bytes": stats.get("lost_bytes"),
            "idle_ms": {k: round(v * 1000, 2) for k, v in (job.get("idle_s") or {}).items()}}


def device_command(command: str = DEFAULT_COMMAND, cwd: Path | None = None) -> DeviceCommand:
    argv = tuple(shlex.split(command))
    shown = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60,
                           cwd=cwd, check=False)
    wire = wire_model_listed(shown.stdout)
    return DeviceCommand(argv, wire, stats=wire and "--stats" in shown.stdout)


@dataclass
class DeviceRun:
    """One run's device: the sender opens ``host_link``; after the run, ``wire`` and
    ``executed`` say what crossed the wire and what the device ran."""

    host_link: Path
    wire: Wire = field(default_factory=lambda: Wire([], [], []))
    executed: list[str] = field(default_factory=list)
    stats: dict[str, Any] | None = None


def _wait_for(path: Path, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (exit {proc.poll()})")
        time.sleep(0.02)


@contextmanager
def device(command: DeviceCommand, work: Path, name: str,
           cwd: Path | None = None) -> Iterator[DeviceRun]:
    """A fresh emulator and tap for one run; on leaving, the tap's log and the record are read."""
    link, host_link = work / f"{name}-device", work / f"{name}-host"
    record, tap_log = work / f"{name}-executed.txt", work / f"{name}-wire.jsonl"
    stats = work / f"{name}-device-stats.json"
    for stale in (link, host_link, record, tap_log, stats):
        stale.unlink(missing_ok=True)
    with (work / f"{name}-device.log").open("wb") as log:
        emulator = subprocess.Popen(command.argv_for(link, record, stats), stdout=log, stderr=log,
                                    cwd=cwd)
    tap: SenderProcess | None = None
    run = DeviceRun(host_link)
    try:
        _wait_for(link, emulator, "the emulator")
        tap = SenderProcess([sys.executable, str(TAP), str(link), str(host_link), str(tap_log)],
                            work / f"{name}-tap.log")
        tap.expect("ready", 30)
        yield run
    finally:
        if tap is not None:
            tap.proc.terminate()
            tap.proc.wait(timeout=30)
        emulator.terminate()
        emulator.wait(timeout=30)
    run.wire = read_wire(load_records(tap_log))
    run.executed = record.read_text().splitlines() if record.exists() else []
    if stats.exists():
        run.stats = json.loads(stats.read_text())

