"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.aio import wait_within
from agent.sdnotify import Notifier, ProgressWatchdog


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fs_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"station-agent-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    yield sock, "@" + name
    sock.close()


def _received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_filesystem_socket_gets_each_message(fs_socket: tuple[socket.socket, str]) -> None:
    sock, path = fs_socket
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("serial /dev/ttyCutter0 open; broker unreachable, retrying")
    assert _received(sock) == [
        "READY=1", "STATUS=serial /dev/ttyCutter0 open; broker unreachable, retrying"]
    assert n.status("running job tee-front-M-12\nline 40/900")
    assert _received(sock) == ["STATUS=running job tee-front-M-12 line 40/900"]
    assert n.watchdog()
    assert _received(sock) == ["WATCHDOG=1"]
    assert n.stopping()
    assert _received(sock) == ["STOPPING=1"]


def test_abstract_socket_name_with_at_sign(abstract_socket: tuple[socket.socket, str]) -> None:
    sock, name = abstract_socket
    n = Notifier({"NOTIFY_SOCKET": name})
    assert n.ready()
    assert _received(sock) == ["READY=1"]


def test_no_socket_means_every_call_is_a_no_op() -> None:
    n = Notifier({})
    assert not n.enabled
    assert not n.ready()
    assert not n.watchdog()
    assert n.watchdog_interval() is None


def test_unreachable_socket_does_not_raise(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.enabled
    assert not n.ready()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "20000000"}, 20.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}, 20.0),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert Notifier(env).watchdog_interval() == expected


def test_progress_watchdog_withholds_pings_from_a_wedged_part(
    fs_socket: tuple[socket.socket, str],
) -> None:
    sock, path = fs_socket
    sock.settimeout(0.2)
    clock = FakeClock()
    dog = ProgressWatchdog(Notifier({"NOTIFY_SOCKET": path}), clock=clock)
    dog.register("serial-reader", max_silence_s=10)
    dog.register("outbox", max_silence_s=30)
    clock.now += 5
    assert dog.ping_if_healthy()
    assert _received(sock) == ["WATCHDOG=1"]

    clock.now += 6  # the serial reader has been silent 11 s
    dog.beat("outbox")
    assert dog.stale_parts() == ["serial-reader"]
    assert not dog.ping_if_healthy()
    with pytest.raises(TimeoutError):
        sock.recv(4096)

    dog.beat("serial-reader")
    assert dog.ping_if_healthy()
    assert _received(sock) == ["WATCHDOG=1"]
    dog.unregister("serial-reader")
    clock.now += 100
    assert dog.stale_parts() == ["outbox"]


async def test_watchdog_task_pings_until_cancelled(fs_socket: tuple[socket.socket, str]) -> None:
    sock, path = fs_socket
    sock.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    dog = ProgressWatchdog(notifier)
    task = asyncio.create_task(dog.run())
    loop = asyncio.get_running_loop()
    first = await wait_within(loop.sock_recv(sock, 4096), 10)
    second = await wait_within(loop.sock_recv(sock, 4096), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert first == second == b"WATCHDOG=1"


async def test_watchdog_task_ends_at_once_without_a_watchdog() -> None:
    await wait_within(ProgressWatchdog(Notifier({})).run(), 5)
