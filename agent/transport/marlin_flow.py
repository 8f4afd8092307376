"""Marlin 2 serial protocol, sans I/O: reply parsing and the numbered-line streaming window.

:class:`MarlinReplyParser` turns the firmware's bytes into typed replies. :class:`MarlinFlow`
streams one job: feed it replies (or bytes) and the clock, take the bytes it wants written and
the events it produced. It never touches a port, so tests drive it byte by byte.

Wire format and numbering
    Every job starts with ``N0 M110 N0*cs`` and waits for its ``ok`` (Marlin sets its line
    counter when it executes M110, so numbered lines sent before that ok would be refused). Then
    each line goes out as ``N<n> <line>*<cs>``; N1 is the first line sent, and the agent's own
    lines (the closing ``M400`` fence, ``M105`` probes, the cancel sequence) take numbers in the
    same sequence. (Without ADVANCED_OK the M110 ok is a plain ok: the driver starts a job only
    when no other answer is owed, so it cannot be mistaken.) Every entry is kept by number for
    resends; a request older than
    ``history_lines`` lines, or for a line never sent, fails with ``resend_out_of_history``.

Window (how many lines are in flight)
    Marlin answers ``ok`` when a command has *executed*. An unacknowledged line is in the
    command queue (BUFSIZE slots, the executing command included) or still in the receive
    buffer. Marlin moves lines from the receive buffer into the queue only in
    ``GCodeQueue::get_serial_commands()``, which runs from ``idle()`` (``MarlinCore.cpp``:
    between commands, and while a command waits - planner full, heating, dwell), never while a
    command is being processed. So a burst that arrives during a command stays in the receive
    buffer, however many queue slots are free, and the window cannot assume the queue absorbs
    anything. The rule: a line counts as out of the receive buffer only once the firmware has
    said so, and a line is sent when the bytes of every other line not known out, plus its own,
    stay within ``rx_buffer_bytes - 1`` (GRBL-style character counting).

    - Without ADVANCED_OK only an ``ok`` says so: every unacknowledged line's bytes count.
    - With ADVANCED_OK, ``ok N<k> P<p> B<b>`` is printed by ``ok_to_send()`` before k's slot is
      freed, so at that moment the queue held ``BUFSIZE - b`` commands: k and the
      ``BUFSIZE - b - 1`` lines after it (FIFO, in order). Those are out of the receive buffer
      for good; the window counts only the lines after them. BUFSIZE is taken from the M110
      ok (``B + 1``: at most, as something else may have been queued then) and capped by the
      profile's ``command_queue``; unnumbered lines of ours that may be queued (M108, the ok
      after a resend) are subtracted, so the figure can only be too low, never too high.
    - Hold: after a long command (G4, G28, G29, M0/M1, M109, M190, M226, M303, M400, M600)
      nothing but an ``M105`` is sent until it is acknowledged. The firmware would only let
      those lines wait in its buffers, and a pause must take effect right after the long
      command, not after every line already sent behind it. Without ADVANCED_OK an ``M105``
      follows each long command of the program (the fence has the barrier): a lost ok would
      otherwise leave the long command looking unanswered and hold the window until the
      silence probe; the ``ok T:`` acknowledges it.
    - ``stop_and_wait`` keeps one line in flight.

Acknowledgements
    With ADVANCED_OK an ``ok N<k>`` acknowledges every line up to k (a lost ok is covered by the
    next one) and an ok without N is never ours. Without it oks are counted: one plain ``ok``
    per line, oldest first. Two rules keep the count honest: the ok that follows ``Resend:`` is
    skipped, and an ``M105`` line (the agent's probes) is answered by ``ok T:...`` only, which
    acknowledges everything up to that M105 - so a plain ok while an M105 is the oldest line
    is spurious and ignored, and every M105 answer re-synchronises a count that a lost or an
    extra ok had shifted. Without ADVANCED_OK an M105 goes out every ``sync_every_lines``
    lines, so lost oks never shrink the window for long. The job ends when the final ``M105``
    barrier, sent after the ``M400`` fence, is answered: every line has then executed and
    motion is finished.

Lost oks and silence
    The clock runs while lines are in flight. Any ok, resend request or ``busy:`` resets it. The
    allowed silence is ``2.5 x keepalive interval`` when the firmware has BUSY_PROTOCOL (it then
    says ``busy:`` every interval during any long command, so silence means a lost ok or a dead
    board); without it, ``response_timeout_s``, or the profile's allowance while a long command
    (G28, G29, M109, M190, M400, G4 and its duration) is the oldest line. When it runs out the
    flow sends one probe - an ``M105`` line, whose answer acknowledges everything before it
    (M105s still in flight are taken as lost, so their answers are not waited for) - and if
    nothing comes within ``response_timeout_s`` more, the job fails with ``device_timeout``.
    With BUSY_PROTOCOL the silence proves the board idle, so a late answer cannot be mistaken
    for the probe's; without it a late answer of an older M105 could acknowledge lines early.

Resends
    ``Resend: n`` (or ``rs n``) means the firmware accepted every line before n and flushed its
    receive buffer; lines n.. in flight are lost or will be refused. The flow rewinds to n and
    sends n again. Lines sent after n before the rewind (s of them) arrive first and each may
    be refused with another ``Resend: n``: until s such duplicates have come, or n is known
    accepted (its ok, or a request for a later line), the flow is in recovery - duplicates are
    ignored and nothing after n is sent, so no new stale lines join the old ones. A refusal's
    flush may discard the copy of n: then the next line sent after recovery is refused with
    ``Resend: n`` (a genuine request, answered at once), or, when nothing else is in flight, the
    silence probe (in recovery, after 0.25 s: n sent again, which the firmware takes or refuses
    with ``Resend: n+1``) finds out. A line retransmitted more than ``max_resends_per_line`` times
    fails the job with ``resend_loop``. Line numbers make a second copy harmless: Marlin
    refuses a line whose number is not its last + 1, so nothing runs twice and nothing is
    skipped.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum, auto

from agent.dialects.marlin import frame_line
from agent.errors import DeviceError, DeviceTimeout
from agent.profiles.marlin import MarlinSettings
from agent.transport.marlin_replies import (
    MAX_REPLY_BYTES,
    BusyReply,
    ErrorKind,
    ErrorReply,
    FirmwareCaps,
    MarlinReply,
    MarlinReplyParser,
    OkReply,
    OtherReply,
    ResendReply,
    StartReply,
    TemperatureReply,
    UnknownCommandReply,
    parse_reply,
    parse_temperatures,
)
from agent.transport.marlin_replies import PLAIN_OK as _OK

# Reply parsing lives in marlin_replies; these names stay importable from here.
__all__ = [
    "HOLD_WORDS",
    "MAX_REPLY_BYTES",
    "BusyReply",
    "EntryKind",
    "ErrorKind",
    "ErrorReply",
    "EventKind",
    "FirmwareCaps",
    "FlowEvent",
    "MarlinFlow",
    "MarlinReply",
    "MarlinReplyParser",
    "OkReply",
    "OtherReply",
    "Phase",
    "ResendReply",
    "StartReply",
    "TemperatureReply",
    "UnknownCommandReply",
    "holds_window",
    "long_command_allowance",
    "parse_reply",
    "parse_temperatures",
]

# Silence during recovery before line n is sent again.
_RECOVERY_PROBE_S = 0.25


# -- the streaming state machine -------------------------------------------------------------


class EntryKind(Enum):
    SYNC = auto()  # M110 N0
    PROGRAM = auto()  # a line of the job
    FENCE = auto()  # M400 after the program
    BARRIER = auto()  # M105 whose answer ends the job
    PROBE = auto()  # M105 after a silence
    CANCEL = auto()  # the profile's cancel sequence


_Item = tuple["EntryKind", str, int]  # kind, text, program index (-1: not a program line)


@dataclass(slots=True)
class _Entry:
    kind: EntryKind
    text: str
    data: bytes
    index: int  # program index for PROGRAM entries, else -1
    answers_temperatures: bool  # an M105: answered by "ok T:..." only


class Phase(Enum):
    SYNCING = auto()
    STREAMING = auto()
    DONE = auto()
    STOPPED = auto()  # canceled: the cancel sequence has run
    FAILED = auto()
    ABORTED = auto()  # e-stop or link loss: nothing more is sent


class EventKind(Enum):
    # Progress is not an event (one per line would cost): read MarlinFlow.acknowledged.
    TELEMETRY = auto()  # temperatures
    WARNING = auto()
    DONE = auto()
    STOPPED = auto()
    FAILED = auto()  # error: DeviceError


@dataclass(frozen=True, slots=True)
class FlowEvent:
    kind: EventKind
    value: int = 0
    message: str = ""
    detail: dict[str, object] = field(default_factory=dict)
    temperatures: dict[str, tuple[float, float | None]] | None = None
    error: DeviceError | None = None


_LONG_WORDS = {"G28": "g28", "G29": "g29", "M109": "m109", "M190": "m190", "M400": "m400",
               "M303": "m303"}
_G4 = re.compile(r"^G4(?:\s|$)")
_G4_P = re.compile(r"\bP(\d+(?:\.\d+)?)")
_G4_S = re.compile(r"\bS(\d+(?:\.\d+)?)")


# Commands after which nothing is sent until they are acknowledged (see "Hold" above).
HOLD_WORDS = frozenset(
    {"G4", "G28", "G29", "M0", "M1", "M109", "M190", "M226", "M303", "M400", "M600"}
)


def holds_window(line: str) -> bool:
    """True for a long command: the window sends nothing after it until its ok."""
    return line.split(" ", 1)[0] in HOLD_WORDS


def long_command_allowance(line: str, settings: MarlinSettings) -> float | None:
    """Seconds a long-running command may take without an ok, or None for ordinary lines."""
    word = line.split(" ", 1)[0]
    key = _LONG_WORDS.get(word)
    if key is not None:
        return float(getattr(settings.long_commands, key))
    if _G4.match(line):
        seconds = 0.0
        if (p := _G4_P.search(line)) is not None:
            seconds += float(p.group(1)) / 1000.0
        if (s := _G4_S.search(line)) is not None:
            seconds += float(s.group(1))
        return seconds + settings.response_timeout_s
    return None


class MarlinFlow:
    """One job's stream: numbered lines, the window, resends, timeouts. No I/O.

    ``lines[start_index:]`` are sent; progress values count from the start of ``lines``.
    Call :meth:`output` after every input to get the bytes to write, :meth:`take_events` for
    what happened, and :meth:`tick` at :meth:`next_deadline` (or sooner).
    """

    def __init__(
        self,
        lines: Sequence[str],
        settings: MarlinSettings,
        caps: FirmwareCaps,
        *,
        start_index: int = 0,
        now: float = 0.0,
    ) -> None:
        self._settings = settings
        self._caps = caps
        self._lines = lines
        self._source: Iterator[_Item] = self._job_source(start_index)
        # Lines taken back by a rewind, sent again before anything from the source.
        self._pending: deque[_Item] = deque()
        self._source_done = False
        self._parser = MarlinReplyParser()
        self._events: list[FlowEvent] = []
        self._out = bytearray()
        self.phase = Phase.SYNCING
        self._advanced = caps.advanced_ok and settings.advanced_ok.value == "auto"
        self._slots = settings.command_queue
        self._rx_limit = settings.rx_buffer_bytes - 1
        self._busy_active = caps.has("BUSY_PROTOCOL")
        self._fw_slots: int | None = None
        # Highest line number the firmware has shown to be out of its receive buffer (in the
        # queue or executed), and the newest long command sent (nothing follows it unacked).
        self._out_through = -1
        self._hold_n = -1
        # Entries of the lines sent, by line number (N0 is the M110 sync); always next_n long.
        self._entries: list[_Entry] = []
        self._sizes: list[int] = []  # len(entry.data) by line number, for the window sum
        self._next_n = 0  # next line number to transmit
        self._acked_n = -1  # highest line number known executed
        self._skip_oks = 0
        self._recovering: int | None = None
        self._stale_requests = 0
        self._resends: dict[int, int] = {}
        self._paused = False
        self._canceling = False
        self._progress = start_index
        self._reported_progress = start_index
        self._last_heard = now
        self._probe_at: float | None = None
        self._sync_every = settings.sync_every_lines
        self._head: tuple[int, _Item, bytes] | None = None
        self._since_sync = 0
        self.max_in_flight = 0
        self.retransmissions = 0
        self.probes_sent = 0

    # -- feeding ---------------------------------------------------------------------------

    def _job_source(self, start_index: int) -> Iterator[_Item]:
        yield EntryKind.SYNC, "M110 N0", -1
        for i in range(start_index, len(self._lines)):
            yield EntryKind.PROGRAM, self._lines[i], i
        yield EntryKind.FENCE, "M400", -1
        yield EntryKind.BARRIER, "M105", -1

    def _cancel_source(self, lines: Sequence[str]) -> Iterator[_Item]:
        for line in lines:
            yield EntryKind.CANCEL, line, -1
        yield EntryKind.FENCE, "M400", -1
        yield EntryKind.BARRIER, "M105", -1

    def _make_entry(
        self, kind: EntryKind, text: str, index: int, number: int, data: bytes | None = None
    ) -> _Entry:
        return _Entry(
            kind,
            text,
            data if data is not None else frame_line(number, text),
            index,
            text == "M105" or text.startswith("M105 "),
        )

    def _peek(self) -> _Item | None:
        """The next line to send (not yet numbered), or None when the source is exhausted."""
        if self._pending:
            return self._pending[0]
        if self._source_done:
            return None
        item = next(self._source, None)
        if item is None:
            self._source_done = True
            return None
        self._pending.append(item)
        return item

    @property
    def _exhausted(self) -> bool:
        return self._source_done and not self._pending

    def _fits(self, size: int, m105: bool = False) -> bool:
        acked = self._acked_n
        if self._next_n - acked - 1 <= 0:
            return True
        if self._settings.stop_and_wait or self.phase is Phase.SYNCING:
            return False
        if self._hold_n > acked and not m105:
            return False  # a long command is in flight: nothing but an M105 goes behind it
        first_rx = (acked if acked > self._out_through else self._out_through) + 1
        return size + sum(self._sizes[first_rx:self._next_n]) <= self._rx_limit

    def output(self) -> bytes:
        """Bytes to write now: every line the window allows."""
        if self.phase is Phase.SYNCING:
            if self._next_n == 0:
                self._send_next()
        elif self.phase is Phase.STREAMING and not (self._paused and not self._canceling):
            self._fill_window()
        if not self._out:
            return b""
        data = bytes(self._out)
        self._out.clear()
        return data

    def _fill_window(self) -> None:
        # The hot path: one pass per line at full speed, so locals and no helper calls.
        pending = self._pending
        entries = self._entries
        sizes = self._sizes
        out = self._out
        sync_every = 0 if self._advanced else self._sync_every
        program = EntryKind.PROGRAM
        while self._recovering is None or self._next_n <= self._recovering:
            item = pending[0] if pending else self._peek()
            if item is None:
                break
            n = self._next_n
            if sync_every and item[0] is program and self._since_sync >= sync_every:
                self._since_sync = 0
                item = (EntryKind.PROBE, "M105", -1)
                pending.appendleft(item)
            # Framed once (the size test needs the real bytes) and kept while it waits.
            head = self._head
            if head is not None and head[1] is item and head[0] == n:
                data = head[2]
            else:
                data = frame_line(n, item[1])
                self._head = (n, item, data)
            if not self._fits(len(data), item[1] == "M105"):
                break
            pending.popleft()
            kind, text, index = item
            entries.append(_Entry(kind, text, data, index, text == "M105" or text[:5] == "M105 "))
            sizes.append(len(data))
            out += data
            self._next_n = n + 1
            if kind is program:
                self._since_sync += 1
            if text.split(" ", 1)[0] in HOLD_WORDS:
                self._hold_n = n
                if not self._advanced and kind is not EntryKind.FENCE:
                    # Counted oks: a lost one would leave the long command looking unanswered
                    # and hold the window for good; the M105's "ok T:" settles the count.
                    pending.appendleft((EntryKind.PROBE, "M105", -1))
        in_flight = self._next_n - self._acked_n - 1
        self.max_in_flight = max(self.max_in_flight, in_flight)

    def _send_next(self, data: bytes | None = None) -> None:
        """Number and send the next pending line."""
        item = self._peek()
        assert item is not None
        self._pending.popleft()
        kind, text, index = item
        entry = self._make_entry(kind, text, index, self._next_n, data)
        self._entries.append(entry)
        self._sizes.append(len(entry.data))
        self._out += entry.data
        if holds_window(text):
            self._hold_n = self._next_n
        self._next_n += 1
        if kind is EntryKind.PROGRAM:
            self._since_sync += 1
        in_flight = self._next_n - self._acked_n - 1
        self.max_in_flight = max(self.max_in_flight, in_flight)

    # -- control ---------------------------------------------------------------------------

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def poll_temperature(self) -> None:
        """Ask for temperatures with a numbered M105 (firmware without auto-report)."""
        if self.phase is Phase.STREAMING and not any(
            item[0] is EntryKind.PROBE for item in self._pending
        ):
            self._pending.appendleft((EntryKind.PROBE, "M105", -1))

    def expect_unnumbered_ok(self) -> None:
        """An unnumbered line (M108) went out; its plain ok is not a program line's.

        With ADVANCED_OK the ok has no N, so it is never taken for ours anyway; the count
        still matters there: until that ok, the line may hold a queue slot (see ``_on_ok``).
        """
        self._skip_oks += 1

    def cancel(self) -> None:
        """Stop feeding the job; the profile's cancel sequence follows what is in flight."""
        if self._canceling or self.phase not in (Phase.SYNCING, Phase.STREAMING):
            return
        self._canceling = True
        # Program lines not yet sent never will be; the cancel sequence follows what was sent.
        self._pending = deque(i for i in self._pending if i[0] is EntryKind.SYNC)
        self._source = self._cancel_source(self._settings.cancel_sequence)
        self._source_done = False

    def abort(self) -> None:
        """E-stop or link loss: send nothing more."""
        if self.phase in (Phase.SYNCING, Phase.STREAMING):
            self.phase = Phase.ABORTED
        self._out.clear()

    # -- inputs ----------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        self.handle_all(self._parser.feed(data), now)

    def handle_all(self, replies: list[MarlinReply], now: float) -> None:
        """Every reply of one read, in order (a counted plain ok takes a shorter path)."""
        streaming = Phase.STREAMING
        for reply in replies:
            if (
                reply is _OK
                and self.phase is streaming
                and not self._advanced
                and not self._skip_oks
            ):
                self._last_heard = now
                self._probe_at = None
                n = self._acked_n + 1
                if n < self._next_n and not self._entries[n].answers_temperatures:
                    self._ack_through(n)
                continue
            if (
                self._advanced
                and isinstance(reply, OkReply)
                and reply.line is not None
                and reply.temperatures is None
                and self.phase is streaming
            ):
                self._last_heard = now
                self._probe_at = None
                self._on_ok(reply)
                continue
            self.handle(reply, now)

    def handle(self, reply: MarlinReply, now: float) -> None:
        if self.phase not in (Phase.SYNCING, Phase.STREAMING):
            return
        if isinstance(reply, OkReply):
            self._heard(now)
            self._on_ok(reply)
        elif isinstance(reply, ResendReply):
            self._heard(now)
            self._on_resend(reply.line)
        elif isinstance(reply, BusyReply):
            self._heard(now)
        elif isinstance(reply, TemperatureReply):
            self._events.append(FlowEvent(EventKind.TELEMETRY, temperatures=reply.temperatures))
        elif isinstance(reply, ErrorReply):
            self._on_error(reply)
        elif isinstance(reply, UnknownCommandReply):
            self._events.append(
                FlowEvent(
                    EventKind.WARNING,
                    message=f"firmware: unknown command {reply.command!r}",
                    detail={"code": "unknown_command", "command": reply.command,
                            "line": self._current_line()},
                )
            )
        elif isinstance(reply, StartReply):
            self._fail(DeviceError(
                "the firmware restarted during the job", code="device_lost",
                line=self._current_line()))

    def _heard(self, now: float) -> None:
        self._last_heard = now
        self._probe_at = None

    def _on_ok(self, ok: OkReply) -> None:
        if ok.temperatures is not None:
            self._events.append(FlowEvent(EventKind.TELEMETRY, temperatures=ok.temperatures))
            # Acknowledges everything up to the oldest M105 in flight.
            for n in range(self._acked_n + 1, self._next_n):
                if self._entries[n].answers_temperatures:
                    self._ack_through(n)
                    break
            return
        if self.phase is Phase.SYNCING:
            if self._skip_oks and ok.line is None:
                self._skip_oks -= 1
                return
            self._synced(ok)
            return
        if self._advanced:
            if ok.line is None:
                if self._skip_oks:
                    self._skip_oks -= 1
                return
            k = ok.line
            if self._acked_n < k < self._next_n:
                if ok.queue_free is not None and self._fw_slots is not None:
                    # ok_to_send() runs before k's slot is freed: the queue held k and the
                    # lines after it, minus any unnumbered lines of ours still owed an ok.
                    after = self._slots - ok.queue_free - 1 - self._skip_oks
                    if after > 0:
                        out = min(k + after, self._next_n - 1)
                        self._out_through = max(self._out_through, out)
                self._ack_through(k)
            return
        if self._skip_oks:
            self._skip_oks -= 1
            return
        n = self._acked_n + 1
        if n >= self._next_n or self._entries[n].answers_temperatures:
            return  # nothing in flight, or an M105 (answered with T:): not ours
        self._ack_through(n)

    def _synced(self, ok: OkReply) -> None:
        self._acked_n = 0
        if ok.line is not None and ok.queue_free is not None:
            self._advanced = self._settings.advanced_ok.value == "auto"
            if self._advanced:
                # Only M110 was queued: the firmware's BUFSIZE is B + 1.
                self._fw_slots = ok.queue_free + 1
                self._slots = max(1, min(self._slots, self._fw_slots))
        else:
            self._advanced = False
        self.phase = Phase.STREAMING

    def _ack_through(self, n: int) -> None:
        entries = self._entries
        for m in range(self._acked_n + 1, n + 1):
            if entries[m].kind is EntryKind.PROGRAM:
                self._progress = entries[m].index + 1
        self._acked_n = n
        if self._recovering is not None and n >= self._recovering:
            self._recovering = None
            self._stale_requests = 0
        self._reported_progress = max(self._reported_progress, self._progress)
        if self._exhausted and n >= self._next_n - 1:
            self._finish()

    def _finish(self) -> None:
        if self._canceling:
            self.phase = Phase.STOPPED
            self._events.append(FlowEvent(EventKind.STOPPED, value=self._reported_progress))
        else:
            self.phase = Phase.DONE
            self._events.append(FlowEvent(EventKind.DONE, value=self._reported_progress))

    def _on_resend(self, n: int) -> None:
        self._skip_oks += 1
        if self.phase is Phase.SYNCING:
            # Any request before the M110 ok is answered with the M110 again (it resets N).
            self._count_resend(0)
            if self.phase is Phase.SYNCING:
                self._out += self._entries[0].data
            return
        oldest = max(1, self._next_n - self._settings.history_lines)
        if n > self._next_n or n < oldest:
            sent = f"{oldest}..{self._next_n - 1}" if self._next_n > oldest else "none"
            self._fail(DeviceError(
                f"the firmware asked for line {n}; lines kept for resending: {sent}",
                code="resend_out_of_history", line=self._current_line()))
            return
        if n <= self._acked_n:
            # An extra ok was counted: the firmware has not even accepted line n.
            self._acked_n = n - 1
        if self._recovering is not None:
            if n == self._recovering and n < self._next_n and self._stale_requests > 0:
                # A copy of a line sent before the rewind was refused: expected, ignored. When
                # the last one has come, line n is in or gone, and later lines may follow.
                self._stale_requests -= 1
                if self._stale_requests == 0:
                    self._recovering = None
                return
            if n > self._recovering:
                # Every line before n is accepted: recovery of the earlier line is over.
                self._recovering = None
                self._stale_requests = 0
        if n == self._next_n:
            return  # the firmware wants the next new line: nothing was lost
        stale = self._next_n - n - 1
        self._count_resend(n)
        if self.phase is not Phase.STREAMING:
            return
        self._rewind(n)
        # Lines sent after n may still arrive and each be refused with "Resend: n": send
        # nothing after n until they have (or n is known accepted).
        self._recovering = n if stale > 0 else None
        self._stale_requests = stale
        if self._peek() is not None:
            self._send_next()

    def _rewind(self, n: int) -> None:
        """Take lines n.. back: they are sent again, under the same numbers."""
        taken = [(e.kind, e.text, e.index) for e in self._entries[n:]]
        del self._entries[n:]
        del self._sizes[n:]
        self._next_n = n
        # Lines n.. go out again as new bytes; a long command among them holds again then.
        self._out_through = min(self._out_through, n - 1)
        if self._hold_n >= n:
            self._hold_n = -1
            for m in range(n - 1, self._acked_n, -1):
                if holds_window(self._entries[m].text):
                    self._hold_n = m
                    break
        if self._canceling:
            # Refused program lines of a canceled job are dropped, not sent again.
            taken = [t for t in taken if t[0] is not EntryKind.PROGRAM]
        self._pending.extendleft(reversed(taken))

    def _count_resend(self, n: int) -> None:
        count = self._resends.get(n, 0) + 1
        self._resends[n] = count
        self.retransmissions += 1
        if count > self._settings.max_resends_per_line:
            self._fail(DeviceError(
                f"the firmware asked for line {n} {count} times; giving up",
                code="resend_loop", line=self._line_of(n)))

    def _on_error(self, err: ErrorReply) -> None:
        if err.kind is ErrorKind.TRANSMISSION:
            return  # the resend request that follows does the work
        code = "device_killed" if err.kind is ErrorKind.KILLED else "device_error"
        self._fail(DeviceError(
            f"firmware: {err.text}", code=code, line=self._current_line(),
            device_code=err.text))

    def _fail(self, error: DeviceError) -> None:
        if self.phase in (Phase.SYNCING, Phase.STREAMING):
            self.phase = Phase.FAILED
            self._events.append(FlowEvent(EventKind.FAILED, error=error))

    # -- where the firmware is ---------------------------------------------------------------

    def _line_of(self, n: int) -> int | None:
        """1-based program line of entry n (for other entries, of the program line before)."""
        for m in range(min(n, len(self._entries) - 1), 0, -1):
            entry = self._entries[m]
            if entry.kind is EntryKind.PROGRAM:
                return entry.index + 1
        return None

    def _current_line(self) -> int | None:
        """The 1-based program line the firmware is working on (oldest unacknowledged)."""
        for n in range(self._acked_n + 1, self._next_n):
            entry = self._entries[n]
            if entry.kind is EntryKind.PROGRAM:
                return entry.index + 1
        return None

    @property
    def acknowledged(self) -> int:
        """Program lines acknowledged, counted from the start of ``lines``."""
        return self._reported_progress

    @property
    def in_flight(self) -> int:
        return max(0, self._next_n - self._acked_n - 1)

    @property
    def last_sent_number(self) -> int:
        return self._next_n - 1

    @property
    def heat_wait_in_flight(self) -> bool:
        for n in range(self._acked_n + 1, self._next_n):
            if self._entries[n].text.startswith(("M109", "M190")):
                return True
        return False

    # -- time ------------------------------------------------------------------------------

    def _silence_limit(self) -> float:
        settings = self._settings
        if self._recovering is not None and self._probe_at is None:
            # Recovery's probe is one copy of the line (taken, or refused with a request for the
            # next): harmless, so it need not wait for a full timeout.
            return _RECOVERY_PROBE_S
        if self._busy_active:
            return 2.5 * settings.keepalive_interval_s
        n = self._acked_n + 1
        if n < self._next_n:
            allowance = long_command_allowance(self._entries[n].text, settings)
            if allowance is not None:
                return max(allowance, settings.response_timeout_s)
        return settings.response_timeout_s

    def next_deadline(self) -> float | None:
        if self.phase not in (Phase.SYNCING, Phase.STREAMING) or self.in_flight == 0:
            return None
        if self._probe_at is not None:
            return self._probe_at + self._settings.response_timeout_s
        return self._last_heard + self._silence_limit()

    def tick(self, now: float) -> None:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return
        if self._probe_at is not None:
            self._fail(DeviceTimeout(
                f"no answer from the firmware for {now - self._last_heard:.1f} s "
                "(a probe went unanswered too)",
                code="device_timeout", line=self._current_line()))
            return
        self._probe_at = now
        self.probes_sent += 1
        if self.phase is Phase.SYNCING:
            self._out += self._entries[0].data
        elif self._recovering is not None:
            # The copy is taken, or refused with a request for the next line: either way the
            # firmware tells where it is.
            self._count_resend(self._recovering)
            if self.phase is Phase.STREAMING:
                self._out += self._entries[self._recovering].data
        else:
            # After the silence every answer still owed has come or is lost: M105s in flight
            # stop waiting for theirs, so the probe's own answer is not taken for an older one.
            for m in range(self._acked_n + 1, self._next_n):
                self._entries[m].answers_temperatures = False
            self._pending.appendleft((EntryKind.PROBE, "M105", -1))
            self._send_next()

    # -- outputs ---------------------------------------------------------------------------

    @property
    def has_events(self) -> bool:
        return bool(self._events)

    def take_events(self) -> list[FlowEvent]:
        events = self._events
        self._events = []
        return events
