"""The job lifecycle as an explicit state table: (state, trigger) -> next state."""

from __future__ import annotations

import enum

from agent.errors import StationAgentError


class JobState(enum.StrEnum):
    QUEUED = "queued"
    AWAITING_OPERATOR = "awaiting_operator"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    INTERRUPTED = "interrupted"


class Trigger(enum.StrEnum):
    WAIT_OPERATOR = "wait_operator"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    SUCCEED = "succeed"
    FAIL = "fail"
    CANCEL = "cancel"
    INTERRUPT = "interrupt"


S, T = JobState, Trigger

TRANSITIONS: dict[tuple[JobState, Trigger], JobState] = {
    (S.QUEUED, T.WAIT_OPERATOR): S.AWAITING_OPERATOR,
    (S.QUEUED, T.START): S.RUNNING,
    (S.QUEUED, T.CANCEL): S.CANCELED,
    (S.QUEUED, T.FAIL): S.FAILED,
    (S.AWAITING_OPERATOR, T.START): S.RUNNING,
    (S.AWAITING_OPERATOR, T.CANCEL): S.CANCELED,
    (S.AWAITING_OPERATOR, T.FAIL): S.FAILED,
    (S.AWAITING_OPERATOR, T.INTERRUPT): S.QUEUED,
    (S.RUNNING, T.PAUSE): S.PAUSED,
    (S.RUNNING, T.SUCCEED): S.SUCCEEDED,
    (S.RUNNING, T.FAIL): S.FAILED,
    (S.RUNNING, T.CANCEL): S.CANCELED,
    (S.RUNNING, T.INTERRUPT): S.INTERRUPTED,
    (S.PAUSED, T.RESUME): S.RUNNING,
    (S.PAUSED, T.FAIL): S.FAILED,
    (S.PAUSED, T.CANCEL): S.CANCELED,
    (S.PAUSED, T.INTERRUPT): S.INTERRUPTED,
}

TERMINAL = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELED, S.INTERRUPTED})
ACTIVE = frozenset({S.RUNNING, S.PAUSED})


class TransitionError(StationAgentError):
    code = "not_applicable"


def next_state(state: JobState, trigger: Trigger) -> JobState:
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise TransitionError(f"cannot {trigger.value} a job that is {state.value}") from None
