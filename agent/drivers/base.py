"""The interface every machine driver offers to the job runner."""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.errors import DeviceError, JobStopped
from agent.transport.link import ByteLink


class Readiness(enum.Enum):
    """Whether a job may start on the machine now, and if not, why.

    The values are the reason codes the agent has always put on the wire (``machine_not_ready``
    warnings, ``failed`` events' ``code``): keep them stable.
    """

    READY = ""
    BUSY = "busy"  # a job is running on it
    ESTOP = "estop"  # latched until an operator's reset
    DEVICE_ALARM = "device_alarm"  # GRBL alarm: a person checks the machine and unlocks it
    MACHINE_NOT_READY = "machine_not_ready"  # a mode that executes nothing (GRBL $C, $SLP)
    DOOR_OPEN = "door_open"  # GRBL safety door
    DEVICE_TIMEOUT = "device_timeout"  # no fresh status report when asked just before a job
    OFFLINE = "device_lost"  # the link is gone
    NOT_OPEN = "not_open"  # handshake not done yet
    DEVICE_KILLED = "device_killed"  # Marlin halted (kill()): needs a reset
    LEVER_UP = "lever_up"  # HP-GL pinch-roller lever up
    DEVICE_PAUSED = "device_paused"  # HP-GL paused at the panel
    DEVICE_BUSY = "device_busy"  # HP-GL buffer still plotting

    @property
    def ready(self) -> bool:
        return self is Readiness.READY


class StopReason(enum.Enum):
    """Why a job was stopped on purpose; the value is the ``JobStopped`` code."""

    CANCEL = "canceled"
    ESTOP = "estop"

    def error(self) -> JobStopped:
        """What the job's stream raises: the same code and words on every family."""
        words = "job canceled" if self is StopReason.CANCEL else "job stopped by emergency stop"
        return JobStopped(words, code=self.value)


@dataclass(frozen=True)
class DeviceInfo:
    """What the machine said about itself during the handshake."""

    firmware: str
    version: str = ""
    capabilities: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Telemetry:
    """One reading of the machine's own state, published on the telemetry topic."""

    state: str
    position_mm: tuple[float, ...] | None = None
    feed_mm_min: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state}
        if self.position_mm is not None:
            out["position_mm"] = list(self.position_mm)
        if self.feed_mm_min is not None:
            out["feed_mm_min"] = self.feed_mm_min
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class StreamResult:
    """A job's program ran to the end and the machine has finished moving."""

    lines_done: int
    # Lines answered with an error that the profile chose to continue past.
    warnings: tuple[dict[str, Any], ...] = ()


class DriverListener(abc.ABC):
    """What a driver tells the agent outside of a running stream."""

    @abc.abstractmethod
    def on_telemetry(self, telemetry: Telemetry) -> None: ...

    @abc.abstractmethod
    def on_device_state(self, state: str, detail: dict[str, Any]) -> None:
        """The machine's coarse state changed (for example idle, run, hold, alarm)."""

    @abc.abstractmethod
    def on_warning(self, message: str, detail: dict[str, Any]) -> None: ...


class QuietListener(DriverListener):
    """Hears nothing: for a driver used alone (the doctor's hello, benchmarks)."""

    def on_telemetry(self, telemetry: Telemetry) -> None:
        pass

    def on_device_state(self, state: str, detail: dict[str, Any]) -> None:
        pass

    def on_warning(self, message: str, detail: dict[str, Any]) -> None:
        pass


ProgressCallback = Callable[[int], None]


class MachineDriver(abc.ABC):
    """One machine behind one byte link.

    Lifecycle: ``await open()`` performs the handshake; ``run()`` is the driver's own task
    (reading the link, polling status) and returns or raises ``DeviceLost`` when the link dies;
    ``stream()`` runs one job's lines while ``run()`` is active. ``pause``/``resume``/``cancel``/
    ``estop`` may be called while ``stream()`` runs; ``cancel`` and ``estop`` make it raise
    :class:`~agent.errors.JobStopped`.
    """

    family: str

    def __init__(self, link: ByteLink, listener: DriverListener) -> None:
        self.link = link
        self.listener = listener
        # Set by estop(), cleared only by an operator's reset(): no job starts in between.
        self._estop_latched = False
        # Program lines of the current (or last) stream the machine has acknowledged.
        self._acked = 0

    @property
    def estop_latched(self) -> bool:
        return self._estop_latched

    @abc.abstractmethod
    async def open(self) -> DeviceInfo: ...

    @abc.abstractmethod
    async def run(self) -> None: ...

    async def identify(self) -> DeviceInfo | None:
        """More about the machine once ``run()`` is active (GRBL: ``$I``); None: nothing more."""
        return None

    @abc.abstractmethod
    async def stream(
        self, lines: Sequence[str], on_progress: ProgressCallback, *, start_index: int = 0
    ) -> StreamResult:
        """Send ``lines``; ``on_progress(n)`` is called as the machine acknowledges them.

        Returns when the machine has executed every line. Raises ``DeviceError`` (with the
        1-based ``line``) on a firmware error, ``JobStopped`` on cancel or e-stop.
        """

    @property
    def lines_acknowledged(self) -> int:
        """Program lines of the current (or last) stream the machine has acknowledged."""
        return self._acked

    @abc.abstractmethod
    async def pause(self) -> None: ...

    @abc.abstractmethod
    async def resume(self) -> None: ...

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Stop the running job safely and leave the machine ready for the next one."""

    @abc.abstractmethod
    async def estop(self) -> None:
        """The firmware's hardest stop, sent ahead of anything queued."""

    @abc.abstractmethod
    async def reset(self) -> None:
        """Operator-requested reset after an e-stop; never unlocks an alarm by itself."""

    async def unlock(self) -> None:
        """Clear a machine alarm on a person's explicit request (GRBL ``$X``)."""
        raise DeviceError(f"a {self.family} machine has no alarm lock to clear",
                          code="not_applicable")

    @property
    @abc.abstractmethod
    def ready_for_job(self) -> Readiness:
        """Whether a job may start now, and if not, why."""

    def require_ready(self, what: str = "machine") -> None:
        """Raise ``DeviceError`` (code = the readiness value) unless a job may start now."""
        readiness = self.ready_for_job
        if not readiness.ready:
            raise DeviceError(f"{what} not ready: {readiness.value}", code=readiness.value)

    def status_fields(self) -> dict[str, Any]:
        """Driver facts for the status's ``device`` object (GRBL: ``held_s`` past the limit)."""
        return {}

    @property
    def device_state(self) -> str:
        """The machine's own state word, as last reported ("" when the driver has none)."""
        return ""

    async def check_ready(self) -> Readiness:
        """``ready_for_job`` checked against the machine now, just before a job starts.

        A driver whose view comes from periodic polling asks the machine once more (GRBL: a
        fresh status report), so a mode entered since the last poll is not missed.
        """
        return self.ready_for_job
