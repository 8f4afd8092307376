"""The one interface every byte transport offers to the drivers above it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class ByteLink(Protocol):
    """A full-duplex byte stream to one machine.

    ``write`` never blocks: bytes are queued and leave as fast as the port takes them.
    ``urgent`` bytes (realtime commands, emergency stops) jump ahead of everything still queued
    in the agent, so they reach the wire before any program line written earlier.
    """

    @property
    def name(self) -> str: ...

    async def read(self) -> bytes:
        """Wait for at least one byte. Raises DeviceLost when the device goes away."""
        ...

    def set_receiver(self, receiver: Callable[[bytes], None] | None) -> None:
        """Push mode: hand every chunk to ``receiver`` as soon as it is read, from the event
        loop's reader callback, instead of queueing it for :meth:`read` (saves a task switch
        per reply on a busy stream). ``receiver`` must not raise."""
        ...

    async def wait_lost(self) -> None:
        """In push mode: wait until the device goes away, then raise DeviceLost."""
        ...

    def hold_reads(self, seconds: float) -> None:
        """In push mode: do not wake for input for ``seconds``, then read all that came in one
        go (fewer wake-ups on a busy stream). Only for a caller that has nothing to act on
        sooner; a hold already running is kept."""
        ...

    def write(self, data: bytes, *, urgent: bool = False) -> None: ...

    async def drain(self) -> None:
        """Wait until everything written has been handed to the operating system."""
        ...

    def set_flow_paused(self, paused: bool) -> None:
        """Hold back queued bytes (XON/XOFF from the device); urgent bytes still leave."""
        ...

    async def close(self) -> None: ...
