"""A Marlin 2 board on a pseudo-terminal, close enough to its serial behaviour to catch a host.

Model (following Marlin's queue.cpp and its documentation):
- Bytes land in a receive buffer of ``rx_buffer_bytes`` (one byte kept free, like the ring buffer
  of the board). Bytes that arrive when it is full are lost and counted in ``rx_overflows``.
- Complete lines move from the receive buffer into the command queue (``bufsize`` slots, the
  executing command included) only when Marlin's ``idle()`` runs ``get_serial_commands()``
  (``MarlinCore.cpp`` ``idle()`` -> ``queue.get_available_commands()``; ``loop()`` is
  ``idle(); queue.advance();``): between commands, and while a command waits (heating, dwell,
  homing), never while a command is being processed. Bytes that arrive during the
  ``command_time_s`` of a command stay in the receive buffer however many slots are free. There
  is no planner model, so a move never waits for a planner slot (which would also run idle()).
- A numbered line must be ``last + 1`` and carry a valid checksum; otherwise the firmware prints
  ``Error:...``, empties the receive buffer, asks ``Resend: last+1`` and adds a plain ``ok``.
  ``N<n> M110 N<m>`` is exempt from the sequence check and sets the counter on receipt; M110
  sets it again when it executes. Unnumbered lines are taken as they are (with ``*``: an error).
- ``ok`` is sent when a command has executed (``ok N<n> P<planner> B<queue free>`` with
  ADVANCED_OK, the executing command still counted: ``ok_to_send()`` runs before ``advance()``
  frees its slot). There is no planner model: P is constant.
- Wire: the endpoint's ``baud=None`` is the instant wire (bytes arrive as fast as written, as
  over native USB or a bridge that delivers bursts); ``latency_s`` delays every reply.
  :meth:`MarlinEmulator.arrive`, :meth:`begin_command` and :meth:`end_command` are the model's
  steps without the pty, for a simulation on its own clock (``agent/emulators/marlin_sim.py``).
- Each command takes ``command_time_s``; M109/M190 wait for a simulated heater that warms at
  ``heating_rate_c_s`` simulated degrees per second, ``time_scale`` simulated seconds per wall
  second; G4 waits its duration; G28 takes ``homing_time_s``. While a command takes long,
  ``busy: processing`` is printed every keepalive interval (M113) when BUSY_PROTOCOL is on, and
  heater waits print temperatures every second.
- EMERGENCY_PARSER: ``M112``, ``M108`` and ``M410`` act the moment their line arrives, even when
  the buffers are full. M112 kills the board: it prints the kill message and answers nothing
  more until the emulator is restarted.
- M155 auto-reports temperatures; M115 answers FIRMWARE_NAME and ``Cap:`` lines.

Reading a line follows Marlin 2.1 with its default configuration (each rule names its source):
``process_stream_char`` in queue.cpp (:func:`stream_line`: ``;`` comments, backslash escapes,
backspace, PAREN_COMMENTS only when asked), the line-number and checksum checks of
``get_serial_commands``, then ``GCodeParser::parse`` in parser.cpp (:func:`parse_command`:
leading spaces, an ``N`` prefix in either case, the cut at ``*``, case-insensitive letters,
spaces inside words, 16-bit command numbers so ``M0112`` is M112 and ``M65654`` is M118, text
arguments of M23/M28/M30/M117/M118/M928). ``M118`` prints its text as it is (M118.cpp:
``echo:`` only with ``E1``, ``//`` only with ``A1``); ``M117`` is sent to the host as
``//action:notification`` only with HOST_ACTION_COMMANDS on.

Faults: ``corrupt_fraction`` of arriving lines get one bit flipped (a flip may even turn ``*``
into a line feed and split the line, as on a real wire), ``drop_ok_fraction`` of oks are never
sent, ``garbage_fraction`` of replies are preceded by a line of noise, :meth:`go_silent` stops the
board answering, and ``endpoint.disconnect()`` pulls the cable.

Records: ``executed`` (every command run, without line number and checksum, in order; M110,
M105 and the other host-protocol commands included), ``log`` (every line as it arrived on the
wire, in order, before any check) and, if ``record_path`` is given, one executed command per line
in that file.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from agent.aio import wait_event
from agent.dialects.marlin import checksum
from agent.emulators.pty import PtyEndpoint, add_link_arguments, endpoint_from_args
from agent.emulators.tasks import EmulatorTasks

DEFAULT_CAPABILITIES: dict[str, bool] = {
    "SERIAL_XON_XOFF": False,
    "BINARY_FILE_TRANSFER": False,
    "EEPROM": True,
    "AUTOREPORT_TEMP": True,
    "AUTOREPORT_POS": False,
    "PROGRESS": False,
    "PRINT_JOB": True,
    "AUTOLEVEL": False,
    "Z_PROBE": False,
    "LEVELING_DATA": False,
    "BUILD_PERCENT": False,
    "SOFTWARE_POWER": False,
    "TOGGLE_LIGHTS": False,
    "CASE_LIGHT_BRIGHTNESS": False,
    "EMERGENCY_PARSER": True,
    "HOST_ACTION_COMMANDS": False,
    "PROMPT_SUPPORT": False,
    "SDCARD": False,
    "AUTOREPORT_SD_STATUS": False,
    "THERMAL_PROTECTION": True,
    "BUSY_PROTOCOL": True,
}

# Commands this board runs; anything else is answered "Unknown command" (and ok).
_KNOWN_G = (0, 1, 2, 3, 4, 10, 11, 17, 18, 19, 20, 21, 27, 28, 29, 90, 91, 92)
_KNOWN_M = (3, 4, 5, 17, 18, 82, 83, 84, 92, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113,
            114, 115, 117, 118, 119, 140, 155, 190, 201, 203, 204, 205, 206, 211, 220, 221, 400,
            410, 500, 501, 502, 503, 600, 900)
KNOWN_COMMANDS = frozenset(
    [f"G{n}" for n in _KNOWN_G] + [f"M{n}" for n in _KNOWN_M] + ["T0", "T1"]
)
_EMERGENCY = frozenset({"M108", "M112", "M410"})
_KILL_TEXT = "Error:Printer halted. kill() called!"
# Marlin's MAX_CMD_SIZE: a line's buffer, terminator included (queue.cpp skips the rest).
MAX_CMD_SIZE = 96
# M codes whose rest of line is one text argument (parser.cpp, default configuration).
_STRING_ARG_M = frozenset({23, 28, 30, 117, 118, 928})
_DECIMAL_SIGNED = frozenset("0123456789.+-")
_FLOAT_PREFIX = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_LONG_PREFIX = re.compile(r"[+-]?\d+")


def stream_line(raw: str, *, paren_comments: bool = False) -> str:
    """What queue.cpp's ``process_stream_char`` keeps of one received line.

    ``;`` starts a comment to the end of the line; a backslash is dropped and the character after
    it kept as it is (so ``\\;`` is not a comment); a backspace (0x08) erases the character
    before it; with PAREN_COMMENTS (off in Marlin's default configuration) ``(`` to ``)`` is
    dropped; a line longer than MAX_CMD_SIZE - 1 loses the rest. GCODE_QUOTED_STRINGS (off by
    default) is not modelled.
    """
    out: list[str] = []
    escaped = False
    in_paren = False
    for c in raw:
        if in_paren:
            if c == ")":
                in_paren = False
            continue
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
            continue
        elif c == ";":
            break
        elif paren_comments and c == "(":
            in_paren = True
            continue
        if c == "\b":
            if out:
                out.pop()
            continue
        out.append(c)
        if len(out) >= MAX_CMD_SIZE - 1:
            break
    return "".join(out)


def _upper(c: str) -> str:
    # GCODE_CASE_INSENSITIVE (on in Marlin's default Configuration_adv.h): a-z read as A-Z.
    return c.upper() if "a" <= c <= "z" else c


def _valid_float(text: str) -> bool:
    """parser.h ``valid_float``: ``[-+]?.?[0-9]`` at the start."""
    t = text[1:] if text[:1] in ("-", "+") else text
    return t[:1].isdigit() or (t[:1] == "." and t[1:2].isdigit())


@dataclass
class MarlinCommand:
    """One line as ``GCodeParser::parse`` (parser.cpp, Marlin 2.1) leaves it.

    ``letter`` is ``G``/``M``/``T``, or ``?`` when the line has no command Marlin knows how to
    read; ``codenum`` is 16-bit, ``subcode`` 8-bit (``M65654`` is M118, leading zeros vanish);
    ``params`` maps each parameter letter to the text its value starts at (None: no value; a
    later copy of a letter replaces an earlier one, as FASTER_GCODE_PARSER's ``set`` does);
    ``string_arg`` is the text argument of M23/M28/M30/M117/M118/M928 (the rest of the line)
    or the first value-less word; ``text`` is what Marlin echoes in "Unknown command".
    """

    letter: str
    codenum: int
    subcode: int
    params: dict[str, str | None]
    string_arg: str | None
    text: str

    @property
    def word(self) -> str:
        return f"{self.letter}{self.codenum}" if self.letter != "?" else ""

    def seenval(self, letter: str) -> bool:
        return self.params.get(letter) is not None

    def value_float(self, letter: str) -> float | None:
        """``value_float``: strtof of the value, cut at E/e/X/x (no exponent, no hex)."""
        value = self.params.get(letter)
        if value is None:
            return None
        for i, c in enumerate(value):
            if c in " EeXx":
                value = value[:i]
                break
        m = _FLOAT_PREFIX.match(value)
        return float(m.group(0)) if m else 0.0

    def value_ulong(self, letter: str) -> int | None:
        """``value_ulong``: strtoul base 10 (a negative number wraps to a huge one)."""
        value = self.params.get(letter)
        if value is None:
            return None
        m = _LONG_PREFIX.match(value)
        return int(m.group(0)) % (1 << 32) if m else 0


def parse_command(line: str) -> MarlinCommand:
    """Read one queued line as ``GCodeParser::parse`` does (Marlin 2.1, default configuration:
    GCODE_CASE_INSENSITIVE and FASTER_GCODE_PARSER on, motion modes and quoted strings off).

    - leading spaces are skipped; ``N`` (either case) then a digit or sign: the line number,
      its digits and the spaces after it are skipped;
    - the line ends at the first ``*`` (spaces before it dropped);
    - the command letter is G, M or T in either case, spaces may follow it (``M 118``), then
      digits read into a 16-bit number, so leading zeros vanish (``M0112`` is M112) and
      ``M65654`` is M118; ``.n`` is a subcode;
    - M23, M28, M30, M117 and M118 take the rest of the line, spaces skipped, as their text;
    - otherwise each parameter is a letter (upper-cased), spaces, then a value if one starts
      there (``valid_float``); after a value its ``0-9.+-`` characters and spaces are skipped.
    """
    p = line.lstrip(" ")
    if _upper(p[:1]) == "N" and p[1:2] and (p[1].isdigit() or p[1] in "+-"):
        p = p[2:]
        while p[:1].isdigit():
            p = p[1:]
        p = p.lstrip(" ")
    star = p.find("*")
    if star >= 0:
        p = p[:star].rstrip(" ")
    text = p
    unknown = MarlinCommand("?", 0, 0, {}, None, text)
    letter = _upper(p[:1])
    if letter not in ("G", "M", "T"):
        return unknown
    p = p[1:].lstrip(" ")
    digits = len(p) - len(p.lstrip("0123456789"))
    if digits == 0:
        return unknown
    codenum = int(p[:digits]) % 65_536
    p = p[digits:]
    subcode = 0
    if p[:1] == ".":
        p = p[1:]
        digits = len(p) - len(p.lstrip("0123456789"))
        subcode = int(p[:digits] or "0") % 256
        p = p[digits:]
    p = p.lstrip(" ")
    if letter == "M" and codenum in _STRING_ARG_M:
        return MarlinCommand(letter, codenum, subcode, {}, p, text)
    params: dict[str, str | None] = {}
    string_arg: str | None = None
    while p:
        c, p = p[0], p[1:]
        param = _upper(c)
        if param == "!" and letter == "M" and codenum == 32:
            return MarlinCommand(letter, codenum, subcode, params, p.partition("#")[0], text)
        if "A" <= param <= "Z":
            p = p.lstrip(" ")
            has_val = _valid_float(p)
            if not has_val and string_arg is None:
                string_arg = c + p
            params[param] = p if has_val else None
        elif string_arg is None:
            string_arg = c + p
        if not ("A" <= p[:1] <= "Z"):
            while p[:1] and p[0] in _DECIMAL_SIGNED:
                p = p[1:]
            p = p.lstrip(" ")
    return MarlinCommand(letter, codenum, subcode, params, string_arg, text)


def m118_output(string_arg: str) -> str:
    """The line M118 prints (M118.cpp): up to three leading ``A1``/``E1``/``Pn`` words (upper
    case, each followed by spaces) are options; ``E1`` prefixes ``echo:``, ``A1`` prefixes
    ``//``; the rest is printed as it is."""
    p = string_arg
    has_a = has_e = False
    for _ in range(3):
        if not ((p[:1] in ("A", "E") and p[1:2] == "1") or (p[:1] == "P" and p[1:2].isdigit())):
            break
        if p[0] == "A":
            has_a = True
        elif p[0] == "E":
            has_e = True
        p = p[2:].lstrip(" ")
    return ("echo:" if has_e else "") + ("//" if has_a else "") + p


def _strip_frame(line: str) -> str:
    """The command of a line, without ``N<n>`` and ``*<checksum>``."""
    text = line
    if text.startswith("N"):
        i = 1
        while i < len(text) and (text[i].isdigit() or text[i] == "-"):
            i += 1
        text = text[i:]
    star = text.rfind("*")
    if star >= 0:
        text = text[:star]
    return text.strip()


class Heater:
    def __init__(self, ambient: float = 22.0) -> None:
        self.current = ambient
        self.target = 0.0
        self.ambient = ambient

    def advance(self, sim_seconds: float, rate: float) -> None:
        goal = self.target if self.target > 0 else self.ambient
        step = rate * sim_seconds
        if self.current < goal:
            self.current = min(goal, self.current + step)
        else:
            self.current = max(goal, self.current - step / 2)


class MarlinEmulator(EmulatorTasks):
    def __init__(
        self,
        endpoint: PtyEndpoint,
        *,
        bufsize: int = 4,
        rx_buffer_bytes: int = 128,
        advanced_ok: bool = False,
        command_time_s: float = 0.0002,
        capabilities: dict[str, bool] | None = None,
        heating_rate_c_s: float = 10.0,
        time_scale: float = 1.0,
        homing_time_s: float = 0.3,
        keepalive_s: float = 2.0,
        planner_blocks: int = 16,
        corrupt_fraction: float = 0.0,
        drop_ok_fraction: float = 0.0,
        garbage_fraction: float = 0.0,
        seed: int | None = None,
        record_path: Path | None = None,
        paren_comments: bool = False,
    ) -> None:
        self.endpoint = endpoint
        # PAREN_COMMENTS (off in Marlin's default configuration): ``( )`` are comments.
        self.paren_comments = paren_comments
        self.status_message = ""
        self.bufsize = bufsize
        self.rx_capacity = rx_buffer_bytes - 1
        self.advanced_ok = advanced_ok
        self.command_time_s = command_time_s
        self.capabilities = dict(DEFAULT_CAPABILITIES if capabilities is None else capabilities)
        self.heating_rate_c_s = heating_rate_c_s
        self.time_scale = time_scale
        self.homing_time_s = homing_time_s
        self.keepalive_s = keepalive_s
        self.planner_free = planner_blocks - 1
        self.corrupt_fraction = corrupt_fraction
        self.drop_ok_fraction = drop_ok_fraction
        self.garbage_fraction = garbage_fraction
        self._rng = random.Random(seed)
        self.executed: list[str] = []
        self.log: list[str] = []
        self.rx_overflows = 0
        self.max_rx_bytes = 0
        self.max_queue = 0
        self.corrupted_lines = 0
        self.dropped_oks = 0
        self.resend_requests = 0
        self.killed = False
        self.silent = False
        self.last_n = 0
        self.hotend = Heater()
        self.bed = Heater()
        self._arrival = bytearray()
        self._rx = bytearray()
        self._queue: deque[tuple[str, int | None]] = deque()
        self._queued = asyncio.Event()
        # A command is being processed: no transfer from the receive buffer (see the model).
        self.processing = False
        self._wait_for_heatup = False
        self._autoreport_s = 0.0
        self._autoreport_changed = asyncio.Event()
        self._clock = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._record: TextIO | None = (
            record_path.open("a", encoding="utf-8") if record_path is not None else None
        )

    # -- lifetime --------------------------------------------------------------------------

    def start(self) -> None:
        self._clock = time.monotonic()
        self._emit("start")
        self._emit("echo:Marlin 2.1.2.1 (station-agent emulator)")
        self._launch(**{
            "marlin-emu-rx": self._receive_loop(),
            "marlin-emu-exec": self._execute_loop(),
            "marlin-emu-report": self._autoreport_loop(),
        })

    async def stop(self) -> None:
        await self._cancel_tasks()
        if self._record is not None:
            self._record.close()
            self._record = None

    def say(self, text: str) -> None:
        """Print a line as the firmware would (tests: a stray resend request, an error)."""
        self._emit(text)

    def go_silent(self) -> None:
        """The board hangs: it answers nothing and runs nothing more."""
        self.silent = True

    # -- output ----------------------------------------------------------------------------

    def _emit(self, text: str) -> None:
        if self.silent or (self.killed and text != _KILL_TEXT):
            return
        if self.garbage_fraction and self._rng.random() < self.garbage_fraction:
            size = self._rng.randrange(3, 20)
            noise = bytes(self._rng.randrange(0x21, 0x7F) for _ in range(size))
            self.endpoint.send(noise + b"\n")
        self.endpoint.send(text.encode("ascii", "replace") + b"\n")

    def _ok(self, number: int | None) -> None:
        if self.drop_ok_fraction and self._rng.random() < self.drop_ok_fraction:
            self.dropped_oks += 1
            return
        if self.advanced_ok:
            n = f" N{number}" if number is not None else ""
            self._emit(f"ok{n} P{self.planner_free} B{self.bufsize - len(self._queue)}")
        else:
            self._emit("ok")

    def _temperature_text(self) -> str:
        h, b = self.hotend, self.bed
        return f"T:{h.current:.2f} /{h.target:.2f} B:{b.current:.2f} /{b.target:.2f} @:0 B@:0"

    # -- receiving -------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while True:
            try:
                data = await self.endpoint.receive()
            except ConnectionError:
                return
            self._arrive(data)

    def _arrive(self, data: bytes) -> None:
        self._arrival += data
        while True:
            end = self._arrival.find(b"\n")
            if end < 0:
                break
            line = bytes(self._arrival[: end + 1])
            del self._arrival[: end + 1]
            if self.corrupt_fraction and self._rng.random() < self.corrupt_fraction:
                line = self._flip_bit(line)
            self._on_wire_line(line)
            # Between commands the main loop's idle() takes lines as fast as they arrive.
            if not self.processing:
                self._pump()

    def arrive(self, data: bytes) -> None:
        """Bytes from the host land in the receive buffer (the model's input, no pty)."""
        self._arrive(data)

    def _flip_bit(self, line: bytes) -> bytes:
        if len(line) < 2:
            return line
        self.corrupted_lines += 1
        pos = self._rng.randrange(len(line) - 1)
        damaged = bytearray(line)
        damaged[pos] ^= 1 << self._rng.randrange(7)
        return bytes(damaged)

    def _on_wire_line(self, line: bytes) -> None:
        text = line.decode("ascii", "replace").strip()
        if text:
            self.log.append(text)
        if self.silent or self.killed:
            return
        if self.capabilities.get("EMERGENCY_PARSER"):
            word = _strip_frame(text)
            if word in _EMERGENCY:
                self._emergency(word)
                if self.killed:
                    return
        free = self.rx_capacity - len(self._rx)
        if len(line) > free:
            self.rx_overflows += 1
            line = line[: max(0, free)]
        self._rx += line
        self.max_rx_bytes = max(self.max_rx_bytes, len(self._rx))

    def _emergency(self, word: str) -> None:
        if word == "M112":
            self._kill()
        elif word == "M108":
            self._wait_for_heatup = False

    def _kill(self) -> None:
        if not self.killed:
            self._emit(_KILL_TEXT)
            self.killed = True
            self._queue.clear()
            self._rx.clear()
            self._queued.set()

    def _pump(self) -> None:
        """Marlin's get_serial_commands: move complete lines into free queue slots."""
        while len(self._queue) < self.bufsize and not self.killed:
            end = self._rx.find(b"\n")
            if end < 0:
                return
            raw = bytes(self._rx[:end])
            del self._rx[: end + 1]
            self._take_line(raw.decode("ascii", "replace").replace("\r", "\n"))

    def _take_line(self, text: str) -> None:
        """queue.cpp: CR and LF both end a line; each line's characters go through
        ``process_stream_char`` (:func:`stream_line`: comments, escapes, backspace) before the
        line-number and checksum checks, which see only what is left."""
        for piece in text.split("\n"):
            line = stream_line(piece, paren_comments=self.paren_comments).strip()
            if line:
                self._parse_line(line)

    def _parse_line(self, line: str) -> None:
        """queue.cpp ``get_serial_commands``: only an upper-case ``N`` starting the line makes
        it numbered (sequence and checksum checked, the checksum being the XOR of the bytes
        before the last ``*``). Deviation: Marlin 2.1 queues an unnumbered line with ``*`` (the
        parser cuts it there); the emulator answers it with a resend request, like Marlin 1.x,
        so that a bit flip in a numbered line's ``N`` cannot run a line twice in noise tests."""
        number: int | None = None
        if line.startswith("N"):
            m = re.match(r"N(-?\d+)\s*", line)
            if m is None:
                self._line_error("Line Number is not Last Line Number+1, Last Line: ")
                return
            number = int(m.group(1))
            star = line.rfind("*")
            is_m110 = "M110" in line
            if is_m110:
                n2 = re.search(r"M110\s*N(-?\d+)", line)
                if n2 is not None:
                    number = int(n2.group(1))
            elif number != self.last_n + 1:
                self._line_error("Line Number is not Last Line Number+1, Last Line: ")
                return
            if star < 0:
                self._line_error("No Checksum with line number, Last Line: ")
                return
            try:
                claimed = int(line[star + 1:].strip())
            except ValueError:
                claimed = -1
            if claimed != checksum(line[:star].encode("ascii", "replace")):
                self._line_error("checksum mismatch, Last Line: ")
                return
            self.last_n = number
            command = parse_command(line).text.strip()
        elif "*" in line:
            self._line_error("No Line Number with checksum, Last Line: ")
            return
        else:
            # An unnumbered line: the parser still skips an ``n<digits>`` (either case) prefix.
            command = parse_command(line).text.strip()
        if command:
            self._queue.append((command, number))
            self.max_queue = max(self.max_queue, len(self._queue))
            self._queued.set()

    def _line_error(self, message: str) -> None:
        self._emit(f"Error:{message}{self.last_n}")
        self._rx.clear()
        self.resend_requests += 1
        self._emit(f"Resend: {self.last_n + 1}")
        # Marlin 2 follows a resend request with a plain ok (not a command's).
        if self.drop_ok_fraction and self._rng.random() < self.drop_ok_fraction:
            self.dropped_oks += 1
        else:
            self._emit("ok")

    # -- executing -------------------------------------------------------------------------

    async def _execute_loop(self) -> None:
        while True:
            while not self._queue or self.silent:
                self._queued.clear()
                if self.silent:
                    await asyncio.sleep(0.05)
                    continue
                await self._queued.wait()
            if self.killed:
                return
            command, number = self.begin_command()
            await self._tick(self.command_time_s)
            answered = await self._execute(command)
            if self.killed:
                return
            if self.silent:
                self.processing = False
                continue
            self.end_command(number, answered)

    @property
    def queue_length(self) -> int:
        """Commands in the command queue, the one being processed included."""
        return len(self._queue)

    @property
    def rx_bytes(self) -> int:
        """Bytes waiting in the receive buffer."""
        return len(self._rx)

    def begin_command(self) -> tuple[str, int | None]:
        """``advance()`` takes the oldest queued command: transfers stop until it is done."""
        self.processing = True
        return self._queue[0]

    def end_command(self, number: int | None, answered: bool) -> None:
        """The command has executed: ``ok_to_send()`` (its slot still counted), the slot is
        freed, and the next ``idle()`` moves waiting lines into the queue."""
        if not answered:
            self._ok(number)
        self._queue.popleft()
        self.processing = False
        self._pump()

    async def _tick(self, seconds: float) -> None:
        # Execution time accumulates on a virtual clock; sleep only when it runs ahead, so a
        # 0.2 ms command costs 0.2 ms on average despite the event loop's coarser timers.
        now = time.monotonic()
        self._clock = max(self._clock, now) + seconds
        ahead = self._clock - now
        if ahead > 0.001:
            await asyncio.sleep(ahead)

    async def _execute(self, command: str) -> bool:
        """Run one command, read by :func:`parse_command`; True when it printed its own ok."""
        parsed = parse_command(command)
        word = parsed.word
        if word not in KNOWN_COMMANDS:
            self._emit(f'echo:Unknown command: "{command}"')
            return False
        self.executed.append(command)
        if self._record is not None:
            self._record.write(command + "\n")
        if word == "M105":
            if self.drop_ok_fraction and self._rng.random() < self.drop_ok_fraction:
                self.dropped_oks += 1
            else:
                self._emit("ok " + self._temperature_text())
            return True
        if word == "M110":
            n = parsed.value_float("N")
            if n is not None:
                self.last_n = int(n)
        elif word == "M115":
            self._emit(
                "FIRMWARE_NAME:Marlin 2.1.2.1 (station-agent emulator) SOURCE_CODE_URL:"
                "github.com/MarlinFirmware/Marlin PROTOCOL_VERSION:1.0 MACHINE_TYPE:Emulated "
                "EXTRUDER_COUNT:1"
            )
            for name, on in self.capabilities.items():
                self._emit(f"Cap:{name}:{int(on)}")
        elif word == "M118":
            # M118.cpp: the text goes out as it is (echo: only with E1, // only with A1).
            self._emit(m118_output(parsed.string_arg or ""))
        elif word == "M117":
            # MarlinUI::set_status: with HOST_STATUS_NOTIFICATIONS (which needs
            # HOST_ACTION_COMMANDS) the message is also sent to the host.
            self.status_message = parsed.string_arg or ""
            if self.status_message and self.capabilities.get("HOST_ACTION_COMMANDS"):
                self._emit(f"//action:notification {self.status_message}")
        elif word == "M155":
            s = parsed.value_float("S")
            self._autoreport_s = s if s is not None else 0.0
            self._autoreport_changed.set()
        elif word == "M113":
            s = parsed.value_float("S")
            if s is not None:
                self.keepalive_s = s
        elif word in ("M104", "M109"):
            s = parsed.value_float("S")
            if s is not None:
                self.hotend.target = s
            if word == "M109":
                await self._heat_wait(self.hotend)
        elif word in ("M140", "M190"):
            s = parsed.value_float("S")
            if s is not None:
                self.bed.target = s
            if word == "M190":
                await self._heat_wait(self.bed)
        elif word == "G4":
            # G4.cpp: P in milliseconds (read as an unsigned long), S in seconds wins over P.
            p_ms = parsed.value_ulong("P")
            s_s = parsed.value_float("S")
            dwell_ms = s_s * 1000 if s_s is not None else float(p_ms or 0)
            await self._busy_wait(dwell_ms / 1000)
        elif word == "G28":
            await self._busy_wait(self.homing_time_s)
        elif word == "M112":
            self._kill()
        return False

    async def _busy_wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        next_busy = time.monotonic() + self.keepalive_s
        while (now := time.monotonic()) < end and not self.killed:
            self._pump()  # the dwell loop calls idle()
            if now >= next_busy and self.capabilities.get("BUSY_PROTOCOL"):
                self._emit("echo:busy: processing")
                next_busy = now + self.keepalive_s
            await asyncio.sleep(min(end - now, 0.05))
        self._clock = time.monotonic()

    async def _heat_wait(self, heater: Heater) -> None:
        self._wait_for_heatup = True
        last = time.monotonic()
        next_busy = last + self.keepalive_s
        next_report = last + 1.0
        while self._wait_for_heatup and not self.killed:
            now = time.monotonic()
            self.hotend.advance((now - last) * self.time_scale, self.heating_rate_c_s)
            self.bed.advance((now - last) * self.time_scale, self.heating_rate_c_s)
            last = now
            if heater.current >= heater.target - 1.0:
                break
            self._pump()  # the heater wait calls idle()
            if now >= next_report:
                self._emit(self._temperature_text() + " W:?")
                next_report = now + 1.0
            if now >= next_busy and self.capabilities.get("BUSY_PROTOCOL"):
                self._emit("echo:busy: processing")
                next_busy = now + self.keepalive_s
            await asyncio.sleep(0.02)
        self._wait_for_heatup = False
        self._clock = time.monotonic()

    async def _autoreport_loop(self) -> None:
        last = time.monotonic()
        while True:
            interval = self._autoreport_s
            self._autoreport_changed.clear()
            if interval <= 0 or not self.capabilities.get("AUTOREPORT_TEMP"):
                await self._autoreport_changed.wait()
                continue
            if await wait_event(self._autoreport_changed, interval):
                continue
            now = time.monotonic()
            self.hotend.advance((now - last) * self.time_scale, self.heating_rate_c_s)
            self.bed.advance((now - last) * self.time_scale, self.heating_rate_c_s)
            last = now
            if not self.killed:
                self._emit(" " + self._temperature_text())


# -- command line -----------------------------------------------------------------------------


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    add_link_arguments(parser, baud=0, latency_ms=1.0)  # 0: native USB, as fast as the pty
    parser.add_argument("--bufsize", type=int, default=4, help="command queue slots (BUFSIZE)")
    parser.add_argument("--rx-buffer", type=int, default=128, help="receive buffer bytes")
    parser.add_argument("--advanced-ok", action="store_true",
                        help="answer ok N<line> P<planner> B<queue> (ADVANCED_OK)")
    parser.add_argument("--command-ms", type=float, default=0.2,
                        help="execution time of an ordinary command in ms")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="simulated heater seconds per wall second")
    parser.add_argument("--corrupt", type=float, default=0.0,
                        help="fraction of arriving lines with a bit flipped")
    parser.add_argument("--drop-ok", type=float, default=0.0, help="fraction of oks never sent")
    parser.add_argument("--garbage", type=float, default=0.0,
                        help="fraction of replies preceded by a line of noise")
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault injection")
    parser.add_argument("--record", type=Path, default=None,
                        help="append each executed command to this file")


async def run_cli(args: argparse.Namespace) -> None:
    endpoint = endpoint_from_args(args)
    async with endpoint:
        emulator = MarlinEmulator(
            endpoint,
            bufsize=args.bufsize,
            rx_buffer_bytes=args.rx_buffer,
            advanced_ok=args.advanced_ok,
            command_time_s=max(0.0, args.command_ms) / 1000,
            time_scale=args.time_scale,
            corrupt_fraction=args.corrupt,
            drop_ok_fraction=args.drop_ok,
            garbage_fraction=args.garbage,
            seed=args.seed,
            record_path=args.record,
        )
        print(f"Marlin emulator on {endpoint.path} ({endpoint.slave_name}), BUFSIZE "
              f"{args.bufsize}, {args.rx_buffer}-byte RX buffer, latency {args.latency_ms} ms"
              f"{', ADVANCED_OK' if args.advanced_ok else ''}", flush=True)
        try:
            await emulator.serve()
        finally:
            print(f"executed {len(emulator.executed)} commands, receive-buffer overflows "
                  f"{emulator.rx_overflows}, resend requests {emulator.resend_requests}",
                  flush=True)
