"""GRBL 1.1: program validation and normalisation, and the firmware's message texts.

Normalisation follows GRBL's own parser (comments removed, whitespace removed, upper case) so
the lines we count and send are exactly the bytes GRBL buffers: shorter lines stream faster
and the character count is exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.dialects.gcode import check_printable, iter_program_lines, split_words, strip_comment
from agent.dialects.program import Program
from agent.errors import ProgramError
from agent.profiles.grbl import GrblProfile

# G-codes GRBL 1.1 accepts (gnea/grbl doc/markdown/commands.md); M-codes likewise. A build may
# lack some (mist coolant M7); the firmware then answers error:20, reported with the line.
GRBL_G_CODES = frozenset(
    {"0", "1", "2", "3", "4", "10", "17", "18", "19", "20", "21", "28", "28.1", "30", "30.1",
     "38.2", "38.3", "38.4", "38.5", "40", "43.1", "49", "53", "54", "55", "56", "57", "58",
     "59", "61", "80", "90", "91", "91.1", "92", "92.1", "93", "94"}
)
GRBL_M_CODES = frozenset({"0", "1", "2", "3", "4", "5", "7", "8", "9", "30", "56"})
GRBL_WORD_LETTERS = frozenset("FGIJKLMNPRSTXYZ")

ERROR_TEXTS: dict[int, str] = {
    1: "G-code words consist of a letter and a value. Letter was not found.",
    2: "Numeric value format is not valid or missing an expected value.",
    3: "Grbl '$' system command was not recognized or supported.",
    4: "Negative value received for an expected positive value.",
    5: "Homing cycle is not enabled via settings.",
    6: "Minimum step pulse time must be greater than 3usec.",
    7: "EEPROM read failed. Reset and restored to default values.",
    8: "Grbl '$' command cannot be used unless Grbl is IDLE. Ensures smooth operation during a "
       "job.",
    9: "G-code locked out during alarm or jog state.",
    10: "Soft limits cannot be enabled without homing also enabled.",
    11: "Max characters per line exceeded. Line was not processed and executed.",
    12: "Grbl '$' setting value exceeds the maximum step rate supported.",
    13: "Safety door detected as opened and door state initiated.",
    14: "Build info or startup line exceeded EEPROM line length limit.",
    15: "Jog target exceeds machine travel. Command ignored.",
    16: "Jog command with no '=' or contains prohibited g-code.",
    17: "Laser mode requires PWM output.",
    20: "Unsupported or invalid g-code command found in block.",
    21: "More than one g-code command from same modal group found in block.",
    22: "Feed rate has not yet been set or is undefined.",
    23: "G-code command in block requires an integer value.",
    24: "Two G-code commands that both require the use of the XYZ axis words were detected in "
        "the block.",
    25: "A G-code word was repeated in the block.",
    26: "A G-code command implicitly or explicitly requires XYZ axis words in the block, but none "
        "were detected.",
    27: "N line number value is not within the valid range of 1 - 9,999,999.",
    28: "A G-code command was sent, but is missing some required P or L value words in the line.",
    29: "Grbl supports six work coordinate systems G54-G59. G59.1, G59.2, and G59.3 are not "
        "supported.",
    30: "The G53 G-code command requires either a G0 seek or G1 feed motion mode to be active.",
    31: "There are unused axis words in the block and G80 motion mode cancel is active.",
    32: "A G2 or G3 arc was commanded but there are no XYZ axis words in the selected plane to "
        "trace the arc.",
    33: "The motion command has an invalid target. G2, G3, and G38.2 generates this error, if the "
        "arc is impossible to generate or if the probe target is the current position.",
    34: "A G2 or G3 arc, traced with the radius definition, had a mathematical error when "
        "computing the arc geometry.",
    35: "A G2 or G3 arc, traced with the offset definition, is missing the IJK offset word in the "
        "selected plane to trace the arc.",
    36: "There are unused, leftover G-code words that aren't used by any command in the block.",
    37: "The G43.1 dynamic tool length offset command cannot apply an offset to an axis other "
        "than its configured axis.",
    38: "Tool number greater than max supported value.",
}

ALARM_TEXTS: dict[int, str] = {
    1: "Hard limit triggered. Machine position is likely lost due to sudden and immediate halt. "
       "Re-homing is highly recommended.",
    2: "G-code motion target exceeds machine travel. Machine position safely retained. Alarm may "
       "be unlocked.",
    3: "Reset while in motion. Grbl cannot guarantee position. Lost steps are likely. Re-homing "
       "is highly recommended.",
    4: "Probe fail. The probe is not in the expected initial state before starting probe cycle.",
    5: "Probe fail. Probe did not contact the workpiece within the programmed travel.",
    6: "Homing fail. Reset during active homing cycle.",
    7: "Homing fail. Safety door was opened during active homing cycle.",
    8: "Homing fail. Cycle failed to clear limit switch when pulling off.",
    9: "Homing fail. Could not find limit switch within search distance.",
    10: "Homing fail. On dual axis machines, could not find the second limit switch for "
        "self-squaring.",
}


def error_text(code: int) -> str:
    return ERROR_TEXTS.get(code, f"Unknown GRBL error {code}")


def alarm_text(code: int) -> str:
    return ALARM_TEXTS.get(code, f"Unknown GRBL alarm {code}")


def normalise_line(raw: str, line_no: int) -> str:
    """GRBL's own normalisation: comments and whitespace removed, upper case."""
    check_printable(raw, line_no)
    text = strip_comment(raw, line_no)
    return "".join(text.split()).upper()


