"""The running agent's serial trace on a unix socket, and ``station-agent trace`` that reads it.

The agent listens on ``<storage dir>/trace.sock`` (mode 0600: only the agent's own user, or
root, may read what the machine was sent). A client connects and gets one JSON object (the
whole trace, docs/schemas/trace.schema.json) followed by end of file; it sends nothing. The
socket is made under a temporary name, restricted, then renamed into place, so it is never
reachable with wider permissions. One agent per storage dir (agent.instance_lock), so a
``trace.sock`` left by a crash is stale and replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent.aio import wait_within

log = logging.getLogger(__name__)

SOCKET_NAME = "trace.sock"
SOCKET_MODE = 0o600
# sun_path holds 108 bytes; a longer directory is reached through /proc/self/fd instead.
_MAX_SUN_PATH = 100
CLIENT_TIMEOUT_S = 5.0

TraceSource = Callable[[], dict[str, Any]]


@contextlib.contextmanager
def _reachable(directory: Path) -> Iterator[str]:
    """A name for ``directory`` short enough for a unix socket address."""
    if len(str(directory)) + len(SOCKET_NAME) + 8 < _MAX_SUN_PATH:
        yield str(directory)
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


class TraceServer:
    """Serves ``source()`` (the device's trace snapshot) to each connecting client."""

    def __init__(self, directory: Path, source: TraceSource) -> None:
        self.path = directory / SOCKET_NAME
        self._source = source
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        directory = self.path.parent
        temporary = directory / f".{SOCKET_NAME}.{os.getpid()}"
        for stale in (self.path, temporary):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        with _reachable(directory) as where:
            self._server = await asyncio.start_unix_server(
                self._serve, path=f"{where}/{temporary.name}")
        try:
            os.chmod(temporary, SOCKET_MODE)
            os.rename(temporary, self.path)
        except OSError:
            await self.close()
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(TimeoutError):
            await wait_within(self._server.wait_closed(), 2.0)
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(json.dumps(self._source(), ensure_ascii=False).encode() + b"\n")
            await wait_within(writer.drain(), CLIENT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            log.debug("trace client went away: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await wait_within(writer.wait_closed(), 1.0)


def read_trace(directory: Path, timeout_s: float = CLIENT_TIMEOUT_S) -> dict[str, Any]:
    """The trace of the agent running on ``directory``; OSError when none answers."""
    with _reachable(directory) as where, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(f"{where}/{SOCKET_NAME}")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    data: dict[str, Any] = json.loads(b"".join(chunks))
    return data


def format_trace(trace: dict[str, Any], last: int | None = None) -> str:
    lines: list[str] = list(trace["lines"])
    hidden = int(trace.get("omitted", 0))
    if last is not None and len(lines) > last:
        hidden += len(lines) - last
        lines = lines[len(lines) - last:]
    head = f"serial trace of {trace.get('port') or 'the machine'} at {trace.get('at')}"
    if hidden:
        head += f" ({hidden} older lines not shown)"
    if trace.get("evicted_bytes"):
        head += f"; {trace['evicted_bytes']} older bytes no longer kept"
    return "\n".join([head, *lines]) if lines else head + "\n(nothing exchanged yet)"


def trace_main(argv: list[str]) -> int:
    """``station-agent trace --config FILE [--lines N] [--json]``; 1 if no agent answers."""
    from agent.config import load_config

    parser = argparse.ArgumentParser(prog="station-agent trace",
                                     description="print the last lines a running station "
                                     "exchanged with its machine")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--lines", type=int, default=None, help="only the last N lines")
    parser.add_argument("--json", action="store_true", help="the raw JSON object")
    args = parser.parse_args(argv)
    directory = load_config(args.config).storage.dir
    try:
        trace = read_trace(directory)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"station-agent trace: no running agent answered on "
                         f"{directory / SOCKET_NAME} ({exc}); is `station-agent run` running "
                         f"with this config, as a user that may open the socket?\n")
        return 1
    if args.json:
        sys.stdout.write(json.dumps(trace, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(format_trace(trace, args.lines) + "\n")
    return 0
