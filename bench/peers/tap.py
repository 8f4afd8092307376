"""A wire tap between a sender and the emulated device: every byte, each way, with its time.

Usage: ``python bench/peers/tap.py DEVICE HOST_LINK LOG``. Opens DEVICE (the emulator's pty, as
a host would), makes a fresh pty for the sender with HOST_LINK pointing at it, prints
``{"ready": true}``, and forwards bytes both ways as soon as they arrive (the emulator paces
them at the baud rate, so the tap adds a hop of tens of microseconds, not wire time). On SIGTERM
it writes LOG, one JSON array a line: ``[monotonic_s, "h"|"d", text]`` ("h": host to device,
"d": device to host; text is the bytes decoded as latin-1), and exits.

Every sender is measured through the same tap, so its hop costs each of them alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import sys
import time
import tty
from pathlib import Path


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    give_up = time.monotonic() + 1.0  # nobody reading the other side: drop, as a wire would
    while view and time.monotonic() < give_up:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            time.sleep(0.0005)
            continue
        view = view[n:]


def main() -> None:
    device_path, host_link, log_path = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    device = os.open(device_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(device)
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    with contextlib.suppress(FileNotFoundError):
        host_link.unlink()
    host_link.symlink_to(os.ttyname(slave))
    records: list[tuple[float, str, bytes]] = []
    stopping = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    sel = selectors.DefaultSelector()
    sel.register(master, selectors.EVENT_READ, ("h", device))
    sel.register(device, selectors.EVENT_READ, ("d", master))
    print(json.dumps({"ready": True, "host": os.ttyname(slave)}), flush=True)
    while not stopping:
        try:
            events = sel.select(0.2)
        except InterruptedError:
            continue
        for key, _ in events:
            direction, out = key.data
            try:
                data = os.read(key.fd, 4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                # The master reads EIO while no sender holds the slave open; the tap keeps the
                # slave open itself, so this is only a closing race.
                continue
            if data:
                records.append((time.monotonic(), direction, data))
                _write_all(out, data)
    with log_path.open("w", encoding="latin-1") as log:
        for t, direction, data in records:
            log.write(json.dumps([t, direction, data.decode("latin-1")]) + "\n")
    os.close(slave)


if __name__ == "__main__":
    main()
