"""CPU of the sender processes, read from /proc/<pid>/stat, and the sender processes' protocol.

Every sender runs in a process of its own (cncjs's server, the agent, grbl-streamer's and the
stop-and-wait sender's drivers), so what it spends is read from the kernel's accounting for
that process, user and system time apart, between two samples taken by the bench: just before
the job starts and just after the sender says it has ended.
"""

from __future__ import annotations

import json
import os
import selectors
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuTimes:
    user_s: float
    sys_s: float

    @property
    def total_s(self) -> float:
        return self.user_s + self.sys_s

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user_s - other.user_s, self.sys_s - other.sys_s)


def parse_stat(text: str, ticks_per_s: int = TICKS_PER_S) -> CpuTimes:
    """utime and stime (fields 14 and 15 of proc(5)) of one /proc/<pid>/stat line. The command
    name (field 2) is in parentheses and may itself hold spaces and parentheses, so the fields
    are counted from the last ``)``."""
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15.
    return CpuTimes(int(fields[11]) / ticks_per_s, int(fields[12]) / ticks_per_s)


def cpu_times(pid: int) -> CpuTimes:
    """All threads of a live process, user and system time."""
    return parse_stat(Path(f"/proc/{pid}/stat").read_text())


def per_line_us(cpu: CpuTimes, lines: int) -> dict[str, float]:
    return {"cpu_us_per_line": round(cpu.total_s / lines * 1e6, 1),
            "user_us_per_line": round(cpu.user_s / lines * 1e6, 1),
            "sys_us_per_line": round(cpu.sys_s / lines * 1e6, 1)}


def median_run(runs: Sequence[dict[str, Any]], key: str = "cpu_us_per_line") -> dict[str, Any]:
    """The run whose ``key`` is the median (the lower middle for an even count): CPU per line on
    a shared machine varies by a third from run to run, so one run would say little."""
    ordered = sorted(runs, key=lambda r: float(r[key]))
    middle = statistics.median_low([float(r[key]) for r in ordered])
    return next(r for r in ordered if float(r[key]) == middle)


class SenderProcess:
    """A sender's driver process, spoken to one JSON object a line: it prints ``{"ready": ...}``
    when set up, starts the job when it reads ``go``, prints ``{"done": ...}`` when the job has
    ended, and exits when it reads ``quit`` (or its stdin closes)."""

    def __init__(self, argv: Sequence[str], log: Path, *, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.log = log
        self.name = Path(argv[1]).name if len(argv) > 1 else str(argv[0])
        with log.open("wb") as err:
            self.proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, cwd=cwd, env=env)
        self.pid = self.proc.pid
        self._buffer = b""

    def expect(self, key: str, timeout: float) -> dict[str, Any]:
        """The next message, which must carry ``key``."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._next_line(deadline)
            if not line.startswith(b"{"):
                continue  # a library's own print
            message: dict[str, Any] = json.loads(line)
            if key in message:
                return message
            if "error" in message:
                raise RuntimeError(f"{self.name}: {message['error']}")

    def _next_line(self, deadline: float) -> bytes:
        # Read the pipe by hand: a buffered reader would take several lines at once and leave
        # select() waiting for bytes already read.
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError(f"nothing from {self.name}: {self._log_tail()}")
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"{self.name} exited: {self._log_tail()}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def say(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            try:
                self.say("quit")
                self.proc.wait(timeout=timeout)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def drive(sender: SenderProcess, measured_pid: int, *, ready_s: float = 120.0,
          job_s: float = 600.0) -> tuple[CpuTimes, dict[str, Any]]:
    """Ready, go, done: the CPU ``measured_pid`` spent between go and done, and the done
    message."""
    sender.expect("ready", ready_s)
    before = cpu_times(measured_pid)
    sender.say("go")
    done = sender.expect("done", job_s)
    spent = cpu_times(measured_pid) - before
    return spent, done
