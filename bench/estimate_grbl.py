"""How close the GRBL time estimate comes to real GRBL 1.1h's own planner (grbl-sim).

Each job is streamed (character counting, 128-byte RX) into grbl-sim, real GRBL firmware
built as a Linux program (../shared/REFERENCE.md says how), pinned to one CPU. grbl-sim writes
its position every 0.01 s of its own simulated clock; the job's machine time is from the first
step to the last. The estimate is ``agent.estimate`` over the same lines and settings.

    GRBL_SIM_EXE=/path/to/grbl_sim.exe .venv/bin/python bench/estimate_grbl.py

Without grbl-sim (CI has no network to fetch it) the script says so and writes a result that
records the skip. Prints a table and writes bench/results/estimate_grbl.json.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import serial

from agent.estimate import estimate_grbl_seconds
from agent.estimate.planner import MachineLimits
from agent.garments import care_label, knife_gcode, short_segment_outline, tshirt_pieces

RESULTS = Path(__file__).resolve().parent / "results" / "estimate_grbl.json"
DEFAULT_SIM = Path("/work/grblsim/grbl/grbl/sim/grbl_sim.exe")
# A table cutter's settings: fast XY, slow Z (written before each job).
# Steps per mm ($100-$102) keep the step rate at 12,000 mm/min under GRBL's 30 kHz ceiling.
SETTINGS = {100: 80.0, 101: 80.0, 102: 400.0, 110: 12000.0, 111: 12000.0, 112: 1200.0,
            120: 800.0, 121: 800.0, 122: 200.0, 11: 0.01, 12: 0.002, 32: 1}
# $32=1 (laser mode): S changes do not empty the planner (gcode.c spindle_sync is skipped).
LIMITS = MachineLimits((SETTINGS[110], SETTINGS[111], SETTINGS[112]),
                       (SETTINGS[120], SETTINGS[121], SETTINGS[122]), SETTINGS[11])
RX_BUFFER = 128


def laser_label_gcode() -> str:
    """The care label's outline and symbols burnt with a laser (M4, S power), vector only."""
    lines = ["G21 G90 G94", "M4 S0"]
    for stroke in care_label():
        x0, y0 = stroke[0]
        lines.append(f"G0 X{x0 + 10:.3f} Y{y0 + 10:.3f}")
        lines.append("S600")
        lines.extend(f"G1 X{x + 10:.3f} Y{y + 10:.3f} F2400" for x, y in stroke[1:])
        lines.append("S0")
    lines.extend(["M5", "G0 X0 Y0"])
    return "\n".join(lines) + "\n"


def jobs() -> dict[str, tuple[list[str], float]]:
    """Each job's lines and grbl-sim's clock rate for it.

    grbl-sim runs GRBL's main loop and its stepper interrupt as two threads on one CPU, and its
    clock follows the wall clock. While the planner is full the main loop spins without
    yielding (mc_line waits for a free block), so at faster clocks the thread that refills the
    stepper's segments falls behind and the simulated machine stutters: a long rapid ran at
    120-200 mm/s instead of a steady 200, and the T-shirt marker took 27 % longer at half speed
    than at a tenth. A real board's stepper interrupt preempts its main loop, so every job here
    runs at a tenth of real time (its own clock still says the machine's time)."""
    return {
        "tshirt_front_knife": (knife_gcode(tshirt_pieces()[:1], feed_mm_min=6000).splitlines(),
                               0.1),
        "care_label_laser": (laser_label_gcode().splitlines(), 0.1),
        "vinyl_short_segments": (short_segment_outline(1500, feed_mm_min=6000).splitlines(), 0.1),
    }


def machine_seconds(sim: Path, lines: list[str], workdir: Path, time_factor: float = 1.0
                    ) -> float:
    tty, steps = workdir / "grbl.tty", workdir / "steps.out"
    # stdbuf -i0: grbl-sim polls stdin with select() and then getchar(), so a buffered stdin
    # keeps the end of a line in stdio's buffer until more bytes arrive (replies lag a line).
    command = f"taskset -c 1 stdbuf -i0 {sim} -n -t {time_factor} -r 0.01 -s {steps} -b /dev/null"
    # Its EEPROM is a file in the working directory: a fresh one per job.
    socat = subprocess.Popen(["socat", f"PTY,raw,link={tty},echo=0",
                              f"EXEC:{command},pty,raw,echo=0"], cwd=workdir)
    try:
        deadline = time.monotonic() + 10
        while not tty.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("grbl-sim's pty did not appear")
            time.sleep(0.05)
        with serial.Serial(str(tty), 115200, timeout=0.1) as port:
            _wait_banner(port)
            for number, value in SETTINGS.items():
                _send_and_wait(port, f"${number}={value:g}")
            _stream(port, lines)
            _wait_idle(port)
            port.write(b"\x06")  # grbl-sim: exit once idle
        socat.wait(timeout=10)
    finally:
        if socat.poll() is None:
            socat.kill()
    return _moving_seconds(steps)


