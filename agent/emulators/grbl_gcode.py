"""GRBL 1.1's G-code parser, reduced to what a host can observe.

``parse_block`` takes one normalised line (no spaces or comments, upper case), checks it in the
order GRBL's ``gc_execute_line`` (gcode.c) does so the same mistakes give the same ``error:N``,
and returns the parser state after the block plus the actions the machine must carry out
(moves, buffer synchronisation, dwell, pause). On error nothing changes, as in GRBL.

Words are read by :mod:`agent.dialects.grbl_reading`, which follows the firmware rule for rule:
``read_float`` (nuts_bolts.c: sign, leading zeros, one decimal point, 8 digits, single
precision) and gc_execute_line step 2 (``int_value = trunc(value)`` as a uint8, ``mantissa =
round(100 * fraction)``), so ``G010`` and ``G10.0`` are G10, ``G028.1`` is G28.1, ``L02`` and
``L2.5`` are L2 (L keeps only ``int_value``), and words come in any order.

Positions are machine coordinates in millimetres. Units, distance mode, work offsets (G54-G59,
G92, G43.1) and arcs (offset and radius form, any plane) are applied here.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from agent.dialects.grbl_reading import ReadError, Word, g_command, m_command, read_words
from agent.emulators.grbl_codes import GrblError

Vec = tuple[float, float, float]
ZERO: Vec = (0.0, 0.0, 0.0)
AXES = "XYZ"
MAX_LINE_NUMBER = 9_999_999
MAX_TOOL_NUMBER = 255
MM_PER_INCH = 25.4


class GcodeError(Exception):
    """The block is rejected with ``error:code``."""

    def __init__(self, code: GrblError) -> None:
        super().__init__(f"error:{int(code)} {code.name}")
        self.code = code


class Group(enum.Enum):
    NON_MODAL = "non_modal"
    MOTION = "motion"
    PLANE = "plane"
    DISTANCE = "distance"
    ARC_DISTANCE = "arc_distance"
    FEED_MODE = "feed_mode"
    UNITS = "units"
    CUTTER_COMP = "cutter_comp"
    TOOL_LENGTH = "tool_length"
    COORD_SYSTEM = "coord_system"
    CONTROL = "control"
    STOPPING = "stopping"
    SPINDLE = "spindle"
    COOLANT = "coolant"
    OVERRIDE = "override"


_G_COMMANDS: dict[tuple[int, int], tuple[Group, str]] = {
    (4, 0): (Group.NON_MODAL, "G4"),
    (10, 0): (Group.NON_MODAL, "G10"),
    (28, 0): (Group.NON_MODAL, "G28"),
    (28, 10): (Group.NON_MODAL, "G28.1"),
    (30, 0): (Group.NON_MODAL, "G30"),
    (30, 10): (Group.NON_MODAL, "G30.1"),
    (53, 0): (Group.NON_MODAL, "G53"),
    (92, 0): (Group.NON_MODAL, "G92"),
    (92, 10): (Group.NON_MODAL, "G92.1"),
    (0, 0): (Group.MOTION, "G0"),
    (1, 0): (Group.MOTION, "G1"),
    (2, 0): (Group.MOTION, "G2"),
    (3, 0): (Group.MOTION, "G3"),
    (38, 20): (Group.MOTION, "G38.2"),
    (38, 30): (Group.MOTION, "G38.3"),
    (38, 40): (Group.MOTION, "G38.4"),
    (38, 50): (Group.MOTION, "G38.5"),
    (80, 0): (Group.MOTION, "G80"),
    (17, 0): (Group.PLANE, "G17"),
    (18, 0): (Group.PLANE, "G18"),
    (19, 0): (Group.PLANE, "G19"),
    (90, 0): (Group.DISTANCE, "G90"),
    (91, 0): (Group.DISTANCE, "G91"),
    (91, 10): (Group.ARC_DISTANCE, "G91.1"),
    (93, 0): (Group.FEED_MODE, "G93"),
    (94, 0): (Group.FEED_MODE, "G94"),
    (20, 0): (Group.UNITS, "G20"),
    (21, 0): (Group.UNITS, "G21"),
    (40, 0): (Group.CUTTER_COMP, "G40"),
    (43, 10): (Group.TOOL_LENGTH, "G43.1"),
    (49, 0): (Group.TOOL_LENGTH, "G49"),
    (54, 0): (Group.COORD_SYSTEM, "G54"),
    (55, 0): (Group.COORD_SYSTEM, "G55"),
    (56, 0): (Group.COORD_SYSTEM, "G56"),
    (57, 0): (Group.COORD_SYSTEM, "G57"),
    (58, 0): (Group.COORD_SYSTEM, "G58"),
    (59, 0): (Group.COORD_SYSTEM, "G59"),
    (61, 0): (Group.CONTROL, "G61"),
}
_G_GROUPS: dict[str, Group] = {name: group for group, name in _G_COMMANDS.values()}

_M_GROUPS: dict[int, tuple[Group, str]] = {
    0: (Group.STOPPING, "M0"),
    1: (Group.STOPPING, "M1"),
    2: (Group.STOPPING, "M2"),
    30: (Group.STOPPING, "M30"),
    3: (Group.SPINDLE, "M3"),
    4: (Group.SPINDLE, "M4"),
    5: (Group.SPINDLE, "M5"),
    7: (Group.COOLANT, "M7"),
    8: (Group.COOLANT, "M8"),
    9: (Group.COOLANT, "M9"),
    56: (Group.OVERRIDE, "M56"),
}

_VALUE_LETTERS = frozenset("FIJKLNPRSTXYZ")
_NON_NEGATIVE = frozenset("FNPST")
_AXIS_USING_NON_MODAL = frozenset({"G10", "G28", "G30", "G92"})
_JOG_GROUPS = frozenset({Group.UNITS, Group.DISTANCE})
_PLANE_AXES = {"G17": (0, 1, 2), "G18": (2, 0, 1), "G19": (1, 2, 0)}
_OFFSET_LETTERS = "IJK"


class MoveKind(enum.Enum):
    RAPID = "rapid"
    FEED = "feed"
    PROBE = "probe"
    JOG = "jog"


@dataclass(frozen=True)
class Move:
    kind: MoveKind
    start: Vec
    end: Vec
    length_mm: float
    feed_mm_min: float  # 0 for rapids: the machine's rapid rate applies
    inverse_time_min: float | None = None  # G93: the block takes exactly this many minutes


@dataclass(frozen=True)
class Sync:
    """Wait until every block already planned has finished (GRBL's buffer synchronize)."""


@dataclass(frozen=True)
class Dwell:
    seconds: float


@dataclass(frozen=True)
class Pause:
    """M0: stop after the planned motion and wait for cycle start."""


@dataclass(frozen=True)
class ProgramEnd:
    """M2/M30: parser modes back to defaults; GRBL says ``[MSG:Pgm End]``."""


@dataclass(frozen=True)
class ProbeCheck:
    """After a G38.x move: the emulated probe never touches, so G38.2/G38.4 fail (ALARM:5)."""

    fails_without_contact: bool


Action = Move | Sync | Dwell | Pause | ProgramEnd | ProbeCheck


@dataclass(frozen=True)
class Offsets:
    """Parameters behind ``$#``; the coordinate systems and G28/G30 are kept across resets."""

    coord_systems: tuple[Vec, ...] = (ZERO,) * 6
    g28: Vec = ZERO
    g30: Vec = ZERO
    g92: Vec = ZERO
    tool_length: float = 0.0
    probe: Vec = ZERO
    probe_succeeded: bool = False

    def after_reset(self) -> Offsets:
        # G92, tool length offset and probe data are not persistent in GRBL.
        return replace(self, g92=ZERO, tool_length=0.0)


@dataclass(frozen=True)
class ParserState:
    """GRBL's ``gc_state``: modal groups and the parser's idea of where the machine will be."""

    motion: str = "G0"
    coord_select: int = 0
    plane: str = "G17"
    absolute: bool = True
    inverse_time: bool = False
    inches: bool = False
    tool_length_active: bool = False
    program_flow: str = ""
    spindle: str = "M5"
    mist: bool = False
    flood: bool = False
    feed_mm_min: float = 0.0
    spindle_speed: float = 0.0
    tool: int = 0
    line_number: int = 0
    position: Vec = ZERO

    def work_offset(self, offsets: Offsets) -> Vec:
        """WCO: coordinate system + G92 + tool length offset (on Z)."""
        cs = offsets.coord_systems[self.coord_select]
        return (
            cs[0] + offsets.g92[0],
            cs[1] + offsets.g92[1],
            cs[2] + offsets.g92[2] + offsets.tool_length,
        )

    def modes_report(self) -> str:
        """The body of ``$G``: ``GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0``."""
        parts = [
            self.motion,
            f"G{54 + self.coord_select}",
            self.plane,
            "G20" if self.inches else "G21",
            "G91" if not self.absolute else "G90",
            "G93" if self.inverse_time else "G94",
        ]
        if self.program_flow:
            parts.append(self.program_flow)
        parts.append(self.spindle)
        if self.mist or self.flood:
            parts.extend(m for m, on in (("M7", self.mist), ("M8", self.flood)) if on)
        else:
            parts.append("M9")
        feed = self.feed_mm_min / MM_PER_INCH if self.inches else self.feed_mm_min
        parts.append(f"T{self.tool}")
        parts.append(f"F{feed:.0f}")
        parts.append(f"S{self.spindle_speed:.0f}")
        return "GC:" + " ".join(parts)


@dataclass(frozen=True)
class BlockResult:
    state: ParserState
    offsets: Offsets
    actions: tuple[Action, ...] = ()
    work_offset_changed: bool = False
    commands: tuple[str, ...] = field(default=())


def split_words(line: str) -> list[Word]:
    """gc_execute_line step 2's reading: a letter A-Z (else error:1) and a ``read_float``
    number (else error:2), as :func:`agent.dialects.grbl_reading.read_words` does it."""
    try:
        return read_words(line)
    except ReadError as exc:
        raise GcodeError(GrblError(exc.code)) from None


def canonical_command(name: str) -> str:
    """``"g01"`` -> ``"G1"``, ``"M07"`` -> ``"M7"``, ``"G38.20"`` -> ``"G38.2"``."""
    match = re.fullmatch(r"\s*([GMgm])\s*(\d+(?:\.\d*)?)\s*", name)
    if match is None:
        return name.strip().upper()
    value = float(match.group(2))
    number = math.trunc(value)
    tenths = round(10 * (value - number))
    return f"{match.group(1).upper()}{number}" + (f".{tenths}" if tenths else "")


def _g_command(word: Word) -> tuple[Group, str]:
    """gc_execute_line's G switch (via grbl_reading.g_command): error:20 or error:23 as GRBL."""
    try:
        name = g_command(word)
    except ReadError as exc:
        raise GcodeError(GrblError(exc.code)) from None
    if name not in _G_GROUPS:  # pragma: no cover - both tables list GRBL's G commands
        raise GcodeError(GrblError.GCODE_UNSUPPORTED_COMMAND)
    return _G_GROUPS[name], name


def _m_command(word: Word) -> tuple[Group, str]:
    try:
        name = m_command(word)
    except ReadError as exc:
        raise GcodeError(GrblError(exc.code)) from None
    known = _M_GROUPS.get(int(name[1:]))
    if known is None:  # pragma: no cover - both tables list GRBL's M commands
        raise GcodeError(GrblError.GCODE_UNSUPPORTED_COMMAND)
    return known


class _AxisCommand(enum.Enum):
    MOTION = "motion"
    NON_MODAL = "non_modal"
    TOOL_LENGTH = "tool_length"


def parse_block(
    line: str,
    state: ParserState,
    offsets: Offsets,
    *,
    unsupported: Iterable[str] = (),
    laser_mode: bool = False,
    jog: bool = False,
) -> BlockResult:
    """Check and apply one normalised block; raise :class:`GcodeError` with GRBL's code."""
    unsupported = frozenset(canonical_command(name) for name in unsupported)
    commands: dict[Group, str] = {}
    values: dict[str, float] = {}
    axis_command: _AxisCommand | None = None

    # Step 1: words, groups and single-word checks, in the order they appear.
    for word in split_words(line):
        if word.letter in "GM":
            group, name = (_g_command if word.letter == "G" else _m_command)(word)
            if name in unsupported:
                raise GcodeError(GrblError.GCODE_UNSUPPORTED_COMMAND)
            if jog and not (group in _JOG_GROUPS or name == "G53"):
                raise GcodeError(GrblError.INVALID_JOG_COMMAND)
            if group in commands:
                raise GcodeError(GrblError.GCODE_MODAL_GROUP_VIOLATION)
            commands[group] = name
            uses_axes = group is Group.MOTION or name in _AXIS_USING_NON_MODAL or name == "G43.1"
            if uses_axes:
                if axis_command is not None:
                    raise GcodeError(GrblError.GCODE_AXIS_COMMAND_CONFLICT)
                axis_command = (
                    _AxisCommand.MOTION
                    if group is Group.MOTION
                    else _AxisCommand.TOOL_LENGTH
                    if name == "G43.1"
                    else _AxisCommand.NON_MODAL
                )
        elif word.letter in _VALUE_LETTERS:
            if word.letter in values:
                raise GcodeError(GrblError.GCODE_WORD_REPEATED)
            if word.letter in _NON_NEGATIVE and word.value < 0:
                raise GcodeError(GrblError.NEGATIVE_VALUE)
            if word.letter == "T" and word.value > MAX_TOOL_NUMBER:
                raise GcodeError(GrblError.GCODE_MAX_VALUE_EXCEEDED)
            # L and T keep only GRBL's uint8 int_value (L2.5 is L2); N is truncated.
            if word.letter in "LT":
                values[word.letter] = float(word.int_value)
            elif word.letter == "N":
                values[word.letter] = float(math.trunc(word.value))
            else:
                values[word.letter] = word.value
        else:
            raise GcodeError(GrblError.GCODE_UNSUPPORTED_COMMAND)

    if jog:
        return _jog_block(commands, values, state, offsets)

    axis_words = {AXES.index(a): v for a, v in values.items() if a in AXES}
    if axis_words and axis_command is None:
        axis_command = _AxisCommand.MOTION
    if "N" in values and values["N"] > MAX_LINE_NUMBER:
        raise GcodeError(GrblError.GCODE_INVALID_LINE_NUMBER)

    new = state
    new_offsets = offsets
    actions: list[Action] = []
    non_modal = commands.get(Group.NON_MODAL)
    motion = commands.get(Group.MOTION, state.motion)
    inches = commands[Group.UNITS] == "G20" if Group.UNITS in commands else state.inches
    unit = MM_PER_INCH if inches else 1.0
    inverse_time = (
        commands[Group.FEED_MODE] == "G93" if Group.FEED_MODE in commands else state.inverse_time
    )
    absolute = commands[Group.DISTANCE] == "G90" if Group.DISTANCE in commands else state.absolute
    plane = commands.get(Group.PLANE, state.plane)

    # Feed rate. In G93 every motion block carries its own F (GRBL asks it even of G0); the
    # stored value is the block's inverse-time number. Leaving G93 leaves the rate undefined.
    inverse_minutes: float | None = None
    if inverse_time:
        if axis_command is _AxisCommand.MOTION and "F" not in values:
            raise GcodeError(GrblError.GCODE_UNDEFINED_FEED_RATE)
        feed_mm_min = values.get("F", 0.0)
        if feed_mm_min > 0:
            inverse_minutes = 1.0 / feed_mm_min
    elif state.inverse_time:
        feed_mm_min = values.get("F", 0.0)
    else:
        feed_mm_min = values["F"] * unit if "F" in values else state.feed_mm_min

    new = replace(
        new,
        inches=inches,
        inverse_time=inverse_time,
        absolute=absolute,
        plane=plane,
        feed_mm_min=feed_mm_min,
        line_number=int(values["N"]) if "N" in values else state.line_number,
    )
    if "S" in values:
        new = replace(new, spindle_speed=values["S"])
    if "T" in values:
        new = replace(new, tool=int(values["T"]))

    # Spindle and coolant. GRBL 1.1 waits for planned motion to finish before it switches the
    # spindle or coolant, even in laser mode; a new S alone waits too, except in laser mode on
    # a block that cuts (there the power rides along with the motion).
    spindle = commands.get(Group.SPINDLE, state.spindle)
    mist, flood = state.mist, state.flood
    coolant = commands.get(Group.COOLANT)
    if coolant == "M7":
        mist = True
    elif coolant == "M8":
        flood = True
    elif coolant == "M9":
        mist = flood = False
    laser_cut = (
        laser_mode
        and axis_command is _AxisCommand.MOTION
        and motion in ("G1", "G2", "G3")
        and bool(axis_words)
    )
    speed_sync = (
        state.spindle != "M5" and new.spindle_speed != state.spindle_speed and not laser_cut
    )
    if spindle != state.spindle or speed_sync or (mist, flood) != (state.mist, state.flood):
        actions.append(Sync())
    new = replace(new, spindle=spindle, mist=mist, flood=flood)
    if Group.OVERRIDE in commands:
        values.pop("P", None)

    if non_modal == "G4":
        if "P" not in values:
            raise GcodeError(GrblError.GCODE_VALUE_WORD_MISSING)
        actions.extend((Sync(), Dwell(values.pop("P"))))

    if Group.TOOL_LENGTH in commands:
        if commands[Group.TOOL_LENGTH] == "G43.1":
            if set(axis_words) != {2}:
                raise GcodeError(GrblError.GCODE_G43_DYNAMIC_AXIS_ERROR)
            tlo = axis_words[2] * unit
        else:
            tlo = 0.0
        new = replace(new, tool_length_active=commands[Group.TOOL_LENGTH] == "G43.1")
        if tlo != offsets.tool_length:
            new_offsets = replace(new_offsets, tool_length=tlo)
            actions.append(Sync())

    if Group.COORD_SYSTEM in commands:
        coord = int(commands[Group.COORD_SYSTEM][1:]) - 54
        if coord != state.coord_select:
            actions.append(Sync())
        new = replace(new, coord_select=coord)

    if motion == "G80" and axis_words:
        raise GcodeError(GrblError.GCODE_AXIS_WORDS_EXIST)

    # Where axis words point: machine coordinates in mm, per GRBL's distance and offset rules.
    wco_before = new.work_offset(new_offsets)

    def target(work_offset: Vec, *, machine: bool = False) -> Vec:
        out = list(state.position)
        for axis, value in axis_words.items():
            mm = value * unit
            if machine:
                out[axis] = mm
            elif absolute:
                out[axis] = mm + work_offset[axis]
            else:
                out[axis] = state.position[axis] + mm
        return (out[0], out[1], out[2])

    position = state.position
    work_offset_changed = False

    if non_modal == "G10":
        if not axis_words:
            raise GcodeError(GrblError.GCODE_NO_AXIS_WORDS)
        if "P" not in values and "L" not in values:
            raise GcodeError(GrblError.GCODE_VALUE_WORD_MISSING)
        l_word = values.pop("L", 0.0)
        p_word = values.pop("P", 0.0)
        index = math.trunc(p_word)
        if index > 6:
            raise GcodeError(GrblError.GCODE_UNSUPPORTED_COORD_SYS)
        if l_word not in (2.0, 20.0) or (l_word == 2.0 and "R" in values):
            raise GcodeError(GrblError.GCODE_UNSUPPORTED_COMMAND)
        slot = new.coord_select if index == 0 else index - 1
        coords = list(new_offsets.coord_systems[slot])
        for axis, value in axis_words.items():
            mm = value * unit
            if l_word == 2.0:
                coords[axis] = mm
            else:
                extra = new_offsets.tool_length if axis == 2 else 0.0
                coords[axis] = position[axis] - mm - new_offsets.g92[axis] - extra
        systems = list(new_offsets.coord_systems)
        systems[slot] = (coords[0], coords[1], coords[2])
        new_offsets = replace(new_offsets, coord_systems=tuple(systems))
        actions.append(Sync())
    elif non_modal in ("G28.1", "G30.1"):
        if non_modal == "G28.1":
            new_offsets = replace(new_offsets, g28=position)
        else:
            new_offsets = replace(new_offsets, g30=position)
        actions.append(Sync())
    elif non_modal == "G92":
        if not axis_words:
            raise GcodeError(GrblError.GCODE_NO_AXIS_WORDS)
        g92 = list(new_offsets.g92)
        cs = new_offsets.coord_systems[new.coord_select]
        for axis, value in axis_words.items():
            extra = new_offsets.tool_length if axis == 2 else 0.0
            g92[axis] = position[axis] - cs[axis] - value * unit - extra
        new_offsets = replace(new_offsets, g92=(g92[0], g92[1], g92[2]))
        actions.append(Sync())
    elif non_modal == "G92.1":
        new_offsets = replace(new_offsets, g92=ZERO)
        actions.append(Sync())
    elif non_modal == "G53" and motion not in ("G0", "G1"):
        raise GcodeError(GrblError.GCODE_G53_INVALID_MOTION_MODE)
    elif non_modal in ("G28", "G30"):
        stored = new_offsets.g28 if non_modal == "G28" else new_offsets.g30
        if axis_words:
            via = target(wco_before)
            actions.append(_line(MoveKind.RAPID, position, via, 0.0))
            position = via
        # Only the axes named (or all, if none named) go to the stored position.
        final = list(position)
        for axis in axis_words or (0, 1, 2):
            final[axis] = stored[axis]
        end = (final[0], final[1], final[2])
        actions.append(_line(MoveKind.RAPID, position, end, 0.0))
        position = end

    if new.work_offset(new_offsets) != wco_before or new_offsets != offsets:
        work_offset_changed = True

    # Motion modes.
    if axis_command is _AxisCommand.MOTION and motion not in ("G80",):
        machine = non_modal == "G53"
        wco = new.work_offset(new_offsets)
        if motion == "G0":
            if axis_words:
                end = target(wco, machine=machine)
                actions.append(_line(MoveKind.RAPID, position, end, 0.0))
                position = end
        else:
            if (inverse_time and inverse_minutes is None) or (
                not inverse_time and feed_mm_min <= 0
            ):
                raise GcodeError(GrblError.GCODE_UNDEFINED_FEED_RATE)
            if motion == "G1":
                if axis_words:
                    end = target(wco, machine=machine)
                    actions.append(
                        _line(MoveKind.FEED, position, end, feed_mm_min, inverse_minutes)
                    )
                    position = end
            elif motion in ("G2", "G3"):
                end = target(wco)
                move = _arc(
                    clockwise=motion == "G2",
                    plane=plane,
                    start=position,
                    end=end,
                    axis_words=axis_words,
                    values=values,
                    unit=unit,
                    feed_mm_min=feed_mm_min,
                    inverse_minutes=inverse_minutes,
                )
                actions.append(move)
                position = end
            else:  # G38.x probing
                if not axis_words:
                    raise GcodeError(GrblError.GCODE_NO_AXIS_WORDS)
                end = target(wco)
                if end == position:
                    raise GcodeError(GrblError.GCODE_INVALID_TARGET)
                probe = _line(MoveKind.PROBE, position, end, feed_mm_min, inverse_minutes)
                actions.extend((Sync(), probe, Sync(), ProbeCheck(motion in ("G38.2", "G38.4"))))
                position = end
    new = replace(new, motion=motion, position=position)

    # Program flow.
    stopping = commands.get(Group.STOPPING)
    if stopping in ("M0", "M1"):
        new = replace(new, program_flow=stopping)
        if stopping == "M0":
            actions.extend((Sync(), Pause()))
    elif stopping in ("M2", "M30"):
        actions.append(Sync())
        new = replace(
            new,
            motion="G1",
            plane="G17",
            absolute=True,
            inverse_time=False,
            coord_select=0,
            spindle="M5",
            mist=False,
            flood=False,
            program_flow="",
        )
        actions.append(ProgramEnd())
        if new.work_offset(new_offsets) != state.work_offset(offsets):
            work_offset_changed = True

    # Words nothing used: GRBL refuses the whole block.
    for letter in "NFST":
        values.pop(letter, None)
    if axis_command is not None:
        for letter in AXES:
            values.pop(letter, None)
    if motion in ("G2", "G3") and axis_command is _AxisCommand.MOTION:
        for letter in "IJKR":
            values.pop(letter, None)
    if values:
        raise GcodeError(GrblError.GCODE_UNUSED_WORDS)

    return BlockResult(
        state=new,
        offsets=new_offsets,
        actions=tuple(actions),
        work_offset_changed=work_offset_changed,
        commands=tuple(commands.values()),
    )


def _jog_block(
    commands: dict[Group, str], values: dict[str, float], state: ParserState, offsets: Offsets
) -> BlockResult:
    """``$J=``: a G1 that needs its own F and leaves every parser mode as it was."""
    if set(values) - set("XYZFN"):
        raise GcodeError(GrblError.INVALID_JOG_COMMAND)
    if "F" not in values:
        raise GcodeError(GrblError.GCODE_UNDEFINED_FEED_RATE)
    axis_words = {AXES.index(a): v for a, v in values.items() if a in AXES}
    if not axis_words:
        raise GcodeError(GrblError.GCODE_NO_AXIS_WORDS)
    inches = commands[Group.UNITS] == "G20" if Group.UNITS in commands else state.inches
    absolute = commands[Group.DISTANCE] == "G90" if Group.DISTANCE in commands else state.absolute
    unit = MM_PER_INCH if inches else 1.0
    machine = commands.get(Group.NON_MODAL) == "G53"
    wco = state.work_offset(offsets)
    out = list(state.position)
    for axis, value in axis_words.items():
        mm = value * unit
        if machine:
            out[axis] = mm
        elif absolute:
            out[axis] = mm + wco[axis]
        else:
            out[axis] += mm
    end = (out[0], out[1], out[2])
    move = _line(MoveKind.JOG, state.position, end, values["F"] * unit)
    return BlockResult(state=replace(state, position=end), offsets=offsets, actions=(move,))


def _line(
    kind: MoveKind, start: Vec, end: Vec, feed_mm_min: float, inverse: float | None = None
) -> Move:
    return Move(kind, start, end, math.dist(start, end), feed_mm_min, inverse)


def _arc(
    *,
    clockwise: bool,
    plane: str,
    start: Vec,
    end: Vec,
    axis_words: dict[int, float],
    values: dict[str, float],
    unit: float,
    feed_mm_min: float,
    inverse_minutes: float | None,
) -> Move:
    a0, a1, linear = _PLANE_AXES[plane]
    if not axis_words:
        raise GcodeError(GrblError.GCODE_NO_AXIS_WORDS)
    if a0 not in axis_words and a1 not in axis_words:
        raise GcodeError(GrblError.GCODE_NO_AXIS_WORDS_IN_PLANE)
    x = end[a0] - start[a0]
    y = end[a1] - start[a1]
    if "R" in values:
        if start == end:
            raise GcodeError(GrblError.GCODE_INVALID_TARGET)
        radius = values["R"] * unit
        h_x2_div_d = 4.0 * radius * radius - x * x - y * y
        if h_x2_div_d < 0:
            raise GcodeError(GrblError.GCODE_ARC_RADIUS_ERROR)
        h = -math.sqrt(h_x2_div_d) / math.hypot(x, y)
        if not clockwise:
            h = -h
        if radius < 0:
            h = -h
            radius = -radius
        i = 0.5 * (x - y * h)
        j = 0.5 * (y + x * h)
    else:
        letters = (_OFFSET_LETTERS[a0], _OFFSET_LETTERS[a1])
        if letters[0] not in values and letters[1] not in values:
            raise GcodeError(GrblError.GCODE_NO_OFFSETS_IN_PLANE)
        i = values.get(letters[0], 0.0) * unit
        j = values.get(letters[1], 0.0) * unit
        radius = math.hypot(i, j)
        target_r = math.hypot(x - i, y - j)
        delta_r = abs(target_r - radius)
        if delta_r > 0.005 and (delta_r > 0.5 or delta_r > 0.001 * radius):
            raise GcodeError(GrblError.GCODE_INVALID_TARGET)
    # Angle swept from the start vector (-i, -j) to the end vector (x - i, y - j).
    sx, sy = -i, -j
    ex, ey = x - i, y - j
    travel = math.atan2(sx * ey - sy * ex, sx * ex + sy * ey)
    if clockwise:
        if travel >= -1e-7:
            travel -= 2 * math.pi
    elif travel <= 1e-7:
        travel += 2 * math.pi
    helix = end[linear] - start[linear]
    length = math.hypot(abs(travel) * radius, helix)
    return Move(MoveKind.FEED, start, end, length, feed_mm_min, inverse_minutes)
