"""A pyserial port driven by the asyncio event loop (non-blocking, reader/writer callbacks)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import select
from collections import deque
from collections.abc import Callable

import serial

from agent.errors import DeviceLost, SerialPortUnavailable
from agent.transport.trace import Direction, SerialTrace

log = logging.getLogger(__name__)

_READ_CHUNK = 4096


class SerialLink:
    """A :class:`~agent.transport.link.ByteLink` over a real serial port or pseudo-terminal.

    Every chunk read from or written to the port is kept in ``trace`` (as it went over the
    wire: what the port took, not what was queued)."""

    def __init__(self, port: serial.Serial, name: str, trace: SerialTrace | None = None) -> None:
        self._port = port
        self._name = name
        self.trace = trace if trace is not None else SerialTrace(name)
        self._fd: int = port.fileno()
        self._loop = asyncio.get_running_loop()
        self._rx: deque[bytes] = deque()
        self._rx_ready = asyncio.Event()
        self._receiver: Callable[[bytes], None] | None = None
        self._tx = bytearray()
        self._tx_urgent = bytearray()
        self._writing = False
        self._drained = asyncio.Event()
        self._drained.set()
        self._flow_paused = False
        self._error: DeviceLost | None = None
        self._closed = False
        # Push mode may hold reads for a moment (hold_reads): the reader is off meanwhile.
        self._hold: asyncio.TimerHandle | None = None
        self._reader_on = True
        self._ready = select.poll()
        self._ready.register(self._fd, select.POLLIN)
        self._loop.add_reader(self._fd, self._on_readable)

    @classmethod
    async def open(
        cls, path: str, baud: int, *, rtscts: bool = False, xonxoff: bool = False,
        trace: SerialTrace | None = None,
    ) -> SerialLink:
        try:
            port = serial.Serial(
                path,
                baudrate=baud,
                timeout=0,
                write_timeout=0,
                rtscts=rtscts,
                xonxoff=xonxoff,
                exclusive=True,
            )
        except (serial.SerialException, OSError) as exc:
            raise SerialPortUnavailable(f"cannot open serial port {path}: {exc}") from None
        if trace is not None:
            trace.note(f"opened {path} at {baud} baud")
        return cls(port, path, trace)

    @property
    def name(self) -> str:
        return self._name

    # -- reading ---------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(f"read from {self._name} failed: {exc.strerror or exc}")
            return
        if not data:
            self._fail(f"{self._name} closed (end of file)")
            return
        self.trace.record(Direction.RX, data)
        if self._receiver is not None:
            self._receiver(data)
            return
        self._rx.append(data)
        self._rx_ready.set()

    def hold_reads(self, seconds: float) -> None:
        """Push mode: do not wake for input for ``seconds``; what arrives meanwhile is read in
        one go when they are up (and handed to the receiver, which may hold again: in steady
        state the reader stays off and one timer per hold does the reading, with no
        ``epoll_ctl`` in between). For a caller that knows nothing can arrive that it must act
        on sooner, e.g. a stream whose device still has several ms of lines to work through:
        fewer, fuller reads (one wake-up for several ``ok``). Writes are not held. A hold
        already running is kept; ``seconds <= 0`` does nothing."""
        if seconds <= 0 or self._hold is not None or self._closed or self._receiver is None:
            return
        if self._reader_on:
            self._loop.remove_reader(self._fd)
            self._reader_on = False
        self._hold = self._loop.call_later(seconds, self._end_hold)

    def _end_hold(self) -> None:
        self._hold = None
        # Read only if something is there: with pyserial's VMIN=0 a read of a quiet tty
        # returns nothing at all, which _on_readable must take for end of file.
        if self._ready.poll(0):
            self._on_readable()  # may hold again (from the receiver)
        self._reader_back()

    def _reader_back(self) -> None:
        if self._hold is None and not self._reader_on and not self._closed:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reader_on = True

    def _cancel_hold(self) -> None:
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None

    def set_receiver(self, receiver: Callable[[bytes], None] | None) -> None:
        self._receiver = receiver
        if receiver is None:
            self._cancel_hold()  # pull mode reads as bytes come
            self._reader_back()
        if receiver is not None and self._rx:
            pending = b"".join(self._rx)
            self._rx.clear()
            receiver(pending)

    async def wait_lost(self) -> None:
        while self._error is None:
            self._rx_ready.clear()
            await self._rx_ready.wait()
        raise self._error

    async def read(self) -> bytes:
        while not self._rx:
            if self._error is not None:
                raise self._error
            self._rx_ready.clear()
            await self._rx_ready.wait()
        if len(self._rx) == 1:
            return self._rx.popleft()
        data = b"".join(self._rx)
        self._rx.clear()
        return data

    # -- writing ---------------------------------------------------------------------------

    def write(self, data: bytes, *, urgent: bool = False) -> None:
        if self._error is not None:
            raise self._error
        if not self._writing and not self._tx_urgent and not self._tx and (
                urgent or not self._flow_paused):
            # Nothing queued (the usual case: one short line or realtime byte at a time):
            # straight to the port, without the queue's copies; whatever does not fit now
            # is queued below as usual.
            n = self._write_some(data, urgent)
            if n is None or n == len(data):
                return
            data = data[n:]
        if urgent:
            self._tx_urgent += data
        else:
            self._tx += data
        self._flush()

    def set_flow_paused(self, paused: bool) -> None:
        self._flow_paused = paused
        if not paused:
            self._flush()

    def _pending(self) -> bytearray | None:
        if self._tx_urgent:
            return self._tx_urgent
        if self._tx and not self._flow_paused:
            return self._tx
        return None

    def _write_some(self, data: bytes | bytearray, urgent: bool) -> int | None:
        """Bytes the port took now (0 when it is full); None when the link just failed."""
        try:
            n = os.write(self._fd, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return 0
            self._fail(f"write to {self._name} failed: {exc.strerror or exc}")
            return None
        if n:
            # bytes as they are when whole (no copy); a queue's bytearray changes afterwards.
            taken = data if n == len(data) and isinstance(data, bytes) else bytes(data[:n])
            self.trace.record(Direction.URGENT if urgent else Direction.TX, taken)
        return n

    def _flush(self) -> None:
        while (buf := self._pending()) is not None:
            n = self._write_some(buf, buf is self._tx_urgent)
            if n is None:
                return
            if n == 0:
                break
            del buf[:n]
        waiting = self._pending() is not None
        if waiting and not self._writing:
            self._loop.add_writer(self._fd, self._flush)
            self._writing = True
        elif not waiting and self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        if self._tx or self._tx_urgent:
            self._drained.clear()
        else:
            self._drained.set()

    async def drain(self) -> None:
        while not self._drained.is_set():
            if self._error is not None:
                raise self._error
            await self._drained.wait()
        if self._error is not None:
            raise self._error

    # -- lifetime --------------------------------------------------------------------------

    def _fail(self, message: str) -> None:
        if self._error is None:
            log.warning("serial link lost: %s", message)
            self._error = DeviceLost(message)
            self.trace.note(f"lost: {message}")
        self._detach()
        self._rx_ready.set()
        self._drained.set()

    def _detach(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cancel_hold()
        if self._reader_on:
            self._loop.remove_reader(self._fd)
            self._reader_on = False
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        with contextlib.suppress(Exception):
            self._port.close()

    async def close(self) -> None:
        if self._error is None:
            self._error = DeviceLost(f"{self._name} closed by the agent")
            self.trace.note("closed by the agent")
        self._detach()
        self._rx_ready.set()
        self._drained.set()
