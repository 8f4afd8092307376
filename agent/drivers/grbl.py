"""GRBL 1.1 host logic: handshake, character-counting stream, realtime commands, status polling.

Design notes (from grbl's interface documentation and the field reports in REFERENCE.md):
- Every line in flight is kept in one FIFO with its byte count; each ``ok``/``error:N`` answers
  the oldest. System commands (``$I``) go through the same FIFO so the count stays exact.
- A job ends when a ``G4 P0`` fence after the last line is answered: GRBL answers a dwell only
  once all motion before it has finished.
- After an ``error:N`` the lines already buffered would still execute, so feeding stops at once
  and the machine is held and soft-reset before the job is failed.
- Pause is a feed hold (``!``); resume (``~``) is sent only once the hold is complete
  (``Hold:0``): GRBL ignores ``~`` while still decelerating.
- GRBL answers ``ok`` without moving in check mode (``$C``) and parses nothing while asleep
  (``$SLP``): a job neither starts nor goes on while a report (or ``[MSG:Enabled]`` /
  ``[MSG:Sleeping]``) says so, and it succeeds only if a status report taken after its fence
  shows the machine in neither mode (nor in alarm). The agent never leaves those modes by
  itself: a person does (``reset``, then ``unlock`` after sleep).
- Cancel is feed hold, wait for ``Hold:0``, then soft reset (no alarm, position kept).
  E-stop is feed hold and soft reset at once. An alarm is never unlocked by the agent itself;
  only an explicit ``unlock`` command from a person sends ``$X``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.aio import run_together, wait_event, wait_within
from agent.dialects.grbl import alarm_text, error_text
from agent.drivers.base import (
    DeviceInfo,
    DriverListener,
    MachineDriver,
    ProgressCallback,
    StreamResult,
    Telemetry,
)
from agent.errors import DeviceAlarm, DeviceError, DeviceTimeout, JobStopped
from agent.profiles.grbl import GrblProfile
from agent.transport.grbl_flow import (
    AlarmReply,
    Banner,
    CharacterCounter,
    ErrorReply,
    Feedback,
    GrblReply,
    GrblReplyParser,
    Ok,
    StatusReport,
    Unknown,
)
from agent.transport.link import ByteLink

log = logging.getLogger(__name__)

FEED_HOLD = b"!"
CYCLE_START = b"~"
SOFT_RESET = b"\x18"
STATUS_QUERY = b"?"
# A resume sends ``~`` at most this often, and judges one lost after this many Hold reports.
_RESUME_ATTEMPTS = 5
_HELD_REPORTS = 3
FENCE = "G4P0"
_FENCE_LINE = FENCE.encode() + b"\n"
# States in which GRBL does not execute the lines it answers ``ok`` to (Check) or does not
# take lines at all (Sleep). Alarm is tracked on its own (``_alarm``).
NOT_EXECUTING = frozenset({"Check", "Sleep"})
# ``[MSG:...]`` texts GRBL prints on entering (and leaving) those modes (report.c).
_MODE_MESSAGES = {"Enabled": "Check", "Sleeping": "Sleep"}
NOT_READY = "machine_not_ready"
NOT_EXECUTING_CODE = "machine_not_executing"


class _Kind(enum.Enum):
    FENCE = "fence"
    COMMAND = "command"


@dataclass
class _InFlight:
    """A fence or system command in flight (program lines in flight are bare indexes)."""

    kind: _Kind
    done: asyncio.Future[ErrorReply | None] | None = None
    feedback: list[str] = field(default_factory=list)


@dataclass
class _Job:
    encoded: list[bytes]
    index: int
    fence: _InFlight
    progress_step: int
    fence_sent: bool = False
    reported: int = 0


_DWELL = re.compile(rb"G0*4(?![0-9.]).*?P([0-9]*\.?[0-9]+)")


def _dwell_seconds(line: bytes) -> float:
    """Seconds a normalised line dwells (GRBL's ``G4 P`` is in seconds), else 0."""
    m = _DWELL.search(line)
    return float(m.group(1)) if m else 0.0


class _StopReason(enum.Enum):
    CANCEL = "canceled"
    ESTOP = "estop"


class GrblDriver(MachineDriver):
    family = "grbl"

    def __init__(self, link: ByteLink, listener: DriverListener, profile: GrblProfile) -> None:
        super().__init__(link, listener)
        self.profile = profile
        self.settings = profile.grbl
        self._parser = GrblReplyParser()
        self._counter = CharacterCounter(self.settings.rx_buffer_bytes)
        # Program lines in flight are bare ints (their index): the common case stays cheap.
        self._in_flight: deque[int | _InFlight] = deque()
        self._wake = asyncio.Event()
        self._status: StatusReport | None = None
        self._status_event = asyncio.Event()
        self._banner_event = asyncio.Event()
        self._last_rx = time.monotonic()
        # For spotting a lost reply: the last ok/error, and the last status that was not Idle.
        self._last_answer = time.monotonic()
        self._last_busy = time.monotonic()
        self._last_telemetry = 0.0
        self._device_state = "unknown"
        self._alarm: int | None = None
        # "Check" or "Sleep" while the machine is in a mode that does not execute lines.
        self._idle_mode: str | None = None
        self._estop_latched = False
        self._streaming = False
        self._paused = False
        self._stop: _StopReason | None = None
        self._failure: DeviceError | None = None
        self._acked = 0
        self._expect_reset = False
        self._warnings: list[dict[str, Any]] = []
        self._command_lock = asyncio.Lock()
        self._job: _Job | None = None
        self._status_count = 0
        self.info = DeviceInfo(firmware="grbl")

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> DeviceInfo:
        """Wait for the banner (a fresh connection resets an Arduino) or a status report."""
        deadline = time.monotonic() + self.profile.hello_timeout_s
        version = ""
        asked = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceTimeout(
                    f"no GRBL banner or status report on {self.link.name} within "
                    f"{self.profile.hello_timeout_s:g} s"
                )
            data = await self._read_with_timeout(min(remaining, 0.5))
            hello = False
            for reply in self._parser.feed(data or b""):
                if isinstance(reply, Banner):
                    version, hello = reply.version, True
                elif isinstance(reply, StatusReport):
                    self._on_status(reply)
                    hello = True
                elif isinstance(reply, AlarmReply):
                    self._alarm = reply.code
            if hello:
                break
            if not asked:
                # No banner yet: the board may already be running (no reset on open). Ask.
                self.link.write(STATUS_QUERY, urgent=True)
                asked = True
        self._last_rx = time.monotonic()
        return DeviceInfo(firmware="grbl", version=version)

    async def identify(self) -> DeviceInfo:
        """``$I`` build info (needs run() active); the reported buffer size tightens ours."""
        feedback = await self.command("$I")
        version, options = self.info.version, ""
        for line in feedback:
            if line.startswith("VER:"):
                version = line[4:].split(":")[0]
            elif line.startswith("OPT:"):
                options = line[4:]
        caps: dict[str, Any] = {"rx_buffer_bytes": self.settings.rx_buffer_bytes}
        parts = options.split(",")
        if len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
            caps["planner_blocks"] = int(parts[1])
            reported = int(parts[2])
            if reported < self.settings.rx_buffer_bytes:
                self._counter = CharacterCounter(reported)
            caps["rx_buffer_bytes"] = min(reported, self.settings.rx_buffer_bytes)
            caps["options"] = parts[0]
        self.info = DeviceInfo(firmware="grbl", version=version, capabilities=caps)
        return self.info

    async def _read_with_timeout(self, timeout: float) -> bytes | None:
        try:
            return await wait_within(self.link.read(), timeout)
        except TimeoutError:
            return None

    async def run(self) -> None:
        await run_together(self._read_loop(), self._poll_status())

    async def _read_loop(self) -> None:
        # Push mode: replies are handled in the reader callback itself, and the freed buffer
        # refilled there, without a task switch per reply.
        self.link.set_receiver(self._on_bytes)
        try:
            await self.link.wait_lost()
        except DeviceError as exc:
            self._fail(exc)
            raise
        finally:
            self.link.set_receiver(None)
            self._wake.set()

    def _on_bytes(self, data: bytes) -> None:
        now = self._last_rx = time.monotonic()
        try:
            oks = self._parser.count_oks(data)
            if oks:
                self._on_oks(oks, now)
            else:
                for reply in self._parser.feed(data):
                    self._handle(reply)
            self._pump()
        except DeviceError as exc:  # a write failed: the link is gone
            self._fail(exc)
        except Exception:  # a bug must not kill the event loop's reader callback
            log.exception("handling GRBL output failed")

    async def _poll_status(self) -> None:
        interval = 1.0 / self.settings.poll_hz
        timeout = self.settings.response_timeout_s
        while True:
            await asyncio.sleep(interval)
            self.link.write(STATUS_QUERY, urgent=True)
            silent = time.monotonic() - self._last_rx
            if silent > timeout:
                err = DeviceTimeout(f"GRBL silent for {silent:.1f} s (status polls unanswered)")
                self._fail(err)
                raise err
            self._check_unanswered()

    def _check_unanswered(self) -> None:
        """Fail the job if GRBL sits Idle while lines stay unanswered long after its last reply.

        A glitch on the wire (half a line of noise with no line end) can swallow an ``ok``; no
        answer will ever come for the line the host still counts, so without this the job
        would wait forever. The lost reply may have been an error, so the job cannot be called
        done: it fails with a clear code. A dwell (``G4 P<s>``) in flight legitimately keeps
        GRBL Idle without answering, so its seconds are allowed on top of the timeout.
        """
        job = self._job
        status = self._status
        if (job is None or not self._in_flight or self._paused or self._stop is not None
                or self._failure is not None or status is None or status.state != "Idle"):
            return
        quiet = time.monotonic() - max(self._last_answer, self._last_busy)
        dwell = sum(_dwell_seconds(job.encoded[e]) for e in self._in_flight
                    if isinstance(e, int) and e < len(job.encoded))
        if quiet > self.settings.response_timeout_s + dwell:
            self._fail(DeviceTimeout(
                f"GRBL is idle but {len(self._in_flight)} line(s) sent to it were never "
                f"answered in {quiet:.1f} s: a reply was lost on the serial line"))

    # -- replies ---------------------------------------------------------------------------

    def _handle(self, reply: GrblReply) -> None:
        if isinstance(reply, Ok):
            self._on_oks(1, time.monotonic())
            return
        if isinstance(reply, ErrorReply):
            self._on_error(reply)
            self._wake.set()
            return
        if isinstance(reply, StatusReport):
            self._on_status(reply)
        elif isinstance(reply, Feedback):
            text = f"{reply.kind}:{reply.text}" if reply.text else reply.kind
            head = self._in_flight[0] if self._in_flight else None
            if isinstance(head, _InFlight) and head.kind is _Kind.COMMAND:
                head.feedback.append(text)
            elif reply.kind == "MSG":
                log.info("GRBL says: %s", reply.text)
            if reply.kind == "MSG":
                self._on_message(reply.text)
        elif isinstance(reply, AlarmReply):
            self._on_alarm(reply.code)
        elif isinstance(reply, Banner):
            self._on_banner(reply)
        elif isinstance(reply, Unknown):
            log.debug("ignoring unrecognised GRBL output %r", reply.text[:80])
        self._wake.set()

    def _on_oks(self, count: int, now: float) -> None:
        """``count`` plain ``ok`` replies, each answering the oldest line in flight.

        The reader refills the buffer itself (_pump); the stream task is woken only for what it
        must act on: progress steps and the fence.
        """
        self._last_answer = now
        in_flight = self._in_flight
        answered = min(count, len(in_flight))
        self._counter.release(answered)
        for _ in range(answered):
            entry = in_flight.popleft()
            if type(entry) is int:
                self._acked = entry + 1
            elif (isinstance(entry, _InFlight) and entry.done is not None
                  and not entry.done.done()):
                entry.done.set_result(None)
        for _ in range(count - answered):
            self.listener.on_warning("answer from GRBL with no line in flight",
                                     {"reply": str(Ok())})
        job = self._job
        if job is None or not in_flight or self._acked - job.reported >= job.progress_step:
            self._wake.set()

    def _on_error(self, error: ErrorReply) -> None:
        self._last_answer = time.monotonic()
        if not self._in_flight:
            # Nothing in flight: a stray answer. Counting it would let us overrun the buffer.
            self.listener.on_warning("answer from GRBL with no line in flight",
                                     {"reply": str(error)})
            return
        entry = self._in_flight.popleft()
        self._counter.pop()
        if isinstance(entry, _InFlight):
            if entry.done is not None and not entry.done.done():
                entry.done.set_result(error)
            return
        self._acked = entry + 1
        detail = {
            "code": "device_error",
            "device_code": f"error:{error.code}",
            "meaning": error_text(error.code),
            "line_index": entry + 1,
        }
        if self.settings.on_error == "fail":
            self._fail(
                DeviceError(
                    f"GRBL answered error:{error.code} ({error_text(error.code)})",
                    line=entry + 1,
                    device_code=f"error:{error.code}",
                )
            )
        else:
            self._warnings.append(detail)
            self.listener.on_warning(f"GRBL error:{error.code}", detail)

    def _on_message(self, text: str) -> None:
        """``[MSG:Enabled]`` (check mode on), ``[MSG:Sleeping]``, ``[MSG:Disabled]``."""
        if text in _MODE_MESSAGES:
            self._set_idle_mode(_MODE_MESSAGES[text])
        elif text == "Disabled" and self._idle_mode == "Check":
            self._idle_mode = None  # a reset (and its banner) follows

    def _set_idle_mode(self, mode: str | None) -> None:
        self._idle_mode = mode
        if mode is not None and self._streaming and self._stop is None:
            self._fail(DeviceError(
                f"GRBL reported {mode} during the job: "
                + ("it only checks lines, nothing is cut" if mode == "Check"
                   else "it executes nothing until reset"),
                code=NOT_EXECUTING_CODE, device_code=f"state:{mode}"))

    def _on_status(self, report: StatusReport) -> None:
        self._status = report
        self._status_count += 1
        self._status_event.set()
        if report.state != "Idle":
            self._last_busy = time.monotonic()
        state = report.state if report.substate is None else f"{report.state}:{report.substate}"
        if report.state == "Alarm":
            if self._alarm is None:
                self._alarm = 0
            if self._streaming and self._stop is None:
                # Normally ALARM:N came first; this catches one lost on the line.
                self._fail(DeviceAlarm("GRBL reports Alarm during the job",
                                       device_code="state:Alarm"))
        elif self._alarm is not None and report.state != "Alarm":
            self._alarm = None
        if report.state in NOT_EXECUTING:
            if self._idle_mode != report.state:
                self._set_idle_mode(report.state)
        elif report.state != "Alarm":
            # Alarm can follow Sleep (a reset from Sleep locks GRBL): the alarm rules then.
            self._idle_mode = None
        if state != self._device_state:
            self._device_state = state
            self.listener.on_device_state(state, {"alarm": self._alarm})
        now = time.monotonic()
        if now - self._last_telemetry >= 1.0 / self.profile.telemetry_hz:
            self._last_telemetry = now
            self.listener.on_telemetry(self._telemetry(report))

    def _telemetry(self, report: StatusReport) -> Telemetry:
        position = report.wpos
        if position is None and report.mpos is not None:
            wco = report.wco or (self._status.wco if self._status and self._status.wco else None)
            position = (
                tuple(m - w for m, w in zip(report.mpos, wco, strict=False)) if wco else report.mpos
            )
        extra: dict[str, Any] = {}
        if report.planner_free is not None:
            extra["buffer"] = {"planner_free": report.planner_free, "rx_free": report.rx_free}
        if report.spindle is not None:
            extra["spindle"] = report.spindle
        if report.overrides is not None:
            extra["overrides"] = list(report.overrides)
        if report.substate is not None:
            extra["substate"] = report.substate
        return Telemetry(state=report.state, position_mm=position, feed_mm_min=report.feed,
                         extra=extra)

    def _on_alarm(self, code: int) -> None:
        self._alarm = code
        self._drop_in_flight()
        if self._streaming and self._stop is None:
            self._fail(DeviceAlarm(f"ALARM:{code} {alarm_text(code)}", device_code=f"ALARM:{code}"))
        self.listener.on_device_state("Alarm", {"alarm": code, "meaning": alarm_text(code)})

    def _on_banner(self, banner: Banner) -> None:
        self._idle_mode = None  # a reset leaves check mode and sleep
        self._drop_in_flight()
        self._banner_event.set()
        if self._streaming and self._stop is None and not self._expect_reset:
            self._fail(DeviceError("GRBL was reset during the job", code="device_reset"))

    def _drop_in_flight(self) -> None:
        """A reset empties GRBL's buffers: nothing in flight will be answered."""
        for entry in self._in_flight:
            if isinstance(entry, _InFlight) and entry.done is not None and not entry.done.done():
                entry.done.cancel()
        self._in_flight.clear()
        self._counter.reset()

    def _fail(self, err: DeviceError) -> None:
        if self._failure is None and self._streaming:
            self._failure = err
        self._wake.set()

    # -- sending ---------------------------------------------------------------------------

    def _send(self, line: str, entry: int | _InFlight) -> None:
        data = line.encode("ascii") + b"\n"
        self._counter.push(len(data))
        self._in_flight.append(entry)
        self.link.write(data)

    async def command(self, line: str, timeout: float | None = None) -> list[str]:
        """Send one system line and wait for its ``ok``; returns the feedback lines."""
        async with self._command_lock:
            size = len(line) + 1
            while not self._counter.fits(size):
                self._wake.clear()
                await self._wake.wait()
            loop = asyncio.get_running_loop()
            entry = _InFlight(_Kind.COMMAND, loop.create_future())
            self._send(line, entry)
            assert entry.done is not None
            try:
                error = await wait_within(
                    entry.done, timeout or self.settings.response_timeout_s
                )
            except TimeoutError:
                raise DeviceTimeout(f"GRBL did not answer {line!r}") from None
            except asyncio.CancelledError:
                # A reset cancels the entry; a cancel of this task cancels it too, and that one
                # must stay a cancel.
                task = asyncio.current_task()
                if entry.done.cancelled() and task is not None and not task.cancelling():
                    raise DeviceError(f"GRBL was reset before answering {line!r}") from None
                raise
            if error is not None:
                raise DeviceError(
                    f"GRBL answered {line!r} with error:{error.code} ({error_text(error.code)})",
                    device_code=f"error:{error.code}",
                )
            return entry.feedback

    async def stream(
        self, lines: Sequence[str], on_progress: ProgressCallback, *, start_index: int = 0
    ) -> StreamResult:
        ready, reason = self.ready_for_job
        if not ready:
            raise DeviceError(f"machine not ready: {reason}", code=reason)
        self._streaming = True
        self._paused = False
        self._stop = None
        self._failure = None
        self._acked = start_index
        # The machine may have idled for hours: count the silence from the job's first line.
        self._last_answer = time.monotonic()
        self._warnings = []
        fence = _InFlight(_Kind.FENCE, asyncio.get_running_loop().create_future())
        encoded = [line.encode("ascii") + b"\n" for line in lines]
        job = self._job = _Job(encoded, start_index, fence, max(1, len(lines) // 200),
                               reported=start_index)
        try:
            while True:
                if self._stop is not None:
                    raise JobStopped(f"job {self._stop.value}", code=self._stop.value)
                if self._failure is not None:
                    if self._failure.code != NOT_EXECUTING_CODE:
                        await self._abort_motion()
                    # Check mode and sleep move nothing: stop feeding, and leave the machine
                    # as the person who put it there left it (a reset would end check mode).
                    raise self._failure
                self._pump()
                if self._acked != job.reported:
                    job.reported = self._acked
                    on_progress(job.reported)
                if fence.done is not None and fence.done.done() and not fence.done.cancelled():
                    break
                self._wake.clear()
                await self._wake.wait()
            # The fence is answered in check mode too: only a report from after it tells.
            await self._fresh_status()
            if self._failure is None and self._alarm is not None:
                self._fail(DeviceAlarm("GRBL is in alarm at the end of the job",
                                       device_code="state:Alarm"))
            if self._stop is not None:
                raise JobStopped(f"job {self._stop.value}", code=self._stop.value)
            if self._failure is not None:
                raise self._failure
            if self._acked != job.reported:
                on_progress(self._acked)
            return StreamResult(lines_done=self._acked, warnings=tuple(self._warnings))
        finally:
            self._job = None
            self._streaming = False
            self._paused = False

    def _pump(self) -> None:
        """Send as many of the job's lines as fit. Runs in the reader right after each reply,
        so a freed slot is refilled without waking the stream task (one write per reply)."""
        job = self._job
        if job is None or self._paused or self._stop is not None or self._failure is not None:
            return
        encoded, index, total = job.encoded, job.index, len(job.encoded)
        counter = self._counter
        in_flight = self._in_flight
        batch = b""
        # Usually one line fits (one ok freed its room): no buffer to build then.
        while index < total and counter.fits(size := len(data := encoded[index])):
            counter.push(size)
            in_flight.append(index)
            batch = batch + data if batch else data
            index += 1
        job.index = index
        if index >= total and not job.fence_sent and counter.fits(len(_FENCE_LINE)):
            counter.push(len(_FENCE_LINE))
            in_flight.append(job.fence)
            batch += _FENCE_LINE
            job.fence_sent = True
        if batch:
            self.link.write(batch)

    async def _fresh_status(self) -> bool:
        """Wait for a status report received after this call (asking for one as needed).

        Replies come in the order GRBL wrote them, so such a report shows the machine after
        everything answered before it. False if none came in time.
        """
        first = self._status_count
        deadline = time.monotonic() + self.settings.response_timeout_s
        while self._status_count == first:
            if self._streaming and (self._failure is not None or self._stop is not None):
                return False
            if time.monotonic() > deadline:
                self._fail(DeviceTimeout("GRBL sent no status report after the job's last line"))
                return False
            self._status_event.clear()
            self.link.write(STATUS_QUERY, urgent=True)
            await wait_event(self._status_event, 0.25)
        return True

    async def check_ready(self) -> tuple[bool, str]:
        """``ready_for_job`` on a status report taken now, not the last poll's."""
        if self._estop_latched:
            return False, "estop"
        if not await self._fresh_status():
            return False, "device_timeout"
        return self.ready_for_job

    async def _abort_motion(self) -> None:
        """Hold, then soft-reset: discard what GRBL still buffers without losing position."""
        self._expect_reset = True
        try:
            self.link.write(FEED_HOLD, urgent=True)
            await self._wait_hold_complete()
            await self._soft_reset()
        except DeviceError as exc:
            log.warning("could not stop GRBL cleanly after a failure: %s", exc)
        finally:
            self._expect_reset = False

    async def _wait_hold_complete(self) -> None:
        deadline = time.monotonic() + self.settings.hold_timeout_s
        # A report asked for before the feed hold may still be on its way and say Idle while
        # the machine has just started moving: trust Idle only from the second report on.
        first = self._status_count
        # Hold:0 likewise: one left over from an earlier pause says nothing about this one.
        while True:
            self._status_event.clear()
            self.link.write(STATUS_QUERY, urgent=True)
            await wait_event(self._status_event, 0.25)
            st = self._status
            fresh = self._status_count >= first + 2
            if st is not None and fresh and (st.hold_complete or st.state in ("Idle", "Alarm")):
                return
            if time.monotonic() > deadline:
                raise DeviceTimeout("feed hold did not complete in time")

    async def _soft_reset(self) -> None:
        self._banner_event.clear()
        self.link.write(SOFT_RESET, urgent=True)
        try:
            await wait_within(self._banner_event.wait(), self.settings.response_timeout_s)
        except TimeoutError:
            raise DeviceTimeout("GRBL did not come back after a soft reset") from None
        self._drop_in_flight()

    # -- realtime commands -----------------------------------------------------------------

    @property
    def lines_acknowledged(self) -> int:
        return self._acked

    @property
    def device_state(self) -> str:
        return self._device_state

    @property
    def ready_for_job(self) -> tuple[bool, str]:
        if self._estop_latched:
            return False, "estop"
        if self._alarm is not None:
            return False, "device_alarm"
        if self._idle_mode is not None:
            return False, NOT_READY
        if self._status is not None and self._status.state == "Door":
            return False, "door_open"
        return True, ""

    async def pause(self) -> None:
        self._paused = True
        self.link.write(FEED_HOLD, urgent=True)
        self._wake.set()

    async def resume(self) -> None:
        """``~`` once the hold is complete, again if the machine stays held.

        GRBL ignores ``~`` during ``Hold:1`` (protocol.c resumes only a completed hold), and
        the report that shows ``Hold:0`` may be answered in the same pass that later takes a
        ``!`` sent just before: a ``~`` can be lost however carefully it is timed. So the
        agent looks after sending it and sends it again while reports still say Hold.
        """
        for _ in range(_RESUME_ATTEMPTS):
            await self._wait_hold_complete()
            self.link.write(CYCLE_START, urgent=True)
            if await self._left_hold():
                self._paused = False
                self._wake.set()
                return
            log.info("GRBL still in feed hold after a cycle start: sending it again")
        raise DeviceError(f"GRBL stayed in feed hold after {_RESUME_ATTEMPTS} cycle starts (~)")

    async def _left_hold(self) -> bool:
        """After a ``~``: True once a report shows the machine out of Hold; False when
        :data:`_HELD_REPORTS` reports in a row, each asked for after the ``~``, still say Hold
        (the first may come from the pass before GRBL took the ``~``; later ones cannot)."""
        held = 0
        deadline = time.monotonic() + self.settings.response_timeout_s
        while held < _HELD_REPORTS:
            seen = self._status_count
            self._status_event.clear()
            self.link.write(STATUS_QUERY, urgent=True)
            await wait_event(self._status_event, 0.25)
            st = self._status
            if self._status_count == seen or st is None:
                if time.monotonic() > deadline:
                    raise DeviceTimeout("GRBL sent no status report after a cycle start")
                continue
            if st.state != "Hold":
                return True
            held += 1
        return False

    async def cancel(self) -> None:
        self._stop = _StopReason.CANCEL
        self._paused = True
        self._wake.set()
        self._expect_reset = True
        try:
            self.link.write(FEED_HOLD, urgent=True)
            await self._wait_hold_complete()
            await self._soft_reset()
        finally:
            self._expect_reset = False

    async def estop(self) -> None:
        # Hold and reset in one write: the reset stops the steppers at once.
        self.link.write(FEED_HOLD + SOFT_RESET, urgent=True)
        self._estop_latched = True
        self._stop = _StopReason.ESTOP
        self._paused = True
        self._drop_in_flight()
        self._wake.set()

    async def reset(self) -> None:
        self._expect_reset = True
        try:
            await self._soft_reset()
        finally:
            self._expect_reset = False
        self._estop_latched = False

    async def unlock(self) -> None:
        """``$X``: only ever on an explicit request from a person at the station."""
        await self.command("$X")
        self._alarm = None
