"""Marlin 2 replies, sans I/O: the firmware's bytes in, typed replies out; M115 identity.

:class:`MarlinReplyParser` keeps partial lines between reads and turns each complete line into
one of the reply types below (``ok`` with its ADVANCED_OK fields ``N``/``P``/``B``, resend
requests, errors, ``busy:``, temperatures, ...). :class:`FirmwareCaps` reads the M115 answer.
The streaming window that acts on these replies is :mod:`agent.transport.marlin_flow`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum, auto

# A reply line longer than this is noise (Marlin's longest are M115 capability lists).
MAX_REPLY_BYTES = 1024

# -- replies ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OkReply:
    line: int | None = None
    planner_free: int | None = None
    queue_free: int | None = None
    # Temperatures carried by an M105 answer (``ok T:...``).
    temperatures: dict[str, tuple[float, float | None]] | None = None


@dataclass(frozen=True, slots=True)
class ResendReply:
    line: int


class ErrorKind(Enum):
    # A line arrived damaged or out of sequence; a resend request follows.
    TRANSMISSION = auto()
    # The firmware halted (kill(), thermal protection): it needs a reset.
    KILLED = auto()
    # Anything else the firmware calls an error.
    OTHER = auto()


@dataclass(frozen=True, slots=True)
class ErrorReply:
    kind: ErrorKind
    text: str


@dataclass(frozen=True, slots=True)
class BusyReply:
    text: str


@dataclass(frozen=True, slots=True)
class TemperatureReply:
    temperatures: dict[str, tuple[float, float | None]]


@dataclass(frozen=True, slots=True)
class UnknownCommandReply:
    command: str


@dataclass(frozen=True, slots=True)
class StartReply:
    """``start``: the firmware has just booted (a reset during a job loses the job)."""


@dataclass(frozen=True, slots=True)
class OtherReply:
    text: str


MarlinReply = (
    OkReply
    | ResendReply
    | ErrorReply
    | BusyReply
    | TemperatureReply
    | UnknownCommandReply
    | StartReply
    | OtherReply
)

# The plain ok (one shared object: the flow's hot path compares by identity).
PLAIN_OK = OkReply()
_OK = PLAIN_OK
_ADV_OK = re.compile(r"ok\s*(?:N(-?\d+))?\s*(?:P(\d+))?\s*(?:B(\d+))?\s*$")
_RESEND = re.compile(r"(?:Resend|rs)\s*:?\s*N?(\d+)", re.IGNORECASE)
_TEMP = re.compile(r"(?<![@\w])([TBCP]\d?):\s*(-?\d+(?:\.\d+)?)(?:\s*/\s*(-?\d+(?:\.\d+)?))?")
_TRANSMISSION_ERRORS = (
    "checksum mismatch",
    "line number is not last line number",
    "no checksum",
    "no line number",
    "format error",
)
_KILL_MARKS = ("kill() called", "printer halted", "system stopped", "printer stopped")


def parse_temperatures(text: str) -> dict[str, tuple[float, float | None]]:
    temps: dict[str, tuple[float, float | None]] = {}
    for m in _TEMP.finditer(text):
        target = float(m.group(3)) if m.group(3) is not None else None
        temps.setdefault(m.group(1), (float(m.group(2)), target))
    return temps


def parse_reply(text: str) -> MarlinReply:
    """One line from the firmware (without its line ending) as a typed reply."""
    if text == "ok":
        return _OK
    if text.startswith("ok"):
        rest = text[2:]
        if "T:" in rest:
            return OkReply(temperatures=parse_temperatures(rest))
        m = _ADV_OK.match(text)
        if m is not None:
            return OkReply(
                line=int(m.group(1)) if m.group(1) is not None else None,
                planner_free=int(m.group(2)) if m.group(2) is not None else None,
                queue_free=int(m.group(3)) if m.group(3) is not None else None,
            )
        return _OK
    low = text.lower()
    if low.startswith(("resend", "rs ")):
        m = _RESEND.match(text)
        if m is not None:
            return ResendReply(int(m.group(1)))
    if text.startswith("!!"):
        return ErrorReply(ErrorKind.KILLED, text[2:].strip() or "firmware halted")
    if low.startswith("error"):
        message = text[6:].strip() if len(text) > 5 and text[5] == ":" else text
        lowm = message.lower()
        if any(mark in lowm for mark in _TRANSMISSION_ERRORS):
            return ErrorReply(ErrorKind.TRANSMISSION, message)
        if any(mark in lowm for mark in _KILL_MARKS):
            return ErrorReply(ErrorKind.KILLED, message)
        return ErrorReply(ErrorKind.OTHER, message)
    if "busy:" in low and (low.startswith(("busy:", "echo:busy:"))):
        return BusyReply(text)
    if low.startswith("echo:unknown command"):
        command = text.split(":", 2)[-1].strip().strip('"')
        return UnknownCommandReply(command)
    if low == "start":
        return StartReply()
    stripped = text.lstrip()
    if stripped.startswith(("T:", "T0:", "B:")):
        temps = parse_temperatures(stripped)
        if temps:
            return TemperatureReply(temps)
    return OtherReply(text)


def _fast_advanced_ok(raw: bytes) -> OkReply | None:
    """``ok N<n> P<p> B<b>`` without a regular expression (one per line at full speed)."""
    parts = raw.split()
    if len(parts) != 4 or parts[2][:1] != b"P" or parts[3][:1] != b"B":
        return None
    try:
        return OkReply(int(parts[1][1:]), int(parts[2][1:]), int(parts[3][1:]))
    except ValueError:
        return None


class MarlinReplyParser:
    """Bytes from the firmware in, complete replies out (partial lines are kept)."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, data: bytes) -> list[MarlinReply]:
        buf = self._partial + data if self._partial else data
        parts = buf.split(b"\n")
        self._partial = parts.pop()
        if len(self._partial) > MAX_REPLY_BYTES:
            self._partial = b""
        out: list[MarlinReply] = []
        for raw in parts:
            if raw[:2] == b"ok":
                if raw in {b"ok", b"ok\r"}:
                    out.append(_OK)
                    continue
                if raw[:4] == b"ok N":
                    fast = _fast_advanced_ok(raw)
                    if fast is not None:
                        out.append(fast)
                        continue
            text = raw.decode("ascii", "replace").strip()
            if text and len(text) <= MAX_REPLY_BYTES:
                out.append(parse_reply(text))
        return out


# -- firmware identity -----------------------------------------------------------------------


@dataclass
class FirmwareCaps:
    """What M115 said (``FIRMWARE_NAME:...`` and ``Cap:NAME:0|1`` lines)."""

    fields: dict[str, str] = field(default_factory=dict)
    capabilities: dict[str, bool] = field(default_factory=dict)
    # Seen on the M110 ok; not an M115 capability.
    advanced_ok: bool = False

    def has(self, name: str) -> bool:
        return self.capabilities.get(name, False)

    def take_line(self, text: str) -> bool:
        """Absorb one M115 answer line; False when it is not one."""
        if text.startswith("Cap:"):
            name, _, value = text[4:].partition(":")
            self.capabilities[name.strip().upper()] = value.strip() == "1"
            return True
        if text.startswith("FIRMWARE_NAME:"):
            keys = list(re.finditer(r"([A-Z_]+):", text))
            for i, m in enumerate(keys):
                end = keys[i + 1].start() if i + 1 < len(keys) else len(text)
                self.fields[m.group(1)] = text[m.end():end].strip()
            return True
        return False
