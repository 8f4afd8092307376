"""GrblStream driven pass by pass and byte by byte against a fake GRBL (tests/grbl/fake_grbl.py)."""

from __future__ import annotations

import itertools

import pytest

from agent.errors import DeviceAlarm, DeviceTimeout
from agent.transport import grbl_events as ev
from agent.transport.grbl_events import JobPhase
from agent.transport.grbl_stream import HOLD_READS_MIN_BYTES, HOLD_READS_S
from tests.grbl.fake_grbl import FakeGrbl
from tests.grbl.rig import Mangle, StreamRig, lines_of


def _done(rig: StreamRig) -> ev.JobDone:
    rig.run_until(rig.job_over)
    done = rig.of(ev.JobDone)
    assert done, rig.events[-5:]
    event = done[0]
    assert isinstance(event, ev.JobDone)
    return event


def _failed(rig: StreamRig) -> ev.JobFailed:
    rig.run_until(rig.job_over)
    failed = rig.of(ev.JobFailed)
    assert failed, rig.events[-5:]
    event = failed[0]
    assert isinstance(event, ev.JobFailed)
    return event


def test_a_job_runs_to_its_fence_and_a_report_after_it() -> None:
    rig = StreamRig()
    program = lines_of(120)
    rig.start(program)
    done = _done(rig)
    assert done.lines == 120
    assert rig.fake.lines == [*program, "G4P0"]
    assert rig.fake.overflowed == 0
    progress = [e.lines for e in rig.of(ev.Progress) if isinstance(e, ev.Progress)]
    assert progress == sorted(progress)
    assert progress[-1] == 120
    assert rig.stream.phase is JobPhase.IDLE


def test_replies_split_across_reads_byte_by_byte() -> None:
    rig = StreamRig(chunk=1)
    program = lines_of(60)
    rig.start(program)
    assert _done(rig).lines == 60
    assert rig.fake.lines == [*program, "G4P0"]


def test_noise_lines_between_replies_are_ignored() -> None:
    rig = StreamRig(mangle=lambda data: b"\x00\xfe#~noise\r\n" + data)
    rig.start(lines_of(40))
    assert _done(rig).lines == 40


def _spoil_ok(number: int, replacement: bytes) -> Mangle:
    """Replace the ``number``-th ``ok`` line GRBL sends with ``replacement``."""
    seen = [0]

    def mangle(data: bytes) -> bytes:
        out = b""
        for part in data.split(b"\r\n")[:-1]:
            if part == b"ok":
                seen[0] += 1
                if seen[0] == number:
                    out += replacement
                    continue
            out += part + b"\r\n"
        return out

    return mangle


@pytest.mark.parametrize("replacement", [b"", b"o\x07k\r\n", b"o"])
def test_a_lost_or_garbled_reply_fails_the_job_after_the_timeout(replacement: bytes) -> None:
    """A dropped ``ok``, one with noise inside it, or half of one merged into the next line."""
    rig = StreamRig(mangle=_spoil_ok(25, replacement))
    rig.start(lines_of(60))
    failed = _failed(rig)
    assert isinstance(failed.error, DeviceTimeout)
    assert "reply was lost" in str(failed.error)
    # Found once GRBL sat idle with the line unanswered for response_timeout_s (2 s).
    assert rig.now >= rig.settings.response_timeout_s
    assert rig.fake.alarm3 == 0


def test_a_reset_banner_mid_job_fails_it_and_feeds_nothing_more() -> None:
    rig = StreamRig()
    program = lines_of(200)
    rig.start(program)
    rig.run_until(lambda: rig.stream.acked >= 40)
    rig.fake.power_cycle()
    parsed_before = len(rig.fake.lines)
    failed = _failed(rig)
    assert failed.error.code == "device_reset"
    assert rig.fake.lines[parsed_before:] == []  # nothing of the job after the reset
    assert rig.fake.alarm3 == 0  # held to Hold:0 before its own reset
    assert rig.stream.counter.in_flight_bytes == 0


def test_an_error_reply_fails_the_job_with_its_line_and_holds_then_resets() -> None:
    fake = FakeGrbl()
    program = lines_of(100)
    fake.errors[program[30]] = 20
    rig = StreamRig(fake)
    rig.start(program)
    failed = _failed(rig)
    assert failed.error.line == 31
    assert failed.error.device_code == "error:20"
    assert fake.resets == 1
    assert fake.alarm3 == 0
    assert b"\x18" in rig.written_after(b"!")


def test_an_alarm_mid_job_fails_it() -> None:
    rig = StreamRig()
    rig.start(lines_of(200))
    rig.run_until(lambda: rig.stream.acked >= 30)
    rig.fake.hard_limit()
    failed = _failed(rig)
    assert isinstance(failed.error, DeviceAlarm)
    assert failed.error.device_code == "ALARM:1"
    assert rig.stream.alarm is not None


def test_silence_is_a_lost_link() -> None:
    rig = StreamRig()
    rig.start(lines_of(200))
    rig.run_until(lambda: rig.stream.acked >= 10)
    rig.silent = True
    rig.run_until(lambda: rig.has(ev.LinkSilent))
    failed = rig.of(ev.JobFailed)
    assert failed
    assert isinstance(failed[0], ev.JobFailed)
    assert isinstance(failed[0].error, DeviceTimeout)


def test_status_polls_at_most_every_tenth_of_a_second_while_waiting() -> None:
    rig = StreamRig(FakeGrbl(decel_passes=80))
    rig.start(lines_of(200))
    rig.run_until(lambda: rig.stream.acked >= 10)
    rig.apply(rig.stream.cancel(rig.now))
    rig.run_until(lambda: rig.has(ev.ControlDone))
    times = [t for t, data in rig.wire if b"?" in data]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.1 - 1e-9
    assert rig.fake.alarm3 == 0


def test_a_command_is_answered_through_the_same_window() -> None:
    rig = StreamRig()
    token, out = rig.stream.command("$I", rig.now)
    rig.apply(out)
    rig.run_until(lambda: rig.has(ev.CommandDone))
    done = rig.of(ev.CommandDone)[0]
    assert isinstance(done, ev.CommandDone)
    assert done.token == token
    assert done.error is None
    assert rig.stream.counter.in_flight_bytes == 0


def test_reads_are_held_only_while_a_full_window_streams() -> None:
    rig = StreamRig()
    assert rig.stream.read_hold_s() == 0.0  # no job
    rig.start(lines_of(400))
    holds = []
    while not rig.job_over():
        rig.step()
        hold = rig.stream.read_hold_s()
        holds.append(hold)
        if hold:
            assert rig.stream.counter.in_flight_bytes >= HOLD_READS_MIN_BYTES
            assert rig.stream.phase is JobPhase.SENDING
    assert HOLD_READS_S in holds  # the window filled up
    assert holds[-1] == 0.0  # the end: the fence and the final report are awaited at once


def test_no_read_hold_once_a_pause_is_asked() -> None:
    rig = StreamRig()
    rig.start(lines_of(400))
    rig.run_until(lambda: rig.stream.read_hold_s() > 0)
    rig.apply(rig.stream.pause(rig.now))
    assert rig.stream.read_hold_s() == 0.0
