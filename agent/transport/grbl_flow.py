"""GRBL 1.1 serial protocol, sans I/O: reply framing and the character-counting window.

Feed the bytes the controller sent to :meth:`GrblReplyParser.feed` and get typed replies;
ask :class:`CharacterCounter` whether a line fits in the controller's receive buffer.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

# A reply longer than this is garbage on the line (GRBL's longest is a status report).
MAX_REPLY_BYTES = 1024


@dataclass(frozen=True)
class Ok:
    pass


@dataclass(frozen=True)
class ErrorReply:
    code: int


@dataclass(frozen=True)
class AlarmReply:
    code: int


@dataclass(frozen=True)
class Banner:
    version: str


@dataclass(frozen=True)
class Feedback:
    """A bracketed message: ``[MSG:...]``, ``[GC:...]``, ``[VER:...]``, ``[OPT:...]``..."""

    kind: str
    text: str


@dataclass(frozen=True)
class StatusReport:
    state: str
    substate: int | None
    mpos: tuple[float, ...] | None = None
    wpos: tuple[float, ...] | None = None
    wco: tuple[float, ...] | None = None
    planner_free: int | None = None
    rx_free: int | None = None
    line_number: int | None = None
    feed: float | None = None
    spindle: float | None = None
    overrides: tuple[int, ...] | None = None
    pins: str | None = None
    accessories: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def hold_complete(self) -> bool:
        return self.state == "Hold" and self.substate == 0


@dataclass(frozen=True)
class Setting:
    """One line of the ``$$`` report (report.c ``report_grbl_settings``: ``$<n>=<value>``)."""

    number: int
    value: str


@dataclass(frozen=True)
class Unknown:
    """A line we do not understand (line noise, a firmware we do not know); never fatal."""

    text: str


GrblReply = Ok | ErrorReply | AlarmReply | Banner | Feedback | StatusReport | Setting | Unknown

_BANNER = re.compile(r"^Grbl\s+(\S+)")
_SETTING = re.compile(r"^\$(\d+)=(\S+)$")
_STATES = frozenset(
    {"Idle", "Run", "Hold", "Jog", "Alarm", "Door", "Check", "Home", "Sleep"}
)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def parse_status(body: str) -> StatusReport | None:
    """Parse the inside of ``<...>``; None if it is not a GRBL 1.1 report."""
    fields = body.split("|")
    state, _, sub = fields[0].partition(":")
    if state not in _STATES:
        return None
    try:
        substate = int(sub) if sub else None
        values: dict[str, object] = {}
        extra: dict[str, str] = {}
        for item in fields[1:]:
            key, _, value = item.partition(":")
            if key == "MPos":
                values["mpos"] = _floats(value)
            elif key == "WPos":
                values["wpos"] = _floats(value)
            elif key == "WCO":
                values["wco"] = _floats(value)
            elif key == "Bf":
                blocks, rx = value.split(",")
                values["planner_free"] = int(blocks)
                values["rx_free"] = int(rx)
            elif key == "Ln":
                values["line_number"] = int(value)
            elif key == "FS":
                feed, speed = value.split(",")
                values["feed"] = float(feed)
                values["spindle"] = float(speed)
            elif key == "F":
                values["feed"] = float(value)
            elif key == "Ov":
                values["overrides"] = tuple(int(v) for v in value.split(","))
            elif key == "Pn":
                values["pins"] = value
            elif key == "A":
                values["accessories"] = value
            elif key:
                extra[key] = value
    except ValueError:
        return None
    return StatusReport(state=state, substate=substate, extra=extra, **values)  # type: ignore[arg-type]


def parse_reply(text: str) -> GrblReply:
    if text == "ok":
        return Ok()
    if text.startswith("error:"):
        try:
            return ErrorReply(int(text[6:]))
        except ValueError:
            return Unknown(text)
    if text.startswith("ALARM:"):
        try:
            return AlarmReply(int(text[6:]))
        except ValueError:
            return Unknown(text)
    if text.startswith("<") and text.endswith(">"):
        report = parse_status(text[1:-1])
        return report if report is not None else Unknown(text)
    if text.startswith("[") and text.endswith("]"):
        kind, _, body = text[1:-1].partition(":")
        return Feedback(kind, body)
    m = _BANNER.match(text)
    if m:
        return Banner(m.group(1))
    m = _SETTING.match(text)
    if m:
        return Setting(int(m.group(1)), m.group(2))
    return Unknown(text)


_OK_LINE = b"ok\r\n"


class GrblReplyParser:
    """Splits the byte stream into lines (GRBL ends them with CRLF) and parses each."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._discarding = False

    def count_oks(self, data: bytes) -> int:
        """If ``data`` is nothing but whole ``ok`` lines (by far the most common chunk on a busy
        stream), consume it and return how many; else 0 and nothing consumed (use :meth:`feed`).
        """
        if self._buf or self._discarding or len(data) & 3:
            return 0
        count = data.count(_OK_LINE)
        return count if count << 2 == len(data) else 0

    def feed(self, data: bytes) -> list[GrblReply]:
        replies: list[GrblReply] = []
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_REPLY_BYTES:
                    # An endless line is noise: drop it, and the rest of it when it ends.
                    replies.append(Unknown(self._buf[:80].decode("ascii", "replace") + "..."))
                    self._buf.clear()
                    self._discarding = True
                return replies
            raw = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if self._discarding:
                self._discarding = False
                continue
            text = raw.decode("ascii", "replace").strip("\r\x00 ")
            if text:
                replies.append(parse_reply(text))


class CharacterCounter:
    """The host's model of GRBL's serial receive buffer (the character-counting protocol).

    Every line sent adds ``len(line) + 1`` bytes (its newline); every ``ok`` or ``error:N``
    answers the oldest line still in flight. A line may be sent only while the total stays
    within ``capacity``.
    """

    def __init__(self, rx_buffer_bytes: int) -> None:
        # GRBL's ring buffer holds one byte fewer than its size.
        self.capacity = rx_buffer_bytes - 1
        self._sizes: deque[int] = deque()
        self.in_flight_bytes = 0

    def fits(self, size: int) -> bool:
        return self.in_flight_bytes + size <= self.capacity

    def push(self, size: int) -> None:
        if size > self.capacity:
            raise ValueError(f"a {size}-byte line can never fit a {self.capacity}-byte buffer")
        if not self.fits(size):
            raise ValueError("line does not fit the receive buffer")
        self._sizes.append(size)
        self.in_flight_bytes += size

    def pop(self) -> int:
        size = self._sizes.popleft()
        self.in_flight_bytes -= size
        return size

    def release(self, count: int) -> None:
        """``count`` answers at once: pop that many of the oldest lines."""
        popleft = self._sizes.popleft
        freed = 0
        for _ in range(count):
            freed += popleft()
        self.in_flight_bytes -= freed

    @property
    def in_flight_lines(self) -> int:
        return len(self._sizes)

    def reset(self) -> None:
        """After a soft reset or alarm the controller's buffer is empty."""
        self._sizes.clear()
        self.in_flight_bytes = 0
