"""The serial trace: the last lines a station and its machine exchanged.

Carried by a ``failed`` event's ``detail.trace`` (clipped), by the ``command_done`` answer to
the ``trace`` command, and by ``station-agent trace`` (agent.transport.trace renders it).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class SerialTraceDump(BaseModel):
    """Lines oldest first, each ``HH:MM:SS.mmm DIR TEXT`` (UTC): DIR is ``>>`` sent to the
    machine, ``<<`` received from it, ``>!`` sent ahead of the queue (realtime bytes, e-stop),
    ``--`` the agent's note (port opened, lost, closed). Bytes other than printable ASCII are
    shown as escapes (``\\x18``); a line over 160 bytes is cut, saying how many bytes were left
    out; a last line not yet ended ends in ``(no newline yet)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: str = Field(description="the serial device the lines went over")
    at: str = Field(description="when the trace was taken (RFC 3339, UTC)")
    lines: list[str]
    omitted: Annotated[int, Field(ge=0)] = Field(
        description="older lines still kept by the agent but left out of this copy")
    evicted_bytes: Annotated[int, Field(ge=0)] = Field(
        description="bytes of older history the agent no longer keeps (its ring is bounded)")
