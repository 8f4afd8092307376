"""Raw HP-GL programs: validation and normalisation, before anything is sent.

A job's HP-GL is split into instructions (``;``, a newline or the next mnemonic ends one) and
each comes out as one normalised line: upper-case mnemonic, integer parameters, ``;``.
Moves become absolute ``PU``/``PD`` with at most ``max_pairs_per_instruction`` pairs, so every
line is far smaller than the plotter's buffer and relative moves (``PR``) can be checked
against the bed. Output instructions (``OS``, ``OE``...) and device-control escapes are the
driver's own and never come from a job: their answers would be taken for the driver's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from agent.dialects.program import Program
from agent.errors import ProgramError
from agent.profiles.hpgl import HpglProfile
from agent.reading.gcode import check_line_breaks

ESC = "\x1b"

# Output instructions: answered on the serial line, so reserved for the driver.
OUTPUT_INSTRUCTIONS = frozenset(
    {"OA", "OC", "OD", "OE", "OF", "OG", "OH", "OI", "OK", "OL", "OO", "OP", "OS", "OT", "OW"}
)
# What this agent understands well enough to check against the bed.
SUPPORTED_INSTRUCTIONS = frozenset({"IN", "DF", "SP", "PU", "PD", "PA", "PR", "VS", "FS", "LT"})

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_PARAM_SPLIT = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class RawInstruction:
    """One instruction as written: mnemonic (upper case), parameter text, 1-based line."""

    mnemonic: str
    params: str
    line: int

    @property
    def text(self) -> str:
        """Mnemonic and parameters without whitespace: what blocked patterns are matched on."""
        return self.mnemonic + re.sub(r"\s+", "", self.params)


def iter_instructions(program: str) -> Iterator[RawInstruction]:
    """Split HP-GL text into instructions; raises ProgramError on bytes that start none.

    LF, CRLF and a lone CR (HP-GL files often end lines with CR alone) each end a line; any
    other line separator (VT, FF, 0x1c-0x1e, NEL, U+2028, U+2029) is refused with its line and
    column (``bad_line_break``) so the lines reported are the lines the planner wrote.
    """
    check_line_breaks(program, lone_cr_ends_line=True)
    i = 0
    line = 1
    n = len(program)
    while i < n:
        ch = program[i]
        if ch == "\n" or (ch == "\r" and program[i + 1 : i + 2] != "\n"):
            line += 1
            i += 1
            continue
        if ch in " \t\r;":
            i += 1
            continue
        if ch == ESC:
            raise ProgramError(
                f"line {line}: device-control escape (ESC) in a job; escapes are the driver's",
                code="blocked_instruction",
                line=line,
            )
        if not (ch.isascii() and ch.isalpha()):
            raise ProgramError(
                f"line {line}: expected an instruction mnemonic, found {ch!r}",
                code="invalid_program",
                line=line,
            )
        if i + 1 >= n or not (program[i + 1].isascii() and program[i + 1].isalpha()):
            raise ProgramError(
                f"line {line}: incomplete instruction {program[i:i + 2]!r}",
                code="invalid_program",
                line=line,
            )
        mnemonic = program[i : i + 2].upper()
        start_line = line
        j = i + 2
        # Parameters run to ';', a newline or the next mnemonic (a letter).
        while j < n and program[j] not in ";\n\r" and not (
            program[j].isascii() and program[j].isalpha()
        ):
            if program[j] == ESC:
                break
            j += 1
        yield RawInstruction(mnemonic, program[i + 2 : j], start_line)
        i = j


def _numbers(raw: RawInstruction) -> list[Decimal]:
    text = raw.params.strip()
    if not text:
        return []
    out: list[Decimal] = []
    for token in _PARAM_SPLIT.split(text.strip(", \t\r")):
        if not _NUMBER.match(token):
            raise ProgramError(
                f"line {raw.line}: {raw.mnemonic}: {token!r} is not a number",
                code="invalid_program",
                line=raw.line,
            )
        try:
            out.append(Decimal(token))
        except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
            raise ProgramError(
                f"line {raw.line}: {raw.mnemonic}: bad number {token!r}",
                code="invalid_program",
                line=raw.line,
            ) from None
    return out


def _to_int(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _format(value: Decimal) -> str:
    return format(value.normalize(), "f")


class _Normaliser:
    """Walks the instructions keeping the pen's state, position and the PA/PR mode."""

    def __init__(self, profile: HpglProfile) -> None:
        self.profile = profile
        self.settings = profile.hpgl
        self.x_max, self.y_max = profile.bed_units
        self.blocked = [re.compile(p) for p in profile.blocked.patterns]
        self.allowed = [re.compile(p) for p in profile.blocked.allow]
        self.lines: list[str] = []
        self.sources: list[int] = []
        self.pen_down = False
        self.relative = False
        self.position: tuple[int, int] | None = None

    def emit(self, text: str, line: int) -> None:
        self.lines.append(text)
        self.sources.append(line)

    def fail(self, raw: RawInstruction, message: str, code: str = "invalid_program") -> None:
        raise ProgramError(f"line {raw.line}: {raw.mnemonic}: {message}", code=code, line=raw.line)

    def check_policy(self, raw: RawInstruction) -> None:
        if raw.mnemonic in OUTPUT_INSTRUCTIONS:
            self.fail(raw, "output instructions are reserved for the driver", "blocked_instruction")
        text = raw.text
        if any(p.fullmatch(text) for p in self.blocked) and not any(
            p.fullmatch(text) for p in self.allowed
        ):
            self.fail(raw, f"blocked by profile {self.profile.name}", "blocked_instruction")
        if raw.mnemonic not in SUPPORTED_INSTRUCTIONS:
            supported = ", ".join(sorted(SUPPORTED_INSTRUCTIONS))
            self.fail(raw, f"not a supported instruction (supported: {supported})")

    def handle(self, raw: RawInstruction) -> None:
        self.check_policy(raw)
        args = _numbers(raw)
        m = raw.mnemonic
        if m in ("IN", "DF"):
            if args:
                self.fail(raw, "takes no parameters")
            self.emit(f"{m};", raw.line)
            if m == "IN":
                # IN lifts the pen and selects absolute plotting; the position stays.
                self.pen_down = False
                self.relative = False
                self.emit("PA;", raw.line)
        elif m == "SP":
            self.select_pen(raw, args)
        elif m in ("PU", "PD", "PA", "PR"):
            self.move(raw, args)
        elif m == "VS":
            self.velocity(raw, args)
        elif m == "FS":
            self.force(raw, args)
        elif m == "LT":
            self.line_type(raw, args)

    def select_pen(self, raw: RawInstruction, args: list[Decimal]) -> None:
        if len(args) > 1:
            self.fail(raw, "takes at most one parameter")
        pen = _to_int(args[0]) if args else 0
        if args and args[0] != pen:
            self.fail(raw, "pen number must be an integer")
        if not 0 <= pen <= self.settings.max_pen:
            self.fail(raw, f"pen {pen} outside 0..{self.settings.max_pen}")
        self.pen_down = False  # SP lifts the pen before changing it
        self.emit(f"SP{pen};", raw.line)

    def move(self, raw: RawInstruction, args: list[Decimal]) -> None:
        m = raw.mnemonic
        if len(args) % 2:
            self.fail(raw, "coordinates must come in x,y pairs")
        if m == "PU":
            self.pen_down = False
        elif m == "PD":
            self.pen_down = True
        elif m == "PA":
            self.relative = False
        else:
            self.relative = True
        verb = "PD" if self.pen_down else "PU"
        if not args:
            if m in ("PU", "PD"):
                self.emit(f"{verb};", raw.line)
            return
        points: list[tuple[int, int]] = []
        for k in range(0, len(args), 2):
            x, y = _to_int(args[k]), _to_int(args[k + 1])
            if self.relative:
                if self.position is None:
                    self.fail(raw, "relative move before any absolute position is known")
                assert self.position is not None
                x, y = self.position[0] + x, self.position[1] + y
            self.check_point(raw, x, y)
            points.append((x, y))
            self.position = (x, y)
        step = self.settings.max_pairs_per_instruction
        for k in range(0, len(points), step):
            coords = ",".join(f"{x},{y}" for x, y in points[k : k + step])
            self.emit(f"{verb}{coords};", raw.line)

    def check_point(self, raw: RawInstruction, x: int, y: int) -> None:
        limit = self.settings.max_coordinate
        if abs(x) > limit or abs(y) > limit:
            self.fail(raw, f"({x}, {y}) beyond the device's +/-{limit} plotter units",
                      "out_of_bounds")
        if not (0 <= x <= self.x_max and 0 <= y <= self.y_max):
            self.fail(
                raw,
                f"({x}, {y}) outside the bed 0..{self.x_max} x 0..{self.y_max} plotter units "
                f"({self.profile.bed.width_mm} x {self.profile.bed.height_mm} mm)",
                "out_of_bounds",
            )

    def velocity(self, raw: RawInstruction, args: list[Decimal]) -> None:
        if not args:
            self.emit("VS;", raw.line)
            return
        if len(args) > 2:
            self.fail(raw, "takes a speed and an optional pen")
        speed = args[0]
        if not 0 < speed <= Decimal(str(self.settings.max_velocity_cm_s)):
            self.fail(raw, f"speed {speed} cm/s outside 0..{self.settings.max_velocity_cm_s}")
        pen = self.optional_pen(raw, args[1:])
        self.emit(f"VS{_format(speed)}{pen};", raw.line)

    def force(self, raw: RawInstruction, args: list[Decimal]) -> None:
        max_force = self.settings.max_force
        if max_force is None:
            self.fail(raw, f"profile {self.profile.name} has no force setting")
        assert max_force is not None
        if not args:
            self.emit("FS;", raw.line)
            return
        if len(args) > 2:
            self.fail(raw, "takes a force and an optional pen")
        force = _to_int(args[0])
        if args[0] != force or not 1 <= force <= max_force:
            self.fail(raw, f"force {args[0]} must be an integer in 1..{max_force}")
        pen = self.optional_pen(raw, args[1:])
        self.emit(f"FS{force}{pen};", raw.line)

    def optional_pen(self, raw: RawInstruction, args: list[Decimal]) -> str:
        if not args:
            return ""
        pen = _to_int(args[0])
        if args[0] != pen or not 1 <= pen <= self.settings.max_pen:
            self.fail(raw, f"pen {args[0]} outside 1..{self.settings.max_pen}")
        return f",{pen}"

    def line_type(self, raw: RawInstruction, args: list[Decimal]) -> None:
        if len(args) > 2:
            self.fail(raw, "takes a pattern and an optional length")
        if not args:
            self.emit("LT;", raw.line)
            return
        pattern = _to_int(args[0])
        if args[0] != pattern or not 0 <= pattern <= 6:
            self.fail(raw, f"pattern {args[0]} must be an integer in 0..6")
        if len(args) == 2:
            if not 0 <= args[1] <= 100:
                self.fail(raw, f"pattern length {args[1]} outside 0..100 (% of the diagonal)")
            self.emit(f"LT{pattern},{_format(args[1])};", raw.line)
        else:
            self.emit(f"LT{pattern};", raw.line)


