"""HP-GL serial protocol, sans I/O: queries, reply framing, and how many bytes may go out.

An HP-GL plotter answers two kinds of query, both with a decimal text ended by CR:

- device-control escapes (``ESC.B`` free buffer bytes, ``ESC.L`` buffer size, ``ESC.E`` last
  I/O error, ``ESC.O`` extended status) are answered at once, never buffered;
- output instructions (``OS;``, ``OE;``, ``OI;``, ``OA;``) wait in the buffer and are answered
  when the plotter reaches them.

Nothing in an answer says which query it belongs to, so :class:`HpglFlow` keeps at most one
query outstanding (HP plotters also report I/O error 10 for a query made while another is
being answered). The same class keeps the byte budget, per the profile's flow control:

- ``buffer_query``: after ``ESC.B`` answers ``free``, the budget is ``free - reserve - bytes
  sent since the query``; an answered output instruction proves that everything before it has
  left the buffer, so it raises the budget to ``size - reserve - bytes sent since``.
- ``rtscts`` / ``xonxoff``: the device stops the wire (CTS, XOFF); the agent keeps at most
  ``wire_window`` bytes travelling, paced at the baud rate, and stops at XOFF.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from agent.profiles.hpgl import HpglFlowControl

ESC = b"\x1b"
XON = 0x11
XOFF = 0x13
CR = 0x0D
LF = 0x0A
# An answer longer than this is noise on the line (the longest, OH, is about 25 bytes).
MAX_REPLY_BYTES = 256

# ESC.E codes (I/O errors).
IO_ERROR_NONE = 0
IO_ERROR_BUSY_OUTPUT = 10
IO_ERROR_BUFFER_OVERFLOW = 16

# ESC.O bits.
EXT_BUFFER_EMPTY = 8
EXT_PAUSED = 16
EXT_LEVER_UP = 32

# OS bits.
STATUS_PEN_DOWN = 1
STATUS_INITIALIZED = 8
STATUS_READY = 16
STATUS_ERROR = 32

IO_ERROR_TEXTS: dict[int, str] = {
    10: "output instruction received while another was being answered",
    11: "invalid byte after ESC.",
    12: "invalid byte in a device-control instruction",
    13: "device-control parameter out of range",
    14: "too many device-control parameters",
    15: "framing, parity or overrun error on the serial line",
    16: "input buffer overflow: bytes were lost",
}
HPGL_ERROR_TEXTS: dict[int, str] = {
    1: "instruction not recognised",
    2: "wrong number of parameters",
    3: "parameter out of range",
    5: "unknown character set",
    6: "position overflow",
    7: "buffer overflow (polygon or downloadable character)",
}


class Query(enum.Enum):
    """A question to the plotter: its bytes, and whether it is answered at once."""

    FREE_SPACE = (b"\x1b.B", True)
    BUFFER_SIZE = (b"\x1b.L", True)
    IO_ERROR = (b"\x1b.E", True)
    EXTENDED_STATUS = (b"\x1b.O", True)
    STATUS = (b"OS;", False)
    ERROR = (b"OE;", False)
    IDENTITY = (b"OI;", False)
    POSITION = (b"OA;", False)

    def __init__(self, wire: bytes, immediate: bool) -> None:
        self.wire = wire
        self.immediate = immediate


ABORT = b"\x1b.K"


def escape(letter: str, *params: int | None) -> bytes:
    """A parameterised device-control instruction, always ended by ``:``.

    ``None`` leaves a parameter at its default (an empty field).
    """
    fields = ";".join("" if p is None else str(p) for p in params)
    return f"\x1b.{letter}{fields}:".encode("ascii")


@dataclass(frozen=True)
class FreeSpace:
    bytes_free: int


@dataclass(frozen=True)
class BufferSize:
    bytes_total: int


@dataclass(frozen=True)
class IoError:
    code: int

    @property
    def text(self) -> str:
        return IO_ERROR_TEXTS.get(self.code, "unknown I/O error")


@dataclass(frozen=True)
class ExtendedStatus:
    bits: int

    @property
    def buffer_empty(self) -> bool:
        return bool(self.bits & EXT_BUFFER_EMPTY)

    @property
    def paused(self) -> bool:
        return bool(self.bits & EXT_PAUSED)

    @property
    def lever_up(self) -> bool:
        return bool(self.bits & EXT_LEVER_UP)


@dataclass(frozen=True)
class Status:
    bits: int

    @property
    def error(self) -> bool:
        return bool(self.bits & STATUS_ERROR)

    @property
    def initialized(self) -> bool:
        return bool(self.bits & STATUS_INITIALIZED)


@dataclass(frozen=True)
class HpglError:
    code: int

    @property
    def text(self) -> str:
        return HPGL_ERROR_TEXTS.get(self.code, "unknown HP-GL error")


@dataclass(frozen=True)
class Identity:
    model: str


@dataclass(frozen=True)
class Position:
    x: int
    y: int
    pen_down: bool


Reply = FreeSpace | BufferSize | IoError | ExtendedStatus | Status | HpglError | Identity | Position


class ReplyError(ValueError):
    """An answer that does not fit the query it should belong to."""


def parse_reply(query: Query, text: str) -> Reply:
    """Interpret ``text`` (one answer, terminator removed) as the answer to ``query``."""
    text = text.strip()
    if query is Query.IDENTITY:
        if not text or not text.isprintable():
            raise ReplyError(f"bad identity {text!r}")
        return Identity(text)
    if query is Query.POSITION:
        parts = text.split(",")
        if len(parts) != 3 or not all(_is_int(p) for p in parts):
            raise ReplyError(f"bad OA answer {text!r}")
        return Position(int(parts[0]), int(parts[1]), parts[2].strip() == "1")
    if not _is_int(text):
        raise ReplyError(f"expected a number for {query.name}, got {text!r}")
    value = int(text)
    if value < 0:
        raise ReplyError(f"negative answer {value} to {query.name}")
    if query is Query.FREE_SPACE:
        return FreeSpace(value)
    if query is Query.BUFFER_SIZE:
        return BufferSize(value)
    if query is Query.IO_ERROR:
        return IoError(value)
    if query is Query.EXTENDED_STATUS:
        return ExtendedStatus(value)
    if query is Query.STATUS:
        return Status(value)
    return HpglError(value)


def _is_int(text: str) -> bool:
    text = text.strip()
    if text[:1] in "+-":
        text = text[1:]
    return text.isdigit()


class FlowSignal(enum.Enum):
    XON = "xon"
    XOFF = "xoff"


class ReplyFramer:
    """Splits the plotter's bytes into answers (ended by CR) and XON/XOFF signals."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.overlong = 0

    def feed(self, data: bytes) -> Iterator[str | FlowSignal]:
        for byte in data:
            if byte == XON:
                yield FlowSignal.XON
            elif byte == XOFF:
                yield FlowSignal.XOFF
            elif byte == CR:
                text = self._buf.decode("ascii", "replace")
                self._buf.clear()
                yield text
            elif byte == LF:
                continue
            elif len(self._buf) < MAX_REPLY_BYTES:
                self._buf.append(byte)
            else:
                self.overlong += 1

    def clear(self) -> None:
        self._buf.clear()


