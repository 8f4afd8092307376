"""A Marlin line judged against a profile's allowlist, as Marlin reads it.

Below the profiles on purpose: a Marlin profile checks at load that the lines the toolpath
compiler writes from it pass its own ``[commands]``, and the dialect
(:mod:`agent.dialects.marlin`) judges every job line the same way, so both use this one judge.
The allowlist is passed in (anything shaped like a profile's ``CommandRule``), never imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from agent.errors import ProgramError
from agent.reading.gcode import check_printable, strip_comment
from agent.reading.marlin import (
    MarlinLine,
    canonical,
    check_framing,
    read_command,
    read_params,
)


class CommandLimits(Protocol):
    """What a job may give one allowed command (a profile's ``CommandRule``)."""

    @property
    def params(self) -> str: ...
    @property
    def flags(self) -> str: ...
    @property
    def min(self) -> Mapping[str, float]: ...
    @property
    def max(self) -> Mapping[str, float]: ...


# Commands no Marlin profile may allow: each breaks a guarantee the agent itself relies on (the
# replies it reads, the line numbering, the link, the e-stop path, or "only checked lines run").
# A site that needs one of them needs a change to the agent, not to its profile.
RESERVED_COMMANDS: dict[str, str] = {
    "M16": "compares a text with the machine name and kills the board on a mismatch",
    "M23": "selects an SD file: its lines would run unchecked",
    "M24": "starts or resumes an SD print: lines the agent never checked would run",
    "M25": "pauses an SD print (SD printing belongs to the operator)",
    "M26": "sets the SD read position",
    "M27": "reports SD progress as text on the serial line",
    "M28": "starts writing the following serial lines into an SD file instead of running them",
    "M29": "ends an SD file write",
    "M30": "deletes an SD file",
    "M32": "selects and starts an SD file: its lines would run unchecked",
    "M33": "prints a file's long name (text from the card) on the serial line",
    "M34": "changes SD file sorting",
    "M20": "lists SD file names (text from the card) on the serial line",
    "M21": "mounts the SD card",
    "M22": "releases the SD card",
    "M524": "aborts an SD print",
    "M928": "logs the following serial lines to an SD file",
    "M105": "a temperature report answered 'ok T:': the agent uses it as its own sync probe",
    "M108": "acted on by the emergency parser the moment it arrives, before the lines ahead of it",
    "M110": "line numbering belongs to the agent",
    "M111": "debug flags: echo every command, or DRYRUN (moves skipped while oks still come)",
    "M112": "the emergency stop belongs to the e-stop path (it kills the board on arrival)",
    "M113": "the busy-keepalive interval the agent relies on",
    "M115": "firmware and capability report the agent reads at connect",
    "M117": "sets the status message; with HOST_STATUS_NOTIFICATIONS it is echoed on the serial "
            "line as //action:notification <text>",
    "M118": "prints its text on the serial line as it is: a job could forge 'ok', 'start', "
            "'Resend:', 'Error:' or a temperature report",
    "M155": "the temperature auto-report the agent relies on",
    "M410": "quick stop, acted on by the emergency parser on arrival",
    "M575": "changes the serial baud rate: the agent would lose the machine",
    "M876": "answers a host prompt (emergency parser): host protocol",
    "M997": "firmware update",
    "M999": "restarts after a kill: the operator's decision, made at the machine",
    **{f"M{n}": "G-code macro: its stored lines would run unchecked" for n in range(810, 820)},
}


# Why commands that are often asked for are left out of the shipped allowlist (a site may add
# them to its own profile knowingly; the reserved ones it may not).
NOT_SHIPPED: dict[str, str] = {
    "G28": "homing is an operator action, never accepted from the network",
    "G29": "bed levelling is an operator action",
    "M0": "waits for a click at the machine, where nobody is",
    "M1": "waits for a click at the machine, where nobody is",
    "M17": "motor power is the operator's (steppers are enabled by the moves themselves)",
    "M18": "turns the motors off: the position is lost and a Z axis may drop",
    "M84": "turns the motors off: the position is lost and a Z axis may drop",
    "M42": "writes an output pin directly",
    "M43": "pin debugging (its T mode toggles pins)",
    "M80": "switches the power supply",
    "M81": "switches the power supply off",
    "M92": "changes steps per mm: every later move would be scaled",
    "M201": "changes the machine's acceleration limits",
    "M203": "changes the machine's feed-rate limits",
    "M204": "changes the machine's acceleration limits",
    "M205": "changes the machine's jerk limits",
    "M206": "shifts the home offsets",
    "M211": "switches the soft endstops (the bed limits) on or off",
    "M220": "overrides the feed rate for every later move",
    "M221": "overrides the flow rate",
    "M226": "waits for a pin state",
    "M303": "PID autotune: minutes of unattended heating",
    "M500": "writes settings to EEPROM: they would outlive the job",
    "M501": "loads settings from EEPROM",
    "M502": "resets settings to the firmware's defaults",
    "M503": "prints the settings (a long report the agent does not read)",
    "M504": "validates the EEPROM",
    "M600": "filament change: needs a person at the machine",
    "G20": "inch units: every later coordinate would be read 25.4 times larger",
}


def _refuse(line_no: int, message: str) -> ProgramError:
    return ProgramError(f"line {line_no}: {message}", code="blocked_instruction", line=line_no)


def _why_not(command: MarlinLine) -> str:
    base = command.firmware_name.split(".")[0]
    if command.number > 65_535:
        return (f"Marlin reads command numbers modulo 65536, so it would run "
                f"{command.firmware_name}")
    if base in RESERVED_COMMANDS:
        return RESERVED_COMMANDS[base] + " (never allowed in a job)"
    reason = NOT_SHIPPED.get(command.name, "")
    return f"not in the profile's allowlist{': ' + reason if reason else ''}"


def _check_params(
    command: MarlinLine, params: tuple[tuple[str, str | None], ...], rule: CommandLimits,
    line_no: int,
) -> None:
    for letter, value in params:
        if letter not in rule.params:
            allowed = ", ".join(rule.params) or "none"
            raise _refuse(
                line_no, f"{command.name} may not carry {letter} in a job (allowed: {allowed})"
            )
        if value is None:
            if letter not in rule.flags:
                raise _refuse(line_no, f"{command.name} {letter} needs a number")
            continue
        number = float(value)
        low = rule.min.get(letter)
        high = rule.max.get(letter)
        if (low is not None and number < low) or (high is not None and number > high):
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            raise _refuse(
                line_no, f"{command.name} {letter}{value} is outside {lo}..{hi} allowed on this "
                "station"
            )


def judge_line(
    raw: str, line_no: int, commands: Mapping[str, CommandLimits], machine: str
) -> str:
    """The canonical line to send for one program line, or "" for a blank/comment-only one.

    ``commands`` is a profile's allowlist, ``machine`` the profile's name (for the message).
    """
    check_printable(raw, line_no)
    command = read_command(strip_comment(raw, line_no), line_no)
    if command is None:
        return ""
    rule = None if command.number > 65_535 else commands.get(command.name)
    if rule is None or command.is_text_command:
        written = raw.strip()
        shown = repr(written if len(written) <= 40 else written[:37] + "...")
        raise _refuse(
            line_no, f"{shown} is {command.name}, not allowed in a job on {machine}: "
            f"{_why_not(command)}"
        )
    params = read_params(command, line_no)
    _check_params(command, params, rule, line_no)
    check_framing(command, line_no)
    return canonical(command, params)
