"""grbl-streamer from PyPI, in a venv of its own under ~/.cache/station-agent/bench-peers.

It is GPL-licensed and pins its own pyserial, so it never enters the project's venv; its driver
(streamer_driver.py) runs with the venv's interpreter, and its process's CPU is grbl-streamer's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from peers.procs import CpuTimes, SenderProcess, drive

CACHE = Path.home() / ".cache" / "station-agent" / "bench-peers"
VENV = CACHE / "streamer-venv"
PACKAGE = "grbl-streamer==2.0.2"
DRIVER = Path(__file__).resolve().parent / "streamer_driver.py"


def _python() -> Path:
    return VENV / "bin" / "python"


def _version() -> str | None:
    shown = subprocess.run([str(_python()), "-c", "import importlib.metadata as m; "
                            "print(m.version('grbl-streamer'))"],
                           capture_output=True, text=True, check=False)
    return shown.stdout.strip() if shown.returncode == 0 else None


def install() -> tuple[str | None, str]:
    """(version, why not): grbl-streamer's version once it is installed, else the reason."""
    if _python().exists() and _version():
        return _version(), ""
    CACHE.mkdir(parents=True, exist_ok=True)
    steps = [[sys.executable, "-m", "venv", "--clear", str(VENV)],
             [str(_python()), "-m", "pip", "install", "--quiet", PACKAGE]]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
        if done.returncode != 0:
            return None, f"{' '.join(argv[-2:])} failed: {(done.stderr or done.stdout)[-500:]}"
    version = _version()
    return (version, "") if version else (None, "grbl-streamer does not import after install")


def run(host_link: Path, job_file: Path, work: Path, name: str) -> tuple[CpuTimes, dict[str, Any]]:
    sender = SenderProcess([str(_python()), str(DRIVER), str(host_link), str(job_file)],
                           work / f"{name}-streamer.log")
    try:
        return drive(sender, sender.pid)
    finally:
        sender.stop()
