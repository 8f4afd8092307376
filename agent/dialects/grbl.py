"""GRBL 1.1: program validation and normalisation, and the firmware's message texts.

Every line is read as the firmware reads it (:mod:`agent.reading.grbl`: protocol.c's
filter, gcode.c's words and command numbers, system.c's ``$`` lines) and the commands found are
then checked against the profile's ``[allowlist]``: what is not named there is refused. The
lines sent are the filtered lines, exactly the bytes GRBL buffers: shorter lines stream faster
and the character count is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.dialects.program import Program
from agent.errors import ProgramError
from agent.profiles.grbl import GrblAllowlist, GrblProfile
from agent.reading.gcode import check_printable, iter_program_lines, strip_comment
from agent.reading.grbl import (
    SYSTEM_MEANING,
    VALUE_LETTERS,
    ReadError,
    classify_system,
    g_command,
    m_command,
    preprocess,
    read_words,
)

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



# Why a command GRBL has is kept out of jobs unless a profile names it (for the message).
_WHY_NOT: dict[str, str] = {
    "G10": "it writes work coordinate offsets to EEPROM",
    "G28.1": "it stores the G28 position in EEPROM",
    "G30.1": "it stores the G30 position in EEPROM",
    "G28": "it moves to a position stored in the machine, which the job cannot see",
    "G30": "it moves to a position stored in the machine, which the job cannot see",
    "G92": "it shifts the coordinate system, also for every job after this one",
    "G92.1": "it clears the G92 offset an operator set",
    "G53": "it moves in machine coordinates, past the work offset",
    "G43.1": "it changes the tool length offset",
    "G38.2": "probing: without a probe it ends in an alarm",
    "G38.3": "probing: without a probe it ends in an alarm",
    "G38.4": "probing: without a probe it ends in an alarm",
    "G38.5": "probing: without a probe it ends in an alarm",
    "M0": "it pauses the program: the machine would wait in Hold for an operator",
    "M1": "an optional stop: the machine could wait in Hold for an operator",
    "M56": "it changes the parking override",
}


def _blocked(line_no: int, what: str, why: str) -> ProgramError:
    return ProgramError(
        f"line {line_no}: {what} is not allowed on this station: {why}",
        code="blocked_instruction",
        line=line_no,
    )


def _as_read(written: str, name: str) -> str:
    return name if written == name else f"{name} (GRBL reads {written!r} as {name})"


def _check_gcode(text: str, line_no: int, allow: GrblAllowlist, where: str = "") -> None:
    """The words of a G-code block as gcode.c reads them, against the allowlist."""
    try:
        words = read_words(text)
    except ReadError as exc:
        raise ProgramError(
            f"line {line_no}: cannot parse {text[exc.position:exc.position + 12]!r}{where} "
            f"({exc.reason}: a letter and a number are expected; GRBL answers "
            f"error:{exc.code})",
            line=line_no,
        ) from None
    commands: list[str] = []
    for word in words:
        if word.letter in "GM":
            if not word.in_command_range:
                raise _blocked(
                    line_no,
                    f"{word.written}{where}",
                    "a command number outside 0-255, which GRBL's 8-bit reading turns into "
                    "another command",
                )
            try:
                name = g_command(word) if word.letter == "G" else m_command(word)
            except ReadError as exc:
                raise ProgramError(
                    f"line {line_no}: {word.written}{where} is not supported by GRBL 1.1 "
                    f"({exc.reason}; GRBL answers error:{exc.code})",
                    code="unsupported_command",
                    line=line_no,
                ) from None
            allowed = allow.g if word.letter == "G" else allow.m
            if name not in allowed:
                why = _WHY_NOT.get(name, "it is not named in the profile's [allowlist]")
                raise _blocked(line_no, _as_read(word.written, name) + where, why)
            commands.append(name)
        elif word.letter not in VALUE_LETTERS:
            raise ProgramError(
                f"line {line_no}: word {word.written}{where} is not a GRBL word", line=line_no
            )
    for name in commands:
        for letter, values in allow.params.get(name, {}).items():
            given = [w for w in words if w.letter == letter]
            if not given:
                raise _blocked(
                    line_no,
                    f"{name} without {letter}{where}",
                    f"the profile allows {name} only with {letter} in {list(values)}",
                )
            word = given[0]  # a repeated word is error:25 on GRBL: nothing runs
            if not word.in_command_range or word.int_value not in values:
                read = f"{letter}{word.int_value}" if word.in_command_range else "out of range"
                raise _blocked(
                    line_no,
                    f"{name} with {word.written}{where} (GRBL reads {read})",
                    f"the profile allows {name} only with {letter} in {list(values)}",
                )


def _check_system(line: str, line_no: int, allow: GrblAllowlist) -> None:
    """A ``$`` line as system.c reads it, against the allowlist's ``system`` names."""
    command = classify_system(line)
    if command.kind is None:
        raise _blocked(
            line_no,
            repr(line),
            f"a '$' line GRBL does not act on (error:{command.error_code}); no '$' line is "
            "allowed unless the profile names it",
        )
    if command.kind not in allow.system:
        meaning = SYSTEM_MEANING[command.kind]
        raise _blocked(
            line_no,
            f"{line!r}, which GRBL reads as {command.kind} ({meaning}),",
            "'$' system commands are allowed only when the profile names them",
        )
    if command.kind in ("$J=", "$Nx="):
        _check_gcode(command.body, line_no, allow, where=f" in {command.kind}")


