"""Runs accepted jobs one at a time, in arrival order, on the station's machine.

On a full or failing disk (docs/deployment.md): no job starts (its start could not be recorded);
a job already streaming runs to its end, since stopping a cut half way wastes the fabric and the
machine does not need the disk; its progress is not written, and its final state (succeeded,
failed, canceled) is kept in memory as a :class:`PendingFinal` and recorded, with its event,
when the disk takes writes again. A job is never reported in a state it did not reach. The
pending ends are also written to a small file reserved at start-up (:class:`ReservedFile`), so a
restart before the disk recovers records them too instead of reporting the jobs interrupted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.aio import wait_event
from agent.device import DeviceManager
from agent.dialects.program import Program
from agent.drivers.base import Readiness
from agent.errors import DeviceError, JobStopped
from agent.estimate import Estimate
from agent.jobs.states import TERMINAL, JobState, Trigger
from agent.jobs.store import JobRecord, JobStore
from agent.reporter import Reporter
from agent.schemas.event import EventType, request_echo
from agent.schemas.job import JobRequest
from agent.storage import Database, ReservedFile, StorageError

log = logging.getLogger(__name__)

# A progress event when the percentage moved and at least PROGRESS_MIN_STEP_S passed, and at
# least every PROGRESS_MAX_SILENCE_S while lines go out (a slow job still shows life). Each event
# is a database write and a message: a 40-line label must not cost 40 of them, and at 600
# lines/s four a second showed in bench/grbl_wire.py (25-byte lines: 78 -> 50 µs of CPU per
# line with one a second; noisy, but the storage transactions were the top samples).
PROGRESS_MIN_STEP_S = 1.0
PROGRESS_MAX_SILENCE_S = 2.0
# Set (1) in the database's meta table while the start hold is armed, so that it survives a
# restart of the agent.
START_HOLD_KEY = "start_hold"

# Why a driver may refuse a job that a person at the machine must resolve (a warning says so).
_MACHINE_NOT_READY = {
    Readiness.DEVICE_ALARM: "the machine is in alarm: a person checks it and sends `unlock`",
    Readiness.MACHINE_NOT_READY: "the machine is in a mode in which it does not execute lines",
}
_MODE_ADVICE = {
    "Check": "GRBL is in check mode ($C): it would only parse the job, nothing would be cut. "
             "Send `reset` (a soft reset leaves check mode) or `$C` at the machine",
    "Sleep": "GRBL is asleep ($SLP) and executes nothing: send `reset`, then `unlock`",
}


@dataclass
class RunningJob:
    record: JobRecord
    program: Program
    request: JobRequest
    state: JobState
    started_at: float = 0.0
    cancel_request_id: str | None = None
    canceled: bool = False
    estimate: Estimate | None = None


def _timing(job: RunningJob, lines_done: int, now: float) -> dict[str, float]:
    """``elapsed_s`` since the start, and ``remaining_s``: the modelled machine time of the
    lines not yet acknowledged (lines the machine holds in its buffers still have to run, so
    this is a little short while the planner is full)."""
    out = {"elapsed_s": round(now - job.started_at, 1)}
    if job.estimate is not None:
        out["remaining_s"] = round(job.estimate.remaining_after(lines_done), 1)
    return out


@dataclass(frozen=True)
class PendingFinal:
    """A job's end that happened on the machine but could not be written yet."""

    job_id: str
    trigger: Trigger
    event: EventType
    detail: dict[str, Any]
    error_code: str | None = None
    error_message: str | None = None
    lines_done: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "trigger": self.trigger.value, "event": self.event.value,
                "detail": self.detail, "error_code": self.error_code,
                "error_message": self.error_message, "lines_done": self.lines_done}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingFinal:
        return cls(str(data["job_id"]), Trigger(data["trigger"]), EventType(data["event"]),
                   dict(data["detail"]), data.get("error_code"), data.get("error_message"),
                   data.get("lines_done"))


