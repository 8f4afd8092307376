"""HP-GL plotters and cutters over serial (HP 7475A, Roland CAMM-GL III and compatibles).

A thin I/O shell. A job's rules (budget queries, checks at pen-up points, OS bit 3, the final
drain, pause/cancel/e-stop, timeouts) live in the sans-I/O
:class:`~agent.transport.hpgl_stream.HpglStream`: this driver feeds it what the port reads,
ticks it when woken or at the time it asks, writes what it returns and turns its events into
progress callbacks, warnings, device state and exceptions. The byte budget and the one
outstanding query are :class:`~agent.transport.hpgl_flow.HpglFlow`'s. Outside jobs the driver
asks its own queries (open, reset, idle ``ESC.O`` polls), one at a time through the same flow.
On a failed job or a cancel it sends ``ESC.K`` (urgent, then again once the queue has
drained) and parks the pen: that wait on the port is I/O, so it stays here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from agent.aio import wait_event, wait_within
from agent.dialects.hpgl import resume_preamble
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
from agent.profiles.hpgl import UNITS_PER_MM, HpglFlowControl, HpglProfile
from agent.transport.hpgl_flow import (
    ABORT,
    IO_ERROR_BUFFER_OVERFLOW,
    BufferSize,
    ExtendedStatus,
    FlowSignal,
    FreeSpace,
    HpglError,
    HpglFlow,
    Identity,
    IoError,
    Position,
    Query,
    Reply,
    ReplyError,
    ReplyFramer,
    Status,
    escape,
)
from agent.transport.hpgl_stream import (
    Done,
    Event,
    Failed,
    FlowPaused,
    HpglStream,
    Notice,
    Progress,
    StatusSeen,
    Stopped,
)
from agent.transport.link import ByteLink

log = logging.getLogger(__name__)

# Lift the pen and put it (or the knife) away after an abort.
PARK = b"PU;SP0;"


class HpglDriver(MachineDriver):
    family = "hpgl"

    def __init__(self, link: ByteLink, listener: DriverListener, profile: HpglProfile) -> None:
        super().__init__(link, listener)
        self.profile = profile
        self.settings = profile.hpgl
        self._framer = ReplyFramer()
        self._flow = HpglFlow(
            self.settings.flow_control,
            capacity=self.settings.buffer_bytes,
            reserve=self.settings.reserve_bytes,
            wire_bytes_per_s=profile.baud / 10,
            wire_window=self.settings.wire_window_bytes,
        )
        self._wake = asyncio.Event()
        self._waiter: asyncio.Future[Reply] | None = None
        self._waiting_for: Query | None = None
        self._reading = False
        self._opened = False
        self._lost: DeviceLost | None = None
        self._streaming = False
        # The job's state machine while stream() runs (sans I/O: this class feeds it).
        self._job: HpglStream | None = None
        self._status_read = False
        self._line_at_query = 0
        self._ext: ExtendedStatus | None = None
        self._position: Position | None = None
        self._identity = ""
        self._device_state = ""

    # -- time and wake-ups -----------------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic()

    def _notify(self) -> None:
        self._wake.set()

    async def _sleep_until_woken(self, seconds: float) -> None:
        await wait_event(self._wake, seconds)

    # -- replies ---------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        job = self._job
        if job is not None and not job.finished:
            self._forward(job.feed(data, self._now()).events)
            self._notify()
            return
        for item in self._framer.feed(data):
            if isinstance(item, FlowSignal):
                if self.settings.flow_control is HpglFlowControl.XONXOFF:
                    self._flow.signal(item)
                    self.link.set_flow_paused(item is FlowSignal.XOFF)
                continue
            self._on_answer(item)
        self._notify()

    def _on_answer(self, text: str) -> None:
        if self._flow.outstanding is None:
            if text.strip():
                self.listener.on_warning("unexpected answer from the plotter", {"text": text})
            return
        try:
            query, reply = self._flow.reply(text, self._now(), self.settings.poll_interval_s)
        except ReplyError as exc:
            self.listener.on_warning("unreadable answer from the plotter", {"error": str(exc)})
            self._resolve_waiter(None, exc)
            return
        self._handle_reply(query, reply)
        self._resolve_waiter(query, reply)

    def _resolve_waiter(self, query: Query | None, result: Reply | Exception) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if query is not None and query is not self._waiting_for:
            return
        self._waiter = None
        if isinstance(result, Exception):
            waiter.set_exception(result)
        else:
            waiter.set_result(result)

    def _handle_reply(self, query: Query, reply: Reply) -> None:
        line = max(1, self._line_at_query)
        if isinstance(reply, IoError) and reply.code:
            code = "buffer_overflow" if reply.code == IO_ERROR_BUFFER_OVERFLOW else "device_error"
            self._record_error(DeviceError(
                f"plotter I/O error {reply.code}: {reply.text} (at or before line {line})",
                code=code, line=line, device_code=f"ESC.E{reply.code}",
            ))
        elif isinstance(reply, Status):
            self._status_read = True
        elif isinstance(reply, HpglError) and reply.code:
            self._record_error(DeviceError(
                f"plotter HP-GL error {reply.code}: {reply.text} (at or before line {line})",
                code="device_error", line=line, device_code=f"OE{reply.code}",
            ))
        elif isinstance(reply, ExtendedStatus):
            self._ext = reply
            self._report_state()
        elif isinstance(reply, Position):
            self._position = reply
        elif isinstance(reply, Identity):
            self._identity = reply.model

    def _record_error(self, error: DeviceError) -> None:
        # Outside a job (a job's answers go to its HpglStream): report, do not fail.
        self.listener.on_warning(error.message, {"code": error.code,
                                                 "device_code": error.device_code})

    def _forward(self, events: list[Event]) -> None:
        """A job's non-final events: device state, XON/XOFF, warnings."""
        for event in events:
            if isinstance(event, StatusSeen):
                self._ext = event.ext
                self._report_state()
            elif isinstance(event, FlowPaused):
                self.link.set_flow_paused(event.paused)
            elif isinstance(event, Notice):
                self.listener.on_warning(event.message, dict(event.detail))

    def _report_state(self) -> None:
        state = self._state_name()
        if state != self._device_state:
            self._device_state = state
            self.listener.on_device_state(state, {"extended_status": self._ext.bits
                                                  if self._ext else None})

    def _state_name(self) -> str:
        if self._lost is not None:
            return "lost"
        if self._estop_latched:
            return Readiness.ESTOP.value
        if self._ext is not None and self._ext.lever_up:
            return "lever_up"
        if self._ext is not None and self._ext.paused:
            return "paused"
        if self._streaming:
            return "hold" if self._job is not None and self._job.host_paused else "run"
        if self._ext is not None and not self._ext.buffer_empty:
            return "busy"
        return "idle"

    # -- queries ---------------------------------------------------------------------------

    def _send_query(self, query: Query) -> None:
        self._line_at_query = self._acked
        self._flow.query_sent(query, self._now())
        self.link.write(query.wire)

    def _query_timeout(self, query: Query) -> float:
        if query.immediate:
            return self.settings.response_timeout_s
        return self.settings.drain_timeout_s

    async def _ask(self, query: Query, limit_s: float | None = None) -> Reply:
        """Send one query and wait for its answer (outside a stream's own loop)."""
        timeout = limit_s if limit_s is not None else self._query_timeout(query)
        deadline = self._now() + timeout
        if not self._reading:
            return await self._ask_direct(query, deadline)
        while self._flow.outstanding is not None or self._waiter is not None:
            self._raise_if_lost()
            remaining = deadline - self._now()
            if remaining <= 0:
                raise DeviceTimeout(f"plotter busy answering; {query.name} not sent")
            self._wake.clear()
            await self._sleep_until_woken(min(remaining, 0.1))
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiter, self._waiting_for = waiter, query
        self._send_query(query)
        try:
            return await wait_within(waiter, max(0.0, deadline - self._now()))
        except TimeoutError:
            self._flow.forget_outstanding()
            raise DeviceTimeout(
                f"plotter did not answer {query.name} within {timeout:g} s"
            ) from None
        finally:
            if self._waiter is waiter:
                self._waiter = None

    async def _ask_direct(self, query: Query, deadline: float) -> Reply:
        """Before run() reads the link: read it here."""
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiter, self._waiting_for = waiter, query
        self._send_query(query)
        try:
            while not waiter.done():
                remaining = deadline - self._now()
                if remaining <= 0:
                    self._flow.forget_outstanding()
                    raise DeviceTimeout(f"plotter did not answer {query.name}")
                try:
                    data = await wait_within(self.link.read(), remaining)
                except TimeoutError:
                    continue
                self._feed(data)
            return waiter.result()
        finally:
            self._waiter = None

    async def _discard_input(self, quiet_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            while True:
                await wait_within(self.link.read(), quiet_s)
        self._framer.clear()

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> DeviceInfo:
        """Handshake: configure the handshake, clear old errors, read size and identity."""
        hello = self.profile.hello_timeout_s
        await self._discard_input(0.05)
        mode = self.settings.flow_control
        if mode is HpglFlowControl.XONXOFF:
            # XOFF below the threshold, XON char 17 (ESC.I); XOFF char 19 (ESC.N).
            self.link.write(escape("I", self.settings.xoff_threshold_bytes, None, 17))
            self.link.write(escape("N", None, 19))
        elif mode is HpglFlowControl.RTSCTS:
            # Bit 0 of ESC.@'s second parameter: hardwire (CTS) handshake on.
            self.link.write(escape("@", None, 1))
        stale = await self._ask(Query.IO_ERROR, hello)
        if isinstance(stale, IoError) and stale.code:
            self.listener.on_warning(
                f"plotter reported I/O error {stale.code} from before we connected: {stale.text}",
                {"device_code": f"ESC.E{stale.code}"},
            )
        size = await self._ask(Query.BUFFER_SIZE, hello)
        ext = await self._ask(Query.EXTENDED_STATUS, hello)
        assert isinstance(size, BufferSize)
        assert isinstance(ext, ExtendedStatus)
        if ext.buffer_empty:
            # Buffered queries would wait behind a leftover plot: only ask when it is empty.
            try:
                await self._ask(Query.IDENTITY, hello)
            except DeviceTimeout:
                # Some cutters ignore OI; (and flag HP-GL error 1, cleared below).
                self.listener.on_warning("plotter does not answer OI; (identity unknown)", {})
            status = await self._ask(Query.STATUS, hello)  # reading OS clears "initialised"
            if isinstance(status, Status) and status.error:
                await self._ask(Query.ERROR, hello)  # reading OE clears the error
        free = await self._ask(Query.FREE_SPACE, hello)
        assert isinstance(free, FreeSpace)
        self._opened = True
        self._report_state()
        return DeviceInfo(
            firmware=self._identity or "HP-GL",
            version="",
            capabilities={
                "buffer_bytes": self._flow.capacity,
                "device_buffer_bytes": size.bytes_total,
                "reserve_bytes": self._flow.reserve,
                "flow_control": mode.value,
                "buffer_empty": ext.buffer_empty,
            },
        )

    async def run(self) -> None:
        """Read the link until it dies; report telemetry; poll ESC.O while idle."""
        self._reading = True
        period = 1.0 / self.profile.telemetry_hz
        next_report = self._now()
        try:
            while True:
                timeout = max(0.0, next_report - self._now())
                try:
                    data = await wait_within(self.link.read(), timeout)
                except TimeoutError:
                    data = b""
                if data:
                    self._feed(data)
                now = self._now()
                if now >= next_report:
                    next_report = now + period
                    self._emit_telemetry()
                    if (not self._streaming and self._flow.outstanding is None
                            and self._waiter is None):
                        self._send_query(Query.EXTENDED_STATUS)
        except DeviceLost as exc:
            self._lost = exc
            self._notify()
            self._resolve_waiter(None, exc)
            raise
        finally:
            self._reading = False
            self._notify()

    def _emit_telemetry(self) -> None:
        extra: dict[str, Any] = {
            "buffer_bytes": self._flow.capacity,
            "flow_control": self.settings.flow_control.value,
        }
        if self._flow.last_free is not None:
            extra["buffer_free"] = self._flow.last_free
            extra["buffer_fill"] = round(
                1 - min(self._flow.last_free, self._flow.capacity) / self._flow.capacity, 3
            )
        if self._ext is not None:
            extra["extended_status"] = self._ext.bits
        if self._flow.paused_by_device:
            extra["xoff"] = True
        position = None
        if self._position is not None:
            position = (self._position.x / UNITS_PER_MM, self._position.y / UNITS_PER_MM)
        self.listener.on_telemetry(
            Telemetry(state=self._state_name(), position_mm=position, extra=extra)
        )

    # -- streaming -------------------------------------------------------------------------

    async def stream(
        self, lines: Sequence[str], on_progress: ProgressCallback, *, start_index: int = 0
    ) -> StreamResult:
        """Stream validated, normalised HP-GL lines (see ``prepare_hpgl_program``).

        HP-GL gives no per-instruction acknowledgement: ``on_progress(n)`` counts the
        instructions handed to the plotter (the first ``n`` lines). Returns once the plotter
        has answered an ``OS;`` sent after the last line and ``ESC.O`` reports its buffer
        empty. Raises DeviceError (``buffer_overflow``, ``device_error``, ``device_timeout``;
        ``line`` = 1-based index into ``lines`` of the last line sent before the failed
        check), JobStopped on cancel or e-stop, DeviceLost if the link dies.
        """
        self.require_ready("plotter")
        preamble = resume_preamble(lines, start_index) if start_index > 0 else []
        job = HpglStream(lines, self.settings, self._flow, self._framer, now=self._now(),
                         start_index=start_index, preamble=preamble,
                         status_read=self._status_read)
        self._job = job
        self._streaming = True
        self._acked = start_index
        self._report_state()
        try:
            return await self._run_job(job, on_progress)
        except DeviceError as exc:
            if not isinstance(exc, DeviceLost):
                await self._abort_device()
            raise
        finally:
            self._status_read = job.status_read
            self._streaming = False
            self._job = None
            self._report_state()

    async def _run_job(self, job: HpglStream, on_progress: ProgressCallback) -> StreamResult:
        """The I/O shell around the job: tick it, write what it says, forward its events."""
        while True:
            self._wake.clear()
            self._raise_if_lost()
            out = job.tick(self._now())
            if out.write:
                self.link.write(out.write)
            for event in out.events:
                if isinstance(event, Progress):
                    self._acked = event.lines
                    on_progress(event.lines)
                elif isinstance(event, Done):
                    return StreamResult(lines_done=event.lines)
                elif isinstance(event, Failed):
                    kind = DeviceTimeout if event.code == "device_timeout" else DeviceError
                    raise kind(event.message, code=event.code, line=event.line,
                               device_code=event.device_code)
                elif isinstance(event, Stopped):
                    raise StopReason(event.code).error()
            self._forward(out.events)
            wake_at = out.wake_at if out.wake_at is not None else self._now() + 0.25
            await self._sleep_until_woken(max(0.0, wake_at - self._now()))

    def _raise_if_lost(self) -> None:
        if self._lost is not None:
            raise DeviceLost(self._lost.message)

    async def _abort_device(self, *, park: bool = True) -> None:
        """ESC.K (discard the buffer), again once our queue has left, then park the pen."""
        with contextlib.suppress(DeviceLost, TimeoutError):
            self.link.write(ABORT, urgent=True)
            if self._flow.outstanding is not None and not self._flow.outstanding.immediate:
                self._flow.forget_outstanding()  # discarded with the buffer: no answer comes
            self._flow.reset_budget()
            await wait_within(self.link.drain(), self.settings.response_timeout_s)
            # Bytes still queued behind the first ESC.K are discarded by the second.
            self.link.write(ABORT)
            if park:
                self.link.write(PARK)
            await wait_within(self.link.drain(), self.settings.response_timeout_s)

    # -- controls --------------------------------------------------------------------------

    async def pause(self) -> None:
        """Stop feeding the plotter; what is already in its buffer (up to ~1 KB) still plots."""
        if self._job is not None:
            self._job.pause()
        self._report_state()
        self._notify()

    async def resume(self) -> None:
        if self._job is not None:
            self._job.resume()
        self._report_state()
        self._notify()

    async def cancel(self) -> None:
        """ESC.K (abort, discard the buffer), then pen up and ``SP0;``."""
        if self._job is not None:
            self._job.cancel()
        self._notify()
        await self._wait_stream_exit()
        await self._abort_device(park=True)
        await self._refresh_status()

    async def estop(self) -> None:
        """ESC.K ahead of anything queued; the plotter stays stopped until reset()."""
        self._estop_latched = True
        with contextlib.suppress(DeviceLost):
            self.link.write(ABORT, urgent=True)
        if self._job is not None:
            self._job.estop()
        self._notify()
        await self._wait_stream_exit()
        await self._abort_device(park=False)
        self._report_state()

    async def reset(self) -> None:
        """After an e-stop: discard the buffer, clear errors, ``IN;`` (pen up, defaults)."""
        self._raise_if_lost()
        self.link.write(ABORT, urgent=True)
        if self._flow.outstanding is not None and not self._flow.outstanding.immediate:
            self._flow.forget_outstanding()
        await self._ask(Query.IO_ERROR)
        self.link.write(b"IN;")
        self._flow.data_sent(3, self._now())
        status = await self._ask(Query.STATUS)
        if isinstance(status, Status) and status.error:
            await self._ask(Query.ERROR)
        self._estop_latched = False
        await self._refresh_status()

    async def _refresh_status(self) -> None:
        with contextlib.suppress(DeviceError):
            await self._ask(Query.EXTENDED_STATUS)
        self._report_state()

    async def _wait_stream_exit(self) -> None:
        while self._streaming:
            await self._sleep_until_woken(0.05)
            self._wake.clear()

    @property
    def ready_for_job(self) -> Readiness:
        if self._lost is not None:
            return Readiness.OFFLINE
        if not self._opened:
            return Readiness.NOT_OPEN
        if self._estop_latched:
            return Readiness.ESTOP
        if self._streaming:
            return Readiness.BUSY
        if self._ext is not None:
            if self._ext.lever_up:
                return Readiness.LEVER_UP
            if self._ext.paused:
                return Readiness.DEVICE_PAUSED
            if not self._ext.buffer_empty:
                return Readiness.DEVICE_BUSY
        return Readiness.READY