def _wait_banner(port: serial.Serial) -> None:
    seen = b""
    deadline = time.monotonic() + 15
    while b"Grbl" not in seen:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no GRBL banner from grbl-sim: {seen[-200:]!r}")
        seen += port.read(200)
    port.read_until(b"\n")
    time.sleep(1.2)  # grbl-sim reads no input during its first simulated second


def _send_and_wait(port: serial.Serial, line: str) -> None:
    port.write(line.encode() + b"\n")
    port.timeout = 10
    reply = port.read_until(b"\n")
    port.timeout = 0.1
    if not reply.startswith(b"ok"):
        raise RuntimeError(f"grbl-sim answered {reply!r} to {line}")


def _stream(port: serial.Serial, lines: list[str]) -> None:
    in_flight: list[int] = []
    pending = [line.encode() + b"\n" for line in lines if line.strip()]
    buffer = b""
    while pending or in_flight:
        while pending and sum(in_flight) + len(pending[0]) <= RX_BUFFER:
            port.write(pending[0])
            in_flight.append(len(pending.pop(0)))
        buffer += port.read(port.in_waiting or 1)
        while b"\n" in buffer:
            reply, buffer = buffer.split(b"\n", 1)
            if reply.startswith((b"ok", b"error")):
                if reply.startswith(b"error"):
                    raise RuntimeError(f"grbl-sim refused a line: {reply!r}")
                in_flight.pop(0)


def _wait_idle(port: serial.Serial) -> None:
    while True:
        port.write(b"?")
        reply = port.read_until(b">")
        if b"<Idle" in reply:
            return
        time.sleep(0.2)


def _moving_seconds(steps: Path) -> float:
    """Machine time from grbl-sim's position samples.

    grbl-sim prints the position every 0.01 s while a planner block is current, and once more
    when a new block becomes current or the program exits. The stepper still runs the last
    prepared segments (up to ~60 ms of deceleration) after the planner's last block is gone,
    unsampled: the tail is taken as a linear stop from the last sampled speed (t = 2d/v).
    """
    samples = []
    for line in steps.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        time_s, rest = line.split(None, 1)
        samples.append((float(time_s), tuple(int(v) for v in rest.split(",")[:3])))
    final = samples.pop()  # printed at exit, whenever that was
    first = samples[0][1]
    start = max(t for t, pos in samples[: next(
        i for i, (_, pos) in enumerate(samples) if pos != first)])
    last_change = max(i for i in range(1, len(samples)) if samples[i][1] != samples[i - 1][1])
    end = samples[last_change][0]
    if final[1] != samples[-1][1]:
        (t0, p0), (t1, p1) = samples[-2], samples[-1]
        speed = _distance(p0, p1) / (t1 - t0) if t1 > t0 else 0.0
        end = samples[-1][0] + (2 * _distance(p1, final[1]) / speed if speed > 0 else 0.0)
    return end - start


def _distance(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Steps to mm with the bench's $100-$102."""
    scale = (SETTINGS[100], SETTINGS[101], SETTINGS[102])
    return math.sqrt(sum(((q - p) / k) ** 2 for p, q, k in zip(a, b, scale, strict=True)))


def main() -> int:
    sim = Path(os.environ.get("GRBL_SIM_EXE", DEFAULT_SIM))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if not sim.exists() or shutil.which("socat") is None or shutil.which("taskset") is None:
        reason = f"grbl-sim not found at {sim} (set GRBL_SIM_EXE) or socat/taskset missing"
        print(f"estimate_grbl: skipped: {reason}")
        RESULTS.write_text(json.dumps({"skipped": reason}, indent=2) + "\n")
        return 0
    rows = []
    only = set(sys.argv[1:])
    for name, (lines, time_factor) in jobs().items():
        if only and name not in only:
            continue
        estimate = estimate_grbl_seconds(lines, LIMITS, arc_tolerance_mm=SETTINGS[12])
        with tempfile.TemporaryDirectory() as tmp:
            real = machine_seconds(sim, lines, Path(tmp), time_factor)
        error = (estimate - real) / real
        rows.append({"job": name, "lines": len(lines), "grbl_sim_s": round(real, 3),
                     "estimate_s": round(estimate, 3), "error": round(error, 4)})
        print(f"{name:24s} {len(lines):6d} lines  grbl-sim {real:8.2f} s  "
              f"estimate {estimate:8.2f} s  error {100 * error:+6.2f} %")
    RESULTS.write_text(json.dumps({"settings": SETTINGS, "jobs": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
