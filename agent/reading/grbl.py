"""How GRBL 1.1 reads a line, rule for rule, so a guard judges what the firmware will run.

Each function follows one routine of gnea/grbl (1.1h) and names it:

- :func:`preprocess`: ``protocol.c`` ``protocol_main_loop`` (the character filter): every byte
  at or below space is dropped (whitespace and control characters), ``/`` is dropped (block
  delete is not supported), ``(...)`` and ``;`` comments are dropped, ``a``-``z`` are
  upper-cased; a line keeping more than 79 characters is flagged as overflowed (``error:11``).
  A ``(`` comment ends at ``)`` or at the end of the line; inside it ``;`` means nothing.
- :func:`read_float`: ``nuts_bolts.c`` ``read_float``: an optional sign, digits with at most
  one decimal point, at least one digit, no exponent; only the first 8 digits count. AVR
  floats are IEEE single precision, and so is the arithmetic here.
- :func:`read_words`: ``gcode.c`` ``gc_execute_line`` step 2: a word is a letter ``A``-``Z``
  and a :func:`read_float` number (``error:1`` / ``error:2`` otherwise), words in any order.
- :func:`split_number`: the same step's ``int_value = trunc(value)`` into a ``uint8_t`` and
  ``mantissa = round(100 * (value - int_value))`` into a ``uint16_t``.
- :func:`g_command` / :func:`m_command`: the step-2 ``switch`` that names the command, so
  ``G010`` and ``G10.0`` are G10, ``G028.1`` is G28.1, ``G49.5`` is G49, ``M0.001`` is M0,
  and an invalid mantissa is the ``error:20``/``error:23`` GRBL itself raises.
- :func:`classify_system`: ``system.c`` ``system_execute_line``: what a ``$`` line does
  (``$+10=1``, ``$10.0=1`` and ``$.5=1`` write settings 10, 10 and 0).

C leaves a float that does not fit the integer it is converted to undefined; avr-gcc converts
through a 32-bit integer, so this module takes the low bits (``G266`` has ``int_value`` 10
there). The guard refuses every command number outside 0-255 outright, so it never relies on
that reading.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

LINE_BUFFER_SIZE = 80  # config.h: LINE_BUFFER_SIZE; a line keeps at most 79 characters
MAX_INT_DIGITS = 8  # nuts_bolts.c
N_STARTUP_LINE = 2  # config.h default
# gcode.c: the letters that carry a value (every other letter is error:20).
VALUE_LETTERS = frozenset("FIJKLNPRSTXYZ")

# GRBL's error codes used here (report.h STATUS_*).
EXPECTED_COMMAND_LETTER = 1
BAD_NUMBER_FORMAT = 2
INVALID_STATEMENT = 3
UNSUPPORTED_COMMAND = 20
COMMAND_VALUE_NOT_INTEGER = 23


class ReadError(Exception):
    """GRBL would refuse the line with ``error:code`` at character ``position`` of the line."""

    def __init__(self, code: int, position: int, reason: str) -> None:
        super().__init__(f"error:{code} at {position}: {reason}")
        self.code = code
        self.position = position
        self.reason = reason


def f32(value: float) -> float:
    """``value`` rounded to IEEE single precision, as an AVR ``float`` holds it."""
    if math.isnan(value) or math.isinf(value):
        return value
    try:
        result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)
    return result


_F32_0_01 = f32(0.01)
_F32_0_1 = f32(0.1)


# -- protocol.c -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PreprocessedLine:
    text: str  # the characters GRBL keeps in its line buffer
    overflow: bool  # more than LINE_BUFFER_SIZE - 1 kept: answered error:11, nothing runs


def preprocess(raw: str, max_chars: int | None = LINE_BUFFER_SIZE - 1) -> PreprocessedLine:
    """``protocol_main_loop``'s filter over one line (without its ``\\n``/``\\r``).

    ``max_chars``: the line buffer's room (None: unlimited, to see a whole over-long line).

    ``raw`` is taken character by character as the bytes GRBL receives (code points above
    0x7F never reach this filter on the real controller: its serial interrupt takes them as
    realtime commands; they are kept here as they are, which a guard refuses anyway).
    """
    kept: list[str] = []
    in_parentheses = False
    in_semicolon = False
    overflow = False
    for ch in raw:
        if in_parentheses or in_semicolon or overflow:
            # Flags set: everything is thrown away but a ')' closing a '(' comment.
            if ch == ")" and in_parentheses:
                in_parentheses = False
            continue
        if ch <= " " or ch == "/":
            continue
        if ch == "(":
            in_parentheses = True
        elif ch == ";":
            in_semicolon = True
        elif max_chars is not None and len(kept) >= max_chars:
            overflow = True
        elif "a" <= ch <= "z":
            kept.append(ch.upper())
        else:
            kept.append(ch)
    return PreprocessedLine("".join(kept), overflow)


# -- nuts_bolts.c ---------------------------------------------------------------------------


def read_float(line: str, pos: int) -> tuple[float, int] | None:
    """``read_float(line, &pos, &value)``: (value, index of the first character after it).

    None when no digit was read (GRBL's ``false``).
    """
    i = pos
    n = len(line)

    def char(at: int) -> str:
        return line[at] if at < n else "\0"

    negative = False
    c = char(i)
    i += 1
    if c == "-":
        negative = True
        c = char(i)
        i += 1
    elif c == "+":
        c = char(i)
        i += 1
    intval = 0
    exp = 0
    ndigit = 0
    decimal = False
    while True:
        if "0" <= c <= "9":
            ndigit += 1
            if ndigit <= MAX_INT_DIGITS:
                if decimal:
                    exp -= 1
                intval = intval * 10 + (ord(c) - 48)
            elif not decimal:
                exp += 1  # digits past the eighth are dropped, keeping the magnitude
        elif c == "." and not decimal:
            decimal = True
        else:
            break
        c = char(i)
        i += 1
    if not ndigit:
        return None
    value = f32(float(intval))
    if value != 0:
        while exp <= -2:
            value = f32(value * _F32_0_01)
            exp += 2
        if exp < 0:
            value = f32(value * _F32_0_1)
        elif exp > 0:
            while True:
                value = f32(value * 10.0)
                exp -= 1
                if exp <= 0:
                    break
    return (-value if negative else value), i - 1


# -- gcode.c --------------------------------------------------------------------------------


def c_uint(value: float, bits: int) -> int | None:
    """A C float-to-unsigned conversion as avr-gcc performs it (through 32 bits, low bits
    kept); None where even that is meaningless (NaN, infinite, beyond 32 bits)."""
    if math.isnan(value) or math.isinf(value) or abs(value) >= 2.0**32:
        return None
    return math.trunc(value) & ((1 << bits) - 1)


def split_number(value: float) -> tuple[int, int] | None:
    """gcode.c: ``int_value = trunc(value)`` (uint8_t), ``mantissa = round(100*(value -
    int_value))`` (uint16_t), in single precision; None when the value has no such reading."""
    int_value = c_uint(value, 8)
    if int_value is None:
        return None
    scaled = f32(100.0 * f32(value - int_value))
    rounded = math.floor(abs(scaled) + 0.5) * (1 if scaled >= 0 else -1)  # roundf
    mantissa = c_uint(float(rounded), 16)
    if mantissa is None:
        return None
    return int_value, mantissa


@dataclass(frozen=True)
class Word:
    letter: str
    value: float
    written: str  # the word as it stands in the preprocessed line, e.g. "G028.1"
    position: int  # index of the letter in the preprocessed line

    @property
    def in_command_range(self) -> bool:
        """0 <= value < 256: the range in which GRBL's uint8 reading is well defined."""
        return 0.0 <= self.value < 256.0

    @property
    def int_value(self) -> int:
        """GRBL's ``int_value`` (uint8): what L and T are stored as; 0 if unreadable."""
        parts = split_number(self.value)
        return parts[0] if parts else 0


def read_words(line: str, start: int = 0) -> list[Word]:
    """gc_execute_line step 2: the words of a preprocessed line from ``start`` on."""
    words: list[Word] = []
    i = start
    while i < len(line):
        letter = line[i]
        if not "A" <= letter <= "Z":
            raise ReadError(EXPECTED_COMMAND_LETTER, i, f"{letter!r} where a letter is expected")
        number = read_float(line, i + 1)
        if number is None:
            raise ReadError(BAD_NUMBER_FORMAT, i, f"{letter} has no number")
        value, end = number
        words.append(Word(letter, value, line[i:end], i))
        i = end
    return words


# G and M commands GRBL 1.1 has, by the names this module gives them.
G_COMMANDS = frozenset(
    {"G0", "G1", "G2", "G3", "G4", "G10", "G17", "G18", "G19", "G20", "G21", "G28", "G28.1",
     "G30", "G30.1", "G38.2", "G38.3", "G38.4", "G38.5", "G40", "G43.1", "G49", "G53", "G54",
     "G55", "G56", "G57", "G58", "G59", "G61", "G80", "G90", "G91", "G91.1", "G92", "G92.1",
     "G93", "G94"}
)
# M7 needs ENABLE_M7, M56 ENABLE_PARKING_OVERRIDE_CONTROL (both off in a default build; such a
# build answers error:20).
M_COMMANDS = frozenset({"M0", "M1", "M2", "M3", "M4", "M5", "M7", "M8", "M9", "M30", "M56"})


def g_command(word: Word) -> str:
    """The G command GRBL makes of ``word``; ReadError(20 or 23) where GRBL refuses it."""
    parts = split_number(word.value)
    if parts is None:
        raise ReadError(UNSUPPORTED_COMMAND, word.position, f"{word.written} is not a command")
    int_value, mantissa = parts
    name = f"G{int_value}"
    if int_value in (28, 30, 92):
        if mantissa not in (0, 10):
            raise ReadError(UNSUPPORTED_COMMAND, word.position, f"{word.written}: no such G code")
        name += ".1" if mantissa == 10 else ""
        mantissa = 0
    elif int_value == 38:
        if mantissa not in (20, 30, 40, 50):
            raise ReadError(UNSUPPORTED_COMMAND, word.position, f"{word.written}: no such G38.x")
        name = f"G38.{mantissa // 10}"
        mantissa = 0
    elif int_value in (90, 91):
        if mantissa:
            if mantissa != 10 or int_value == 90:
                raise ReadError(UNSUPPORTED_COMMAND, word.position, f"{word.written}: no G90.1")
            name = "G91.1"
            mantissa = 0
    elif int_value in (43, 49):
        if int_value == 43:
            if mantissa != 10:
                raise ReadError(UNSUPPORTED_COMMAND, word.position, f"{word.written}: only G43.1")
            name = "G43.1"
        mantissa = 0  # gcode.c zeroes it for G49 too: G49.5 is G49
    elif int_value == 61:
        if mantissa:
            raise ReadError(UNSUPPORTED_COMMAND, word.position, f"{word.written}: no G61.x")
    elif int_value not in (0, 1, 2, 3, 4, 10, 17, 18, 19, 20, 21, 40, 53, 54, 55, 56, 57, 58,
                           59, 80, 93, 94):
        raise ReadError(UNSUPPORTED_COMMAND, word.position, f"{word.written}: no such G code")
    if mantissa > 0:
        raise ReadError(
            COMMAND_VALUE_NOT_INTEGER, word.position, f"{word.written}: needs an integer"
        )
    return name


def m_command(word: Word) -> str:
    """The M command GRBL makes of ``word`` (M7 and M56 included: a build option)."""
    parts = split_number(word.value)
    if parts is None:
        raise ReadError(UNSUPPORTED_COMMAND, word.position, f"{word.written} is not a command")
    int_value, mantissa = parts
    if mantissa > 0:
        raise ReadError(
            COMMAND_VALUE_NOT_INTEGER, word.position, f"{word.written}: needs an integer"
        )
    name = f"M{int_value}"
    if name not in M_COMMANDS:
        raise ReadError(UNSUPPORTED_COMMAND, word.position, f"{word.written}: no such M code")
    return name


# -- system.c -------------------------------------------------------------------------------

# The kinds of '$' line, named as a profile's allowlist names them.
SYSTEM_KINDS = frozenset(
    {"$", "$$", "$#", "$G", "$I", "$N", "$C", "$X", "$H", "$SLP", "$J=", "$x=", "$Nx=", "$I=",
     "$RST="}
)
SYSTEM_MEANING = {
    "$": "print help",
    "$$": "print settings",
    "$#": "print offsets",
    "$G": "print parser modes",
    "$I": "print build info",
    "$N": "print startup lines",
    "$C": "toggle check mode (G-code is parsed but not run; leaving it resets the controller)",
    "$X": "unlock the alarm (motion without homing)",
    "$H": "run the homing cycle",
    "$SLP": "put the controller to sleep",
    "$J=": "jog",
    "$x=": "write a setting to EEPROM",
    "$Nx=": "store a startup line (run now, and after every reset)",
    "$I=": "write build info to EEPROM",
    "$RST=": "restore EEPROM defaults",
}


@dataclass(frozen=True)
class SystemCommand:
    """What ``system_execute_line`` does with a ``$`` line.

    ``kind`` is one of :data:`SYSTEM_KINDS`, or None when GRBL answers ``error``
    (``error_code``) without acting. ``number`` is the setting (``$x=``, as the uint8 GRBL
    stores) or startup line index (``$Nx=``); ``value`` the setting's value; ``body`` the
    G-code of ``$J=`` / ``$Nx=`` or the text of ``$I=`` / ``$RST=``.
    """

    kind: str | None
    error_code: int = 0
    number: int | None = None
    value: float | None = None
    body: str = ""


def classify_system(line: str) -> SystemCommand:
    """``system_execute_line`` for a preprocessed line starting with ``$`` (state checks such
    as "only when idle" aside: they do not change what the line is)."""
    assert line.startswith("$")
    second = line[1:2]
    if second == "":
        return SystemCommand("$")
    if second == "J":
        if line[2:3] != "=":
            return SystemCommand(None, INVALID_STATEMENT)
        return SystemCommand("$J=", body=line[3:])
    if second in "$GCX":
        if len(line) != 2:
            return SystemCommand(None, INVALID_STATEMENT)
        return SystemCommand(line)
    if second == "#":
        return SystemCommand("$#") if len(line) == 2 else SystemCommand(None, INVALID_STATEMENT)
    if second == "H":
        # $HX/$HY/$HZ only with HOMING_SINGLE_AXIS_COMMANDS (off by default); homing either way.
        if len(line) == 2:
            return SystemCommand("$H")
        if len(line) == 3 and line[2] in "XYZ":
            return SystemCommand("$H", INVALID_STATEMENT, body=line[2])
        return SystemCommand(None, INVALID_STATEMENT)
    if second == "S":
        return SystemCommand("$SLP") if line == "$SLP" else SystemCommand(None, INVALID_STATEMENT)
    if second == "I":
        if len(line) == 2:
            return SystemCommand("$I")
        if line[2] != "=":
            return SystemCommand(None, INVALID_STATEMENT)
        return SystemCommand("$I=", body=line[3:])
    if second == "R":
        if line[2:5] != "ST=" or len(line) != 6 or line[5] not in "$#*":
            return SystemCommand(None, INVALID_STATEMENT)
        return SystemCommand("$RST=", body=line[5])
    start = 1
    startup = False
    if second == "N":
        if len(line) == 2:
            return SystemCommand("$N")
        startup = True
        start = 2
    number = read_float(line, start)
    if number is None:
        return SystemCommand(None, BAD_NUMBER_FORMAT)
    parameter, i = number
    if line[i : i + 1] != "=":
        return SystemCommand(None, INVALID_STATEMENT)
    i += 1
    if startup:
        index = c_uint(parameter, 8)
        if index is None:
            return SystemCommand(None, INVALID_STATEMENT)
        return SystemCommand("$Nx=", number=index, body=line[i:])
    value = read_float(line, i)
    if value is None:
        return SystemCommand(None, BAD_NUMBER_FORMAT)
    if value[1] != len(line) or parameter > 255:
        return SystemCommand(None, INVALID_STATEMENT)
    setting = c_uint(parameter, 8)
    if setting is None:
        return SystemCommand(None, INVALID_STATEMENT)
    return SystemCommand("$x=", number=setting, value=value[0])
