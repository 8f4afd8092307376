"""Marlin 2 driver: handshake, numbered streaming through :class:`MarlinFlow`, temperatures.

``open()`` reads the port directly (``run()`` is not running yet): it lets a board that resets on
open finish booting, pings with ``M110 N0`` until an ``ok`` comes, reads ``M115`` into
:class:`DeviceInfo` and switches on what the firmware offers: ``M155`` auto-report with
AUTOREPORT_TEMP (else ``M105`` polls), ``M113`` keepalive with BUSY_PROTOCOL. ADVANCED_OK is seen
on the format of the ``ok``.

While ``run()`` runs, every reply goes to the active job's flow, whose output is written at once
from the reader (no task switch per line); ``stream()`` only waits for the outcome and wakes at the
flow's deadlines to let it probe or time out. Between jobs, temperatures go to the listener.

``estop()`` writes ``M112`` as an urgent write (ahead of anything the link still queues) and the
flow sends nothing more. With EMERGENCY_PARSER the board acts on it on receipt; without it, it
runs when its turn in the command queue comes (the profile says what the board has).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from agent.aio import wait_event, wait_within
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
from agent.errors import DeviceError, DeviceLost, DeviceTimeout, StationAgentError
from agent.profiles.marlin import MarlinProfile
from agent.transport.link import ByteLink
from agent.transport.marlin_flow import (
    ErrorKind,
    ErrorReply,
    EventKind,
    FirmwareCaps,
    MarlinFlow,
    MarlinReply,
    MarlinReplyParser,
    OkReply,
    OtherReply,
    Phase,
    StartReply,
    TemperatureReply,
    UnknownCommandReply,
)

log = logging.getLogger(__name__)

ESTOP = b"M112\n"
BREAK_WAIT = b"M108\n"
# How long the board may stay quiet before the boot chatter is considered over.
_BOOT_QUIET_S = 0.3
# Each M110 ping waits this long for its ok before the next one goes out.
_PING_INTERVAL_S = 1.0
# The stream task checks the flow's clock at least this often.
_MAX_SLEEP_S = 0.25


def _telemetry(state: str, temps: dict[str, tuple[float, float | None]]) -> Telemetry:
    names = {"T": "hotend", "B": "bed", "C": "chamber", "P": "probe"}
    extra: dict[str, Any] = {}
    for key, (current, target) in temps.items():
        name = names.get(key[0], key) + (key[1:] if len(key) > 1 else "")
        extra[f"{name}_c"] = current
        if target is not None:
            extra[f"{name}_target_c"] = target
    return Telemetry(state=state, extra=extra)


class MarlinDriver(MachineDriver):
    family = "marlin"

    def __init__(self, link: ByteLink, listener: DriverListener, profile: MarlinProfile) -> None:
        super().__init__(link, listener)
        self.profile = profile
        self.settings = profile.marlin
        self._parser = MarlinReplyParser()
        self.caps = FirmwareCaps()
        self.info = DeviceInfo(firmware="marlin")
        self._flow: MarlinFlow | None = None
        self._on_progress: ProgressCallback | None = None
        self._outcome: StreamResult | StationAgentError | None = None
        self._wake = asyncio.Event()
        self._stream_done = asyncio.Event()
        self._stream_done.set()
        self._warnings: list[dict[str, Any]] = []
        self._killed = False
        self._lost: DeviceLost | None = None
        self._device_state = "unknown"
        self._autoreport = False
        self._ok_waiter: asyncio.Future[None] | None = None
        # An unnumbered M105 poll whose "ok T:" has not come yet: a job must not start then,
        # or that answer would be taken for the job's own M105.
        self._poll_owed = asyncio.Event()
        self._poll_answered = asyncio.Event()
        self._poll_sent_at = 0.0
        self._starting = False

    # -- handshake -------------------------------------------------------------------------

    async def _read_for(self, wait_s: float) -> list[MarlinReply]:
        try:
            data = await wait_within(self.link.read(), max(0.0, wait_s))
        except TimeoutError:
            return []
        return self._parser.feed(data)

    async def _quiet(self, quiet_s: float, limit_s: float) -> None:
        """Read and discard until the board has been quiet for ``quiet_s`` (at most ``limit_s``)."""
        end = time.monotonic() + limit_s
        while (left := end - time.monotonic()) > 0:
            replies = await self._read_for(min(quiet_s, left))
            if not replies:
                return
            for reply in replies:
                self._observe_idle(reply)

    async def _request(self, line: str, wait_s: float) -> list[MarlinReply]:
        """Send an unnumbered command and collect replies up to its ok."""
        self.link.write(line.encode("ascii") + b"\n")
        got: list[MarlinReply] = []
        end = time.monotonic() + wait_s
        while (left := end - time.monotonic()) > 0:
            for reply in await self._read_for(left):
                got.append(reply)
                if isinstance(reply, OkReply) and reply.temperatures is None:
                    return got
                if isinstance(reply, ErrorReply) and reply.kind is ErrorKind.KILLED:
                    self._killed = True
                    raise DeviceError(f"firmware: {reply.text}", code="device_killed")
        raise DeviceTimeout(f"no ok for {line!r} within {wait_s:g} s", code="device_timeout")

    async def open(self) -> DeviceInfo:
        settings = self.settings
        # A board that resets when the port opens prints its boot messages first.
        first = await self._read_for(settings.boot_wait_s) if settings.boot_wait_s else []
        for reply in first:
            self._observe_idle(reply)
        if first:
            await self._quiet(_BOOT_QUIET_S, settings.boot_wait_s + 5.0)
        deadline = time.monotonic() + self.profile.hello_timeout_s
        ping_ok: OkReply | None = None
        while ping_ok is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceTimeout(
                    f"no answer from a Marlin board on {self.link.name} within "
                    f"{self.profile.hello_timeout_s:g} s",
                    code="device_timeout",
                )
            with contextlib.suppress(DeviceTimeout):
                replies = await self._request("M110 N0", min(_PING_INTERVAL_S, left))
                ping_ok = next(r for r in replies if isinstance(r, OkReply))
        # Late answers to earlier pings must not be taken for the next command's ok.
        await self._quiet(0.2, 2.0)
        timeout = settings.response_timeout_s
        for reply in await self._request("M115", timeout):
            if isinstance(reply, OtherReply):
                self.caps.take_line(reply.text)
        self.caps.advanced_ok = ping_ok.queue_free is not None
        if self.caps.has("AUTOREPORT_TEMP"):
            await self._request(f"M155 S{settings.temperature_report_s}", timeout)
            self._autoreport = True
        if self.caps.has("BUSY_PROTOCOL"):
            await self._request(f"M113 S{settings.keepalive_interval_s}", timeout)
        await self._quiet(0.1, 1.0)
        fields = self.caps.fields
        capabilities: dict[str, Any] = dict(self.caps.capabilities)
        capabilities["ADVANCED_OK"] = self.caps.advanced_ok
        capabilities["rx_buffer_bytes"] = settings.rx_buffer_bytes
        capabilities["command_queue"] = settings.command_queue
        if "MACHINE_TYPE" in fields:
            capabilities["machine_type"] = fields["MACHINE_TYPE"]
        name = fields.get("FIRMWARE_NAME", "Marlin")
        self.info = DeviceInfo(
            firmware="marlin",
            version=name,
            capabilities=capabilities,
        )
        self._device_state = "idle"
        self.listener.on_device_state("idle", {"firmware": name})
        return self.info

    # -- the driver's task -----------------------------------------------------------------

    async def run(self) -> None:
        """Read the link until it dies (raises DeviceLost) or the task is cancelled."""
        poll = asyncio.create_task(self._poll_loop(), name="marlin-temperature-poll")
        try:
            await self._read_loop()
        finally:
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poll

    async def _read_loop(self) -> None:
        # Push mode: replies are handled in the link's reader callback, and the window refilled
        # there, without a task switch per reply.
        self.link.set_receiver(self._on_bytes)
        try:
            await self.link.wait_lost()
        except DeviceLost as exc:
            self._lost = exc
            self._device_state = "lost"
            self.listener.on_device_state("lost", {"message": exc.message})
            if self._flow is not None:
                self._flow.abort()
                self._finish(exc)
            raise
        finally:
            self.link.set_receiver(None)

    def _on_bytes(self, data: bytes) -> None:
        try:
            now = time.monotonic()
            flow = self._flow
            replies = self._parser.feed(data)
            if flow is not None and flow.phase in (Phase.SYNCING, Phase.STREAMING):
                # A kill fails the flow (FAILED, device_killed): _pump marks the board.
                flow.handle_all(replies, now)
                self._pump(flow)
            else:
                for reply in replies:
                    self._observe_idle(reply)
        except DeviceLost:
            pass  # the link reports it through wait_lost()
        except Exception:  # a bug must not kill the event loop's reader callback
            log.exception("handling Marlin output failed")

    async def _poll_loop(self) -> None:
        interval = 1.0 / self.profile.telemetry_hz
        while True:
            await asyncio.sleep(interval)
            if self._autoreport or self._killed or self._estop_latched:
                continue
            flow = self._flow
            if flow is None:
                now = time.monotonic()
                if self._poll_owed.is_set() and now - self._poll_sent_at > (
                    self.settings.response_timeout_s
                ):
                    self._poll_owed.clear()  # that answer was lost
                if not self._starting and not self._poll_owed.is_set():
                    self._poll_owed.set()
                    self._poll_sent_at = now
                    self.link.write(b"M105\n")
            elif flow.phase is Phase.STREAMING:
                flow.poll_temperature()
                self._pump(flow)

    def _observe_idle(self, reply: MarlinReply) -> None:
        waiter = self._ok_waiter
        if (
            waiter is not None
            and isinstance(reply, OkReply)
            and reply.temperatures is None
            and not waiter.done()
        ):
            waiter.set_result(None)
        if isinstance(reply, OkReply) and reply.temperatures is not None:
            self._poll_owed.clear()
            self._poll_answered.set()
        temps = reply.temperatures if isinstance(reply, (TemperatureReply, OkReply)) else None
        if temps is not None:
            self.listener.on_telemetry(_telemetry(self._device_state, temps))
        elif isinstance(reply, ErrorReply):
            if reply.kind is ErrorKind.KILLED:
                self._set_killed()
            elif reply.kind is ErrorKind.OTHER:
                self.listener.on_warning(f"firmware: {reply.text}", {"code": "device_error"})
        elif isinstance(reply, StartReply) and self._device_state not in ("unknown",):
            self.listener.on_warning("the firmware restarted", {"code": "device_restarted"})
        elif isinstance(reply, UnknownCommandReply):
            self.listener.on_warning(
                f"firmware: unknown command {reply.command!r}",
                {"code": "unknown_command", "command": reply.command},
            )

    def _set_killed(self) -> None:
        if not self._killed:
            self._killed = True
            self._device_state = "killed"
            self.listener.on_device_state("killed", {})

    # -- streaming -------------------------------------------------------------------------

    def _pump(self, flow: MarlinFlow) -> None:
        """Write what the flow wants sent and pass its events on."""
        data = flow.output()
        if data:
            self.link.write(data)
        acked = flow.acknowledged
        if acked != self._acked:
            self._acked = acked
            if self._on_progress is not None:
                self._on_progress(acked)
        if not flow.has_events:
            return
        for event in flow.take_events():
            kind = event.kind
            if kind is EventKind.TELEMETRY and event.temperatures is not None:
                self.listener.on_telemetry(_telemetry(self._device_state, event.temperatures))
            elif kind is EventKind.WARNING:
                self._warnings.append(dict(event.detail, message=event.message))
                self.listener.on_warning(event.message, dict(event.detail))
            elif kind is EventKind.DONE:
                self._finish(StreamResult(self._acked, tuple(self._warnings)))
            elif kind is EventKind.STOPPED:
                self._finish(StopReason.CANCEL.error())
            elif kind is EventKind.FAILED and event.error is not None:
                if event.error.code == "device_killed":
                    self._set_killed()
                self._finish(event.error)

    def _finish(self, outcome: StreamResult | StationAgentError) -> None:
        if self._outcome is None:
            self._outcome = outcome
            self._wake.set()

    async def stream(
        self, lines: Sequence[str], on_progress: ProgressCallback, *, start_index: int = 0
    ) -> StreamResult:
        self.require_ready()
        self._starting = True
        try:
            if self._poll_owed.is_set():
                self._poll_answered.clear()
                await wait_event(self._poll_answered, self.settings.response_timeout_s)
                self._poll_owed.clear()
        finally:
            self._starting = False
        flow = MarlinFlow(
            lines, self.settings, self.caps, start_index=start_index, now=time.monotonic()
        )
        self._flow = flow
        self._on_progress = on_progress
        self._outcome = None
        self._warnings = []
        self._acked = start_index
        self._wake.clear()
        self._stream_done.clear()
        self._device_state = "run"
        self.listener.on_device_state("run", {})
        try:
            self._pump(flow)
            while self._outcome is None:
                deadline = flow.next_deadline()
                # Capped: an answer to a probe can bring the deadline closer while we sleep.
                timeout = _MAX_SLEEP_S
                if deadline is not None:
                    timeout = min(timeout, max(0.0, deadline - time.monotonic()))
                await wait_event(self._wake, timeout)
                self._wake.clear()
                if self._outcome is None:
                    flow.tick(time.monotonic())
                    self._pump(flow)
            outcome = self._outcome
            if isinstance(outcome, StreamResult):
                return outcome
            raise outcome
        finally:
            flow.abort()
            self._flow = None
            self._on_progress = None
            if self._device_state == "run":
                self._device_state = "idle"
                self.listener.on_device_state("idle", {})
            self._stream_done.set()

    @property
    def flow(self) -> MarlinFlow | None:
        """The running job's protocol state (None between jobs)."""
        return self._flow

    @property
    def device_state(self) -> str:
        return self._device_state

    @property
    def ready_for_job(self) -> Readiness:
        if self._lost is not None:
            return Readiness.OFFLINE
        if self._estop_latched:
            return Readiness.ESTOP
        if self._killed:
            return Readiness.DEVICE_KILLED
        if self._flow is not None:
            return Readiness.BUSY
        return Readiness.READY

    # -- operator actions ------------------------------------------------------------------

    async def pause(self) -> None:
        flow = self._flow
        if flow is None:
            return
        flow.pause()
        if (
            self.settings.pause_breaks_heat_wait
            and self.caps.has("EMERGENCY_PARSER")
            and flow.heat_wait_in_flight
        ):
            # Acted on at receipt; the line itself is queued as a no-op and earns a plain ok.
            flow.expect_unnumbered_ok()
            self.link.write(BREAK_WAIT, urgent=True)
        self._device_state = "hold"
        self.listener.on_device_state("hold", {})

    async def resume(self) -> None:
        flow = self._flow
        if flow is None:
            return
        flow.resume()
        self._device_state = "run"
        self.listener.on_device_state("run", {})
        self._pump(flow)

    async def cancel(self) -> None:
        flow = self._flow
        if flow is None:
            return
        flow.cancel()
        self._pump(flow)
        limit = self.settings.response_timeout_s + max(
            self.settings.long_commands.m400, self.settings.response_timeout_s
        )
        await wait_event(self._stream_done, limit)

    async def estop(self) -> None:
        self.link.write(ESTOP, urgent=True)
        self._estop_latched = True
        self._device_state = Readiness.ESTOP.value
        flow = self._flow
        if flow is not None:
            flow.abort()
            self._finish(StopReason.ESTOP.error())
        self.listener.on_device_state(Readiness.ESTOP.value, {})

    async def reset(self) -> None:
        """``M999`` and a fresh ``M110`` ping. After M112 Marlin is halted (kill()) and answers
        nothing until its reset button or a power cycle: then this raises ``device_killed``."""
        if self._flow is not None:
            raise DeviceError("a job is running", code="busy")
        try:
            # One at a time, each waiting for its own ok: no answer may be left owed when the
            # next job's M110 waits for a plain ok.
            await self._request_during_run("M999", self.settings.response_timeout_s)
            await self._request_during_run("M110 N0", self.settings.response_timeout_s)
        except DeviceTimeout:
            raise DeviceError(
                "the board does not answer after the e-stop: press its reset button or power "
                "cycle it", code="device_killed",
            ) from None
        self._estop_latched = False
        self._killed = False
        self._device_state = "idle"
        self.listener.on_device_state("idle", {})

    async def _request_during_run(self, line: str, wait_s: float) -> None:
        """Send an unnumbered command while run() reads, and wait for a plain ok."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ok_waiter = waiter
        self.link.write(line.encode("ascii") + b"\n")
        try:
            await wait_within(waiter, wait_s)
        except TimeoutError:
            raise DeviceTimeout(f"no ok for {line!r}", code="device_timeout") from None
        finally:
            self._ok_waiter = None