def prepare_hpgl_program(program: str, profile: HpglProfile) -> Program:
    """Validate ``program`` for ``profile``'s plotter and return it as normalised lines.

    Raises ProgramError with ``line`` set: ``invalid_program`` (unparseable or unsupported),
    ``blocked_instruction`` (escapes, output instructions, the profile's blocked patterns),
    ``out_of_bounds`` (a point outside the bed or the device's coordinate range).
    """
    normaliser = _Normaliser(profile)
    # A previous job may have left the plotter in relative mode: start absolute.
    normaliser.emit("PA;", 1)
    count = 0
    for raw in iter_instructions(program):
        normaliser.handle(raw)
        count += 1
    if count == 0:
        raise ProgramError("the program has no HP-GL instructions", code="invalid_program")
    return Program(tuple(normaliser.lines), tuple(normaliser.sources))


def is_pen_up_point(line: str) -> bool:
    """Whether the pen is up once this normalised line has run (a safe place for OS;)."""
    return line.startswith(("PU", "SP", "IN"))


def resume_preamble(lines: Sequence[str], start: int) -> list[str]:
    """Lines that restore what ``lines[:start]`` left set, without drawing anything.

    Used when a job continues from ``start``: ``IN;`` for a known state, then the pen, speed,
    force and line type in effect, a pen-up move to the last position, and the pen down again
    if it was down (the next ``PD`` then draws from the right point).
    """
    pen: str | None = None
    settings: dict[str, str] = {}
    position: tuple[str, str] | None = None
    down = False
    for line in lines[:start]:
        mnemonic, body = line[:2], line[2:].rstrip(";")
        if mnemonic in ("IN", "DF"):
            settings.clear()
            down = False
            if mnemonic == "IN":
                pen = None
        elif mnemonic == "SP":
            pen, down = line, False
        elif mnemonic in ("VS", "FS", "LT"):
            settings[mnemonic] = line
        elif mnemonic in ("PU", "PD"):
            down = mnemonic == "PD"
            coords = body.split(",") if body else []
            if len(coords) >= 2:
                position = (coords[-2], coords[-1])
    out = ["IN;", "PA;"]
    if pen is not None:
        out.append(pen)
    out.extend(settings.values())
    if position is not None:
        out.append(f"PU{position[0]},{position[1]};")
    if down:
        out.append("PD;")
    return out
