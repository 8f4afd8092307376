"""The station: takes jobs and commands in, keeps the status true, and reacts to the machine.

Incoming messages are handled one at a time; when :meth:`Station.handle` returns, everything it
decided is committed to the database (the caller then syncs and acknowledges to the broker).
When the disk cannot take it, :meth:`Station.handle` raises :class:`StorageError` and the
message is not acknowledged: the broker keeps it, and it is handled again once storage works.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from agent import __version__
from agent.config import AgentConfig
from agent.device import DeviceEvents, DeviceManager
from agent.drivers.base import DeviceInfo, Readiness, Telemetry
from agent.errors import DeviceError, DeviceTimeout, StationAgentError
from agent.estimate import Estimate
from agent.families import find_family
from agent.jobs.intake import (
    AcceptedJob,
    Rejection,
    decode_object,
    guess_job_id,
    parse_command,
    parse_job,
)
from agent.jobs.runner import JobRunner
from agent.jobs.states import JobState
from agent.jobs.store import JobStore
from agent.link.topics import TopicName
from agent.pools.member import PoolMember
from agent.pools.store import AnsweredAssignments
from agent.profiles import Profile
from agent.reporter import Reporter
from agent.safety.light import LightState, StackLight
from agent.schemas.base import rfc3339, utc_now_rfc3339
from agent.schemas.command import Command, CommandName
from agent.schemas.event import EventType, request_echo
from agent.schemas.queue import QUEUE_REFRESH_S, QueuedJob, QueueView
from agent.schemas.queue import RunningJob as QueueRunning
from agent.schemas.status import Info, StationState
from agent.signing import JobVerifier, SignatureError, pool_target, station_target
from agent.storage import Database, StorageError

log = logging.getLogger(__name__)

# How much of the serial trace the `trace` command answers with (the whole ring is on
# `station-agent trace`, which does not go through the broker).
TRACE_MAX_LINES = 200
TRACE_MAX_BYTES = 32 * 1024
_LIGHTS = {
    StationState.IDLE: LightState.IDLE,
    StationState.BUSY: LightState.RUNNING,
    StationState.AWAITING_OPERATOR: LightState.ATTENTION,
    StationState.PAUSED: LightState.ATTENTION,
    StationState.ALARM: LightState.FAULT,
    StationState.NOT_READY: LightState.ATTENTION,
    StationState.ERROR: LightState.FAULT,
    StationState.STORAGE_ERROR: LightState.FAULT,
    StationState.DEVICE_OFFLINE: LightState.FAULT,
    StationState.ESTOP: LightState.ESTOP,
    StationState.OFFLINE: LightState.FAULT,
}


class Station(DeviceEvents):
    def __init__(self, config: AgentConfig, profile: Profile, db: Database, store: JobStore,
                 reporter: Reporter) -> None:
        self.config = config
        self.profile = profile
        self.db = db
        self.store = store
        self.reporter = reporter
        self.estop_latched = False
        self.estop_input_pressed = False
        self.door_open = False
        self.device: DeviceManager = DeviceManager.for_serial(
            profile, config.serial.port, config.serial.baud, self,
            config.serial.reopen_interval_s,
        )
        self.runner = JobRunner(db, store, reporter, self.device, may_start=self.start_blocker,
                                on_change=self.refresh_status,
                                keep_start_hold=config.operator.start_after_estop,
                                estimate=self._estimate, on_progress=self.publish_queue)
        self._device_state = ""
        self._alarm: Any = None
        self.light: StackLight | None = None
        self.verifier: JobVerifier | None = None
        self.pool_member = PoolMember(self, AnsweredAssignments(db),
                                      station_id=config.station_id, pools=config.pools)
        self._background: set[asyncio.Task[Any]] = set()
        # Storage faults: what failed and since when (for the storage_error event).
        self._storage_fault: tuple[StorageError, str] | None = None
        # Called when storage works again (the broker link retries what it did not acknowledge).
        self.on_storage_recovered: list[Any] = []
        # How many messages wait to be stored (a held cancel must come before the next start).
        self.storage_backlog: Callable[[], int] = lambda: 0
        # Each waiting job's estimate, from its acceptance (jobs queued before a restart have
        # none until they start); and what the last queue view said, to publish only changes.
        self._estimates: dict[str, float | None] = {}
        self._queue_said: tuple[object, ...] | None = None
        self._queue_at = 0.0
        db.on_fault.append(self._on_storage_fault)
        db.on_recover.append(self._on_storage_recovered)

    # -- state -----------------------------------------------------------------------------

    def start_blocker(self) -> str | None:
        """Why no job may start now though the station is idle; None: one may."""
        if self.estop_latched:
            return "estop"
        if self.door_open:
            return "door_open"
        if self.db.fault is not None:
            return "storage_error"
        if self.storage_backlog():
            return "storage_backlog"
        return None

    def derive_state(self) -> tuple[StationState, str | None]:
        job = self.runner.current
        job_id = job.record.job_id if job is not None else None
        if self.estop_latched:
            return StationState.ESTOP, job_id
        if self.db.fault is not None:
            return StationState.STORAGE_ERROR, job_id
        if not self.device.online.is_set():
            return StationState.DEVICE_OFFLINE, job_id
        driver = self.device.driver
        readiness = driver.ready_for_job if driver is not None else Readiness.READY
        if readiness is Readiness.DEVICE_ALARM:
            return StationState.ALARM, job_id
        if readiness is Readiness.MACHINE_NOT_READY and (
                job is None or job.state is not JobState.RUNNING):
            return StationState.NOT_READY, job_id
        if job is not None:
            if job.state is JobState.PAUSED:
                return StationState.PAUSED, job_id
            if job.state is JobState.AWAITING_OPERATOR:
                return StationState.AWAITING_OPERATOR, job_id
            if job.state is JobState.RUNNING:
                return StationState.BUSY, job_id
        if self.runner.start_hold is not None:
            # Nothing starts until an operator's start, even with nothing queued yet.
            return StationState.AWAITING_OPERATOR, None
        return StationState.IDLE, None

    def refresh_status(self, *, force: bool = False) -> None:
        state, job_id = self.derive_state()
        self.reporter.device = self._device_summary()
        self.reporter.status(state, job_id, force=force)
        self.publish_queue(force=force)
        if self.light is not None:
            self.light.show(LightState.ATTENTION if self.door_open and state in (
                StationState.IDLE, StationState.BUSY) else _LIGHTS[state])

    def publish_queue(self, *, force: bool = False) -> None:
        """The retained queue view, when the queue changed (or every QUEUE_REFRESH_S while a
        job runs, as its remaining time moves)."""
        current = self.runner.current
        running: QueueRunning | None = None
        total, unestimated = 0.0, 0
        if current is not None and current.state in (JobState.RUNNING, JobState.PAUSED):
            remaining = None
            driver = self.device.driver
            if current.estimate is not None and driver is not None:
                remaining = round(current.estimate.remaining_after(driver.lines_acknowledged), 1)
            running = QueueRunning(job_id=current.record.job_id, remaining_s=remaining)
        waiting = [QueuedJob(job_id=job_id, estimated_s=self._estimates.get(job_id))
                   for job_id in self.store.waiting_ids()
                   if running is None or job_id != running.job_id]
        said = (running.job_id if running else None,
                tuple((w.job_id, w.estimated_s) for w in waiting))
        now = time.monotonic()
        if said == self._queue_said and not force and (
                running is None or now - self._queue_at < QUEUE_REFRESH_S):
            return
        self._queue_said, self._queue_at = said, now
        keep = {w.job_id for w in waiting}
        self._estimates = {k: v for k, v in self._estimates.items() if k in keep}
        for seconds in [running.remaining_s if running else 0.0,
                        *(w.estimated_s for w in waiting)]:
            if seconds is None:
                unestimated += 1
            else:
                total += seconds
        stamp = datetime.now(UTC)
        self.reporter.queue(QueueView(
            station=self.config.station_id, ts=rfc3339(stamp), running=running,
            waiting=waiting, total_s=round(total, 1), unestimated=unestimated,
            expected_finish=rfc3339(stamp + timedelta(seconds=total)) if not unestimated
            else None))

    def _device_summary(self) -> dict[str, Any]:
        out = self.device.describe()
        out["port"] = self.config.serial.port
        if self._device_state:
            out["state"] = self._device_state
        if self._alarm:
            out["alarm"] = self._alarm
        return out

    def info(self) -> Info:
        fw: dict[str, Any] = {}
        if self.device.info is not None:
            fw = {"name": self.device.info.firmware, "version": self.device.info.version,
                  "capabilities": self.device.info.capabilities}
        return Info(
            station=self.config.station_id, agent_version=__version__, profile=self.profile.name,
            family=self.profile.family, dialect=self._dialect,
            bed_mm=(self.profile.bed.width_mm, self.profile.bed.height_mm),
            job_kinds=self.job_kinds, pools=list(self.config.pools),
            commands=[c.value for c in CommandName],
            capabilities={"operator_start": True,
                          "start_after_estop": self.config.operator.start_after_estop,
                          "max_queued_jobs":
                          self.config.limits.max_queued_jobs,
                          "max_payload_bytes": self.config.mqtt.max_payload_bytes},
            firmware=fw,
        )

    @property
    def job_kinds(self) -> list[str]:
        family = find_family(self.profile.family)
        return [] if family is None else [kind.value for kind in family.job_kinds]

    @property
    def _dialect(self) -> str:
        family = find_family(self.profile.family)
        return "unknown" if family is None else family.dialect

    # -- incoming --------------------------------------------------------------------------

    async def handle(self, name: TopicName, payload: bytes) -> None:
        try:
            if name is TopicName.JOB:
                await self.handle_job(payload)
            elif name is TopicName.CMD:
                await self.handle_command(payload)
            elif name is TopicName.OFFER:
                self.pool_member.on_offer(payload)
            elif name is TopicName.POOL_JOB:
                await self.pool_member.on_assignment(payload)
        except StorageError:
            raise  # not stored, so not acknowledged: the broker delivers it again
        except Exception as exc:
            # A bug must not take the station down nor make the broker redeliver the message
            # forever: it is answered like any other bad input, and logged with its traceback.
            log.exception("handling a %s message failed", name.value)
            try:
                self.reject(Rejection("internal_error", f"the agent failed to handle this "
                                      f"{name.value}: {type(exc).__name__}"))
            except StorageError:
                raise
            except Exception:
                log.exception("could not even report the failure")

    async def handle_job(self, payload: bytes) -> None:
        # Checking the signature, validating and compiling a large job take a while: off the
        # event loop, so the machine's stream, the keepalive and the e-stop path never wait.
        result = await asyncio.to_thread(self.validate_job, payload)
        if isinstance(result, Rejection):
            self.reject(result)
            return
        self._accept(result)

    def validate_job(self, payload: bytes, *, pool: str | None = None) -> AcceptedJob | Rejection:
        """Pure work on the payload (no database, no events): runs in a worker thread.

        ``pool``: the pool the keeper assigned it from; None for a job sent to this station."""
        if self.verifier is not None:
            verified = self._verified(payload, pool=pool)
            if isinstance(verified, Rejection):
                return verified
            payload = verified
        parsed = parse_job(payload, self.profile, max_bytes=self.config.mqtt.max_payload_bytes,
                           max_lines=self.config.limits.max_program_lines)
        if isinstance(parsed, Rejection):
            return parsed
        return replace(parsed, estimate=self._estimate(parsed.program.lines))

    def _estimate(self, lines: Sequence[str]) -> Estimate | None:
        """The job's machine time from the family's motion model and what the machine said at
        its last handshake (read from this worker thread: DeviceInfo is immutable)."""
        family = find_family(self.profile.family)
        info = self.device.info
        if family is None or family.estimate is None or info is None:
            return None
        try:
            return family.estimate(lines, info.capabilities)
        except (ArithmeticError, KeyError, TypeError, ValueError):
            log.exception("the time estimate failed; the job runs without one")
            return None

    def _verified(self, payload: bytes, *, pool: str | None) -> bytes | Rejection:
        """The job without its signature if the signature holds and names this station (or
        the pool it came from).

        A refused job's ``rejected`` event has ``job_id: null``: this station will never run
        it, and a job_id taken from it (unauthenticated, or authentic but meant for another
        station, where that very job may be running) must not read as that job's end. The id
        it claims is in ``error.claimed_job_id``, and ``error.verified`` says whether the
        signature itself held."""
        assert self.verifier is not None
        obj, rejection = decode_object(payload, self.config.mqtt.max_payload_bytes)
        if rejection is not None:
            return rejection
        assert obj is not None
        targets = {station_target(self.config.station_id)}
        if pool is not None:
            targets.add(pool_target(pool))
        try:
            job = self.verifier.verify(obj, targets=targets, now=datetime.now(UTC))
        except StationAgentError as exc:
            authentic = isinstance(exc, SignatureError) and exc.authentic
            extra: dict[str, Any] = {"claimed_job_id": guess_job_id(obj), "verified": authentic}
            if isinstance(exc, SignatureError) and exc.target is not None:
                extra["signed_for"] = exc.target
            return Rejection(exc.code, exc.message, None, extra)
        return json.dumps(job, ensure_ascii=False).encode("utf-8")

    def _accept(self, job: AcceptedJob) -> None:
        job_id = job.request.job_id
        existing = self.store.get(job_id)
        if existing is not None:
            self.reporter.event(EventType.DUPLICATE, job_id, {
                "state": existing.state.value, "lines_done": existing.lines_done,
                "lines_total": existing.lines_total,
            })
            return
        if self.estop_latched:
            self.reject(Rejection("estop_active", "the station is in emergency stop: release "
                                  "the e-stop and send reset first", job_id))
            return
        waiting = self.store.count_waiting()
        if waiting >= self.config.limits.max_queued_jobs:
            self.reject(Rejection("queue_full", f"{waiting} jobs are already waiting "
                                  f"(limit {self.config.limits.max_queued_jobs})", job_id))
            return
        self.store_job(job, waiting=waiting)
        self.runner.notify_queue()

    def store_job(self, job: AcceptedJob, *, waiting: int = 0, pool: str | None = None) -> None:
        """The job and its ``accepted`` event, in one transaction (the caller's, if open)."""
        job_id = job.request.job_id
        self._estimates[job_id] = round(job.estimate.seconds, 1) if job.estimate else None
        with self.db.transaction():
            self.store.add(job_id, job.request.kind.value, job.raw, job.program)
            self.reporter.event(EventType.ACCEPTED, job_id, {
                "station": self.config.station_id, "lines_total": len(job.program),
                "queue_position": waiting + (1 if self.runner.current else 0),
                **({"pool": pool} if pool else {}),
                **({"meta": job.request.meta} if job.request.meta else {}),
                **(job.program.detail or {}),
                **(job.estimate.as_detail() if job.estimate else {}),
            })
        self.publish_queue()

    def reject(self, rejection: Rejection) -> None:
        """Tell the planner a job or command was refused (its ``rejected`` event)."""
        self.reporter.event(EventType.REJECTED, rejection.job_id, rejection.detail())

    async def handle_command(self, payload: bytes) -> None:
        parsed = parse_command(payload, max_bytes=self.config.mqtt.max_payload_bytes)
        if isinstance(parsed, Rejection):
            self.reject(parsed)
            return
        problem = await self._apply(parsed)
        if problem is not None:
            code, message = problem
            extra: dict[str, Any] = {"cmd": parsed.cmd.value}
            if parsed.request_id:
                extra["request_id"] = parsed.request_id
            self.reject(Rejection(code, message, parsed.job_id, extra))
        self.refresh_status()

    async def _apply(self, cmd: Command) -> tuple[str, str] | None:
        current = self.runner.current
        if cmd.job_id is not None and cmd.cmd in (CommandName.PAUSE, CommandName.RESUME) and (
            current is None or current.record.job_id != cmd.job_id
        ):
            return "not_applicable", f"job {cmd.job_id} is not the running job"
        if cmd.cmd is CommandName.PAUSE:
            problem = await self.runner.pause(cmd.request_id)
        elif cmd.cmd is CommandName.RESUME:
            if self.door_open:
                return "door_open", "close the door before resuming"
            if self.estop_latched:
                return "estop_active", "the station is in emergency stop"
            problem = await self.runner.resume(cmd.request_id)
        elif cmd.cmd is CommandName.CANCEL:
            problem = await self.runner.cancel(cmd.job_id, cmd.request_id)
        elif cmd.cmd is CommandName.ESTOP:
            was = self.estop_latched
            await self.emergency_stop("mqtt")
            self._command_done(CommandName.ESTOP, cmd.request_id, {"already_latched": was},
                               job_id=cmd.job_id)
            problem = None
        elif cmd.cmd is CommandName.RESET:
            return await self.reset(cmd.request_id)
        elif cmd.cmd is CommandName.START:
            return self.start(cmd.request_id)
        elif cmd.cmd is CommandName.UNLOCK:
            return await self.unlock(cmd.request_id)
        elif cmd.cmd is CommandName.TRACE:
            # Read-only: answered whatever the station is doing (never about a job).
            self._command_done(CommandName.TRACE, cmd.request_id,
                               {"trace": self.device.trace.snapshot(TRACE_MAX_LINES,
                                                                    TRACE_MAX_BYTES)})
            return None
        else:  # pragma: no cover - every CommandName is handled above
            problem = f"unknown command {cmd.cmd}"
        return ("not_applicable", problem) if problem is not None else None

    # -- storage faults --------------------------------------------------------------------

    def _on_storage_fault(self, err: StorageError) -> None:
        """The first failed write of an episode (called inside that write: defer the work)."""
        self._storage_fault = (err, utc_now_rfc3339())
        self.reporter.outbox.hold_status = True
        try:
            asyncio.get_running_loop().call_soon(self._report_storage_fault)
        except RuntimeError:
            self._report_storage_fault()

    def _storage_detail(self, *, resolved: bool) -> dict[str, Any]:
        assert self._storage_fault is not None
        err, since = self._storage_fault
        return {"error": {"code": err.reason, "message": err.message},
                "path": str(self.db.path), "since": since, "resolved": resolved,
                "accepting_jobs": resolved}

    def _report_storage_fault(self) -> None:
        self.refresh_status(force=True)
        if self._storage_fault is None or self.db.fault is None:
            return
        try:
            self.reporter.event(EventType.STORAGE_ERROR, None, self._storage_detail(
                resolved=False))
            self.db.sync()
        except StorageError:
            pass  # sent once a write works again

    def _on_storage_recovered(self) -> None:
        """Storage works again (inside Database.probe; StorageError here means: not yet)."""
        if self._storage_fault is not None:
            self.reporter.event(EventType.STORAGE_ERROR, None, self._storage_detail(
                resolved=True))
        finished = self.runner.flush_pending()
        if finished:
            log.warning("recorded the end of %s, kept in memory while the disk was full",
                        ", ".join(finished))
        self.reporter.outbox.hold_status = False
        self.reporter.outbox.retry_removals()
        self._storage_fault = None
        self.reporter.info(self.info())
        self.refresh_status(force=True)
        self.db.sync()
        self.runner.notify_queue()
        for callback in self.on_storage_recovered:
            callback()

    # -- safety ----------------------------------------------------------------------------

    async def emergency_stop(self, source: str) -> None:
        """The hardest stop the firmware has, ahead of anything queued; latched until reset."""
        driver = self.device.driver
        if driver is not None:
            await driver.estop()
        self._latch_estop(source)
        self.refresh_status()

    def _latch_estop(self, source: str) -> None:
        if not self.estop_latched:
            self.estop_latched = True
            if self.config.operator.start_after_estop:
                # Armed now, not at reset: nothing can start between the reset and the hold.
                self.runner.hold_start("estop_reset")
            self.reporter.event(EventType.WARNING, None, {"estop": True, "source": source})

    async def reset(self, request_id: str | None) -> tuple[str, str] | None:
        if self.estop_input_pressed:
            return "estop_pressed", "release the e-stop button before reset"
        driver = self.device.driver
        if driver is not None:
            await driver.reset()
        was = self.estop_latched
        self.estop_latched = False
        self._command_done(CommandName.RESET, request_id, {"estop_cleared": was})
        return None

    def start(self, request_id: str | None) -> tuple[str, str] | None:
        """The ``start`` command: an operator's start from the HMI, like the start button,
        except that a job with ``require_operator_start`` still needs the button itself."""
        if self.estop_latched:
            return "estop_active", "release the e-stop and reset before starting"
        if self.door_open:
            return "door_open", "close the door before starting"
        held = self.runner.start_hold is not None
        button = self.runner.awaiting_button
        if not held:
            if button:
                return "start_button_required", ("the job waits for the station's start "
                                                 "button (require_operator_start)")
            return "not_applicable", "nothing waits for an operator's start"
        blocker = self.runner.operator_start(button=False)
        if blocker is not None:
            return blocker, f"cannot start now: {blocker}"
        current = self.runner.current
        self._command_done(CommandName.START, request_id, {
            "start_hold_cleared": True, "start_button_required": button,
        }, job_id=current.record.job_id if current is not None else None)
        return None

    async def unlock(self, request_id: str | None) -> tuple[str, str] | None:
        """Clear the machine's alarm lock: only on a person's explicit command, after reset."""
        if self.estop_latched:
            return "estop_active", "release the e-stop and reset before unlocking"
        driver = self.device.driver
        if driver is None:
            return "not_applicable", "the machine is offline"
        try:
            await driver.unlock()
        except DeviceError as exc:
            if isinstance(exc, DeviceTimeout):
                log.warning("%s", self.device.trace.for_log(f"timeout: {exc.message}"))
            return exc.code, f"cannot unlock: {exc.message}"
        self._command_done(CommandName.UNLOCK, request_id, {})
        return None

    def _command_done(self, cmd: CommandName, request_id: str | None, detail: dict[str, Any],
                      *, job_id: str | None = None) -> None:
        """Answer a station-level command, and let waiting jobs start if they now may."""
        try:
            self.reporter.event(EventType.COMMAND_DONE, job_id,
                                {"cmd": cmd.value, **detail, **request_echo(request_id)})
        except StorageError:
            # Done all the same (an e-stop or reset must not wait for a disk); the status says
            # what the station is now.
            log.warning("%s done, but its answer could not be recorded (storage fault)",
                        cmd.value)
        self.runner.notify_queue()
        self.refresh_status()

    # -- safety inputs (agent.safety.SafetyListener; called on the event loop) --------------

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    def on_estop(self, pressed: bool) -> None:
        self.estop_input_pressed = pressed
        if pressed:
            driver = self.device.driver
            if driver is not None:
                # The stop bytes are written by the driver's first step, before anything else.
                self._spawn(driver.estop(), "estop")
            self._latch_estop("estop_button")
        self.refresh_status()

    def on_door(self, open: bool) -> None:
        self.door_open = open
        job = self.runner.current
        self.reporter.event(EventType.WARNING, job.record.job_id if job else None,
                            {"door": "open" if open else "closed"})
        if open and job is not None and job.state is JobState.RUNNING:
            self._spawn(self.runner.pause(None, reason="door_open"), "door-pause")
        self.refresh_status()

    def on_start_pressed(self) -> None:
        self.runner.operator_start(button=True)
        self.refresh_status()

    def on_reset_pressed(self) -> None:
        self._spawn(self.reset(None), "reset-button")

    async def close_background(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # -- device events ---------------------------------------------------------------------

    def on_device_online(self, info: DeviceInfo) -> None:
        log.info("machine online: %s %s", info.firmware, info.version)
        self.reporter.info(self.info())
        self.runner.notify_queue()
        self.refresh_status()

    def on_device_offline(self, reason: str) -> None:
        log.warning("machine offline: %s", reason)
        self._device_state = ""
        self.refresh_status()

    def on_device_state(self, state: str, detail: dict[str, Any]) -> None:
        self._device_state = state
        self._alarm = detail.get("alarm")
        self.refresh_status()

    def on_telemetry(self, telemetry: Telemetry) -> None:
        self.reporter.telemetry(telemetry.as_dict())

    def on_warning(self, message: str, detail: dict[str, Any]) -> None:
        job = self.runner.current
        self.reporter.event(EventType.WARNING, job.record.job_id if job else None,
                            {"message": message, **detail})
