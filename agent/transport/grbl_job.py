"""One GRBL job's bookkeeping for :class:`~agent.transport.grbl_stream.GrblStream`: what is in
flight (program lines as bare indexes, the ``G4P0`` fence, system lines), and the lost-reply
rule."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.errors import DeviceError, DeviceTimeout

_DWELL = re.compile(rb"G0*4(?![0-9.]).*?P([0-9]*\.?[0-9]+)")


def dwell_seconds(line: bytes) -> float:
    """Seconds a normalised line dwells (GRBL's ``G4 P`` is in seconds), else 0."""
    m = _DWELL.search(line)
    return float(m.group(1)) if m else 0.0


class Fence:
    """The job's ``G4P0`` in the in-flight FIFO (program lines are bare ints: their index)."""


@dataclass
class Command:
    token: int
    feedback: list[str] = field(default_factory=list)


InFlight = int | Fence | Command


@dataclass
class Job:
    encoded: list[bytes]
    index: int
    progress_step: int
    reported: int
    fence: Fence = field(default_factory=Fence)
    fence_sent: bool = False
    warnings: list[dict[str, Any]] = field(default_factory=list)
    failure: DeviceError | None = None
    # FINAL_STATUS: the report count when the fence was answered, and when.
    fence_mark: int = 0
    fence_at: float = 0.0



def lost_reply(job: Job, in_flight: Iterable[InFlight], quiet_s: float,
               timeout_s: float) -> DeviceTimeout | None:
    """GRBL sits Idle while lines stay unanswered ``quiet_s`` after its last reply or motion.

    A glitch on the wire (half a line of noise with no line end) can swallow an ``ok``; no
    answer will ever come for the line the host still counts, so without this the job would
    wait forever. The lost reply may have been an error, so the job cannot be called done: it
    fails with a clear code. A dwell (``G4 P<s>``) in flight legitimately keeps GRBL Idle
    without answering, so its seconds are allowed on top of the timeout.
    """
    entries = list(in_flight)
    dwell = sum(dwell_seconds(job.encoded[e]) for e in entries
                if type(e) is int and e < len(job.encoded))
    if quiet_s <= timeout_s + dwell:
        return None
    return DeviceTimeout(f"GRBL is idle but {len(entries)} line(s) sent to it were never "
                         f"answered in {quiet_s:.1f} s: a reply was lost on the serial line")
