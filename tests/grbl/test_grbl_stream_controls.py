"""Pause, resume, cancel and e-stop at every phase of a job, on the fake GRBL, pass by pass.

Phases: lines streaming (machine in Run), just after a feed hold (``Hold:1``, still
decelerating), held (``Hold:0``), and between the fence's ``ok`` and the report after it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from agent.transport import grbl_events as ev
from agent.transport.grbl_events import Control, JobPhase
from tests.grbl.fake_grbl import FakeGrbl
from tests.grbl.rig import StreamRig, lines_of


def _streaming(rig: StreamRig) -> None:
    rig.run_until(lambda: rig.stream.acked >= 20 and rig.fake.state == "Run")


def _hold1(rig: StreamRig) -> None:
    _streaming(rig)
    rig.apply(rig.stream.pause(rig.now))
    rig.run_until(lambda: rig.fake.state == "Hold" and rig.fake.hold_sub == 1)


def _hold0(rig: StreamRig) -> None:
    _hold1(rig)
    rig.run_until(lambda: rig.fake.hold_sub == 0)


def _final_status(rig: StreamRig) -> None:
    rig.run_until(lambda: rig.stream.phase is JobPhase.FINAL_STATUS)


PHASES: dict[str, Callable[[StreamRig], None]] = {
    "streaming": _streaming, "hold1": _hold1, "hold0": _hold0, "final_status": _final_status,
}


def _rig(program_lines: int = 150, **kwargs: object) -> StreamRig:
    rig = StreamRig(FakeGrbl(decel_passes=12), **kwargs)  # type: ignore[arg-type]
    rig.start(lines_of(program_lines))
    return rig


@pytest.mark.parametrize("phase", list(PHASES))
def test_cancel_stops_the_job_and_resets_only_once_held(phase: str) -> None:
    rig = _rig()
    PHASES[phase](rig)
    rig.apply(rig.stream.cancel(rig.now))
    assert rig.of(ev.JobStopped) == [ev.JobStopped("canceled")]
    rig.run_until(lambda: rig.has(ev.ControlDone))
    assert rig.of(ev.ControlDone) == [ev.ControlDone(Control.CANCEL)]
    assert rig.fake.resets == 1
    assert rig.fake.alarm3 == 0  # the reset came at rest: position kept, no alarm
    assert rig.fake.rx == bytearray()
    assert rig.stream.counter.in_flight_bytes == 0
    assert not rig.has(ev.JobDone)
    assert not rig.has(ev.JobFailed)


@pytest.mark.parametrize("phase", list(PHASES))
def test_estop_stops_at_once(phase: str) -> None:
    rig = _rig()
    PHASES[phase](rig)
    moving = rig.fake.state == "Run" or rig.fake.hold_sub == 1
    rig.apply(rig.stream.estop(rig.now))
    assert rig.of(ev.JobStopped) == [ev.JobStopped("estop")]
    assert rig.written().endswith(b"!\x18")
    rig.step()
    assert rig.fake.resets == 1
    assert rig.fake.alarm3 == (1 if moving else 0)
    sent = len(rig.written())
    for _ in range(50):
        rig.step()
    assert b"G1" not in rig.written()[sent:]  # nothing of the job after the e-stop
    assert not rig.has(ev.JobFailed)


@pytest.mark.parametrize("phase", ["streaming", "hold1", "hold0"])
def test_resume_after_pause_finishes_the_job_without_a_lost_cycle_start(phase: str) -> None:
    rig = _rig()
    PHASES[phase](rig)
    rig.apply(rig.stream.pause(rig.now))
    rig.apply(rig.stream.resume(rig.now))
    rig.run_until(lambda: rig.has(ev.ControlDone) or rig.has(ev.ControlFailed))
    assert rig.of(ev.ControlDone) == [ev.ControlDone(Control.RESUME)]
    assert rig.fake.ignored_starts == 0  # no ~ sent during Hold:1
    rig.run_until(rig.job_over)
    assert rig.has(ev.JobDone)
    assert rig.fake.lines[-1] == "G4P0"


def test_pause_in_final_status_still_ends_the_job() -> None:
    rig = _rig()
    _final_status(rig)
    rig.apply(rig.stream.pause(rig.now))
    rig.run_until(rig.job_over)
    assert rig.has(ev.JobDone)


def _resumes_at_least(rig: StreamRig, count: int) -> bool:
    return len(rig.of(ev.ControlDone)) >= count


def test_twenty_pause_resume_pairs_back_to_back_leave_the_machine_running() -> None:
    """The race of issue 14: a stale Hold:0 must not let a ``~`` go out during Hold:1."""
    rig = _rig(600, lag=2)
    rig.run_until(lambda: rig.stream.acked >= 10)
    for pair in range(20):
        rig.apply(rig.stream.pause(rig.now))
        rig.apply(rig.stream.resume(rig.now))
        rig.run_until(functools.partial(_resumes_at_least, rig, pair + 1))
        assert rig.fake.state != "Hold"
    rig.run_until(rig.job_over)
    assert rig.has(ev.JobDone)
    assert rig.fake.ignored_starts == 0


def test_a_report_that_lags_the_feed_hold_is_not_taken_for_rest() -> None:
    """On a slow wire the report asked for just before ``!`` arrives after it and says Idle
    (the machine had not started the next block yet): cancel must wait for a report asked for
    after the hold, else its soft reset lands mid-deceleration and raises ALARM:3."""
    rig = StreamRig(FakeGrbl(decel_passes=20), lag=3)
    rig.apply(rig.stream.query(rig.now))  # the report this asks for will say Idle
    rig.start(lines_of(100))
    rig.step()  # the fake reports Idle, then starts the first block
    assert rig.fake.state == "Run"
    rig.apply(rig.stream.cancel(rig.now))
    rig.run_until(lambda: rig.has(ev.ControlDone))
    assert rig.fake.alarm3 == 0


def test_a_second_pause_during_a_resume_fails_that_resume_and_keeps_holding() -> None:
    rig = _rig()
    _hold1(rig)
    rig.apply(rig.stream.resume(rig.now))
    rig.apply(rig.stream.pause(rig.now))
    failed = rig.of(ev.ControlFailed)
    assert len(failed) == 1
    assert isinstance(failed[0], ev.ControlFailed)
    assert failed[0].error.code == "superseded"
    for _ in range(100):
        rig.step()
    assert rig.fake.state == "Hold"
    assert rig.stream.phase is JobPhase.PAUSED


def test_reset_after_an_estop_waits_for_the_banner() -> None:
    rig = _rig()
    _streaming(rig)
    rig.apply(rig.stream.estop(rig.now))
    rig.run_until(lambda: rig.fake.resets == 1)
    rig.apply(rig.stream.reset(rig.now))
    assert not rig.has(ev.ControlDone)
    rig.run_until(lambda: rig.has(ev.ControlDone))
    assert rig.of(ev.ControlDone) == [ev.ControlDone(Control.RESET)]
    assert rig.fake.resets == 2


def test_hold_longer_than_the_limit_is_told_once_and_cleared_on_resume() -> None:
    rig = _rig(hold_limit_s=1.0)
    _hold0(rig)
    paused_at = rig.now
    rig.run_until(lambda: rig.has(ev.HoldChanged), max_s=5)
    told = rig.of(ev.HoldChanged)
    assert len(told) == 1
    assert isinstance(told[0], ev.HoldChanged)
    assert told[0].too_long
    assert told[0].hold_limit_s == 1.0
    assert rig.now - paused_at >= 0.9  # the pause itself was a person's action
    assert rig.stream.held_s is not None
    for _ in range(100):
        rig.step()
    assert len(rig.of(ev.HoldChanged)) == 1
    rig.apply(rig.stream.resume(rig.now))
    rig.run_until(lambda: len(rig.of(ev.HoldChanged)) == 2)
    cleared = rig.of(ev.HoldChanged)[1]
    assert isinstance(cleared, ev.HoldChanged)
    assert not cleared.too_long
    assert rig.stream.held_s is None


def test_a_hold_from_the_machine_itself_counts_from_its_first_report() -> None:
    rig = _rig(hold_limit_s=0.5)
    _streaming(rig)
    rig.fake.receive(b"!")  # the feed-hold button on the machine, not the agent
    rig.run_until(lambda: rig.has(ev.HoldChanged), max_s=5)
    assert rig.stream.phase is JobPhase.SENDING  # nobody paused the job
    assert not rig.has(ev.JobFailed)
