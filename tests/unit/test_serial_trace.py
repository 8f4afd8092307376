"""The serial trace: bounded ring, lines made on demand, clipped copies, and the serial link
recording what really went over a pty."""

from __future__ import annotations

import re

from agent.emulators.pty import PtyEndpoint
from agent.schemas.trace import SerialTraceDump
from agent.transport.serial_port import SerialLink
from agent.transport.trace import (
    CHUNK_OVERHEAD,
    EVENT_MAX_BYTES,
    EVENT_MAX_LINES,
    MAX_LINE_BYTES,
    Direction,
    SerialTrace,
)

LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (>>|<<|>!|--) ")


def texts(trace: SerialTrace) -> list[str]:
    """The lines without their time stamps."""
    out = []
    for line in trace.lines():
        assert LINE.match(line), line
        out.append(line[13:])
    return out


def test_ring_keeps_the_newest_bytes_within_its_budget() -> None:
    trace = SerialTrace("ttyX", max_bytes=1024)
    for i in range(500):
        trace.record(Direction.TX, f"G1 X{i}\n".encode())
    assert trace.bytes_kept <= 1024
    kept = texts(trace)
    assert kept[-1] == ">> G1 X499"
    assert ">> G1 X0" not in kept
    assert trace.evicted_bytes == sum(len(f"G1 X{i}\n") for i in range(500 - len(trace)))


def test_one_byte_chunks_are_bounded_by_their_overhead() -> None:
    trace = SerialTrace(max_bytes=4096)
    for _ in range(100_000):
        trace.record(Direction.URGENT, b"?")
    assert len(trace) <= 4096 // (1 + CHUNK_OVERHEAD)


def test_lines_are_reassembled_per_direction_in_completion_order() -> None:
    trace = SerialTrace()
    trace.note("opened ttyX at 115200 baud")
    trace.record(Direction.TX, b"G1 X1\nG1 ")
    trace.record(Direction.RX, b"o")
    trace.record(Direction.URGENT, b"?")
    trace.record(Direction.RX, b"k\r\n<Idle|MPos:0")
    trace.record(Direction.TX, b"X2\n")
    trace.record(Direction.URGENT, b"\x18")
    assert texts(trace) == [
        "-- opened ttyX at 115200 baud",
        ">> G1 X1",
        ">! ?",
        "<< ok",
        ">> G1 X2",
        r">! \x18",
        "<< <Idle|MPos:0 (no newline yet)",
    ]


def test_cr_lf_split_across_reads_and_cr_alone_both_end_lines() -> None:
    trace = SerialTrace()
    trace.record(Direction.RX, b"ok\r")
    trace.record(Direction.RX, b"\nok\r\n")
    trace.record(Direction.TX, b"OA;")
    trace.record(Direction.RX, b"100,200,1\r")  # HP-GL: the reply ends in CR
    trace.record(Direction.TX, b"OS;")
    trace.record(Direction.RX, b"24\r")
    # What is still open at the end comes last, in the order it began.
    assert texts(trace) == ["<< ok", "<< ok", "<< 100,200,1", ">> OA;OS; (no newline yet)",
                            "<< 24"]


def test_unprintable_bytes_are_escaped_and_long_lines_cut() -> None:
    trace = SerialTrace()
    trace.record(Direction.RX, b"\x85\x00\tok\r\n")
    trace.record(Direction.TX, b"PU0,0;" * 100)  # HP-GL: no newline at all
    shown = texts(trace)
    assert shown[0] == r"<< \x85\x00\tok"
    assert shown[1].startswith(">> PU0,0;PU0,0;")
    assert shown[1].endswith(f"... (+{600 - MAX_LINE_BYTES} bytes)")


def test_snapshot_clips_to_the_newest_lines_and_counts_the_rest() -> None:
    trace = SerialTrace("ttyUSB0")
    for i in range(100):
        trace.record(Direction.TX, f"G1 X{i}\n".encode())
        trace.record(Direction.RX, b"ok\n")
    snap = trace.for_event()
    SerialTraceDump.model_validate(snap)
    assert len(snap["lines"]) == EVENT_MAX_LINES
    assert snap["omitted"] == 200 - EVENT_MAX_LINES
    assert snap["lines"][-1].endswith("<< ok")
    assert snap["lines"][-2].endswith(">> G1 X99")
    assert snap["port"] == "ttyUSB0"

    wide = SerialTrace()
    for i in range(100):
        wide.record(Direction.TX, b"G1 " + b"X1.000" * 25 + f" ({i})\n".encode())
    clipped = wide.for_event()
    assert sum(len(line.encode()) + 1 for line in clipped["lines"]) <= EVENT_MAX_BYTES
    assert clipped["omitted"] == 100 - len(clipped["lines"]) > 0
    assert clipped["lines"][-1].endswith("(99)")


def test_log_dump_says_why_and_shows_the_last_lines() -> None:
    trace = SerialTrace("ttyUSB0")
    trace.record(Direction.TX, b"M7\n")
    trace.record(Direction.RX, b"error:20\r\n")
    dump = trace.for_log("job front-2 failed")
    head, *rest = dump.splitlines()
    assert "ttyUSB0" in head and "job front-2 failed" in head
    assert rest[0].endswith(">> M7") and rest[1].endswith("<< error:20")


async def test_serial_link_records_what_went_over_the_pty() -> None:
    trace = SerialTrace("pty")
    async with PtyEndpoint(baud=None) as device:
        link = await SerialLink.open(device.path, 115200, trace=trace)
        try:
            link.write(b"G1 X5\n")
            link.write(b"!", urgent=True)
            assert await device.receive() != b""
            device.send(b"ok\r\n")
            assert await link.read() == b"ok\r\n"
        finally:
            await link.close()
    shown = texts(trace)
    assert shown[0].startswith("-- opened ")
    assert shown[1:] == [">> G1 X5", ">! !", "<< ok", "-- closed by the agent"]
