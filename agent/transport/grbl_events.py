"""What :class:`~agent.transport.grbl_stream.GrblStream` hands back: its states, its events and
the bytes to write.

The stream never writes, sleeps or awaits; each call returns an :class:`Output` whose
``urgent`` bytes (GRBL's realtime commands, which GRBL picks out of the byte stream at once) go
to the port ahead of anything queued, ``write`` bytes (program and system lines) after, and
whose events the driver maps onto futures and :class:`~agent.drivers.base.DriverListener` calls.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from agent.errors import DeviceError
from agent.transport.grbl_flow import StatusReport


class JobPhase(enum.Enum):
    """Where the connection's one job is."""

    IDLE = "idle"  # no job
    SENDING = "sending"  # program lines (then the G4P0 fence) go out as the window allows
    PAUSED = "paused"  # feed hold asked for by a person: nothing more is fed
    FINAL_STATUS = "final_status"  # fence answered: waiting for a report written after it
    ABORTING = "aborting"  # failed: feed hold, Hold:0, soft reset, then the failure is told


class Control(enum.Enum):
    """A procedure that spans several replies; at most one runs at a time."""

    RESUME = "resume"  # Hold:0 from a fresh report, ``~``, then reports out of Hold
    CANCEL = "cancel"  # ``!``, Hold:0 from a fresh report, soft reset, banner
    ABORT = "abort"  # the same as CANCEL, started by the stream after a job's failure
    RESET = "reset"  # soft reset, banner (an operator's reset after an e-stop)
    ESTOP = "estop"  # ``!`` and soft reset in one write: immediate, no waiting


class Step(enum.Enum):
    """What the running :class:`Control` waits for."""

    HOLD_WAIT = "hold_wait"  # a fresh report showing Hold:0 (or Idle/Alarm)
    LEAVE_HOLD_WAIT = "leave_hold_wait"  # after ``~``: a report not in Hold
    RESET_WAIT = "reset_wait"  # after 0x18: GRBL's banner


@dataclass(frozen=True)
class Progress:
    """The first ``lines`` program lines have been answered ``ok`` (or an error let through)."""

    lines: int


@dataclass(frozen=True)
class JobDone:
    lines: int
    warnings: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class JobFailed:
    error: DeviceError


@dataclass(frozen=True)
class JobStopped:
    """Cancel or e-stop; ``code`` is ``canceled`` or ``estop``."""

    code: str


@dataclass(frozen=True)
class CommandDone:
    """A system line (``$I``, ``$X``) was answered; ``error`` is GRBL's error code if any."""

    token: int
    feedback: tuple[str, ...]
    error: int | None = None


@dataclass(frozen=True)
class CommandDropped:
    """A reset or alarm emptied GRBL's buffer before the line was answered."""

    token: int


@dataclass(frozen=True)
class ControlDone:
    control: Control


@dataclass(frozen=True)
class ControlFailed:
    control: Control
    error: DeviceError


@dataclass(frozen=True)
class StatusSeen:
    report: StatusReport


@dataclass(frozen=True)
class FreshStatus:
    """Answer to :meth:`GrblStream.ask_fresh_status`: a report came after the ask, or not."""

    ok: bool


@dataclass(frozen=True)
class DeviceState:
    """GRBL's state word changed (``Idle``, ``Run``, ``Hold:0``, ``Alarm``...)."""

    state: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BannerSeen:
    version: str


@dataclass(frozen=True)
class Notice:
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HoldChanged:
    """A job's hold crossed the profile's ``hold_limit_s`` (``too_long``) or ended."""

    too_long: bool
    held_s: float
    hold_limit_s: float


@dataclass(frozen=True)
class LinkSilent:
    """Nothing at all came from GRBL for ``response_timeout_s``: the link is as good as lost."""

    error: DeviceError


Event = (Progress | JobDone | JobFailed | JobStopped | CommandDone | CommandDropped | ControlDone
         | ControlFailed | StatusSeen | FreshStatus | DeviceState | BannerSeen | Notice
         | HoldChanged | LinkSilent)


@dataclass(slots=True)
class Output:
    """Bytes to write and what happened; ``wake_at``: call ``tick`` by then at the latest
    (None: no sooner than the stream last asked)."""

    urgent: bytes = b""
    write: bytes = b""
    events: list[Event] = field(default_factory=list)
    wake_at: float | None = None
