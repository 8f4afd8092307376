"""Keeps the station's machine connected: opens the port, handshakes, reconnects when it returns."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from agent.aio import run_together
from agent.drivers.base import DeviceInfo, DriverListener, MachineDriver, Telemetry
from agent.errors import DeviceError, DeviceLost, DeviceTimeout
from agent.families import create_driver, serial_handshake
from agent.profiles import Profile
from agent.transport.link import ByteLink
from agent.transport.serial_port import SerialLink
from agent.transport.trace import SerialTrace

log = logging.getLogger(__name__)

LinkOpener = Callable[[], Awaitable[ByteLink]]


class DeviceEvents(DriverListener):
    """What the device manager reports upward (implemented by the station)."""

    def on_device_online(self, info: DeviceInfo) -> None: ...

    def on_device_offline(self, reason: str) -> None: ...


class _BeatingLink:
    """A link that reports every read, so the watchdog knows the serial reader is alive."""

    def __init__(self, inner: ByteLink, beat: Callable[[], None]) -> None:
        self._inner = inner
        self._beat = beat

    @property
    def name(self) -> str:
        return self._inner.name

    async def read(self) -> bytes:
        data = await self._inner.read()
        self._beat()
        return data

    def set_receiver(self, receiver: Callable[[bytes], None] | None) -> None:
        if receiver is None:
            self._inner.set_receiver(None)
            return

        def beating(data: bytes) -> None:
            self._beat()
            receiver(data)

        self._inner.set_receiver(beating)

    async def wait_lost(self) -> None:
        await self._inner.wait_lost()

    def hold_reads(self, seconds: float) -> None:
        self._inner.hold_reads(seconds)

    def write(self, data: bytes, *, urgent: bool = False) -> None:
        self._inner.write(data, urgent=urgent)

    async def drain(self) -> None:
        await self._inner.drain()

    def set_flow_paused(self, paused: bool) -> None:
        self._inner.set_flow_paused(paused)

    async def close(self) -> None:
        await self._inner.close()


class DeviceManager:
    def __init__(self, profile: Profile, opener: LinkOpener, events: DeviceEvents,
                 reopen_interval_s: float = 1.0, trace: SerialTrace | None = None) -> None:
        self.profile = profile
        self._opener = opener
        # The last bytes exchanged with the machine, kept across reconnects (the opener's
        # link records into it; see for_serial).
        self.trace = trace if trace is not None else SerialTrace()
        # Called on every byte chunk from the machine and every reopen attempt (watchdog).
        self.heartbeat: Callable[[], None] = lambda: None
        self.events = events
        self.reopen_interval_s = reopen_interval_s
        self.driver: MachineDriver | None = None
        self.info: DeviceInfo | None = None
        self.online = asyncio.Event()
        self.last_error: str | None = None
        # The trace goes to the log once per episode: a machine that never answers its hello
        # would otherwise dump it at every reopen.
        self._trace_logged = False

    def _beat(self) -> None:
        self.heartbeat()

    @classmethod
    def for_serial(cls, profile: Profile, port: str, baud: int | None, events: DeviceEvents,
                   reopen_interval_s: float = 1.0) -> DeviceManager:
        rtscts, xonxoff = serial_handshake(profile)
        trace = SerialTrace(port)

        async def opener() -> ByteLink:
            return await SerialLink.open(port, baud or profile.baud, rtscts=rtscts,
                                         xonxoff=xonxoff, trace=trace)

        return cls(profile, opener, events, reopen_interval_s, trace)

    async def run(self) -> None:
        announced_missing = False
        while True:
            self.heartbeat()
            try:
                # Looked up on each call: the watchdog may be attached after construction.
                link: ByteLink = _BeatingLink(await self._opener(), self._beat)
            except DeviceError as exc:
                if not announced_missing:
                    self.last_error = exc.message
                    self.events.on_device_offline(exc.message)
                    announced_missing = True
                await asyncio.sleep(self.reopen_interval_s)
                continue
            announced_missing = False
            try:
                await self._serve(link)
            except DeviceError as exc:
                self.last_error = exc.message
                log.warning("machine link ended: %s", exc.message)
                if not self._trace_logged:
                    why = "timeout" if isinstance(exc, DeviceTimeout) else "device lost"
                    log.warning("%s", self.trace.for_log(f"{why}: {exc.message}"))
                    self._trace_logged = True
            finally:
                self.driver = None
                self.online.clear()
                await link.close()
            self.events.on_device_offline(self.last_error or "device lost")
            announced_missing = True
            await asyncio.sleep(self.reopen_interval_s)

    async def _serve(self, link: ByteLink) -> None:
        driver = create_driver(self.profile, link, self.events)
        info = await driver.open()

        async def come_online() -> None:
            nonlocal info
            try:
                info = await driver.identify() or info
            except DeviceError as exc:
                log.warning("could not read build info: %s", exc.message)
            self.driver = driver
            self.info = info
            self.online.set()
            self._trace_logged = False
            self.events.on_device_online(info)
            await asyncio.Event().wait()  # until the driver's own task ends

        await run_together(driver.run(), come_online())
        raise DeviceLost("driver stopped")

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"online": self.online.is_set()}
        if self.info is not None:
            out["firmware"] = self.info.firmware
            if self.info.version:
                out["version"] = self.info.version
        if self.last_error and not self.online.is_set():
            out["error"] = self.last_error
        if self.driver is not None:
            out.update(self.driver.status_fields())
        return out


__all__ = ["DeviceEvents", "DeviceManager", "Telemetry"]
