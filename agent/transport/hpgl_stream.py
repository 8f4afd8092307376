"""One HP-GL job as a sans-I/O state machine: bytes and ``now`` in, bytes to write and events out.

No port, no clock, no asyncio: the driver (:mod:`agent.drivers.hpgl`) reads the port and calls
:meth:`HpglStream.feed`, calls :meth:`HpglStream.tick` when woken or at ``wake_at``, writes what
they return and forwards their events. The rules it keeps (HP 7475A interfacing manual):

- program data goes out as far as the :class:`~agent.transport.hpgl_flow.HpglFlow` budget
  allows, never while a check waits to be placed;
- every ``check_every_bytes``, at the next pen-up point (and after each ``IN;``), ``ESC.E``
  (I/O error, never buffered) then ``OS;`` (buffered: answered when the pen gets there); an
  ``OS`` error bit asks ``OE;``; a non-zero ``ESC.E`` or ``OE`` fails the job;
- ``OS`` bit 3 ("initialised") clears each time OS is output, so it set again without an ``IN;``
  from us means the plotter was reset under the job (``os_initialised_clears_on_read``; off for
  clones whose OS answer is a constant);
- one query outstanding at a time; an unanswered one fails the job after its timeout
  (``response_timeout_s`` for escapes, ``drain_timeout_s`` for buffered ones);
- after the last line: ``ESC.E`` and ``OS;``, then ``ESC.O`` every ``poll_interval_s`` until
  "buffer empty" (bit 3); the operator's pause or lever (bits 4, 5) restarts the drain timer.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.dialects.hpgl import is_pen_up_point
from agent.profiles.hpgl import HpglFlowControl, HpglSettings
from agent.transport.hpgl_flow import (
    IO_ERROR_BUFFER_OVERFLOW,
    ExtendedStatus,
    FlowSignal,
    HpglError,
    HpglFlow,
    IoError,
    Query,
    ReplyError,
    ReplyFramer,
    Status,
)

# Most bytes handed out in one go (keeps progress and cancel fine-grained).
MAX_BATCH = 512


class StreamState(enum.Enum):
    SENDING = "sending"  # program data going out (checks between)
    PAUSED = "paused"  # the host stopped feeding; buffered data still plots
    FINAL_CHECKS = "final_checks"  # all lines sent: ESC.E and OS; after the last one
    DRAINING = "draining"  # ESC.O until the buffer is empty
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ESTOPPED = "estopped"


TERMINAL = frozenset({StreamState.DONE, StreamState.FAILED, StreamState.CANCELLED,
                      StreamState.ESTOPPED})


@dataclass(frozen=True)
class Progress:
    """The first ``lines`` program lines have been handed to the plotter."""

    lines: int


@dataclass(frozen=True)
class Done:
    lines: int


@dataclass(frozen=True)
class Failed:
    """``code``: buffer_overflow, device_error or device_timeout; ``line`` 1-based."""

    code: str
    message: str
    line: int
    device_code: str | None = None


@dataclass(frozen=True)
class Stopped:
    """Cancel or e-stop: the driver aborts the device (ESC.K) itself."""

    code: str  # "canceled" or "estop"


@dataclass(frozen=True)
class StatusSeen:
    """An ESC.O answer (for the driver's device state)."""

    ext: ExtendedStatus


@dataclass(frozen=True)
class FlowPaused:
    """XON/XOFF mode: the device said XOFF (True) or XON (False)."""

    paused: bool


@dataclass(frozen=True)
class Notice:
    """Something to log as a warning (an answer nobody asked for, noise)."""

    message: str
    detail: dict[str, object] = field(default_factory=dict)


Event = Progress | Done | Failed | Stopped | StatusSeen | FlowPaused | Notice


@dataclass
class Output:
    """What to write, what happened, and when to call :meth:`HpglStream.tick` at the latest."""

    write: bytes = b""
    events: list[Event] = field(default_factory=list)
    wake_at: float | None = None


class HpglStream:
    def __init__(
        self,
        lines: Sequence[str],
        settings: HpglSettings,
        flow: HpglFlow,
        framer: ReplyFramer,
        *,
        now: float,
        start_index: int = 0,
        preamble: Sequence[str] = (),
        status_read: bool = True,
    ) -> None:
        """``preamble``: lines that restore state before ``lines[start_index:]`` (not progress).

        ``status_read``: OS has been read since connecting (else its bit 3 is expected).
        """
        self.settings = settings
        self.flow = flow
        self.framer = framer
        self.total_lines = len(lines)
        self.sequence = [*preamble, *lines[start_index:]]
        self._data = [line.encode("ascii") for line in self.sequence]
        self._base = start_index - len(preamble)
        self.start_index = start_index
        self.acked = start_index
        self.state = StreamState.SENDING
        self.planned: deque[Query] = deque()
        self._index = 0
        self._since_check = 0
        self._host_paused = False
        self._failure: Failed | None = None
        self._stop: Stopped | None = None
        self._reported = False
        self._init_sent_since_status = False
        self._init_before_status = False
        self.status_read = status_read
        self._line_at_query = start_index
        self._ext: ExtendedStatus | None = None
        self._next_ext_poll = 0.0
        self._draining_since = now
        flow.reset_budget()

    # -- controls --------------------------------------------------------------------------

    @property
    def host_paused(self) -> bool:
        return self._host_paused

    def pause(self) -> None:
        """Stop feeding; what is in the plotter's buffer still plots. Checks still complete."""
        self._host_paused = True
        if self.state is StreamState.SENDING:
            self.state = StreamState.PAUSED

    def resume(self) -> None:
        self._host_paused = False
        if self.state is StreamState.PAUSED:
            self.state = StreamState.SENDING

    def cancel(self) -> None:
        if self.state not in TERMINAL:
            self._stop = Stopped("canceled")

    def estop(self) -> None:
        if self.state not in TERMINAL:
            self._stop = Stopped("estop")

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    # -- input -----------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> Output:
        """Bytes read from the plotter. Terminal outcomes are reported by the next tick()."""
        out = Output()
        for item in self.framer.feed(data):
            if isinstance(item, FlowSignal):
                if self.settings.flow_control is HpglFlowControl.XONXOFF:
                    self.flow.signal(item)
                    out.events.append(FlowPaused(item is FlowSignal.XOFF))
                continue
            self._answer(item, now, out)
        return out

    def _answer(self, text: str, now: float, out: Output) -> None:
        if self.flow.outstanding is None:
            if text.strip():
                out.events.append(Notice("unexpected answer from the plotter", {"text": text}))
            return
        try:
            _, reply = self.flow.reply(text, now, self.settings.poll_interval_s)
        except ReplyError as exc:
            # Noise where an answer should be: the check is lost, the job goes on.
            out.events.append(Notice("unreadable answer from the plotter", {"error": str(exc)}))
            return
        line = max(1, self._line_at_query)
        if isinstance(reply, IoError) and reply.code:
            code = "buffer_overflow" if reply.code == IO_ERROR_BUFFER_OVERFLOW else "device_error"
            self._fail(Failed(code, f"plotter I/O error {reply.code}: {reply.text} "
                              f"(at or before line {line})", line, f"ESC.E{reply.code}"))
        elif isinstance(reply, Status):
            self.status_read = True
            if reply.error:
                self.planned.appendleft(Query.ERROR)
            if (reply.initialized and not self._init_before_status
                    and self.settings.os_initialised_clears_on_read):
                self._fail(Failed(
                    "device_error",
                    f"plotter re-initialised during the job (power cut?) before line {line}",
                    line, f"OS{reply.bits}"))
        elif isinstance(reply, HpglError) and reply.code:
            self._fail(Failed("device_error", f"plotter HP-GL error {reply.code}: {reply.text} "
                              f"(at or before line {line})", line, f"OE{reply.code}"))
        elif isinstance(reply, ExtendedStatus):
            self._ext = reply
            out.events.append(StatusSeen(reply))

    def _fail(self, failure: Failed) -> None:
        if self._failure is None:
            self._failure = failure

    # -- time ------------------------------------------------------------------------------

    def _query_timeout(self, query: Query) -> float:
        if query.immediate:
            return self.settings.response_timeout_s
        return self.settings.drain_timeout_s

    def _send_query(self, query: Query, now: float, out: Output) -> None:
        self._line_at_query = self.acked
        if query is Query.STATUS:
            # An IN; sent before this OS; (or no OS read since connecting) explains an
            # "initialised" bit in its answer; otherwise the plotter was reset under us.
            self._init_before_status = self._init_sent_since_status or not self.status_read
            self._init_sent_since_status = False
        self.flow.query_sent(query, now)
        out.write += query.wire

    def tick(self, now: float) -> Output:
        """Advance: send what may be sent, ask what must be asked, report how it ended."""
        out = Output()
        while True:
            if self.state in TERMINAL:
                return out
            if self._end(now, out):
                return out
            if not self._step(now, out):
                break
        out.wake_at = self._wake_at(now)
        return out

    def _end(self, now: float, out: Output) -> bool:
        """Report a stop, a failure or a timed-out query (in that order of precedence)."""
        if self._stop is not None:
            self.state = (StreamState.CANCELLED if self._stop.code == "canceled"
                          else StreamState.ESTOPPED)
            out.events.append(self._stop)
            return True
        query = self.flow.outstanding
        if self._failure is None and query is not None:
            limit = self._query_timeout(query)
            if now >= self.flow.outstanding_since + limit:
                self.flow.forget_outstanding()
                line = max(1, self._line_at_query)
                self._fail(Failed("device_timeout", f"plotter did not answer {query.name} "
                                  f"within {limit:g} s (after line {line})", line))
        if self._failure is not None:
            self.state = StreamState.FAILED
            out.events.append(self._failure)
            return True
        return False

    def _step(self, now: float, out: Output) -> bool:
        """One pass of the job's rules; True if a query went out (look again at once)."""
        flow = self.flow
        planned = self.planned
        data = self._data
        total = len(data)
        if self.state is StreamState.SENDING and not planned:
            batch = bytearray()
            while self._index < total and len(batch) < MAX_BATCH:
                chunk = data[self._index]
                if not flow.can_send(len(chunk), now):
                    break
                flow.data_sent(len(chunk), now)
                batch += chunk
                self._index += 1
                self._since_check += len(chunk)
                if chunk.startswith(b"IN"):
                    # IN; sets "initialised": read it at once, so a later one means a reset.
                    self._init_sent_since_status = True
                    planned.extend((Query.IO_ERROR, Query.STATUS))
                    self._since_check = 0
                    break
                if (self._since_check >= self.settings.check_every_bytes
                        and is_pen_up_point(self.sequence[self._index - 1])):
                    # ESC.E first: it is never lost, and it follows every byte sent.
                    planned.extend((Query.IO_ERROR, Query.STATUS))
                    self._since_check = 0
                    break
            if batch:
                out.write += bytes(batch)
                done = max(self.start_index, self._base + self._index)
                if done > self.acked:  # the resume preamble is not progress
                    self.acked = done
                    out.events.append(Progress(done))
        if (self.state in (StreamState.SENDING, StreamState.PAUSED) and self._index >= total
                and not planned):
            self.state = StreamState.FINAL_CHECKS
            planned.extend((Query.IO_ERROR, Query.STATUS))
        if self.state is StreamState.FINAL_CHECKS and not planned and flow.outstanding is None:
            self.state = StreamState.DRAINING
            self._draining_since = now
            self._ext = None
        if flow.outstanding is not None:
            return False
        query: Query | None = None
        if planned:
            head = planned[0]
            if head.immediate or flow.credit >= len(head.wire):
                query = planned.popleft()
            elif flow.may_ask_free_space(now):
                # A buffered query must not be lost to an overflow: confirm room first.
                query = Query.FREE_SPACE
        elif self.state is StreamState.DRAINING:
            ext = self._ext
            if ext is not None and ext.buffer_empty:
                self.state = StreamState.DONE
                out.events.append(Done(self.total_lines))
                return False
            if ext is not None and (ext.paused or ext.lever_up):
                self._draining_since = now  # the operator's pause is not a fault
            if now - self._draining_since > self.settings.drain_timeout_s:
                self._fail(Failed(
                    "device_timeout", f"plotter buffer not empty "
                    f"{self.settings.drain_timeout_s:g} s after the last line", self.total_lines))
                return True
            if now >= self._next_ext_poll:
                query = Query.EXTENDED_STATUS
                self._next_ext_poll = now + self.settings.poll_interval_s
        elif flow.wants_free_space(now):
            query = Query.FREE_SPACE
        if query is None:
            return False
        self._send_query(query, now, out)
        return True

    def _wake_at(self, now: float) -> float:
        flow = self.flow
        wait = 0.25
        if flow.outstanding is not None:
            deadline = flow.outstanding_since + self._query_timeout(flow.outstanding)
            wait = min(wait, max(0.001, deadline - now))
        elif self.planned:
            wait = min(wait, max(0.001, flow.free_space_hint(now)))
        elif self.state is StreamState.SENDING and self._index < len(self._data):
            wait = min(wait, max(0.001, flow.wait_hint(now, len(self._data[self._index]))))
        elif self.state is StreamState.DRAINING:
            wait = min(wait, max(0.001, self._next_ext_poll - now))
        return now + wait
