"""The last bytes exchanged with a machine, both ways, kept in memory for when something fails.

Klipper dumps its last messages to the log when the printer shuts down; this is the same idea.
Recording is one tuple appended to a deque per chunk (no formatting, no copy of ``bytes``):
the serial link calls :meth:`SerialTrace.record` for every chunk it reads from or writes to
the port. Lines are made only when someone asks (:meth:`SerialTrace.lines`): a failed job's
event, the log, ``station-agent trace`` or the MQTT ``trace`` command.

Bounded by the bytes kept (``max_bytes``), each chunk counted with a fixed overhead so that a
stream of one-byte realtime commands cannot grow the deque without limit. The oldest chunks go
first; :attr:`SerialTrace.evicted_bytes` says how much history is
gone.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from agent.schemas.base import utc_now_rfc3339

_clock = time.monotonic_ns
# Lines end in LF (G-code), CR LF (GRBL and Marlin replies) or CR alone (HP-GL replies).
_EOL = re.compile(rb"\r\n|\r|\n")
DEFAULT_MAX_BYTES = 64 * 1024
# What a chunk costs besides its bytes (the tuple and its references), for the byte budget.
CHUNK_OVERHEAD = 32
# A line longer than this is shown cut, with how many bytes were left out (HP-GL has no
# newlines: its instructions would otherwise make one endless line).
MAX_LINE_BYTES = 160

# What a failed job's event carries, and what the log gets when something fails.
EVENT_MAX_LINES = 40
EVENT_MAX_BYTES = 4096
LOG_MAX_LINES = 100
LOG_MAX_BYTES = 16 * 1024


class Direction(IntEnum):
    RX = 0      # from the machine
    TX = 1      # to the machine, a queued line or block
    URGENT = 2  # to the machine ahead of the queue (realtime commands, e-stop bytes)
    NOTE = 3    # the agent's own remark: port opened, lost, closed

    @property
    def arrow(self) -> str:
        return _ARROWS[self]


_ARROWS = {Direction.RX: "<<", Direction.TX: ">>", Direction.URGENT: ">!",
           Direction.NOTE: "--"}


class SerialTrace:
    """A bounded ring of raw chunks with direction and time, rendered as lines on demand."""

    def __init__(self, name: str = "", *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self._chunks: deque[tuple[int, int, bytes]] = deque()
        self._bytes = 0
        self.evicted_bytes = 0
        # One clock per chunk (monotonic, immune to clock steps); wall time from this anchor.
        self._mono_anchor = time.monotonic_ns()
        self._wall_anchor = time.time_ns()

    def __len__(self) -> int:
        return len(self._chunks)

    @property
    def bytes_kept(self) -> int:
        return self._bytes

    def record(self, direction: Direction, data: bytes) -> None:
        """Keep one chunk (cheap: called for every read and write on the port)."""
        chunks = self._chunks
        chunks.append((direction, _clock(), data))
        size = self._bytes + len(data) + CHUNK_OVERHEAD
        # Inline, not a helper: with the ring full this runs on every chunk.
        while size > self.max_bytes and len(chunks) > 1:
            old = chunks.popleft()[2]
            size -= len(old) + CHUNK_OVERHEAD
            self.evicted_bytes += len(old)
        self._bytes = size

    def note(self, text: str) -> None:
        """An event of the link itself (opened, lost), shown in line with the bytes."""
        self.record(Direction.NOTE, text.encode("utf-8", "replace"))

    def clear(self) -> None:
        self._chunks.clear()
        self._bytes = 0

    # -- rendering (only when asked) -------------------------------------------------------

    def lines(self) -> list[str]:
        """Every line kept, oldest first: ``HH:MM:SS.mmm >> G1 X10`` (UTC)."""
        return [f"{self._clock(t)} {Direction(d).arrow} {text}" for d, t, text in self._lines()]

    def _lines(self) -> Iterator[tuple[int, int, str]]:
        """Chunks reassembled into lines per direction, in the order each line completed."""
        partial: dict[int, tuple[int, bytearray]] = {}
        for direction, t, data in list(self._chunks):
            if direction in (Direction.URGENT, Direction.NOTE):
                # Realtime bytes are picked out of the stream by the firmware, not lines.
                yield direction, t, _show(data)
                continue
            start, buf = partial.get(direction, (t, bytearray()))
            buf += data
            text = bytes(buf)
            # A CR at the end may be the first half of a CR LF still on its way.
            held = b"\r" if text.endswith(b"\r") else b""
            *complete, rest = _EOL.split(text[:len(text) - len(held)])
            rest += held
            for line in complete:
                yield direction, t, _show(line)
            if len(rest) > MAX_LINE_BYTES:
                yield direction, t, _show(rest)
                rest = b""
            partial[direction] = (t if complete else start, bytearray(rest))
        for direction, (t, buf) in sorted(partial.items(), key=lambda kv: kv[1][0]):
            if buf.endswith(b"\r"):  # ended by a CR alone (an HP-GL reply)
                yield direction, t, _show(bytes(buf[:-1]))
            elif buf:
                yield direction, t, _show(bytes(buf)) + " (no newline yet)"

    def _clock(self, mono_ns: int) -> str:
        wall = (self._wall_anchor + mono_ns - self._mono_anchor) / 1e9
        return datetime.fromtimestamp(wall, UTC).strftime("%H:%M:%S.%f")[:-3]

    def snapshot(self, max_lines: int | None = None, max_bytes: int | None = None
                 ) -> dict[str, Any]:
        """The trace as a JSON object (docs/schemas/trace.schema.json), the newest lines kept
        within ``max_lines`` and ``max_bytes`` (UTF-8 bytes of the lines); ``omitted`` counts
        the older lines left out."""
        every = self.lines()
        kept: list[str] = []
        size = 0
        for line in reversed(every):
            cost = len(line.encode()) + 1
            if (max_lines is not None and len(kept) >= max_lines) or (
                    max_bytes is not None and size + cost > max_bytes):
                break
            kept.append(line)
            size += cost
        kept.reverse()
        return {"port": self.name, "at": utc_now_rfc3339(),
                "lines": kept, "omitted": len(every) - len(kept),
                "evicted_bytes": self.evicted_bytes}

    def for_event(self) -> dict[str, Any]:
        """What a ``failed`` event's ``detail.trace`` carries."""
        return self.snapshot(EVENT_MAX_LINES, EVENT_MAX_BYTES)

    def for_log(self, why: str) -> str:
        """A dump for the log: why, then the last lines (as Klipper does on a shutdown)."""
        snap = self.snapshot(LOG_MAX_LINES, LOG_MAX_BYTES)
        head = (f"serial trace of {self.name or 'the machine'} ({why}); last "
                f"{len(snap['lines'])} lines"
                + (f", {snap['omitted']} older not shown" if snap["omitted"] else "") + ":")
        return "\n".join([head, *("  " + line for line in snap["lines"])])


def _show(data: bytes) -> str:
    """Printable ASCII as is, anything else as an escape (``\\x18`` for a GRBL soft reset)."""
    cut = len(data) - MAX_LINE_BYTES
    if cut > 0:
        data = data[:MAX_LINE_BYTES]
    text = data.decode("ascii", "backslashreplace")
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text + (f"... (+{cut} bytes)" if cut > 0 else "")


__all__ = ["Direction", "SerialTrace"]