class JobRunner:
    def __init__(self, db: Database, store: JobStore, reporter: Reporter, device: DeviceManager,
                 *, may_start: Callable[[], str | None], on_change: Callable[[], None],
                 keep_start_hold: bool = True,
                 estimate: Callable[[Sequence[str]], Estimate | None] = lambda lines: None,
                 on_progress: Callable[[], None] = lambda: None,
                 ) -> None:
        self.db = db
        self.store = store
        self.reporter = reporter
        self.device = device
        # Returns None when a job may start now, else the reason it may not (estop, door...).
        self._may_start = may_start
        self._on_change = on_change
        # The machine time of a program on this machine as it is now (None: no model).
        self._estimate = estimate
        # Told after each progress event (the station refreshes its queue view).
        self._progressed = on_progress
        self.current: RunningJob | None = None
        self._queue_changed = asyncio.Event()
        self._operator_start = asyncio.Event()
        self._operator_cancel = asyncio.Event()
        # Final states the disk could not take yet, in the order they happened.
        self.pending: dict[str, PendingFinal] = {}
        # Where they are also kept, across a restart (set by the app; None: memory only).
        self.journal: ReservedFile | None = None
        self._start_changed = asyncio.Event()
        # Set: the next job waits for an operator's start (button or `start` command) whatever
        # it asks for; the value says why (after an e-stop: "estop_reset").
        self.start_hold: str | None = None
        self._keep_start_hold = keep_start_hold

    # -- start-up --------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """After a crash or power cut: a job that was running is interrupted, never re-run.

        First the ends the last run kept for a full disk are recorded as they happened.
        """
        if self.journal is not None:
            for final in _parse_journal(self.journal.open()):
                self.pending.setdefault(final.job_id, final)
        recorded = self.flush_pending()
        if recorded:
            log.warning("recorded the end of %s, kept by the last run while the disk was full",
                        ", ".join(recorded))
        interrupted = []
        for rec in self.store.active():
            with self.db.transaction():
                self.store.transition(rec.job_id, Trigger.INTERRUPT)
                self.reporter.event(EventType.INTERRUPTED, rec.job_id, {
                    "lines_total": rec.lines_total,
                    "last_line_acknowledged": rec.lines_done,
                    "reason": "the agent stopped while the job was running, or before it "
                              "could record the job's end (a full disk); the machine may have "
                              "gone further than last_line_acknowledged or finished: check the "
                              "piece; the job is not re-run automatically",
                })
            interrupted.append(rec.job_id)
        for rec in self.store.queued():
            if rec.state is JobState.AWAITING_OPERATOR:
                self.store.transition(rec.job_id, Trigger.INTERRUPT)  # back to queued
        if self.db.counter(START_HOLD_KEY):
            if self._keep_start_hold:
                self.start_hold = "estop_reset"  # nobody has started the machine since
            else:
                self._write_hold()
        self.db.sync()
        return interrupted

    def notify_queue(self) -> None:
        self._queue_changed.set()

    def hold_start(self, reason: str) -> None:
        """From now on nothing starts until an operator's start (see :meth:`operator_start`)."""
        self.start_hold = reason
        self._record_hold()
        self._start_changed.set()
        self._on_change()

    def _record_hold(self) -> None:
        """Record the hold once the current step is over: an e-stop's stop bytes go out first
        (the driver's task is already scheduled), and no write can delay or break them."""
        try:
            asyncio.get_running_loop().call_soon(self._write_hold)
        except RuntimeError:  # no loop (start-up, tests): now
            self._write_hold()

    def _write_hold(self) -> None:
        try:
            with self.db.transaction():
                self.db.set_counter(START_HOLD_KEY, 1 if self.start_hold is not None else 0)
        except Exception:
            # The hold still holds in memory; only a restart of the agent would forget it.
            log.exception("could not record the start hold in the database")

    def operator_start(self, *, button: bool = True) -> str | None:
        """An operator's start: the station's button, or (``button=False``) the ``start``
        command. It clears the start hold; only the button starts a job that asked for
        ``require_operator_start``. Ignored while something blocks starting (e-stop, door):
        returns that reason then, else None.
        """
        blocker = self._may_start()
        if blocker is not None:
            return blocker
        if self.start_hold is not None:
            self.start_hold = None
            self._record_hold()
        if button:
            self._operator_start.set()
        self._start_changed.set()
        self._queue_changed.set()
        self._on_change()
        return None

    @property
    def awaiting_button(self) -> bool:
        """The current job waits for the start button (require_operator_start)."""
        job = self.current
        return (job is not None and job.state is JobState.AWAITING_OPERATOR
                and job.request.require_operator_start)

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                await self._next()
            except StorageError:
                # The job stays queued (or was never started): wait for the disk to work again.
                self.current = None
                while self.db.fault is not None or self.pending:
                    await wait_event(self._queue_changed, 1.0)
                    self._queue_changed.clear()

    async def _next(self) -> None:
        while True:
            queued = self.store.queued()
            if not queued:
                self._queue_changed.clear()
                await self._queue_changed.wait()
                continue
            await self._wait_until_startable(queued[0].job_id)
            rec = self.store.get(queued[0].job_id)
            if rec is None or rec.state is not JobState.QUEUED:
                continue  # canceled while we waited
            await self._run(rec)

    async def _wait_until_startable(self, job_id: str) -> None:
        warned: Readiness | None = None
        while True:
            driver = self.device.driver
            if (driver is not None and self._may_start() is None
                    and self.db.fault is None and not self.pending):
                readiness = driver.ready_for_job
                if readiness.ready:
                    # The last poll may be old: ask the machine itself before starting.
                    readiness = await driver.check_ready()
                    if (readiness.ready and self.device.driver is driver
                            and self._may_start() is None
                            and self.db.fault is None and not self.pending):
                        return
                if readiness in _MACHINE_NOT_READY and warned is not readiness:
                    warned = readiness
                    self._warn_not_ready(job_id, readiness, driver.device_state)
            await wait_event(self._queue_changed, 0.2)
            self._queue_changed.clear()

    def _warn_not_ready(self, job_id: str, reason: Readiness, machine_state: str) -> None:
        """The job stays queued; say once why it does not start."""
        rec = self.store.get(job_id)
        if rec is None or rec.state is not JobState.QUEUED:
            return
        mode = machine_state.partition(":")[0]
        self.reporter.event(EventType.WARNING, job_id, {
            "code": "machine_not_ready", "reason": reason.value, "machine_state": machine_state,
            "message": f"{_MODE_ADVICE.get(mode, _MACHINE_NOT_READY[reason])}; the job waits "
                       "in the queue",
        })

    async def _run(self, rec: JobRecord) -> None:
        request = JobRequest.model_validate_json(rec.request)
        job = RunningJob(rec, self.store.program(rec.job_id), request, JobState.QUEUED)
        self.current = job
        try:
            waits = request.require_operator_start or self.start_hold is not None
            if waits and not await self._await_operator(job):
                return
            driver = self.device.driver
            if driver is None:
                return  # device went away: the job stays queued
            if self.db.fault is not None:
                return  # the start could not be recorded: the job stays queued
            # Planned again at the start, with the settings the machine has now (a large job
            # takes a moment: off the event loop).
            job.estimate = await asyncio.to_thread(self._estimate, job.program.lines)
            with self.db.transaction():
                self.store.transition(rec.job_id, Trigger.START)
                self.reporter.event(EventType.STARTED, rec.job_id, {
                    "lines_total": len(job.program), "kind": rec.kind,
                    **({"meta": request.meta} if request.meta else {}),
                    **(job.estimate.as_detail() if job.estimate else {}),
                })
            # The machine must never run a job we could forget: on disk before the first line.
            try:
                self.db.sync()
            except StorageError as exc:
                # Recorded as started but not durably: it must not start, and saying it is
                # queued again could run it twice. It ends here, nothing of it sent.
                self._finish_failed(job, "storage_error", f"the job's start could not be "
                                    f"written to disk ({exc.message}); nothing was sent to the "
                                    f"machine: submit it again", {}, lines_done=0)
                return
            job.state = JobState.RUNNING
            job.started_at = time.monotonic()
            self._on_change()
            await self._stream(job)
        finally:
            self.current = None
            self._on_change()

    async def _await_operator(self, job: RunningJob) -> bool:
        """Hold the job until an operator starts it.

        A job with ``require_operator_start`` needs the station's button; a start hold (after
        an e-stop) is released by the button or the ``start`` command. Both may apply.
        """
        needs_button = job.request.require_operator_start
        with self.db.transaction():
            self.store.transition(job.record.job_id, Trigger.WAIT_OPERATOR)
            self.reporter.event(EventType.AWAITING_OPERATOR, job.record.job_id, {
                "timeout_s": job.request.operator_timeout_s,
                "reason": self.start_hold or "require_operator_start",
                "start_button_required": needs_button,
            })
        job.state = JobState.AWAITING_OPERATOR
        self._operator_start.clear()
        self._operator_cancel.clear()
        self._on_change()
        deadline = (time.monotonic() + job.request.operator_timeout_s
                    if job.request.operator_timeout_s else None)
        while True:
            self._start_changed.clear()
            if self._operator_cancel.is_set():
                self._record_final(PendingFinal(job.record.job_id, Trigger.CANCEL,
                                                EventType.CANCELED,
                                                request_echo(job.cancel_request_id)))
                return False
            startable = self._may_start() is None and self.device.driver is not None
            if self._operator_start.is_set():
                self._operator_start.clear()
                if startable:
                    needs_button = False
            if startable and not needs_button and self.start_hold is None:
                return True
            if deadline is not None and time.monotonic() > deadline:
                self._finish_failed(job, "operator_timeout",
                                    "nobody started the job in time", {})
                return False
            await wait_event(self._start_changed, 0.2)

    async def _stream(self, job: RunningJob) -> None:
        driver = self.device.driver
        assert driver is not None
        total = len(job.program)
        job_id = job.record.job_id
        last_percent = -1
        last_time = 0.0

        def on_progress(done: int) -> None:
            nonlocal last_percent, last_time
            percent = (done * 100) // total if total else 100
            now = time.monotonic()
            quiet = now - last_time
            final = done == total
            if percent == last_percent and (final or quiet < PROGRESS_MAX_SILENCE_S):
                return
            if not final and quiet < PROGRESS_MIN_STEP_S:
                return
            last_percent, last_time = percent, now
            try:
                with self.db.transaction():
                    self.store.set_progress(job_id, done)
                    self.reporter.event(EventType.PROGRESS, job_id, {
                        "lines_total": total, "lines_done": done, "percent": percent,
                        **_timing(job, done, now),
                    })
            except StorageError:
                pass  # the machine goes on; its progress is written with the job's end
            else:
                self._progressed()

        try:
            result = await driver.stream(job.program.lines, on_progress)
        except JobStopped as exc:
            if exc.code == "estop":
                self._finish_failed(job, "estop", "emergency stop", {})
            else:
                self._record_final(PendingFinal(job_id, Trigger.CANCEL, EventType.CANCELED, {
                    "lines_done": driver.lines_acknowledged, "lines_total": total,
                    **request_echo(job.cancel_request_id),
                }, lines_done=driver.lines_acknowledged))
            return
        except DeviceError as exc:
            extra: dict[str, Any] = {}
            if exc.line is not None and 0 < exc.line <= total:
                extra["line"] = job.program.source_line(exc.line - 1)
                extra["line_index"] = exc.line
                extra["text"] = job.program.lines[exc.line - 1]
            if exc.device_code is not None:
                extra["device_code"] = exc.device_code
            self._finish_failed(job, exc.code, exc.message, extra,
                                lines_done=driver.lines_acknowledged)
            return
        if last_percent != 100:
            on_progress(total)
        detail: dict[str, Any] = {
            "lines_total": total, "lines_done": result.lines_done,
            "duration_s": round(time.monotonic() - job.started_at, 3),
            **({"estimated_s": round(job.estimate.seconds, 1)} if job.estimate else {}),
        }
        if result.warnings:
            detail["warnings"] = list(result.warnings)
        self._record_final(PendingFinal(job_id, Trigger.SUCCEED, EventType.SUCCEEDED, detail,
                                        lines_done=result.lines_done))

    def _finish_failed(self, job: RunningJob, code: str, message: str, extra: dict[str, Any],
                       lines_done: int | None = None) -> None:
        detail: dict[str, Any] = {"error": {"code": code, "message": message, **extra}}
        if lines_done is not None:
            detail["lines_done"] = lines_done
            detail["lines_total"] = len(job.program)
        # What the machine and the agent last said to each other, clipped (the whole ring is
        # on `station-agent trace`); the log gets a longer dump.
        detail["trace"] = self.device.trace.for_event()
        log.warning("job %s failed: %s: %s\n%s", job.record.job_id, code, message,
                    self.device.trace.for_log(f"job {job.record.job_id} failed"))
        self._record_final(PendingFinal(job.record.job_id, Trigger.FAIL, EventType.FAILED, detail,
                                        error_code=code, error_message=message,
                                        lines_done=lines_done))

    # -- final states, now or when the disk works again --------------------------------------

    def _record_final(self, final: PendingFinal) -> None:
        """Write a job's end and its event; on a full disk keep it for :meth:`flush_pending`."""
        if not self.pending:
            try:
                self._write_final(final)
                return
            except StorageError:
                pass
        self.pending[final.job_id] = final
        kept = self._save_pending()
        log.error("job %s %s on the machine, but the database cannot record it now: kept in "
                  "memory%s and recorded when a write succeeds again", final.job_id,
                  final.event.value, f" and in {self.journal.path}" if kept and self.journal
                  else " only (if the agent stops first, it is reported interrupted)")

    def _save_pending(self) -> bool:
        if self.journal is None:
            return False
        data = json.dumps([f.to_json() for f in self.pending.values()]).encode()
        return self.journal.write(data)

    def _write_final(self, final: PendingFinal, *, late: bool = False) -> None:
        with self.db.transaction():
            rec = self.store.get(final.job_id)
            if rec is None or rec.state in TERMINAL:
                return  # recorded already (a reserved file not cleared before a stop)
            # A pause or resume the disk could not take: the record may still say paused.
            if rec.state is JobState.PAUSED and final.trigger is Trigger.SUCCEED:
                self.store.transition(final.job_id, Trigger.RESUME)
            self.store.transition(final.job_id, final.trigger, error_code=final.error_code,
                                  error_message=final.error_message,
                                  lines_done=final.lines_done)
            detail = {**final.detail, **({"recorded_late": True} if late else {})}
            self.reporter.event(final.event, final.job_id, detail)

    def flush_pending(self) -> list[str]:
        """Record the final states kept in memory (raises StorageError if the disk fails again).

        Returns the jobs recorded, in the order they ended.
        """
        done = []
        for job_id, final in list(self.pending.items()):
            self._write_final(final, late=True)
            del self.pending[job_id]
            done.append(job_id)
        if done:
            self.db.sync()
            self._queue_changed.set()
            self._save_pending()
        return done

    # -- commands on the current job -------------------------------------------------------

    async def pause(self, request_id: str | None, *, reason: str | None = None) -> str | None:
        job = self.current
        if job is None or job.state is not JobState.RUNNING:
            return "no running job to pause"
        driver = self.device.driver
        if driver is None:
            return "the machine is offline"
        await driver.pause()
        try:
            with self.db.transaction():
                rec = self.store.get(job.record.job_id)
                if rec is not None and rec.state is JobState.RUNNING:
                    self.store.transition(job.record.job_id, Trigger.PAUSE)
                self.reporter.event(EventType.PAUSED, job.record.job_id, {
                    "lines_done": driver.lines_acknowledged,
                    **request_echo(request_id),
                    **({"reason": reason} if reason else {}),
                })
        except StorageError:
            # The machine is held whatever the disk says; only the record has to wait.
            log.warning("job %s paused, but the disk could not record it", job.record.job_id)
        job.state = JobState.PAUSED
        self._on_change()
        return None

    async def resume(self, request_id: str | None) -> str | None:
        job = self.current
        if job is None or job.state is not JobState.PAUSED:
            return "no paused job to resume"
        driver = self.device.driver
        if driver is None:
            return "the machine is offline"
        await driver.resume()
        try:
            with self.db.transaction():
                rec = self.store.get(job.record.job_id)
                if rec is not None and rec.state is JobState.PAUSED:
                    self.store.transition(job.record.job_id, Trigger.RESUME)
                self.reporter.event(EventType.RESUMED, job.record.job_id,
                                    request_echo(request_id))
        except StorageError:
            log.warning("job %s resumed, but the disk could not record it", job.record.job_id)
        job.state = JobState.RUNNING
        self._on_change()
        return None

    async def cancel(self, job_id: str | None, request_id: str | None) -> str | None:
        job = self.current
        if job is not None and (job_id is None or job_id == job.record.job_id):
            job.cancel_request_id = request_id
            if job.state is JobState.AWAITING_OPERATOR:
                self._operator_cancel.set()
                self._start_changed.set()
                return None
            if job.state in (JobState.RUNNING, JobState.PAUSED) and not job.canceled:
                driver = self.device.driver
                if driver is None:
                    return "the machine is offline"
                job.canceled = True
                await driver.cancel()
                return None
            return "the job is already stopping"
        if job_id is None:
            return "no running job to cancel"
        rec = self.store.get(job_id)
        if rec is None:
            return f"no job {job_id} on this station"
        if rec.state is not JobState.QUEUED:
            return f"job {job_id} is {rec.state.value}"
        with self.db.transaction():
            self.store.transition(job_id, Trigger.CANCEL)
            self.reporter.event(EventType.CANCELED, job_id, {
                "lines_done": 0, "lines_total": rec.lines_total,
                **request_echo(request_id),
            })
        self._queue_changed.set()
        return None


def _parse_journal(content: bytes) -> list[PendingFinal]:
    if not content.strip():
        return []
    try:
        return [PendingFinal.from_json(item) for item in json.loads(content)]
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the unreadable pending job ends %r: %s", content[:200], exc)
        return []

