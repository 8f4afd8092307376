"""The trace's unix socket: private, replaced when stale, reachable from long directories."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from agent.cli import main
from agent.schemas.trace import SerialTraceDump
from agent.trace_server import SOCKET_NAME, TraceServer, format_trace, read_trace, trace_main
from agent.transport.trace import Direction, SerialTrace


def _trace() -> SerialTrace:
    trace = SerialTrace("/dev/ttyUSB0")
    trace.record(Direction.TX, b"G1 X10\n")
    trace.record(Direction.RX, b"error:20\r\n")
    return trace


async def test_a_client_gets_the_whole_trace_from_a_private_socket(tmp_path: Path) -> None:
    trace = _trace()
    server = TraceServer(tmp_path, trace.snapshot)
    await server.start()
    try:
        sock = tmp_path / SOCKET_NAME
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        got = await asyncio.to_thread(read_trace, tmp_path)
        SerialTraceDump.model_validate(got)
        assert got["port"] == "/dev/ttyUSB0"
        assert got["lines"][-1].endswith("<< error:20")
        # Live: a second client sees what was exchanged since.
        trace.record(Direction.TX, b"$X\n")
        again = await asyncio.to_thread(read_trace, tmp_path)
        assert again["lines"][-1].endswith(">> $X")
    finally:
        await server.close()
    assert not (tmp_path / SOCKET_NAME).exists()
    assert os.listdir(tmp_path) == []  # nor the temporary name


async def test_a_stale_socket_is_replaced_and_long_paths_work(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    (deep / SOCKET_NAME).write_text("left by a crash")
    server = TraceServer(deep, _trace().snapshot)
    await server.start()
    try:
        got = await asyncio.to_thread(read_trace, deep)
        assert got["lines"][0].endswith(">> G1 X10")
    finally:
        await server.close()


async def test_trace_command_prints_the_lines(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    storage = tmp_path / "state"
    storage.mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(f'station_id = "cutter-01"\nprofile = "grbl-1.1"\n[serial]\n'
                      f'port = "/dev/ttyUSB0"\n[storage]\ndir = "{storage}"\n')
    # Through the `station-agent` command itself.
    assert await asyncio.to_thread(main, ["trace", "--config", str(config)]) == 1
    assert "no running agent answered" in capsys.readouterr().err
    server = TraceServer(storage, _trace().snapshot)
    await server.start()
    try:
        code = await asyncio.to_thread(trace_main, ["--config", str(config), "--lines", "1"])
    finally:
        await server.close()
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert "/dev/ttyUSB0" in out[0] and "1 older lines not shown" in out[0]
    assert out[1].endswith("<< error:20")
    assert len(out) == 2


def test_an_empty_trace_says_so() -> None:
    text = format_trace(SerialTrace("ttyS0").snapshot())
    assert "nothing exchanged yet" in text
