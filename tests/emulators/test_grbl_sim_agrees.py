"""Optional: the emulator answers the attack forms as real GRBL 1.1h (grbl-sim) does.

Runs only when ``GRBL_SIM_EXE`` names a grbl-sim build of gnea/grbl (see "Real firmware on the
bench" in the field notes; nothing here builds it) and ``socat`` is installed; otherwise it is
skipped, visibly. Each line goes to both, one at a time; their answers (``ok``/``error:N``) and
the reports that show the effect (``$#`` offsets, the settings written) must be equal.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import serial

from tests.emulators.test_grbl_emulator import grbl

SIM = os.environ.get("GRBL_SIM_EXE", "")
pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not (SIM and Path(SIM).is_file() and shutil.which("socat")),
        reason="real GRBL not available: set GRBL_SIM_EXE to a grbl-sim build (needs socat)",
    ),
]

# Fast, valid settings so moves end at once on the simulator (its defaults are slow).
SETUP = ["$100=10", "$101=10", "$102=10", "$110=60000", "$111=60000", "$112=60000",
         "$120=5000", "$121=5000", "$122=5000", "$130=2000", "$131=2000", "$22=1"]
SETTINGS_SHOWN = ("$0=", "$10=", "$100=", "$111=")
SESSIONS: list[list[str]] = [
    ["$/100=1", "$+10=0", "$10.0=2", "$.5=10", "$ 1 1 1 = 9 0 0 0", "$$"],
    ["$/N0=G0X5Y5", "$N", "G10 L02 P1 X100 Y50", "L2 G10 P2 X7", "G10 L2.5 P3 X9",
     "G10.001 L2 P4 X4", "G010 L2.0 P5 Y3", "G16394 L2 P6 X3", "$#"],
    ["G0 X12 Y34", "G028.1", "$#", "G0 X1 Y2", "G0 28.1", "$#", "G0 X3 Y4", "g28.0999999", "$#",
     "G0 X5", "/G030.10", "$#"],
    ["G266", "G10.01 L2 P1 X1", "G28.2", "G59.1", "G49.5", "M0.5", "$JX", "$N0G0", "$NX=G0",
     "$256=1", "$10=1X", "$RST=A", "G0\x7fX1", "M1", "$#"],
    ["$/C", "G0X10", "$#"],
]


def _shown(lines: list[str]) -> list[str]:
    """Answers and effect reports; status reports, banners and other settings left out."""
    out = []
    for line in lines:
        if not line or line.startswith(("<", "Grbl ", "[MSG:")):
            continue
        if line.startswith("$") and "=" in line and not line.startswith(SETTINGS_SHOWN):
            continue
        if line.startswith("$N"):
            continue
        out.append(line)
    return out


class RealGrbl:
    """grbl-sim on a pty made by socat; its output is flushed by a status request."""

    def __init__(self, workdir: Path) -> None:
        self.link = workdir / "grbl.tty"
        self.proc = subprocess.Popen(
            ["socat", f"PTY,raw,link={self.link},echo=0",
             f"EXEC:taskset -c 1 {SIM} -n -s /dev/null -b /dev/null,pty,raw,echo=0"],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.link.exists():
            assert time.monotonic() < deadline, "grbl-sim did not start"
            time.sleep(0.05)
        self.port = serial.Serial(str(self.link), 115_200, timeout=0)
        time.sleep(1.5)
        for line in SETUP:
            self.port.write(line.encode() + b"\n")
            time.sleep(0.3)
        self.exchange("")  # the setup's answers

    def exchange(self, line: str) -> list[str]:
        if line:
            self.port.write(line.encode("latin-1") + b"\n")
        time.sleep(0.4)
        self.port.write(b"?")
        time.sleep(0.4)
        text = self.port.read(1 << 20).decode("latin-1")
        return [s.strip() for s in text.split("\n")]

    def close(self) -> None:
        self.port.close()
        self.proc.terminate()
        self.proc.wait(10)


@pytest.mark.parametrize("session", SESSIONS, ids=[s[0] for s in SESSIONS])
async def test_emulator_answers_like_real_grbl(session: list[str], tmp_path: Path) -> None:
    real = await asyncio.to_thread(RealGrbl, tmp_path)
    try:
        firmware = [_shown(await asyncio.to_thread(real.exchange, line)) for line in session]
    finally:
        await asyncio.to_thread(real.close)
    # Every line was answered exactly once by the firmware: the comparison is not vacuous.
    assert [sum(a == "ok" or a.startswith("error:") for a in answers) for answers in firmware] == [
        1
    ] * len(session), firmware
    async with grbl() as (_emulator, host):
        for line in SETUP:
            await host.command(line)
        emulated = [_shown(await host.command(line)) for line in session]
    assert emulated == firmware
