"""systemd's readiness and watchdog protocol, without any dependency.

sd_notify is one datagram of ``KEY=value`` lines sent to the AF_UNIX socket named by
``$NOTIFY_SOCKET``; a leading ``@`` there means Linux's abstract namespace (a NUL byte first).
When the variable is unset (run by hand, in tests, under another supervisor) every call is a
no-op, so callers never branch on how they were started.

The watchdog must prove *progress*, not merely that a timer thread is alive: a
:class:`ProgressWatchdog` pings only while every registered part of the agent (the event loop
itself, the serial reader, ...) has reported a beat recently. A stalled event loop stops the
pinger task; a wedged serial reader stops beating; either way systemd sees no ``WATCHDOG=1``
within ``WatchdogSec`` and restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends state changes to systemd; a no-op when not started by systemd with Type=notify."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; True if it was sent."""
        if self._address is None or not fields:
            return False
        payload = "\n".join(fields).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(payload)
        except OSError as exc:
            # systemd gone or socket unreachable: nothing the agent can do about it, and its
            # real work must go on.
            log.warning("sd_notify to %r failed: %s", self._address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        fields = ["READY=1"]
        if status is not None:
            fields.append(f"STATUS={_one_line(status)}")
        return self.notify(*fields)

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        fields = ["STOPPING=1"]
        if status is not None:
            fields.append(f"STATUS={_one_line(status)}")
        return self.notify(*fields)

    def watchdog_interval(self) -> float | None:
        """systemd's WatchdogSec in seconds, or None when no watchdog is armed for this process.

        Ping at half this interval or more often (sd_watchdog_enabled(3)).
        """
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        if usec <= 0:
            return None
        if self._watchdog_pid:
            try:
                if int(self._watchdog_pid) != os.getpid():
                    return None
            except ValueError:
                return None
        return usec / 1_000_000


def _socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode("utf-8")
    if value.startswith("/"):
        return value
    # Anything else (vsock addresses of VMs) is not something a Pi agent is started with.
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


class ProgressWatchdog:
    """Pings systemd's watchdog only while every registered part keeps beating.

    Register each part that must make progress with a deadline: the agent's event loop is
    covered by running :meth:`run` as a task on it; a serial reader calls ``beat("serial")``
    on every chunk it reads or every reopen attempt, and the status poller makes the device
    answer regularly, so a reader that stops beating is wedged. Parts can be removed when they
    legitimately stop (the serial device is configured off, say).
    """

    def __init__(
        self,
        notifier: Notifier,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._notifier = notifier
        self._clock = clock
        self._deadlines: dict[str, float] = {}
        self._last_beat: dict[str, float] = {}

    def register(self, part: str, max_silence_s: float) -> None:
        if max_silence_s <= 0:
            raise ValueError("max_silence_s must be positive")
        self._deadlines[part] = max_silence_s
        self._last_beat[part] = self._clock()

    def unregister(self, part: str) -> None:
        self._deadlines.pop(part, None)
        self._last_beat.pop(part, None)

    def beat(self, part: str) -> None:
        if part in self._deadlines:
            self._last_beat[part] = self._clock()

    def stale_parts(self) -> list[str]:
        now = self._clock()
        return sorted(
            part
            for part, limit in self._deadlines.items()
            if now - self._last_beat[part] > limit
        )

    def ping_if_healthy(self) -> bool:
        """Send WATCHDOG=1 if no part is stale; True if it was sent."""
        stale = self.stale_parts()
        if stale:
            log.error("watchdog withheld: no progress from %s", ", ".join(stale))
            return False
        return self._notifier.watchdog()

    async def run(self, interval_s: float | None = None) -> None:
        """Ping at half the watchdog interval until cancelled; returns at once if none is set."""
        interval = interval_s if interval_s is not None else self._notifier.watchdog_interval()
        if interval is None:
            return
        period = interval / 2
        while True:
            self.ping_if_healthy()
            await asyncio.sleep(period)
