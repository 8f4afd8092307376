from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.transport.grbl_flow import (
    AlarmReply,
    Banner,
    CharacterCounter,
    ErrorReply,
    Feedback,
    GrblReplyParser,
    Ok,
    StatusReport,
    Unknown,
    parse_status,
)


def test_replies_split_across_chunks() -> None:
    parser = GrblReplyParser()
    stream = (b"\r\nGrbl 1.1h ['$' for help]\r\nok\r\nerror:20\r\nALARM:3\r\n"
              b"[MSG:Reset to continue]\r\n")
    replies = []
    for i in range(len(stream)):
        replies += parser.feed(stream[i : i + 1])
    assert replies == [Banner("1.1h"), Ok(), ErrorReply(20), AlarmReply(3),
                       Feedback("MSG", "Reset to continue")]


def test_status_report_fields_in_any_order() -> None:
    report = parse_status("Hold:0|WCO:10.000,20.000,0.000|MPos:110.500,220.000,-1.000|FS:3000,0|"
                          "Bf:12,96|Ln:42|Ov:100,100,100|Pn:XZ|A:S")
    assert report is not None
    assert report.state == "Hold" and report.substate == 0 and report.hold_complete
    assert report.mpos == (110.5, 220.0, -1.0)
    assert report.wco == (10.0, 20.0, 0.0)
    assert (report.planner_free, report.rx_free) == (12, 96)
    assert report.line_number == 42
    assert report.feed == 3000.0
    assert report.overrides == (100, 100, 100)
    assert report.pins == "XZ" and report.accessories == "S"


def test_status_with_only_state_and_position() -> None:
    report = parse_status("Idle|WPos:0.000,0.000,5.000")
    assert report is not None
    assert report.wpos == (0.0, 0.0, 5.0) and report.mpos is None


def test_unknown_state_is_not_a_status() -> None:
    assert parse_status("Dancing|MPos:0,0,0") is None
    assert isinstance(GrblReplyParser().feed(b"<Dancing|MPos:0,0,0>\r\n")[0], Unknown)


def test_endless_line_is_dropped_not_buffered() -> None:
    parser = GrblReplyParser()
    out = parser.feed(b"x" * 5000)
    assert len(out) == 1 and isinstance(out[0], Unknown)
    assert parser.feed(b"tail of noise\r\nok\r\n") == [Ok()]


def test_non_utf8_noise_does_not_crash() -> None:
    replies = GrblReplyParser().feed(b"\xff\xfe\x80garbage\r\nok\r\n")
    assert isinstance(replies[0], Unknown)
    assert replies[1] == Ok()


@given(st.binary(max_size=400))
def test_parser_never_raises_on_garbage(data: bytes) -> None:
    parser = GrblReplyParser()
    parser.feed(data)
    # Whatever came before, a clean line after a newline parses.
    assert parser.feed(b"\nok\r\n")[-1] == Ok()


def test_counter_respects_buffer_and_frees_in_order() -> None:
    counter = CharacterCounter(128)
    assert counter.capacity == 127
    counter.push(60)
    counter.push(60)
    assert not counter.fits(8)
    assert counter.fits(7)
    assert counter.pop() == 60
    assert counter.fits(67)
    with pytest.raises(ValueError, match="does not fit"):
        counter.push(68)
    with pytest.raises(ValueError, match="never fit"):
        counter.push(200)


def test_counter_releases_several_answers_at_once() -> None:
    counter = CharacterCounter(128)
    for size in (20, 30, 40):
        counter.push(size)
    counter.release(2)
    assert counter.in_flight_bytes == 40 and counter.in_flight_lines == 1
    assert counter.fits(87) and not counter.fits(88)
    counter.release(0)
    assert counter.in_flight_bytes == 40


def test_chunks_of_only_oks_are_counted_without_parsing() -> None:
    parser = GrblReplyParser()
    assert parser.count_oks(b"ok\r\n") == 1
    assert parser.count_oks(b"ok\r\nok\r\nok\r\n") == 3
    # Anything else (or a line still open from the last chunk) goes through feed().
    for data in (b"", b"ok\r\nerror:2\r\n", b"ok\r\nok\r", b"ok\nok\nok\nok\n", b"okok\r\n\r\n"):
        assert parser.count_oks(data) == 0, data
    assert parser.feed(b"<Idle|MPos:0,0,0") == []
    assert parser.count_oks(b"ok\r\n") == 0
    assert isinstance(parser.feed(b">\r\nok\r\n")[0], StatusReport)
    # The end of an endless line of noise is dropped with it, however it looks.
    parser.feed(b"x" * 5000)
    assert parser.count_oks(b"ok\r\n") == 0
    assert parser.feed(b"ok\r\n") == []
    assert parser.count_oks(b"ok\r\n") == 1


def test_status_report_is_typed() -> None:
    (report,) = GrblReplyParser().feed(b"<Run|MPos:1.000,2.000,3.000|FS:500,0>\r\n")
    assert isinstance(report, StatusReport)
    assert report.state == "Run" and report.substate is None
