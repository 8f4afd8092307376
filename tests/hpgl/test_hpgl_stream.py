"""HpglStream on its own: byte by byte and tick by tick, no pty, no asyncio, no clock."""

from __future__ import annotations

from typing import TypeVar

import pytest

from agent.profiles.hpgl import HpglFlowControl, HpglSettings
from agent.transport.hpgl_flow import HpglFlow, Query, ReplyFramer
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
    StreamState,
)

# 3 set-up lines, then 60 strokes of 2 lines (PD 11 bytes, PU 11 bytes): ~1.3 KB, so the
# 1024-byte buffer fills and the 256-byte check rule fires many times.
STROKES = (line for k in range(60) for line in (f"PD{1000 + k},100;", f"PU{2000 + k},200;"))
JOB: tuple[str, ...] = ("IN;", "SP1;", "PU0,0;", *STROKES)

E = TypeVar("E")

# What a healthy plotter answers to each query.
HEALTHY: dict[Query, bytes] = {
    Query.FREE_SPACE: b"1000\r",
    Query.IO_ERROR: b"0\r",
    Query.STATUS: b"16\r",
    Query.ERROR: b"0\r",
    Query.EXTENDED_STATUS: b"8\r",
}


def make(lines: tuple[str, ...] = JOB, *, status_read: bool = True,
         **overrides: object) -> HpglStream:
    settings = HpglSettings.model_validate({"check_every_bytes": 256, **overrides})
    flow = HpglFlow(HpglFlowControl.BUFFER_QUERY, capacity=1024, reserve=64,
                    wire_bytes_per_s=960, wire_window=64)
    return HpglStream(lines, settings, flow, ReplyFramer(), now=0.0, status_read=status_read)


class Run:
    """Drives a stream: ticks, collects writes and events, answers like a plotter when told."""

    def __init__(self, stream: HpglStream) -> None:
        self.stream = stream
        self.now = 0.0
        self.written = bytearray()
        self.events: list[Event] = []
        self.asked: list[Query] = []

    def tick(self, dt: float = 0.0) -> None:
        self.now += dt
        before = self.stream.flow.outstanding
        out = self.stream.tick(self.now)
        self.written += out.write
        self.events += out.events
        query = self.stream.flow.outstanding
        if query is not None and (query is not before or out.write.endswith(query.wire)):
            self.asked.append(query)

    def feed(self, data: bytes) -> None:
        self.events += self.stream.feed(data, self.now).events

    def answer(self, answers: dict[Query, bytes] | None = None) -> Query:
        """Answer the outstanding query (one call to feed)."""
        query = self.stream.flow.outstanding
        assert query is not None
        self.feed((answers or HEALTHY)[query])
        return query

    def until(self, state: StreamState | None = None, query: Query | None = None,
              answers: dict[Query, bytes] | None = None, limit: int = 10_000) -> None:
        """Tick and answer until the stream is in ``state`` or ``query`` is outstanding."""
        for _ in range(limit):
            self.tick(0.01)
            if state is not None and self.stream.state is state:
                return
            outstanding = self.stream.flow.outstanding
            if query is not None and outstanding is query:
                return
            if self.stream.finished:
                return
            if outstanding is not None:
                self.answer(answers)
        raise AssertionError(f"never reached {state or query}; now {self.stream.state}")

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]


def test_a_healthy_job_runs_to_done_with_checks_at_pen_up_points() -> None:
    run = Run(make())
    run.until(StreamState.DONE)
    assert run.of(Done) == [Done(len(JOB))]
    progress = [e.lines for e in run.of(Progress)]
    assert progress == sorted(progress) and progress[-1] == len(JOB)
    # Every program byte went out, in order, between the queries.
    data = bytes(run.written)
    for wire in (q.wire for q in Query):
        data = data.replace(wire, b"")
    assert data == "".join(JOB).encode()
    # IN; is checked at once; then each OS; lands right after a pen-up point.
    assert run.written.startswith(b"\x1b.B" + b"IN;" + b"\x1b.E" + b"OS;")
    stripped = bytes(run.written).replace(b"\x1b.E", b"").replace(b"\x1b.B", b"")
    instructions = [i for i in stripped.split(b";") if i]
    for k, instruction in enumerate(instructions):
        if instruction == b"OS" and k > 0:
            assert instructions[k - 1][:2] in (b"PU", b"IN", b"SP", b"OS")
    assert run.asked.count(Query.STATUS) >= 4
    assert run.asked[-1] is Query.EXTENDED_STATUS


