"""GRBL 1.1 driver: the I/O shell around :class:`~agent.transport.grbl_stream.GrblStream`.

It reads the port and feeds the stream (in the link's reader callback, so a freed buffer is
refilled without a task switch), ticks it from one task at the ``wake_at`` it asks for, writes
what it returns, and turns its events into futures (a job, a control, a system line) and
:class:`~agent.drivers.base.DriverListener` calls. Every protocol rule lives in the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from agent.aio import run_together, wait_event, wait_within
from agent.dialects.grbl import error_text
from agent.drivers.base import (
    DeviceInfo,
    DriverListener,
    MachineDriver,
    ProgressCallback,
    Readiness,
    StopReason,
    StreamResult,
    Telemetry,
)
from agent.errors import DeviceError, DeviceLost, DeviceTimeout
from agent.profiles.grbl import GrblProfile
from agent.transport import grbl_events as ev
from agent.transport.grbl_flow import StatusReport
from agent.transport.grbl_stream import NOT_EXECUTING_CODE, GrblStream
from agent.transport.link import ByteLink

log = logging.getLogger(__name__)

NOT_READY = Readiness.MACHINE_NOT_READY.value
__all__ = ["NOT_EXECUTING_CODE", "NOT_READY", "GrblDriver"]


class GrblDriver(MachineDriver):
    family = "grbl"

    def __init__(self, link: ByteLink, listener: DriverListener, profile: GrblProfile) -> None:
        super().__init__(link, listener)
        self.profile = profile
        self.settings = profile.grbl
        self.proto = GrblStream(self.settings, now=time.monotonic())
        self._tick_wake = asyncio.Event()
        self._tick_at = float("inf")
        self._silent: DeviceError | None = None
        self._job: asyncio.Future[StreamResult] | None = None
        self._on_progress: ProgressCallback | None = None
        self._controls: dict[ev.Control, list[asyncio.Future[None]]] = {}
        self._commands: dict[int, asyncio.Future[ev.CommandDone | None]] = {}
        self._fresh: list[asyncio.Future[bool]] = []
        self._hello: str | None = None
        self._last_telemetry = 0.0
        self._wco: tuple[float, ...] | None = None
        self.info = DeviceInfo(firmware="grbl")

    # -- the stream's output ---------------------------------------------------------------

    def _apply(self, out: ev.Output) -> None:
        if out.urgent:
            self.link.write(out.urgent, urgent=True)
        if out.write:
            self.link.write(out.write)
        if out.events:
            for event in out.events:
                self._dispatch(event)
        if out.wake_at is not None and out.wake_at < self._tick_at:
            self._tick_wake.set()

    def _dispatch(self, event: ev.Event) -> None:  # noqa: C901 - one arm per event type
        if isinstance(event, ev.Progress):
            self._acked = event.lines
            if self._on_progress is not None:
                self._on_progress(event.lines)
        elif isinstance(event, ev.StatusSeen):
            self._on_status(event.report)
        elif isinstance(event, ev.DeviceState):
            self.listener.on_device_state(event.state, event.detail)
        elif isinstance(event, ev.JobDone):
            self._acked = event.lines
            self._settle_job(StreamResult(lines_done=event.lines, warnings=event.warnings))
        elif isinstance(event, ev.JobFailed):
            self._settle_job(event.error)
        elif isinstance(event, ev.JobStopped):
            self._settle_job(StopReason(event.code).error())
        elif isinstance(event, ev.CommandDone | ev.CommandDropped):
            fut = self._commands.pop(event.token, None)
            if fut is not None and not fut.done():
                fut.set_result(event if isinstance(event, ev.CommandDone) else None)
        elif isinstance(event, ev.ControlDone | ev.ControlFailed):
            for waiter in self._controls.pop(event.control, []):
                if waiter.done():
                    continue
                if isinstance(event, ev.ControlDone):
                    waiter.set_result(None)
                else:
                    waiter.set_exception(event.error)
        elif isinstance(event, ev.FreshStatus):
            for asked in self._fresh:
                if not asked.done():
                    asked.set_result(event.ok)
            self._fresh.clear()
        elif isinstance(event, ev.BannerSeen):
            self._hello = event.version
        elif isinstance(event, ev.Notice):
            self.listener.on_warning(event.message, event.detail)
        elif isinstance(event, ev.HoldChanged):
            self._on_hold(event)
        elif isinstance(event, ev.LinkSilent):
            self._silent = event.error

    def _settle_job(self, outcome: StreamResult | Exception) -> None:
        fut = self._job
        if fut is None or fut.done():
            return
        if isinstance(outcome, StreamResult):
            fut.set_result(outcome)
        else:
            fut.set_exception(outcome)

    def _on_hold(self, event: ev.HoldChanged) -> None:
        if event.too_long:
            self.listener.on_warning(
                f"the job has been held for {event.held_s:.0f} s with nobody resuming or "
                f"canceling it (limit {event.hold_limit_s:g} s)",
                {"code": "hold_too_long", "held_s": round(event.held_s, 1),
                 "hold_limit_s": event.hold_limit_s})
        # The status carries held_s while the hold is too long: have it published again.
        self.listener.on_device_state(self.proto.device_state, {"alarm": self.proto.alarm})

    def status_fields(self) -> dict[str, Any]:
        held = self.proto.held_s
        if held is None:
            return {}
        return {"held_s": round(held, 1), "hold_limit_s": self.settings.hold_limit_s}

    def _on_status(self, report: StatusReport) -> None:
        now = time.monotonic()
        if now - self._last_telemetry >= 1.0 / self.profile.telemetry_hz:
            self._last_telemetry = now
            self.listener.on_telemetry(self._telemetry(report))
        if report.wco is not None:
            self._wco = report.wco

    def _telemetry(self, report: StatusReport) -> Telemetry:
        position = report.wpos
        if position is None and report.mpos is not None:
            wco = report.wco or self._wco
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

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> DeviceInfo:
        """Wait for the banner (a fresh connection resets an Arduino) or a status report."""
        deadline = time.monotonic() + self.profile.hello_timeout_s
        asked = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceTimeout(
                    f"no GRBL banner or status report on {self.link.name} within "
                    f"{self.profile.hello_timeout_s:g} s"
                )
            data = await self._read_with_timeout(min(remaining, 0.5))
            seen = self.proto.reports
            self._apply(self.proto.feed(data or b"", time.monotonic()))
            if self._hello is not None or self.proto.reports > seen:
                break
            if not asked:
                # No banner yet: the board may already be running (no reset on open). Ask.
                self._apply(self.proto.query(time.monotonic()))
                asked = True
        self.info = DeviceInfo(firmware="grbl", version=self._hello or "")
        return self.info

    async def _read_with_timeout(self, timeout: float) -> bytes | None:
        try:
            return await wait_within(self.link.read(), timeout)
        except TimeoutError:
            return None

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
            self.proto.set_rx_buffer(reported)
            caps["rx_buffer_bytes"] = min(reported, self.settings.rx_buffer_bytes)
            caps["options"] = parts[0]
        motion = await self._read_motion_settings()
        if motion is not None:
            caps["motion"] = motion
        self.info = DeviceInfo(firmware="grbl", version=version, capabilities=caps)
        return self.info

    async def _read_motion_settings(self) -> dict[str, Any] | None:
        """``$$``: the machine's own rates, accelerations, junction deviation and arc tolerance
        (what the time estimate plans with). None if the machine does not give them: a board
        that refuses ``$$`` still runs jobs, only without estimates."""
        try:
            feedback = await self.command("$$")
        except DeviceLost:
            raise  # the link is gone: not a board without settings
        except DeviceError as exc:
            log.info("no $$ settings from the machine (%s): jobs get no time estimate", exc)
            return None
        values: dict[int, float] = {}
        for line in feedback:
            number, _, value = line[1:].partition("=")
            try:
                values[int(number)] = float(value)
            except ValueError:
                continue
        needed = (110, 111, 112, 120, 121, 122, 11, 12)
        if not all(n in values for n in needed):
            return None
        return {"max_rate_mm_min": [values[110], values[111], values[112]],
                "accel_mm_s2": [values[120], values[121], values[122]],
                "junction_deviation_mm": values[11], "arc_tolerance_mm": values[12]}

    async def run(self) -> None:
        await run_together(self._read_loop(), self._ticker())

    async def _read_loop(self) -> None:
        self.link.set_receiver(self._on_bytes)
        try:
            await self.link.wait_lost()
        except DeviceError as exc:
            self._settle_job(exc)
            raise
        finally:
            self.link.set_receiver(None)

    def _on_bytes(self, data: bytes) -> None:
        try:
            self._apply(self.proto.feed(data, time.monotonic()))
            hold = self.proto.read_hold_s()
            if hold:
                self.link.hold_reads(hold)
        except DeviceError as exc:  # a write failed: the link is gone
            self._settle_job(exc)
        except Exception:  # a bug must not kill the event loop's reader callback
            log.exception("handling GRBL output failed")

    async def _ticker(self) -> None:
        while True:
            out = self.proto.tick(time.monotonic())
            self._tick_at = (out.wake_at if out.wake_at is not None
                             else time.monotonic() + 1.0 / self.settings.poll_hz)
            self._apply(out)
            if self._silent is not None:
                raise self._silent
            self._tick_wake.clear()
            await wait_event(self._tick_wake, max(0.0, self._tick_at - time.monotonic()))

    # -- jobs and system lines -------------------------------------------------------------

    async def command(self, line: str, timeout: float | None = None) -> list[str]:
        """Send one system line and wait for its ``ok``; returns the feedback lines."""
        fut: asyncio.Future[ev.CommandDone | None] = asyncio.get_running_loop().create_future()
        token, out = self.proto.command(line, time.monotonic())
        self._commands[token] = fut
        self._apply(out)
        try:
            done = await wait_within(fut, timeout or self.settings.response_timeout_s)
        except TimeoutError:
            raise DeviceTimeout(f"GRBL did not answer {line!r}") from None
        finally:
            self._commands.pop(token, None)
        if done is None:
            raise DeviceError(f"GRBL was reset before answering {line!r}")
        if done.error is not None:
            raise DeviceError(
                f"GRBL answered {line!r} with error:{done.error} ({error_text(done.error)})",
                device_code=f"error:{done.error}",
            )
        return list(done.feedback)

    async def stream(
        self, lines: Sequence[str], on_progress: ProgressCallback, *, start_index: int = 0
    ) -> StreamResult:
        self.require_ready()
        fut: asyncio.Future[StreamResult] = asyncio.get_running_loop().create_future()
        self._job, self._on_progress = fut, on_progress
        self._acked = start_index
        try:
            self._apply(self.proto.start_job(lines, time.monotonic(), start_index=start_index))
            return await fut
        finally:
            self._job = self._on_progress = None
            if self.proto.job is not None:  # this task was cancelled
                self.proto.abandon_job()

    async def _fresh_status(self) -> bool:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._fresh.append(fut)
        self._apply(self.proto.ask_fresh_status(time.monotonic()))
        return await fut

    async def check_ready(self) -> Readiness:
        """``ready_for_job`` on a status report taken now, not the last poll's."""
        if self._estop_latched:
            return Readiness.ESTOP
        if not await self._fresh_status():
            return Readiness.DEVICE_TIMEOUT
        return self.ready_for_job

    @property
    def device_state(self) -> str:
        return self.proto.device_state

    @property
    def ready_for_job(self) -> Readiness:
        if self._estop_latched:
            return Readiness.ESTOP
        if self.proto.alarm is not None:
            return Readiness.DEVICE_ALARM
        if self.proto.idle_mode is not None:
            return Readiness.MACHINE_NOT_READY
        status = self.proto.status
        if status is not None and status.state == "Door":
            return Readiness.DOOR_OPEN
        return Readiness.READY

    # -- controls --------------------------------------------------------------------------

    async def _control(self, control: ev.Control, out: ev.Output) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._controls.setdefault(control, []).append(fut)
        self._apply(out)
        await fut

    async def pause(self) -> None:
        self._apply(self.proto.pause(time.monotonic()))

    async def resume(self) -> None:
        """``~`` once a fresh report shows the hold complete, again while reports say Hold."""
        await self._control(ev.Control.RESUME, self.proto.resume(time.monotonic()))

    async def cancel(self) -> None:
        """Feed hold, Hold:0, soft reset: the job stops with the machine's position kept."""
        await self._control(ev.Control.CANCEL, self.proto.cancel(time.monotonic()))

    async def estop(self) -> None:
        self._estop_latched = True
        self._apply(self.proto.estop(time.monotonic()))

    async def reset(self) -> None:
        await self._control(ev.Control.RESET, self.proto.reset(time.monotonic()))
        self._estop_latched = False

    async def unlock(self) -> None:
        """``$X``: only ever on an explicit request from a person at the station."""
        await self.command("$X")
        self.proto.clear_alarm()

