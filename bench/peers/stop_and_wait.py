"""The floor: send one line, wait for its ``ok`` (or ``error``), send the next.

Usage: ``python bench/peers/stop_and_wait.py PORT JOB`` (one G-code line a line in JOB), spoken
to as procs.SenderProcess says. Blocking pyserial, no threads: the simplest correct GRBL sender,
whose wire sits idle for every reply's round trip.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import serial


def _say(**data: object) -> None:
    print(json.dumps(data), flush=True)


def _reply(port: serial.Serial) -> bytes:
    while True:
        line = port.readline()
        if not line:
            raise TimeoutError("no reply within the port's timeout")
        if line.startswith((b"ok", b"error:")):
            return line


def main() -> None:
    path, job = sys.argv[1], Path(sys.argv[2]).read_text().splitlines()
    port = serial.Serial(path, 115_200, timeout=10)
    port.write(b"\x18")  # a fresh controller, whatever the last sender left
    deadline = time.monotonic() + 10
    while b"Grbl" not in port.readline():
        if time.monotonic() > deadline:
            raise SystemExit("no GRBL banner after the reset")
    time.sleep(0.2)
    port.reset_input_buffer()
    _say(ready=True)
    if sys.stdin.readline().strip() != "go":
        return
    errors = 0
    for line in job:
        port.write(line.encode() + b"\n")
        errors += _reply(port).startswith(b"error")
    _say(done=True, errors=errors)
    sys.stdin.readline()
    port.close()


if __name__ == "__main__":
    main()