class HpglFlow:
    """The byte budget for program data, and the one query that may be outstanding."""

    def __init__(
        self,
        mode: HpglFlowControl,
        *,
        capacity: int,
        reserve: int,
        wire_bytes_per_s: float,
        wire_window: int,
    ) -> None:
        self.mode = mode
        self.capacity = capacity
        self.reserve = reserve
        self.wire_bytes_per_s = wire_bytes_per_s
        self.wire_window = wire_window
        self.outstanding: Query | None = None
        self.outstanding_since = 0.0
        self._credit = 0
        self._sent_since_query = 0
        self._xoff = False
        self._wire_level = 0.0
        self._wire_at = 0.0
        self._next_free_query_at = 0.0
        # The last known free space (for telemetry); None until asked.
        self.last_free: int | None = None

    # -- budget ----------------------------------------------------------------------------

    @property
    def usable(self) -> int:
        return self.capacity - self.reserve

    @property
    def credit(self) -> int:
        """Bytes that may still be sent (buffer_query mode)."""
        return self._credit

    @property
    def paused_by_device(self) -> bool:
        return self._xoff

    def set_capacity(self, capacity: int) -> None:
        self.capacity = max(capacity, 2 * self.reserve)

    def wire_level(self, now: float) -> float:
        """Bytes estimated still travelling (written but not yet clocked out at the baud)."""
        drained = (now - self._wire_at) * self.wire_bytes_per_s
        return max(0.0, self._wire_level - drained)

    def can_send(self, nbytes: int, now: float) -> bool:
        if self.mode is HpglFlowControl.BUFFER_QUERY:
            return nbytes <= self._credit
        if self._xoff:
            return False
        level = self.wire_level(now)
        return level <= 0.0 or level + nbytes <= self.wire_window

    def wait_hint(self, now: float, nbytes: int) -> float:
        """How long until :meth:`can_send` (``nbytes``) may turn true by time alone.

        0.25 s when only an answer or a signal can change it (the caller is woken by those).
        """
        idle = 0.25
        if self.mode is HpglFlowControl.BUFFER_QUERY:
            return self.free_space_hint(now)
        if self._xoff:
            return idle
        excess = self.wire_level(now) - max(0, self.wire_window - nbytes)
        return excess / self.wire_bytes_per_s if excess > 0 else 0.0

    def data_sent(self, nbytes: int, now: float) -> None:
        self._credit -= nbytes
        self._sent_since_query += nbytes
        self._wire_level = self.wire_level(now) + nbytes
        self._wire_at = now

    # -- the one outstanding query ---------------------------------------------------------

    def wants_free_space(self, now: float) -> bool:
        """buffer_query mode: time to ask ESC.B (budget below half, not asked too recently)."""
        return (
            self.mode is HpglFlowControl.BUFFER_QUERY
            and self.outstanding is None
            and self._credit < self.usable // 2
            and now >= self._next_free_query_at
        )

    def free_space_hint(self, now: float) -> float:
        """How long until ESC.B may be asked again (0.25 s if now: an answer will wake us)."""
        wait = self._next_free_query_at - now
        return wait if wait > 0 else 0.25

    def may_ask_free_space(self, now: float) -> bool:
        """No query outstanding and the last ESC.B answer is not too recent to ask again."""
        return self.outstanding is None and now >= self._next_free_query_at

    def query_sent(self, query: Query, now: float) -> None:
        if self.outstanding is not None:
            raise RuntimeError(f"{query.name} asked while {self.outstanding.name} is outstanding")
        self.outstanding = query
        self.outstanding_since = now
        self._sent_since_query = 0
        if not query.immediate:
            # The output instruction itself sits in the buffer like program data.
            self.data_sent(len(query.wire), now)
            self._sent_since_query = 0

    def reply(self, text: str, now: float, poll_interval: float) -> tuple[Query, Reply]:
        """The answer to the outstanding query; raises ReplyError if there is none or it is bad."""
        query = self.outstanding
        if query is None:
            raise ReplyError(f"unexpected answer {text!r} with no query outstanding")
        self.outstanding = None
        reply = parse_reply(query, text)
        if isinstance(reply, FreeSpace):
            self.last_free = reply.bytes_free
            self._credit = reply.bytes_free - self.reserve - self._sent_since_query
            if self._credit < min(self.usable // 4, 128):
                # The pen is the bottleneck: asking again at once would only load the wire.
                self._next_free_query_at = now + poll_interval
        elif isinstance(reply, BufferSize):
            self.set_capacity(min(self.capacity, reply.bytes_total))
        elif not query.immediate or (isinstance(reply, ExtendedStatus) and reply.buffer_empty):
            # Everything sent before this query has left the buffer.
            self._credit = max(self._credit, self.usable - self._sent_since_query)
        return query, reply

    def forget_outstanding(self) -> None:
        """After ESC.K: a buffered query is discarded with the buffer and never answered."""
        self.outstanding = None

    def reset_budget(self) -> None:
        """After ESC.K, or before a new stream: nothing may be sent until the device says so."""
        self._credit = 0
        self._sent_since_query = 0
        self._next_free_query_at = 0.0

    def signal(self, signal: FlowSignal) -> None:
        self._xoff = signal is FlowSignal.XOFF