def test_nothing_is_written_before_the_plotter_reports_free_space() -> None:
    run = Run(make())
    run.tick()
    assert bytes(run.written) == b"\x1b.B"
    for _ in range(10):
        run.tick(0.1)
    assert bytes(run.written) == b"\x1b.B"  # one query outstanding, no data on credit 0


def test_a_reply_split_across_reads_byte_by_byte() -> None:
    run = Run(make())
    run.tick()
    for byte in b"1000":
        run.feed(bytes([byte]))
        run.tick(0.001)
        assert run.stream.flow.outstanding is Query.FREE_SPACE  # not yet a whole answer
        assert bytes(run.written) == b"\x1b.B"
    run.feed(b"\r")
    run.tick()
    assert run.written.startswith(b"\x1b.BIN;")
    assert run.stream.flow.credit == 1000 - 64 - 3


def test_a_line_feed_after_the_cr_is_not_an_answer() -> None:
    run = Run(make())
    run.tick()
    run.feed(b"1000\r")
    run.feed(b"\n")
    assert not run.of(Notice)


def test_noise_inside_a_reply_is_reported_and_the_budget_is_asked_again() -> None:
    run = Run(make())
    run.tick()
    run.feed(b"10\xff0\r")
    assert [type(e) for e in run.events] == [Notice]
    assert run.stream.flow.outstanding is None
    run.tick(0.01)
    assert bytes(run.written) == b"\x1b.B\x1b.B"  # no data on a bad figure: ask again
    run.feed(b"1000\r")
    run.until(StreamState.DONE)
    assert run.of(Done)


def test_noise_inside_an_io_error_answer_loses_that_check_only() -> None:
    run = Run(make())
    run.until(query=Query.IO_ERROR)
    run.feed(b"1\x07x\r")  # noise where "16" should be
    assert run.of(Notice)
    run.until(StreamState.DONE)
    assert run.of(Done) and not run.of(Failed)


def test_a_lost_escape_reply_fails_the_job_after_the_response_timeout() -> None:
    run = Run(make(response_timeout_s=5.0))
    run.tick()
    run.tick(4.99)
    assert not run.events
    assert run.stream.state.value == "sending"
    assert bytes(run.written) == b"\x1b.B"  # no re-query while one is outstanding
    run.tick(0.01)
    [failed] = run.of(Failed)
    assert isinstance(failed, Failed)
    assert failed.code == "device_timeout" and "FREE_SPACE" in failed.message
    assert run.stream.state is StreamState.FAILED
    assert run.stream.flow.outstanding is None
    run.tick(1.0)
    assert len(run.of(Failed)) == 1  # reported once


def test_a_lost_os_reply_waits_the_drain_timeout_then_fails() -> None:
    run = Run(make(drain_timeout_s=30.0))
    run.until(query=Query.STATUS)
    asked_at = run.now
    run.tick(29.9)
    assert not run.of(Failed)
    run.tick(0.2)
    [failed] = run.of(Failed)
    assert isinstance(failed, Failed) and failed.code == "device_timeout"
    assert run.now - asked_at >= 30.0


def test_a_status_answer_that_lags_is_waited_for_and_nothing_else_is_asked() -> None:
    run = Run(make(drain_timeout_s=600.0))
    run.until(query=Query.STATUS)
    written = len(run.written)
    for _ in range(100):
        run.tick(5.0)  # 500 s: the pen is slow
    assert len(run.written) == written  # nothing more: a check waits for its answer
    run.feed(b"1")
    run.tick(50.0)
    run.feed(b"6\r")  # the rest of the answer, 50 s later
    run.until(StreamState.DONE)
    assert not run.of(Failed)


def test_a_late_answer_after_the_timeout_is_only_a_warning() -> None:
    run = Run(make(response_timeout_s=1.0))
    run.tick()
    run.tick(1.5)
    assert run.of(Failed)
    run.feed(b"1000\r")
    assert run.of(Notice)
    assert run.written == b"\x1b.B"


