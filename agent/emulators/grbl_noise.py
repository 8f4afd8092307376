"""Line noise for the GRBL emulator: junk lines slipped in between real replies.

A real USB serial link picks up garbage at connect time, after a brownout, or from a noisy
spindle: half lines, bytes that are not UTF-8, very long runs. A host must survive them.

What the junk never is: a line that reads ``ok`` (after stripping whitespace and control
characters), nor one that starts with ``error``, ``ALARM``, ``<`` or ``Grbl``. A host cannot
tell a stray ``ok`` from a real one, so such noise would make a correct character-counting
host lose count and there would be nothing it could do about it; likewise a stray ``error:``,
``ALARM:``, status report or banner reads as a real event. Every junk line is terminated with
LF so the real reply after it starts on a fresh line and stays intact.
"""

from __future__ import annotations

import random

_FORBIDDEN_PREFIXES = ("error", "alarm", "<", "grbl", "ok")
_MESSAGE_FRAGMENTS = ("[MSG:Chec", "[GC:G0 G5", "[MSG:", "$1", "[echo:", "[VER:1.1", ">G5")


def is_safe_junk(line: bytes) -> bool:
    """True if no piece of ``line`` could pass for a real reply, however a host decodes it.

    Checked under Latin-1 and under UTF-8 with invalid bytes dropped, split at every character
    Python treats as a line boundary, with whitespace, control and non-ASCII characters removed.
    """
    for text in (line.decode("latin-1"), line.decode("utf-8", errors="ignore")):
        for piece in text.splitlines():
            kept = "".join(ch for ch in piece if 0x20 < ord(ch) < 0x7F).lower()
            if kept.startswith(_FORBIDDEN_PREFIXES):
                return False
    return True


class ReplyNoise:
    """Decides, per reply, whether junk goes out first; seeded so failures reproduce."""

    def __init__(self, probability: float, seed: int) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"noise probability must be within 0..1, got {probability}")
        self.probability = probability
        self._rng = random.Random(seed)
        self.lines_sent = 0

    def junk_before_reply(self) -> bytes:
        """Junk to send before the next reply (empty most of the time)."""
        if self.probability <= 0.0 or self._rng.random() >= self.probability:
            return b""
        while True:
            body = self._junk_body()
            ending = self._rng.choice((b"\r\n", b"\n", b"\r\r\n"))
            line = body + ending
            if is_safe_junk(line):
                self.lines_sent += 1
                return line

    def _junk_body(self) -> bytes:
        rng = self._rng
        kind = rng.randrange(4)
        if kind == 0:  # raw garbage, much of it not UTF-8
            return bytes(b for b in rng.randbytes(rng.randint(1, 40)) if b not in (10, 13))
        if kind == 1:  # a very long printable run
            alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:|,[]$= "
            return bytes(rng.choice(alphabet) for _ in range(rng.randint(300, 600)))
        if kind == 2:  # a message cut short
            return rng.choice(_MESSAGE_FRAGMENTS).encode()
        junk = bytes(rng.randint(0x21, 0xFE) for _ in range(rng.randint(0, 20)))
        return b"[MSG:" + junk.replace(b"\n", b"?").replace(b"\r", b"?") + b"]"
