"""The rules of GRBL's multi-reply procedures (resume, cancel, abort, reset), as pure decisions.

:class:`~agent.transport.grbl_stream.GrblStream` keeps one :class:`Procedure` and, on each
status report or tick, asks :func:`on_report` or :func:`overdue` what to do next. The rules
(gnea/grbl ``protocol.c``):

- A cycle start ``~`` is taken only from a completed hold (``Hold:0``); during ``Hold:1`` it is
  ignored. A soft reset during motion (Run, ``Hold:1``) raises ``ALARM:3``; at rest it does not.
  So resume and cancel both wait for ``Hold:0`` (or Idle/Alarm: nothing moving) first.
- That report must be written after the procedure began: a report asked for earlier may arrive
  later and say Idle (the machine had not started the next block yet) or ``Hold:0`` (left over
  from an earlier pause). :func:`fresh_need` says how many reports to let pass.
- GRBL may take a ``~`` in the same pass as a ``!`` sent just before: a ``~`` can be lost however
  it is timed. After it, the first report may still be from before it; :data:`HELD_REPORTS`
  reports in a row saying Hold mean it was lost, and it is sent again (at most
  :data:`RESUME_ATTEMPTS` times).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from agent.errors import DeviceError, DeviceTimeout
from agent.profiles.grbl import GrblSettings
from agent.transport.grbl_events import Control, Step
from agent.transport.grbl_flow import StatusReport

RESUME_ATTEMPTS = 5
HELD_REPORTS = 3


class Move(enum.Enum):
    WAIT = "wait"  # nothing to do on this report
    ASK = "ask"  # ask for another report
    RESET = "reset"  # the hold is complete: soft reset (cancel, abort)
    CYCLE_START = "cycle_start"  # the hold is complete: ``~`` (resume)
    RETRY = "retry"  # the ``~`` was lost: wait for Hold:0 again
    DONE = "done"
    GIVE_UP = "give_up"


@dataclass
class Procedure:
    kind: Control
    step: Step
    since: float  # when the current step began (its deadline counts from here)
    mark: int  # reports received when the step began
    need: int  # reports after ``mark`` before one counts as fresh
    attempts: int = 0
    held: int = 0
    joined: set[Control] = field(default_factory=set)


def fresh_need(unanswered_queries: int) -> int:
    """Reports to let pass before one is certainly written after now.

    Never trust the first; each ``?`` not yet answered may bring one more stale report.
    """
    return max(2, unanswered_queries + 1)


def on_report(proc: Procedure, report: StatusReport, reports: int) -> Move:
    """A status report arrived (``reports`` counts every report so far)."""
    if proc.step is Step.HOLD_WAIT:
        fresh = reports - proc.mark >= proc.need
        if fresh and (report.hold_complete or report.state in ("Idle", "Alarm")):
            return Move.CYCLE_START if proc.kind is Control.RESUME else Move.RESET
        return Move.WAIT
    if proc.step is not Step.LEAVE_HOLD_WAIT or reports <= proc.mark:
        return Move.WAIT
    if report.state != "Hold":
        return Move.DONE
    proc.held += 1
    if proc.held < HELD_REPORTS:
        return Move.ASK
    proc.attempts += 1
    return Move.GIVE_UP if proc.attempts >= RESUME_ATTEMPTS else Move.RETRY


def give_up_error() -> DeviceError:
    return DeviceError(f"GRBL stayed in feed hold after {RESUME_ATTEMPTS} cycle starts (~)")


def overdue(proc: Procedure, now: float, settings: GrblSettings,
            last_report_at: float) -> DeviceTimeout | None:
    """The step's deadline has passed: the error that ends the procedure, else None."""
    if proc.step is Step.HOLD_WAIT and now - proc.since > settings.hold_timeout_s:
        return DeviceTimeout("feed hold did not complete in time")
    timeout = settings.response_timeout_s
    if proc.step is Step.LEAVE_HOLD_WAIT and now - max(proc.since, last_report_at) > timeout:
        return DeviceTimeout("GRBL sent no status report after a cycle start")
    if proc.step is Step.RESET_WAIT and now - proc.since > timeout:
        return DeviceTimeout("GRBL did not come back after a soft reset")
    return None
