"""`station-agent emulate grbl --wire-model` on a real pseudo-terminal, driven with pyserial."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import serial

from agent.emulators.grbl import add_cli_arguments, run_cli

pytestmark = pytest.mark.timeout(60)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    return parser.parse_args(list(argv))


@contextlib.asynccontextmanager
async def wire_emulator(tmp_path: Path, *extra: str) -> AsyncIterator[Path]:
    link = tmp_path / "ttyGRBL"
    task = asyncio.create_task(run_cli(_args("--link", str(link), "--wire-model", *extra)))
    try:
        while not link.exists():
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield link
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _read_some(port: serial.Serial) -> bytes:
    """What has arrived, waiting (up to the port's timeout) for at least one byte."""
    first = port.read(1)
    return first + port.read(port.in_waiting) if first else b""


async def _read_until(port: serial.Serial, count: int, marker: bytes = b"ok\r\n") -> bytes:
    data = b""
    while data.count(marker) < count:
        chunk = await asyncio.to_thread(_read_some, port)
        if not chunk:
            raise AssertionError(f"no more answers after {data[-200:]!r}")
        data += chunk
    return data


async def _stream(port: serial.Serial, lines: list[bytes]) -> int:
    """Character counting against 127 bytes; returns the oks received."""
    in_flight: deque[int] = deque()
    count = oks = sent = 0
    buffered = b""
    while oks < len(lines):
        while sent < len(lines) and count + len(lines[sent]) <= 127:
            port.write(lines[sent])
            in_flight.append(len(lines[sent]))
            count += len(lines[sent])
            sent += 1
        chunk = await asyncio.to_thread(_read_some, port)
        assert chunk, "the emulator stopped answering"
        buffered += chunk
        while b"\n" in buffered:
            reply, _, buffered = buffered.partition(b"\n")
            if reply.strip() == b"ok":
                oks += 1
                count -= in_flight.popleft()
    return oks


async def test_status_query_is_answered_and_lines_get_one_ok_each(tmp_path: Path) -> None:
    async with wire_emulator(tmp_path) as link:
        with serial.Serial(str(link), 115200, timeout=2) as port:
            port.write(b"?")
            report = await _read_until(port, 1, b">\r\n")
            assert b"<Idle|MPos:" in report
            port.write(b"G1X10Y10\n$I\n")
            answers = await _read_until(port, 2)
            assert b"[OPT:V,15,128]" in answers
            assert answers.endswith(b"ok\r\n")


async def test_a_counted_stream_is_recorded_and_the_stats_written_at_exit(tmp_path: Path) -> None:
    stats, record = tmp_path / "stats.json", tmp_path / "record.txt"
    lines = [f"G1X{100 + i % 800:06.2f}Y100.00\n".encode() for i in range(300)]
    async with wire_emulator(tmp_path, "--stats", str(stats), "--record", str(record),
                             "--ok-delay-ms", "2") as link:
        with serial.Serial(str(link), 115200, timeout=2) as port:
            assert await _stream(port, lines) == len(lines)
        assert record.read_text().splitlines() == [line.decode().strip() for line in lines]
    result = json.loads(stats.read_text())
    assert result["lost_bytes"] == 0
    assert result["lines"] == len(lines)
    assert result["model"]["ok_delay_ms"] == 2.0
    job = result["job"]
    assert job["lines"] == len(lines)
    assert job["line_bytes"] == sum(len(line) for line in lines)
    assert 0 < job["link_share"] <= 1
    assert job["busy_s"] + sum(job["idle_s"].values()) == pytest.approx(job["elapsed_s"],
                                                                          abs=1e-5)


async def test_wire_mode_refuses_options_it_does_not_model(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--wire-model"):
        await run_cli(_args("--link", str(tmp_path / "tty"), "--wire-model", "--motion"))
