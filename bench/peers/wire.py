"""What the tap saw on the wire, read the way GRBL reads it: the job's span and its link share.

GRBL (protocol.c, serial.c) picks realtime bytes (``?``, ``!``, ``~``, Ctrl-X and 0x80 and up)
out of the stream wherever they fall, ends a line at each ``\\n`` or ``\\r`` (an empty line too
is answered ``ok``), and answers every line with exactly one ``ok`` or ``error:N``, in order.
So the k-th reply after a reset's banner answers the k-th line written after that reset, and
the job's span runs from the first byte of its first line leaving the sender to the reply to
its last line reaching the sender. The link share is the job's bytes over what the wire could
have carried in that span: ``bytes * 10 / baud / seconds`` (8N1 framing, 10 bits a byte).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESET = 0x18
_REALTIME = frozenset({ord("?"), ord("!"), ord("~"), RESET})

Record = tuple[float, str, bytes]  # monotonic time, "h" (host to device) or "d", bytes


@dataclass
class Wire:
    """Lines the host wrote and replies the device gave, each with when the tap saw it."""

    lines: list[tuple[float, str]]  # (time of the line's first byte, text)
    replies: list[tuple[float, str]]  # (time of the reply's last byte, "ok" / "error:N")
    host_bytes: list[tuple[float, int]]  # (time, bytes) of every host write, realtime included


def normalise(line: str) -> str:
    """As GRBL's protocol.c stores a line: spaces dropped, letters upper-cased."""
    return line.replace(" ", "").replace("\t", "").upper()


def load_records(path: Path) -> list[Record]:
    out: list[Record] = []
    for text in path.read_text(encoding="latin-1").splitlines():
        t, direction, data = json.loads(text)
        out.append((float(t), str(direction), str(data).encode("latin-1")))
    return out


def read_wire(records: Iterable[Record]) -> Wire:
    """Lines and replies since the last soft reset the device acknowledged with its banner."""
    wire = Wire([], [], [])
    line = bytearray()
    line_t = 0.0
    reply = bytearray()
    for t, direction, data in records:
        if direction == "h":
            wire.host_bytes.append((t, len(data)))
            for byte in data:
                if byte == RESET:
                    wire.lines.clear()
                    line.clear()
                elif byte in _REALTIME or byte >= 0x80:
                    continue
                elif byte in (0x0A, 0x0D):
                    wire.lines.append((line_t if line else t, line.decode("latin-1")))
                    line.clear()
                else:
                    if not line:
                        line_t = t
                    line.append(byte)
            continue
        for byte in data:
            if byte != 0x0A:
                reply.append(byte)
                continue
            text = reply.decode("latin-1").strip()
            reply.clear()
            if text.startswith("Grbl "):
                wire.replies.clear()  # the banner: replies count from here, as lines do
            elif text == "ok" or text.startswith("error:"):
                wire.replies.append((t, text))
    return wire


def job_span(wire: Wire, job: Sequence[str]) -> dict[str, Any]:
    """Where the job ran on the wire: its first line's first byte to the reply to its last."""
    texts = [normalise(text) for _, text in wire.lines]
    first, last = normalise(job[0]), normalise(job[-1])
    try:
        start = texts.index(first)
        end = len(texts) - 1 - texts[::-1].index(last)
    except ValueError as exc:
        raise ValueError("the job's first or last line never went over the wire") from exc
    t0 = wire.lines[start][0]
    counted = end < len(wire.replies)
    # Without a reply for every line (bytes lost on the way) the last reply seen stands in.
    t1 = wire.replies[end][0] if counted else wire.replies[-1][0]
    errors = sum(1 for t, text in wire.replies if t0 <= t <= t1 and text != "ok")
    host_bytes = sum(n for t, n in wire.host_bytes if t0 <= t <= t1)
    return {"t0": t0, "t1": t1, "seconds": t1 - t0, "end_by_reply_count": counted,
            "error_replies": errors, "host_bytes_in_span": host_bytes}


def job_bytes(job: Sequence[str]) -> int:
    return sum(len(line) + 1 for line in job)


def link_share(payload_bytes: int, seconds: float, baud: int) -> float:
    """The share of the wire's capacity (baud / 10 bytes a second at 8N1) the job's bytes used."""
    return payload_bytes * 10 / baud / seconds


def lines_not_executed(job: Sequence[str], executed: Sequence[str]) -> int:
    """Job lines the device did not execute as sent (lost or garbled by a receive-buffer
    overflow): the job's length less its longest common run of matches with what ran."""
    matcher = difflib.SequenceMatcher(None, [normalise(x) for x in job],
                                      [normalise(x) for x in executed], autojunk=False)
    return len(job) - sum(block.size for block in matcher.get_matching_blocks())


def figures(wire: Wire, job: Sequence[str], executed: Sequence[str], baud: int) -> dict[str, Any]:
    span = job_span(wire, job)
    payload = job_bytes(job)
    seconds = span["seconds"]
    return {
        "lines": len(job),
        "payload_bytes": payload,
        "seconds": round(seconds, 3),
        "lines_per_s": round(len(job) / seconds, 1),
        "link_share": round(link_share(payload, seconds, baud), 4),
        "overflow_lines": lines_not_executed(job, executed),
        "error_replies": span["error_replies"],
        "end_by_reply_count": span["end_by_reply_count"],
        "host_bytes_in_span": span["host_bytes_in_span"],
    }
