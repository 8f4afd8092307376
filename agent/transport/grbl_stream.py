"""One GRBL 1.1 connection as a sans-I/O state machine: bytes and ``now`` in, bytes and events out.

No port, no clock, no asyncio: the driver (:mod:`agent.drivers.grbl`) reads the port and calls
:meth:`GrblStream.feed`, calls :meth:`GrblStream.tick` at ``wake_at`` (or sooner), writes what
they return and maps their events (:mod:`agent.transport.grbl_events`). The rules it keeps
(gnea/grbl ``doc/markdown/interface.md``, ``protocol.c``; field reports in REFERENCE.md):

- Character counting: every line in flight is kept in one FIFO with its byte count
  (:class:`~agent.transport.grbl_flow.CharacterCounter`, RX size - 1); each ``ok``/``error:N``
  answers the oldest. System lines (``$I``, ``$X``) go through the same FIFO.
- A job ends when a ``G4P0`` fence after its last line is answered (GRBL answers a dwell only
  once all motion before it has finished) and a status report written after that answer shows
  the machine in neither alarm nor a mode that executes nothing (check mode, sleep).
- After an ``error:N`` (``on_error = "fail"``), an alarm, or an unexpected reset, feeding stops
  at once, the machine is held and soft-reset (:attr:`Control.ABORT`), then the job fails.
- Pause is a feed hold (``!``). Resume waits for ``Hold:0`` in a report asked for after the
  resume began (``~`` is ignored during ``Hold:1``, protocol.c), sends ``~``, and sends it again
  while reports asked for after it still say Hold: a ``~`` can be lost however it is timed.
- Cancel is ``!``, Hold:0, soft reset (no alarm, position kept). E-stop is ``!`` and soft reset
  in one write. The stream never unlocks an alarm (``$X``) by itself.
- ``?`` goes out every ``1 / poll_hz`` s, and at most every :data:`WAIT_POLL_S` while a
  procedure or a job's end waits for a report. Silence for ``response_timeout_s`` is a lost
  link; GRBL Idle with lines unanswered that long after its last reply is a lost reply.
- A job whose machine reports Hold for longer than ``hold_limit_s`` since the hold began or a
  person last acted (pause, resume) is told once (:class:`HoldChanged`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence

from agent.dialects.grbl import alarm_text, error_text
from agent.errors import DeviceAlarm, DeviceError, DeviceTimeout
from agent.profiles.grbl import GrblSettings
from agent.transport.grbl_events import (
    BannerSeen,
    CommandDone,
    CommandDropped,
    Control,
    ControlDone,
    ControlFailed,
    DeviceState,
    FreshStatus,
    HoldChanged,
    JobDone,
    JobFailed,
    JobPhase,
    JobStopped,
    LinkSilent,
    Notice,
    Output,
    Progress,
    StatusSeen,
    Step,
)
from agent.transport.grbl_flow import (
    AlarmReply,
    Banner,
    CharacterCounter,
    ErrorReply,
    Feedback,
    GrblReply,
    GrblReplyParser,
    Ok,
    Setting,
    StatusReport,
    Unknown,
)
from agent.transport.grbl_hold import HoldClock
from agent.transport.grbl_job import Command, Fence, InFlight, Job, lost_reply
from agent.transport.grbl_procedure import (
    Move,
    Procedure,
    fresh_need,
    give_up_error,
    on_report,
    overdue,
)

log = logging.getLogger(__name__)

FEED_HOLD = b"!"
CYCLE_START = b"~"
SOFT_RESET = b"\x18"
STATUS_QUERY = b"?"
FENCE_LINE = b"G4P0\n"
# While something waits for a report, ``?`` goes out at most this often.
WAIT_POLL_S = 0.1
# Reads may be held this long while this many bytes are in flight (about 8 ms of lines at
# 115,200 baud): bench/grbl_wire.py measured 4 ms as the best trade, CPU per line 66 -> 38 µs
# (17-byte lines) with the link still 0.999 busy; 6 ms starts to idle the wire.
HOLD_READS_S = 0.004
HOLD_READS_MIN_BYTES = 96
# States in which GRBL does not execute the lines it answers ``ok`` to (Check) or takes no
# lines at all (Sleep). Alarm is tracked on its own.
NOT_EXECUTING = frozenset({"Check", "Sleep"})
# ``[MSG:...]`` texts GRBL prints on entering those modes (report.c).
_MODE_MESSAGES = {"Enabled": "Check", "Sleeping": "Sleep"}
NOT_EXECUTING_CODE = "machine_not_executing"


class GrblStream:
    """The host side of one GRBL connection. Call only from one thread/task."""

    def __init__(self, settings: GrblSettings, *, now: float) -> None:
        self.settings = settings
        self.parser = GrblReplyParser()
        self.counter = CharacterCounter(settings.rx_buffer_bytes)
        self.in_flight: deque[InFlight] = deque()
        self.phase = JobPhase.IDLE
        self.procedure: Procedure | None = None
        self.job: Job | None = None
        self.acked = 0
        self.status: StatusReport | None = None
        self.reports = 0
        self.alarm: int | None = None
        self.idle_mode: str | None = None  # "Check" or "Sleep"
        self.device_state = "unknown"
        self._commands: deque[tuple[Command, bytes]] = deque()
        self._next_token = 0
        self._queries = 0  # ``?`` written since the last report arrived
        self._last_query = float("-inf")
        self._last_poll = now
        self._last_rx = now
        self._last_report_at = now
        self._last_answer = now  # the last ok/error
        self._last_busy = now  # the last report that was not Idle
        # ask_fresh_status: (report count to exceed, asked at)
        self._fresh: tuple[int, float] | None = None
        self.hold = HoldClock(settings.hold_limit_s, now=now)
        # Something may now wait for a report (so polls go faster): tell the next wake_at.
        self._dirty = True
        self._out = Output()

    # -- inputs ----------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> Output:
        """Bytes GRBL sent."""
        self._last_rx = now
        oks = self.parser.count_oks(data)
        if oks:
            self._on_oks(oks, now)
        else:
            for reply in self.parser.feed(data):
                self._handle(reply, now)
        self._pump()
        return self._take()

    def tick(self, now: float) -> Output:
        """Time passed: polls, timeouts, hold limit. Call at ``wake_at`` or sooner."""
        waiting = self._waiting_for_report()
        interval = WAIT_POLL_S if waiting else 1.0 / self.settings.poll_hz
        if now - self._last_query >= interval:
            self._query(now)
        if now - self._last_poll >= 1.0 / self.settings.poll_hz:
            self._last_poll = now
            silent = now - self._last_rx
            if silent > self.settings.response_timeout_s:
                err = DeviceTimeout(f"GRBL silent for {silent:.1f} s (status polls unanswered)")
                self._finish_job_failed(err)
                self._out.events.append(LinkSilent(err))
            else:
                self._check_unanswered(now)
        self._check_deadlines(now)
        if self.job is not None:
            self._emit(self.hold.check(now))
        self._pump()
        self._dirty = True  # a tick always says when the next one is due
        return self._take()

    def query(self, now: float) -> Output:
        """Write one ``?`` now (the handshake's "are you there")."""
        self._query(now)
        return self._take()

    def start_job(self, lines: Sequence[str], now: float, *, start_index: int = 0) -> Output:
        if self.phase is not JobPhase.IDLE:
            raise DeviceError("a job is already streaming", code="busy")
        encoded = [line.encode("ascii") + b"\n" for line in lines]
        self.job = Job(encoded, start_index, max(1, len(lines) // 200), start_index)
        self.acked = start_index
        self.phase = JobPhase.SENDING
        # The machine may have idled for hours: count the silence from the job's first line.
        self._last_answer = now
        self.hold.end()
        self._pump()
        return self._take()

    def abandon_job(self) -> None:
        """The driver gave up on the job (its task was cancelled): forget it, write nothing."""
        self.job = None
        self.phase = JobPhase.IDLE

    def command(self, line: str, now: float) -> tuple[int, Output]:
        """Queue a system line; its answer comes as :class:`CommandDone` with the token."""
        self._next_token += 1
        cmd = Command(self._next_token)
        data = line.encode("ascii") + b"\n"
        if len(data) > self.counter.capacity:
            raise DeviceError(f"{line!r} is longer than GRBL's receive buffer")
        self._commands.append((cmd, data))
        self._pump()
        return cmd.token, self._take()

    def ask_fresh_status(self, now: float) -> Output:
        """Ask for a report written after now; answered by :class:`FreshStatus`."""
        self._fresh = (self.reports + fresh_need(self._queries) - 1, now)
        self._dirty = True
        self._ask(now)
        return self._take()

    def set_rx_buffer(self, size: int) -> None:
        """``$I`` reported a smaller receive buffer than the profile: count against it."""
        self.counter.capacity = min(self.counter.capacity, size - 1)

    def clear_alarm(self) -> None:
        """``$X`` was answered ok."""
        self.alarm = None

    # -- controls --------------------------------------------------------------------------

    def pause(self, now: float) -> Output:
        """A person's feed hold: write ``!`` and feed nothing more."""
        self.hold.person_acted(now)
        if self.procedure is not None and self.procedure.kind is Control.RESUME:
            self._end_procedure(DeviceError("paused again before the resume took effect",
                                            code="superseded"))
        if self.phase is JobPhase.SENDING:
            self.phase = JobPhase.PAUSED
        self._out.urgent += FEED_HOLD
        return self._take()

    def resume(self, now: float) -> Output:
        self.hold.person_acted(now)
        self._begin(Control.RESUME, now)
        return self._take()

    def cancel(self, now: float) -> Output:
        self.hold.person_acted(now)
        job = self.job
        if job is not None and self.phase is not JobPhase.ABORTING:
            self._end_job(JobStopped("canceled"))
        self._begin(Control.CANCEL, now)
        return self._take()

    def reset(self, now: float) -> Output:
        """An operator's soft reset (after an e-stop); done when the banner comes."""
        self._begin(Control.RESET, now)
        return self._take()

    def estop(self, now: float) -> Output:
        """Hold and reset in one write: the reset stops the steppers at once."""
        self._out.urgent += FEED_HOLD + SOFT_RESET
        proc = self.procedure
        if proc is not None:
            self.procedure = None
            for kind in {proc.kind, *proc.joined}:
                if kind in (Control.CANCEL, Control.ABORT):
                    self._control_done(kind)
                else:
                    self._out.events.append(ControlFailed(kind, DeviceError(
                        f"e-stop during {kind.value}", code="estop")))
        if self.job is not None:
            failure = self.job.failure
            self._end_job(JobFailed(failure) if failure is not None else JobStopped("estop"))
        self._drop_in_flight()
        return self._take()

    @property
    def held_s(self) -> float | None:
        """Seconds the job has been held with nobody acting, once past the limit, else None."""
        return self.hold.held_s

    # -- replies ---------------------------------------------------------------------------

    def _handle(self, reply: GrblReply, now: float) -> None:
        if isinstance(reply, Ok):
            self._on_oks(1, now)
        elif isinstance(reply, ErrorReply):
            self._on_error(reply, now)
        elif isinstance(reply, StatusReport):
            self._on_status(reply, now)
        elif isinstance(reply, Feedback):
            text = f"{reply.kind}:{reply.text}" if reply.text else reply.kind
            head = self.in_flight[0] if self.in_flight else None
            if isinstance(head, Command):
                head.feedback.append(text)
            if reply.kind == "MSG":
                log.info("GRBL says: %s", reply.text)
                self._on_message(reply.text)
        elif isinstance(reply, Setting):
            head = self.in_flight[0] if self.in_flight else None
            if isinstance(head, Command):
                head.feedback.append(f"${reply.number}={reply.value}")
        elif isinstance(reply, AlarmReply):
            self._on_alarm(reply.code)
        elif isinstance(reply, Banner):
            self._on_banner(reply)
        elif isinstance(reply, Unknown):
            log.debug("ignoring unrecognised GRBL output %r", reply.text[:80])

    def _on_oks(self, count: int, now: float) -> None:
        """``count`` plain ``ok`` replies, each answering the oldest line in flight."""
        self._last_answer = now
        in_flight = self.in_flight
        answered = min(count, len(in_flight))
        self.counter.release(answered)
        for _ in range(answered):
            entry = in_flight.popleft()
            if type(entry) is int:
                self.acked = entry + 1
            elif isinstance(entry, Command):
                self._out.events.append(CommandDone(entry.token, tuple(entry.feedback)))
            else:
                self._fence_answered(now)
        for _ in range(count - answered):
            self._out.events.append(Notice("answer from GRBL with no line in flight",
                                           {"reply": str(Ok())}))
        job = self.job
        if job is not None and (not in_flight or self.acked - job.reported >= job.progress_step):
            self._report_progress()

    def _report_progress(self, *, force: bool = False) -> None:
        job = self.job
        if job is None or self.acked == job.reported:
            return
        if force or not self.in_flight or self.acked - job.reported >= job.progress_step:
            job.reported = self.acked
            self._out.events.append(Progress(self.acked))

    def _on_error(self, error: ErrorReply, now: float) -> None:
        self._last_answer = now
        if not self.in_flight:
            # Nothing in flight: a stray answer. Counting it would let us overrun the buffer.
            self._out.events.append(Notice("answer from GRBL with no line in flight",
                                           {"reply": str(error)}))
            return
        entry = self.in_flight.popleft()
        self.counter.pop()
        if isinstance(entry, Command):
            self._out.events.append(CommandDone(entry.token, tuple(entry.feedback), error.code))
            return
        if isinstance(entry, Fence):
            self._fence_answered(now)
            return
        self.acked = entry + 1
        self._report_progress(force=True)
        meaning = error_text(error.code)
        if self.settings.on_error == "fail":
            self._fail(DeviceError(f"GRBL answered error:{error.code} ({meaning})",
                                   line=entry + 1, device_code=f"error:{error.code}"), now)
            return
        detail = {"code": "device_error", "device_code": f"error:{error.code}",
                  "meaning": meaning, "line_index": entry + 1}
        if self.job is not None:
            self.job.warnings.append(detail)
        self._out.events.append(Notice(f"GRBL error:{error.code}", detail))

    def _on_message(self, text: str) -> None:
        """``[MSG:Enabled]`` (check mode on), ``[MSG:Sleeping]``, ``[MSG:Disabled]``."""
        if text in _MODE_MESSAGES:
            self._set_idle_mode(_MODE_MESSAGES[text])
        elif text == "Disabled" and self.idle_mode == "Check":
            self.idle_mode = None  # a reset (and its banner) follows

    def _set_idle_mode(self, mode: str | None) -> None:
        self.idle_mode = mode
        if mode is not None:
            self._fail(DeviceError(
                f"GRBL reported {mode} during the job: "
                + ("it only checks lines, nothing is cut" if mode == "Check"
                   else "it executes nothing until reset"),
                code=NOT_EXECUTING_CODE, device_code=f"state:{mode}"), self._last_rx)

    def _on_status(self, report: StatusReport, now: float) -> None:
        self.status = report
        self.reports += 1
        self._queries = 0
        self._last_report_at = now
        self._out.events.append(StatusSeen(report))
        if report.state != "Idle":
            self._last_busy = now
        if report.state == "Alarm":
            if self.alarm is None:
                self.alarm = 0
            # Normally ALARM:N came first; this catches one lost on the line.
            self._fail(DeviceAlarm("GRBL reports Alarm during the job",
                                   device_code="state:Alarm"), now)
        elif self.alarm is not None:
            self.alarm = None
        if report.state in NOT_EXECUTING:
            if self.idle_mode != report.state:
                self._set_idle_mode(report.state)
        elif report.state != "Alarm":
            # Alarm can follow Sleep (a reset from Sleep locks GRBL): the alarm rules then.
            self.idle_mode = None
        state = report.state if report.substate is None else f"{report.state}:{report.substate}"
        if state != self.device_state:
            self.device_state = state
            self._out.events.append(DeviceState(state, {"alarm": self.alarm}))
        if self.job is not None:
            self._emit(self.hold.on_report(report.state == "Hold", now))
        if self._fresh is not None and self.reports > self._fresh[0]:
            self._fresh = None
            self._out.events.append(FreshStatus(ok=True))
        if self.phase is JobPhase.FINAL_STATUS and self.job is not None \
                and self.reports > self.job.fence_mark:
            self._job_end_checked()
        if self.procedure is not None:
            self._procedure_report(self.procedure, report, now)

    def _on_alarm(self, code: int) -> None:
        self.alarm = code
        self._drop_in_flight()
        self._fail(DeviceAlarm(f"ALARM:{code} {alarm_text(code)}", device_code=f"ALARM:{code}"),
                   self._last_rx)
        self._out.events.append(DeviceState("Alarm", {"alarm": code, "meaning": alarm_text(code)}))

    def _on_banner(self, banner: Banner) -> None:
        self.idle_mode = None  # a reset leaves check mode and sleep
        self._drop_in_flight()
        self._out.events.append(BannerSeen(banner.version))
        proc = self.procedure
        if proc is not None and proc.kind is not Control.RESUME:
            # Ours (RESET_WAIT), or a reset that did the procedure's work for it.
            self._end_procedure(None)
            return
        self._fail(DeviceError("GRBL was reset during the job", code="device_reset"),
                   self._last_rx)

    def _drop_in_flight(self) -> None:
        """A reset empties GRBL's buffers: nothing in flight will be answered."""
        for entry in self.in_flight:
            if isinstance(entry, Command):
                self._out.events.append(CommandDropped(entry.token))
        self.in_flight.clear()
        self.counter.reset()

    # -- the job ---------------------------------------------------------------------------

    def _pump(self) -> None:
        """Send as many queued system lines and job lines as fit the receive buffer."""
        counter = self.counter
        batch = b""
        while self._commands and counter.fits(len(self._commands[0][1])):
            cmd, data = self._commands.popleft()
            counter.push(len(data))
            self.in_flight.append(cmd)
            batch += data
        job = self.job
        if job is not None and self.phase is JobPhase.SENDING and not self._commands:
            encoded, index, total = job.encoded, job.index, len(job.encoded)
            in_flight = self.in_flight
            # Usually one line fits (one ok freed its room): no buffer to build then.
            while index < total and counter.fits(size := len(data := encoded[index])):
                counter.push(size)
                in_flight.append(index)
                batch = batch + data if batch else data
                index += 1
            job.index = index
            if index >= total and not job.fence_sent and counter.fits(len(FENCE_LINE)):
                counter.push(len(FENCE_LINE))
                in_flight.append(job.fence)
                batch += FENCE_LINE
                job.fence_sent = True
        if batch:
            self._out.write += batch

    def _fence_answered(self, now: float) -> None:
        job = self.job
        if job is None or self.phase not in (JobPhase.SENDING, JobPhase.PAUSED):
            return
        # GRBL may answer the fence in check mode too: only a report written after it tells.
        self.phase = JobPhase.FINAL_STATUS
        job.fence_mark = self.reports
        job.fence_at = now
        self._dirty = True
        self._ask(now)

    def _job_end_checked(self) -> None:
        job = self.job
        assert job is not None
        if job.failure is None and self.alarm is not None:
            job.failure = DeviceAlarm("GRBL is in alarm at the end of the job",
                                      device_code="state:Alarm")
        if job.failure is not None:
            self._end_job(JobFailed(job.failure))
            return
        self._report_progress(force=True)
        self._end_job(JobDone(self.acked, tuple(job.warnings)))

    def _fail(self, err: DeviceError, now: float) -> None:
        """A job's failure: stop feeding; hold and reset the machine unless nothing moves."""
        job = self.job
        if job is None or job.failure is not None:
            return
        job.failure = err
        if self.phase is JobPhase.FINAL_STATUS:
            return  # told once the end-of-job report arrives (or does not)
        if err.code == NOT_EXECUTING_CODE:
            # Check mode and sleep move nothing: stop feeding, and leave the machine as the
            # person who put it there left it (a reset would end check mode).
            self._end_job(JobFailed(err))
            return
        self.phase = JobPhase.ABORTING
        self._begin(Control.ABORT, now)

    def _finish_job_failed(self, err: DeviceError) -> None:
        """Fail the job at once, without trying to stop the machine (the link is gone)."""
        if self.job is not None:
            self._end_job(JobFailed(self.job.failure or err))

    def _end_job(self, event: JobDone | JobFailed | JobStopped) -> None:
        self.job = None
        self.phase = JobPhase.IDLE
        self._emit(self.hold.end())
        self._out.events.append(event)

    # -- procedures (resume, cancel, abort, reset) -----------------------------------------

    def _begin(self, kind: Control, now: float) -> None:
        current = self.procedure
        if current is not None:
            if kind is Control.RESUME:
                self._out.events.append(ControlFailed(kind, DeviceError(
                    f"a {current.kind.value} is in progress", code="busy")))
                return
            if current.kind is not Control.RESUME:
                current.joined.add(kind)
                if kind is Control.RESET and current.step is not Step.RESET_WAIT:
                    self._step(current, Step.RESET_WAIT, now)
                return
            self._end_procedure(DeviceError(f"superseded by {kind.value}", code="superseded"))
        if kind is Control.RESET:
            proc = Procedure(kind, Step.RESET_WAIT, now, self.reports, 0)
            self.procedure = proc
            self._step(proc, Step.RESET_WAIT, now)
            return
        if kind is not Control.RESUME:
            self._out.urgent += FEED_HOLD
        self.procedure = Procedure(kind, Step.HOLD_WAIT, now, self.reports,
                                   fresh_need(self._queries))
        self._dirty = True
        self._ask(now)

    def _step(self, proc: Procedure, step: Step, now: float) -> None:
        proc.step, proc.since, proc.mark = step, now, self.reports
        self._dirty = True
        if step is Step.RESET_WAIT:
            self._out.urgent += SOFT_RESET
        elif step is Step.LEAVE_HOLD_WAIT:
            proc.held = 0
            self._out.urgent += CYCLE_START
            self._ask(now)
        else:
            proc.need = fresh_need(self._queries)
            self._ask(now)

    def _procedure_report(self, proc: Procedure, report: StatusReport, now: float) -> None:
        move = on_report(proc, report, self.reports)
        if move is Move.CYCLE_START:
            self._step(proc, Step.LEAVE_HOLD_WAIT, now)
        elif move is Move.RESET:
            self._step(proc, Step.RESET_WAIT, now)
        elif move is Move.ASK:
            self._ask(now)
        elif move is Move.RETRY:
            log.info("GRBL still in feed hold after a cycle start: sending it again")
            self._step(proc, Step.HOLD_WAIT, now)
        elif move is Move.DONE:
            self._end_procedure(None)
        elif move is Move.GIVE_UP:
            self._end_procedure(give_up_error())

    def _check_deadlines(self, now: float) -> None:
        proc = self.procedure
        timeout = self.settings.response_timeout_s
        if proc is not None:
            error = overdue(proc, now, self.settings, self._last_report_at)
            if error is not None:
                self._end_procedure(error)
        if self._fresh is not None and now - self._fresh[1] > timeout:
            self._fresh = None
            self._out.events.append(FreshStatus(ok=False))
        job = self.job
        if self.phase is JobPhase.FINAL_STATUS and job is not None and now - job.fence_at > timeout:
            if job.failure is None:
                job.failure = DeviceTimeout("GRBL sent no status report after the job's last line")
            self._end_job(JobFailed(job.failure))

    def _end_procedure(self, error: DeviceError | None) -> None:
        proc = self.procedure
        if proc is None:
            return
        self.procedure = None
        if proc.kind is Control.RESUME and error is None and self.phase is JobPhase.PAUSED:
            self.phase = JobPhase.SENDING
        for kind in (proc.kind, *sorted(proc.joined - {proc.kind}, key=lambda c: c.value)):
            if kind is Control.ABORT:
                if error is not None:
                    log.warning("could not stop GRBL cleanly after a failure: %s", error)
                job = self.job
                if job is not None and job.failure is not None:
                    self._end_job(JobFailed(job.failure))
            elif error is None:
                self._control_done(kind)
            else:
                self._out.events.append(ControlFailed(kind, error))

    def _control_done(self, kind: Control) -> None:
        if kind is not Control.ABORT:
            self._out.events.append(ControlDone(kind))

    # -- polling, silence, hold ------------------------------------------------------------

    def _query(self, now: float) -> None:
        self._out.urgent += STATUS_QUERY
        self._queries += 1
        self._last_query = now

    def _ask(self, now: float) -> None:
        """A ``?`` for something waiting: now, unless one went out less than WAIT_POLL_S ago
        (then :meth:`tick` sends it when that much has passed)."""
        if now - self._last_query >= WAIT_POLL_S:
            self._query(now)

    def read_hold_s(self) -> float:
        """How long the host may leave the port unread now: while a job streams with at least
        :data:`HOLD_READS_MIN_BYTES` in flight, the board has milliseconds of lines to answer
        and nothing it says before then needs an answer sooner, so one read can take several
        ``ok`` at once (fewer wake-ups per line). Writes (``!``, ``~``, e-stop) are never held;
        no hold while a control, a command or a report is awaited."""
        if (self.phase is not JobPhase.SENDING or self.procedure is not None
                or self._commands or self._waiting_for_report()
                or self.counter.in_flight_bytes < HOLD_READS_MIN_BYTES):
            return 0.0
        return HOLD_READS_S

    def _waiting_for_report(self) -> bool:
        return (self.procedure is not None and self.procedure.step is not Step.RESET_WAIT) \
            or self._fresh is not None or self.phase is JobPhase.FINAL_STATUS

    def _check_unanswered(self, now: float) -> None:
        """A lost reply (:func:`~agent.transport.grbl_job.lost_reply`) fails the job."""
        job = self.job
        status = self.status
        if (job is None or not self.in_flight or self.phase is not JobPhase.SENDING
                or status is None or status.state != "Idle"):
            return
        quiet = now - max(self._last_answer, self._last_busy)
        error = lost_reply(job, self.in_flight, quiet, self.settings.response_timeout_s)
        if error is not None:
            self._fail(error, now)

    def _emit(self, event: HoldChanged | None) -> None:
        if event is not None:
            self._out.events.append(event)

    def _take(self) -> Output:
        out = self._out
        self._out = Output()
        if not (self._dirty or out.urgent or out.events):
            return out  # the streaming hot path: lines refilled, no timing changed
        self._dirty = False
        regular = 1.0 / self.settings.poll_hz
        poll = WAIT_POLL_S if self._waiting_for_report() else regular
        out.wake_at = min(self._last_query + poll, self._last_poll + regular)
        return out
