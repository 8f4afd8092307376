"""The device end of a pseudo-terminal, with simulated wire speed and response latency.

The agent opens the slave side (through ``link_path``, a symlink like a udev name) with pyserial,
exactly as it opens a USB serial adapter; the emulator reads and writes the master side.

Timing model:
- ``baud``: bytes reach the device no faster than ``baud / 10`` per second (8N1 framing), and
  replies leave no faster either. ``None`` means as fast as the pty goes.
- ``latency_s``: every reply is delivered that long after the device sends it, like a USB
  adapter's latency timer. Replies are queued, so latency delays but never stalls the device.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import tty
from collections import deque
from pathlib import Path
from types import TracebackType

_CHUNK = 64


class PtyEndpoint:
    def __init__(
        self,
        link_path: Path | str | None = None,
        *,
        baud: int | None = 115_200,
        latency_s: float = 0.0,
    ) -> None:
        self.link_path = Path(link_path) if link_path is not None else None
        self.bytes_per_s = baud / 10 if baud else None
        self.latency_s = latency_s
        self._master: int | None = None
        self._slave: int | None = None
        self.slave_name = ""
        self._rx_wire_free_at = 0.0
        self._rx_pending = bytearray()
        # When each not-yet-delivered run of bytes was written by the host: bytes queued
        # behind others arrive back to back on the wire, not when the device asks for them.
        self._rx_written: deque[tuple[int, float]] = deque()
        self._rx_offset = 0
        self._rx_event = asyncio.Event()
        self._tx_queue: deque[tuple[float, bytes]] = deque()
        self._tx_event = asyncio.Event()
        self._tx_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    @property
    def path(self) -> str:
        """What a host opens: the symlink if there is one, else the slave device."""
        return str(self.link_path) if self.link_path is not None else self.slave_name

    async def __aenter__(self) -> PtyEndpoint:
        self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(slave)
        # The emulator keeps the slave open too so the master never sees EIO between host opens.
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.slave_name = os.ttyname(slave)
        if self.link_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link_path.unlink()
            self.link_path.symlink_to(self.slave_name)
        self._loop.add_reader(master, self._on_readable)
        self._tx_task = asyncio.create_task(self._tx_loop(), name="pty-tx")
        self.closed = False

    def _on_readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if data:
            self._rx_written.append((self._rx_offset + len(self._rx_pending), time.monotonic()))
            self._rx_pending += data
            self._rx_event.set()

    async def receive(self) -> bytes:
        """The next bytes from the host, delivered no faster than the simulated wire."""
        while not self._rx_pending:
            if self.closed:
                raise ConnectionError("pty closed")
            self._rx_event.clear()
            await self._rx_event.wait()
        if self.bytes_per_s is None:
            data = bytes(self._rx_pending)
            self._rx_pending.clear()
            self._rx_written.clear()
            self._rx_offset += len(data)
            return data
        data = bytes(self._rx_pending[:_CHUNK])
        del self._rx_pending[:_CHUNK]
        # The chunk's first byte was written at the latest write-time at or before its offset.
        written = 0.0
        while self._rx_written and self._rx_written[0][0] <= self._rx_offset:
            written = self._rx_written.popleft()[1]
        if written:
            self._rx_written.appendleft((self._rx_offset, written))
        self._rx_offset += len(data)
        now = time.monotonic()
        start = max(written or now, self._rx_wire_free_at)
        self._rx_wire_free_at = start + len(data) / self.bytes_per_s
        delay = self._rx_wire_free_at - now
        if delay > 0.0005:
            await asyncio.sleep(delay)
        return data

    def send(self, data: bytes) -> None:
        """Queue a reply; it reaches the host after the latency, at wire speed."""
        if self.closed or not data:
            return
        self._tx_queue.append((time.monotonic() + self.latency_s, data))
        self._tx_event.set()

    async def _tx_loop(self) -> None:
        wire_free_at = 0.0
        while True:
            while not self._tx_queue:
                self._tx_event.clear()
                await self._tx_event.wait()
            due, data = self._tx_queue.popleft()
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            if self.bytes_per_s is not None:
                start = max(time.monotonic(), wire_free_at)
                wire_free_at = start + len(data) / self.bytes_per_s
                delay = wire_free_at - time.monotonic()
                if delay > 0.0005:
                    await asyncio.sleep(delay)
            await self._write_all(data)

    async def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._master is not None:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                await asyncio.sleep(0.001)
                continue
            except OSError:
                return
            view = view[n:]

    def disconnect(self) -> None:
        """Like pulling the USB cable: the host's next read fails and the name disappears."""
        if self.link_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link_path.unlink()
        self._close_fds()

    def _close_fds(self) -> None:
        self.closed = True
        self._rx_event.set()
        if self._master is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._master)
            os.close(self._master)
            self._master = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    async def aclose(self) -> None:
        if self._tx_task is not None:
            self._tx_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tx_task
            self._tx_task = None
        self.disconnect()


def add_link_arguments(parser: argparse.ArgumentParser, *, baud: int, latency_ms: float) -> None:
    """The options every ``station-agent emulate`` family shares, with the family's defaults."""
    parser.add_argument("--link", type=Path, required=True,
                        help="symlink to create for the device end (the agent opens this path)")
    parser.add_argument("--baud", type=int, default=baud,
                        help="simulated wire speed in baud (0: as fast as the pty)")
    parser.add_argument("--latency-ms", type=float, default=latency_ms,
                        help="delay before each answer reaches the host, like a USB adapter")


def endpoint_from_args(args: argparse.Namespace) -> PtyEndpoint:
    return PtyEndpoint(args.link, baud=args.baud or None,
                       latency_s=max(0.0, args.latency_ms) / 1000)