def test_an_extended_status_that_lags_during_the_drain_is_polled_once_at_a_time() -> None:
    run = Run(make())
    run.until(query=Query.EXTENDED_STATUS)
    for _ in range(20):
        run.tick(0.1)
    assert run.asked.count(Query.EXTENDED_STATUS) == 1
    run.feed(b"0\r")  # not empty yet
    assert run.of(StatusSeen)
    run.tick(0.1)
    assert run.asked.count(Query.EXTENDED_STATUS) == 2
    run.feed(b"8\r")
    run.tick(0.0)
    assert run.of(Done)


def test_the_drain_fails_when_the_buffer_never_empties() -> None:
    run = Run(make(drain_timeout_s=2.0))
    busy = {**HEALTHY, Query.EXTENDED_STATUS: b"0\r"}
    run.until(StreamState.FAILED, answers=busy)
    [failed] = run.of(Failed)
    assert isinstance(failed, Failed)
    assert failed.code == "device_timeout" and failed.line == len(JOB)


def test_an_operator_pause_during_the_drain_is_not_a_fault() -> None:
    run = Run(make(drain_timeout_s=2.0))
    paused = {**HEALTHY, Query.EXTENDED_STATUS: b"16\r"}
    run.until(StreamState.DRAINING)
    for _ in range(500):  # 5 s paused at the plotter
        run.tick(0.01)
        if run.stream.flow.outstanding is not None:
            run.answer(paused)
    assert not run.of(Failed)
    run.until(StreamState.DONE)


# -- errors reported by the plotter ------------------------------------------------------------


def test_io_error_16_fails_with_buffer_overflow_and_the_line() -> None:
    run = Run(make())
    run.until(query=Query.IO_ERROR)
    run.until(query=Query.IO_ERROR)  # the second check, mid-job
    line = run.stream.acked
    run.feed(b"16\r")
    run.tick()
    [failed] = run.of(Failed)
    assert isinstance(failed, Failed)
    assert (failed.code, failed.device_code, failed.line) == ("buffer_overflow", "ESC.E16", line)
    assert run.stream.state is StreamState.FAILED


def test_an_os_error_bit_asks_oe_and_fails_with_its_code() -> None:
    run = Run(make())
    run.until(query=Query.STATUS)
    run.feed(b"48\r")  # ready + error
    run.tick()
    assert run.stream.flow.outstanding is Query.ERROR
    run.feed(b"2\r")
    run.tick()
    [failed] = run.of(Failed)
    assert isinstance(failed, Failed) and failed.device_code == "OE2"


# -- the plotter re-initialised under the job (OS bit 3) ---------------------------------------


def second_status(run: Run) -> None:
    """Past the OS; that follows IN; (bit 3 expected there), to the next one."""
    run.until(query=Query.STATUS)
    run.answer({**HEALTHY, Query.STATUS: b"24\r"})
    run.until(query=Query.STATUS)


def test_os_bit_3_after_our_own_in_is_expected() -> None:
    run = Run(make())
    run.until(query=Query.STATUS)
    run.feed(b"24\r")
    run.until(StreamState.DONE)
    assert not run.of(Failed)


def test_os_bit_3_mid_job_fails_when_it_clears_on_read() -> None:
    run = Run(make(os_initialised_clears_on_read=True))
    second_status(run)
    run.feed(b"24\r")
    run.tick()
    [failed] = run.of(Failed)
    assert isinstance(failed, Failed)
    assert (failed.code, failed.device_code) == ("device_error", "OS24")
    # The line is the last one sent before that OS; (data went on behind it): a pen-up point.
    assert 1 <= failed.line <= run.stream.acked
    assert JOB[failed.line - 1].startswith("PU")
    assert "re-initialised" in failed.message


def test_a_constant_os_clone_finishes_when_the_switch_is_off() -> None:
    run = Run(make(os_initialised_clears_on_read=False))
    run.until(StreamState.DONE, answers={**HEALTHY, Query.STATUS: b"24\r"})
    assert not run.of(Failed)


def test_the_first_os_after_connecting_may_carry_bit_3() -> None:
    run = Run(make(("SP1;", "PU0,0;", "PD10,10;", "PU0,0;"), status_read=False))
    run.until(StreamState.DONE, answers={**HEALTHY, Query.STATUS: b"24\r"})
    assert not run.of(Failed)
    assert run.stream.status_read


# -- pause, cancel and e-stop at every phase ---------------------------------------------------

PHASES = ["first_budget", "sending", "check_outstanding", "final_checks", "draining"]


