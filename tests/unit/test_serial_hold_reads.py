"""SerialLink.hold_reads on a real pseudo-terminal: fewer, fuller reads while a stream is safe."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator

import pytest

from agent.errors import DeviceLost
from agent.transport.serial_port import SerialLink

pytestmark = pytest.mark.timeout(30)


@contextlib.asynccontextmanager
async def pty_link() -> AsyncIterator[tuple[SerialLink, int]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    link = await SerialLink.open(os.ttyname(slave), 115200)
    try:
        yield link, master
    finally:
        await link.close()
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


async def _spin(turns: int = 5) -> None:
    """Let the event loop poll its selector a few times (a ready reader would run)."""
    for _ in range(turns):
        await asyncio.sleep(0)


class Chunks(list[bytes]):
    """A receiver that keeps every chunk read, and can be waited on."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def __call__(self, data: bytes) -> None:
        self.append(data)
        self.changed.set()

    async def until(self, count: int) -> None:
        while len(self) < count:
            self.changed.clear()
            await self.changed.wait()


async def test_replies_arriving_during_a_hold_are_read_in_one_go() -> None:
    async with pty_link() as (link, master):
        chunks = Chunks()
        link.set_receiver(chunks)
        link.hold_reads(0.3)
        for _ in range(3):
            os.write(master, b"ok\r\n")
        await _spin()
        assert chunks == []  # held: nothing read yet, though three replies wait
        await chunks.until(1)
        assert chunks == [b"ok\r\nok\r\nok\r\n"]


async def test_without_a_hold_each_reply_is_read_as_it_comes() -> None:
    async with pty_link() as (link, master):
        chunks = Chunks()
        link.set_receiver(chunks)
        os.write(master, b"ok\r\n")
        await chunks.until(1)
        os.write(master, b"ok\r\n")
        await chunks.until(2)
        assert chunks == [b"ok\r\n", b"ok\r\n"]


async def test_a_receiver_that_holds_again_keeps_the_reads_held() -> None:
    async with pty_link() as (link, master):
        chunks = Chunks()

        def receive(data: bytes) -> None:
            chunks(data)
            link.hold_reads(0.3)

        link.set_receiver(receive)
        os.write(master, b"ok\r\n")
        await chunks.until(1)  # read at once, then held
        os.write(master, b"ok\r\nok\r\n")
        await _spin()
        assert chunks == [b"ok\r\n"]
        await chunks.until(2)
        assert chunks == [b"ok\r\n", b"ok\r\nok\r\n"]


async def test_leaving_push_mode_ends_the_hold() -> None:
    async with pty_link() as (link, master):
        link.set_receiver(lambda data: None)
        link.hold_reads(60)
        link.set_receiver(None)
        os.write(master, b"ok\r\n")
        assert await link.read() == b"ok\r\n"


async def test_a_device_lost_during_a_hold_is_reported_when_it_ends() -> None:
    async with pty_link() as (link, master):
        link.set_receiver(lambda data: None)
        link.hold_reads(0.05)
        os.close(master)  # like pulling the cable: the next read fails
        with pytest.raises(DeviceLost):
            await link.wait_lost()


async def test_the_stations_watchdog_link_passes_a_hold_on() -> None:
    """The station wraps its serial link to feed the watchdog: a hold must reach the port."""
    from agent.device import _BeatingLink

    async with pty_link() as (link, master):
        beats: list[bool] = []
        chunks = Chunks()
        wrapped = _BeatingLink(link, lambda: beats.append(True))
        wrapped.set_receiver(chunks)
        wrapped.hold_reads(0.3)
        os.write(master, b"ok\r\nok\r\n")
        await _spin()
        assert chunks == []
        await chunks.until(1)
        assert chunks == [b"ok\r\nok\r\n"]
        assert beats == [True]


async def test_a_hold_that_ends_with_nothing_read_leaves_the_link_up() -> None:
    async with pty_link() as (link, master):
        chunks = Chunks()
        link.set_receiver(chunks)
        link.hold_reads(0.01)
        await asyncio.sleep(0.05)  # the hold ends on a quiet line
        os.write(master, b"ok\r\n")
        await chunks.until(1)
        assert chunks == [b"ok\r\n"]
