"""`station-agent emulate grbl --wire-model`: :class:`GrblWireModel` on a pseudo-terminal.

The model decides what the controller answers and when (see ``grbl_wire_model``); this module
only moves bytes. It runs in a worker thread around ``select.select``, whose timeout has
microsecond resolution (an asyncio timer on epoll rounds up to a whole millisecond, which
would make every answer up to 1 ms late and blame the host for it). Host bytes are dated when
``select`` says they are readable; each reply is written to the pty with its own ``write``,
as GRBL's serial interrupt sends each ``ok`` on its own.

Answers handed over later than the model's time are counted as ``emulator_late`` idle time, so
a loaded machine shows up in the statistics instead of in the host's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import threading
import time
import tty
from pathlib import Path
from typing import TextIO

from agent.emulators.grbl_wire_model import GrblWireModel

# The longest the loop sleeps without a deadline, so that a stop request is seen promptly.
_IDLE_WAKE_S = 0.05


class GrblWirePty:
    """The master side of a pty served by a :class:`GrblWireModel` until ``stop`` is set."""

    def __init__(self, link_path: Path, model: GrblWireModel) -> None:
        self.link_path = link_path
        self.model = model
        self._master = -1
        self._slave = -1
        self.slave_name = ""
        self._pending = bytearray()

    def open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        # The emulator keeps the slave open so the master never sees EIO between host opens.
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.slave_name = os.ttyname(slave)
        with contextlib.suppress(FileNotFoundError):
            self.link_path.unlink()
        self.link_path.symlink_to(self.slave_name)

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.link_path.unlink()
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def serve(self, stop: threading.Event) -> None:
        """Move bytes between the pty and the model until ``stop`` is set (blocking)."""
        master, model = self._master, self.model
        model.power_on(time.monotonic())
        while not stop.is_set():
            deadline = model.next_deadline()
            now = time.monotonic()
            timeout = _IDLE_WAKE_S if deadline is None else min(_IDLE_WAKE_S,
                                                                max(0.0, deadline - now))
            writers = [master] if self._pending else []
            readable, writable, _ = select.select([master], writers, [], timeout)
            now = time.monotonic()
            if readable:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    data = b""  # nothing after all, or no host has the slave open (EIO)
                if data:
                    model.feed(data, now)
            self._queue(model.advance(now))
            if self._pending and (writable or not writers):
                self._write_pending()

    def _queue(self, replies: list[bytes]) -> None:
        for reply in replies:
            if self._pending:
                self._pending += reply
                continue
            try:
                n = os.write(self._master, reply)  # one write per reply, as GRBL sends them
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                return
            if n < len(reply):
                self._pending += reply[n:]

    def _write_pending(self) -> None:
        try:
            n = os.write(self._master, self._pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        del self._pending[:n]


def add_wire_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wire-model", action="store_true",
        help="GRBL at the wire's limit: paced UART, 128-byte RX that loses bytes, one ok per "
             "line after --ok-delay-ms, idle-wire counter (see agent/emulators/grbl_wire_model)")
    parser.add_argument("--ok-delay-ms", type=float, default=2.0,
                        help="wire mode: ms from a line's newline to its ok")
    parser.add_argument("--stats", type=Path, default=None,
                        help="wire mode: write the idle-wire counter here as JSON at exit")


def serve_wire(args: argparse.Namespace, stop: threading.Event) -> None:
    """Blocking: serve the pty until ``stop``, then write ``--stats``."""
    record: TextIO | None = None
    if args.record:
        record = Path(args.record).open("a", encoding="utf-8")  # noqa: SIM115 - closed below

    def on_line(text: str) -> None:
        if record is not None:
            record.write(text + "\n")
            record.flush()  # for a test in another process, as GrblEmulator does

    model = GrblWireModel(baud=args.baud or 115_200, ok_delay_s=max(0.0, args.ok_delay_ms) / 1000,
                          on_line=on_line)
    pty = GrblWirePty(Path(args.link), model)
    pty.open()
    print(f"GRBL wire model on {args.link} -> {pty.slave_name}", flush=True)
    try:
        pty.serve(stop)
    finally:
        pty.close()
        if record is not None:
            record.close()
        if args.stats is not None:
            Path(args.stats).write_text(json.dumps(model.stats(), indent=2) + "\n",
                                        encoding="utf-8")


async def run_wire_cli(args: argparse.Namespace) -> None:
    """Serve in a worker thread until cancelled; a cancel (SIGTERM) returns only once that
    thread has written the statistics."""
    stop = threading.Event()
    served = asyncio.get_running_loop().run_in_executor(None, serve_wire, args, stop)
    try:
        await asyncio.shield(served)
    finally:
        stop.set()
        await asyncio.wait([served])