def reach(run: Run, phase: str) -> None:
    if phase == "first_budget":
        run.tick()
        assert run.stream.flow.outstanding is Query.FREE_SPACE
    elif phase == "sending":
        run.until(query=Query.IO_ERROR)
        run.answer()
        run.until(query=Query.IO_ERROR)
        run.answer()
        run.tick(0.0)
        assert run.stream.state is StreamState.SENDING
    elif phase == "check_outstanding":
        second_status(run)
    elif phase == "final_checks":
        run.until(StreamState.FINAL_CHECKS)
    else:
        run.until(StreamState.DRAINING)


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("how", ["cancel", "estop"])
def test_cancel_and_estop_end_the_stream_at_once_in_every_phase(phase: str, how: str) -> None:
    run = Run(make())
    reach(run, phase)
    written = len(run.written)
    getattr(run.stream, how)()
    run.tick()
    code = "canceled" if how == "cancel" else "estop"
    assert run.of(Stopped) == [Stopped(code)]
    assert run.stream.state is (StreamState.CANCELLED if how == "cancel"
                                else StreamState.ESTOPPED)
    assert len(run.written) == written  # nothing more: the driver sends ESC.K itself
    # A failure or answer arriving afterwards changes nothing.
    if run.stream.flow.outstanding is not None:
        run.feed(b"16\r")
    run.tick(10.0)
    assert not run.of(Failed) and not run.of(Done)
    assert len(run.of(Stopped)) == 1


@pytest.mark.parametrize("phase", PHASES)
def test_pause_stops_program_data_in_every_phase_and_resume_finishes(phase: str) -> None:
    run = Run(make())
    reach(run, phase)
    run.stream.pause()
    sent = run.stream.acked
    for _ in range(300):  # 3 s paused; queries already planned still complete
        run.tick(0.01)
        if run.stream.flow.outstanding is not None:
            run.answer()
    assert run.stream.acked == sent
    assert not run.of(Failed)
    if phase in ("first_budget", "sending", "check_outstanding"):
        assert run.stream.state is StreamState.PAUSED
    run.stream.resume()
    run.until(StreamState.DONE)
    assert run.of(Done) == [Done(len(JOB))]


def test_cancel_while_paused_stops() -> None:
    run = Run(make())
    reach(run, "sending")
    run.stream.pause()
    run.tick(1.0)
    run.stream.cancel()
    run.tick()
    assert run.of(Stopped) == [Stopped("canceled")]


def test_a_job_continued_from_a_line_reports_progress_past_the_preamble_only() -> None:
    settings = HpglSettings(check_every_bytes=256)
    flow = HpglFlow(HpglFlowControl.BUFFER_QUERY, capacity=1024, reserve=64,
                    wire_bytes_per_s=960, wire_window=64)
    stream = HpglStream(JOB, settings, flow, ReplyFramer(), now=0.0, start_index=50,
                        preamble=("IN;", "SP1;", "PU10,10;"))
    run = Run(stream)
    run.until(StreamState.DONE)
    progress = [e.lines for e in run.of(Progress)]
    assert progress[0] > 50 and progress[-1] == len(JOB)
    assert run.written.startswith(b"\x1b.BIN;")


def test_xon_xoff_in_a_reply_is_a_flow_signal_not_part_of_the_answer() -> None:
    settings = HpglSettings(flow_control=HpglFlowControl.XONXOFF, check_every_bytes=256)
    flow = HpglFlow(HpglFlowControl.XONXOFF, capacity=1024, reserve=64,
                    wire_bytes_per_s=960, wire_window=64)
    run = Run(HpglStream(JOB, settings, flow, ReplyFramer(), now=0.0))
    run.tick()
    assert run.written.startswith(b"IN;")  # no ESC.B in XON/XOFF mode
    run.until(query=Query.IO_ERROR)
    run.feed(b"\x13")  # XOFF
    assert run.of(FlowPaused) == [FlowPaused(True)]
    sent = run.stream.acked
    run.feed(b"0\r")  # ESC.E answered while the device holds us
    for _ in range(50):
        run.tick(0.1)
        if run.stream.flow.outstanding is not None:
            run.answer()
    assert run.stream.acked == sent
    run.feed(b"\x11")  # XON
    assert run.of(FlowPaused)[-1] == FlowPaused(False)
    run.until(StreamState.DONE)
    assert run.of(Done)