def check_allowed(line: str, line_no: int, allow: GrblAllowlist) -> None:
    """Raise ProgramError unless every command of the preprocessed ``line`` is allowed."""
    if line.startswith("$"):
        _check_system(line, line_no, allow)
    else:
        _check_gcode(line, line_no, allow)


def normalise_line(raw: str, line_no: int) -> str:
    """GRBL's own filter (protocol.c): comments, whitespace and ``/`` removed, upper case."""
    check_printable(raw, line_no)
    strip_comment(raw, line_no)  # an unclosed '(' is refused, though GRBL would drop the rest
    return preprocess(raw, max_chars=None).text


@dataclass
class _Builder:
    lines: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)


def prepare_grbl_program(program: str, profile: GrblProfile) -> Program:
    """Validate a raw G-code program for GRBL and return the normalised lines to stream.

    Rejected (nothing is sent), each with its line: line breaks other than LF and CRLF
    (``bad_line_break``), realtime command bytes and control or non-ASCII characters,
    unparseable words (``invalid_program``), commands GRBL does not have
    (``unsupported_command``), commands and ``$`` lines the profile's ``[allowlist]`` does not
    name (``blocked_instruction``), lines longer than GRBL's line buffer (``line_too_long``).
    """
    allow = profile.allowlist
    limit = profile.grbl.max_line_chars
    out = _Builder()
    for line_no, raw in iter_program_lines(program):
        if any(ch in raw for ch in "?!~"):
            raise ProgramError(
                f"line {line_no}: realtime command character in program line {raw.strip()!r}",
                line=line_no,
            )
        check_printable(raw, line_no)
        line = preprocess(raw, max_chars=None).text
        if line:
            check_allowed(line, line_no, allow)
        strip_comment(raw, line_no)  # an unclosed '(' is refused, though GRBL drops the rest
        if not line:
            continue
        if len(line) > limit:
            raise ProgramError(
                f"line {line_no}: {len(line)} characters after normalisation, GRBL takes at most "
                f"{limit}",
                code="line_too_long",
                line=line_no,
            )
        out.lines.append(line)
        out.numbers.append(line_no)
    if not out.lines:
        raise ProgramError("the program has no G-code lines", code="empty_program")
    return Program(tuple(out.lines), tuple(out.numbers))