class BlockedMatcher:
    """The profile's blocked-instruction patterns, with its explicit allowances."""

    def __init__(self, patterns: tuple[str, ...], allow: tuple[str, ...]) -> None:
        self._blocked = [re.compile(p) for p in patterns]
        self._allowed = [re.compile(p) for p in allow]

    def blocked_by(self, line: str) -> str | None:
        """The pattern that blocks ``line``, or None when it may be sent."""
        for pattern in self._blocked:
            if pattern.fullmatch(line):
                if any(a.fullmatch(line) for a in self._allowed):
                    return None
                return pattern.pattern
        return None


def _check_words(line: str, line_no: int) -> None:
    if line.startswith("$"):
        return  # system commands: judged by the blocked list; GRBL answers error:3 if unknown
    for letter, number in split_words(line, line_no):
        if letter not in GRBL_WORD_LETTERS:
            raise ProgramError(
                f"line {line_no}: word {letter}{number} is not a GRBL word", line=line_no
            )
        if letter == "G" and _code(number) not in GRBL_G_CODES:
            raise ProgramError(
                f"line {line_no}: G{number} is not supported by GRBL 1.1",
                code="unsupported_command",
                line=line_no,
            )
        if letter == "M" and _code(number) not in GRBL_M_CODES:
            raise ProgramError(
                f"line {line_no}: M{number} is not supported by GRBL 1.1",
                code="unsupported_command",
                line=line_no,
            )


def _code(number: str) -> str:
    """G01 and G1 are the same command; G28.10 is not a code."""
    value = float(number)
    return f"{value:g}"


@dataclass
class _Builder:
    lines: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)


def prepare_grbl_program(program: str, profile: GrblProfile) -> Program:
    """Validate a raw G-code program for GRBL and return the normalised lines to stream.

    Rejected (nothing is sent): unparseable words, commands GRBL does not have, lines longer
    than GRBL's line buffer, realtime command bytes inside the program, and the profile's
    blocked instructions (settings and EEPROM writes, homing and unlock), each with its line.
    """
    matcher = BlockedMatcher(profile.blocked.patterns, profile.blocked.allow)
    limit = profile.grbl.max_line_chars
    out = _Builder()
    for line_no, raw in iter_program_lines(program):
        if any(ch in raw for ch in "?!~"):
            raise ProgramError(
                f"line {line_no}: realtime command character in program line {raw.strip()!r}",
                line=line_no,
            )
        line = normalise_line(raw, line_no)
        if not line:
            continue
        pattern = matcher.blocked_by(line)
        if pattern is not None:
            raise ProgramError(
                f"line {line_no}: {line} is blocked on this station (pattern {pattern})",
                code="blocked_instruction",
                line=line_no,
            )
        if len(line) > limit:
            raise ProgramError(
                f"line {line_no}: {len(line)} characters after normalisation, GRBL takes at most "
                f"{limit}",
                code="line_too_long",
                line=line_no,
            )
        _check_words(line, line_no)
        out.lines.append(line)
        out.numbers.append(line_no)
    if not out.lines:
        raise ProgramError("the program has no G-code lines", code="empty_program")
    return Program(tuple(out.lines), tuple(out.numbers))
