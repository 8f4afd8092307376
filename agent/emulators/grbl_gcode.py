"""GRBL 1.1's G-code parser, reduced to what a host can observe.

``parse_block`` takes one normalised line (no spaces or comments, upper case), checks it in the
order GRBL's ``gc_execute_line`` (gcode.c) does so the same mistakes give the same ``error:N``,
and returns the parser state after the block plus the actions the machine must carry out
(moves, buffer synchronisation, dwell, pause). On error nothing changes, as in GRBL.

Words are read by :mod:`agent.reading.grbl`, which follows the firmware rule for rule:
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

from agent.emulators.grbl_codes import GrblError
from agent.reading.grbl import ReadError, Word, g_command, m_command, read_words

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
    number (else error:2), as :func:`agent.reading.grbl.read_words` does it."""
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
    """gc_execute_line's G switch (agent.reading.grbl.g_command): error:20 or error:23 as GRBL."""
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


@dataclass
class _Words:
    """What gc_execute_line step 2 reads from a block: commands by modal group, value words,
    and which command (if any) claims the axis words."""

    commands: dict[Group, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    axis_command: _AxisCommand | None = None


@dataclass
class _Block:
    """One block on its way through gc_execute_line step 4 (execution), step by step.

    ``state``/``offsets`` are the parser before the block, ``new``/``new_offsets`` what the steps
    so far made of it; ``actions`` is what the machine must do, in order.
    """

    words: _Words
    state: ParserState
    offsets: Offsets
    new: ParserState
    new_offsets: Offsets
    axis_words: dict[int, float]
    unit: float
    inverse_minutes: float | None = None
    actions: list[Action] = field(default_factory=list)
    work_offset_changed: bool = False

    @property
    def commands(self) -> dict[Group, str]:
        return self.words.commands

    @property
    def values(self) -> dict[str, float]:
        return self.words.values

    @property
    def non_modal(self) -> str | None:
        return self.words.commands.get(Group.NON_MODAL)

    @property
    def motion(self) -> str:
        return self.words.commands.get(Group.MOTION, self.state.motion)

    def target(self, work_offset: Vec, *, machine: bool = False) -> Vec:
        """Where the axis words point, in machine mm (GRBL's distance and offset rules)."""
        out = list(self.state.position)
        for axis, value in self.axis_words.items():
            mm = value * self.unit
            if machine:
                out[axis] = mm
            elif self.new.absolute:
                out[axis] = mm + work_offset[axis]
            else:
                out[axis] = self.state.position[axis] + mm
        return (out[0], out[1], out[2])

    def move_to(self, kind: MoveKind, end: Vec, feed_mm_min: float,
                inverse: float | None = None) -> None:
        self.actions.append(_line(kind, self.new.position, end, feed_mm_min, inverse))
        self.new = replace(self.new, position=end)


def parse_block(
    line: str,
    state: ParserState,
    offsets: Offsets,
    *,
    unsupported: Iterable[str] = (),
    laser_mode: bool = False,
    jog: bool = False,
) -> BlockResult:
    """Check and apply one normalised block; raise :class:`GcodeError` with GRBL's code.

    The steps follow gc_execute_line's numbering (gcode.c): words (step 2), error checks and
    the modal state (step 3), then execution in GRBL's order (step 4: feed rate mode and rate,
    spindle speed, tool, spindle and coolant, dwell, tool length, coordinate system, the other
    non-modal actions, motion, program flow). Unused words refuse the block (end of step 3).
    """
    words = _read_block_words(line, frozenset(canonical_command(n) for n in unsupported), jog)
    if jog:
        return _jog_block(words.commands, words.values, state, offsets)
    block = _start_block(words, state, offsets)
    _set_feed_and_modes(block)
    _set_spindle_and_coolant(block, laser_mode)
    _dwell(block)
    _tool_length_offset(block)
    _coordinate_system(block)
    if block.motion == "G80" and block.axis_words:
        raise GcodeError(GrblError.GCODE_AXIS_WORDS_EXIST)
    wco_before = block.new.work_offset(block.new_offsets)
    _non_modal_actions(block, wco_before)
    if block.new.work_offset(block.new_offsets) != wco_before or block.new_offsets != offsets:
        block.work_offset_changed = True
    _motion(block)
    _program_flow(block)
    _refuse_unused_words(block)
    return BlockResult(
        state=block.new,
        offsets=block.new_offsets,
        actions=tuple(block.actions),
        work_offset_changed=block.work_offset_changed,
        commands=tuple(block.commands.values()),
    )


def _read_block_words(line: str, unsupported: frozenset[str], jog: bool) -> _Words:
    """Step 2: words, groups and single-word checks, in the order they appear."""
    words = _Words()
    for word in split_words(line):
        if word.letter in "GM":
            _read_command_word(words, word, unsupported, jog)
        elif word.letter in _VALUE_LETTERS:
            _read_value_word(words.values, word)
        else:
            raise GcodeError(GrblError.GCODE_UNSUPPORTED_COMMAND)
    return words


def _read_command_word(words: _Words, word: Word, unsupported: frozenset[str],
                       jog: bool) -> None:
    group, name = (_g_command if word.letter == "G" else _m_command)(word)
    if name in unsupported:
        raise GcodeError(GrblError.GCODE_UNSUPPORTED_COMMAND)
    if jog and not (group in _JOG_GROUPS or name == "G53"):
        raise GcodeError(GrblError.INVALID_JOG_COMMAND)
    if group in words.commands:
        raise GcodeError(GrblError.GCODE_MODAL_GROUP_VIOLATION)
    words.commands[group] = name
    if group is Group.MOTION or name in _AXIS_USING_NON_MODAL or name == "G43.1":
        if words.axis_command is not None:
            raise GcodeError(GrblError.GCODE_AXIS_COMMAND_CONFLICT)
        words.axis_command = (
            _AxisCommand.MOTION if group is Group.MOTION
            else _AxisCommand.TOOL_LENGTH if name == "G43.1"
            else _AxisCommand.NON_MODAL
        )


def _read_value_word(values: dict[str, float], word: Word) -> None:
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


def _start_block(words: _Words, state: ParserState, offsets: Offsets) -> _Block:
    """Step 3's first checks: axis words without a command mean the modal motion; N's range."""
    values, commands = words.values, words.commands
    axis_words = {AXES.index(a): v for a, v in values.items() if a in AXES}
    if axis_words and words.axis_command is None:
        words.axis_command = _AxisCommand.MOTION
    if "N" in values and values["N"] > MAX_LINE_NUMBER:
        raise GcodeError(GrblError.GCODE_INVALID_LINE_NUMBER)
    inches = commands[Group.UNITS] == "G20" if Group.UNITS in commands else state.inches
    return _Block(words=words, state=state, offsets=offsets, new=state, new_offsets=offsets,
                  axis_words=axis_words, unit=MM_PER_INCH if inches else 1.0)


def _set_feed_and_modes(block: _Block) -> None:
    """Steps 4.2-4.5 plus the plane, units and distance modes (4.11, 4.12, 4.17).

    In G93 every motion block carries its own F (GRBL asks it even of G0); the stored value is
    the block's inverse-time number. Leaving G93 leaves the rate undefined.
    """
    commands, values, state = block.commands, block.values, block.state
    inverse_time = (
        commands[Group.FEED_MODE] == "G93" if Group.FEED_MODE in commands else state.inverse_time
    )
    if inverse_time:
        if block.words.axis_command is _AxisCommand.MOTION and "F" not in values:
            raise GcodeError(GrblError.GCODE_UNDEFINED_FEED_RATE)
        feed_mm_min = values.get("F", 0.0)
        if feed_mm_min > 0:
            block.inverse_minutes = 1.0 / feed_mm_min
    elif state.inverse_time:
        feed_mm_min = values.get("F", 0.0)
    else:
        feed_mm_min = values["F"] * block.unit if "F" in values else state.feed_mm_min
    block.new = replace(
        block.new,
        inches=block.unit != 1.0,
        inverse_time=inverse_time,
        absolute=(commands[Group.DISTANCE] == "G90" if Group.DISTANCE in commands
                  else state.absolute),
        plane=commands.get(Group.PLANE, state.plane),
        feed_mm_min=feed_mm_min,
        line_number=int(values["N"]) if "N" in values else state.line_number,
    )
    if "S" in values:
        block.new = replace(block.new, spindle_speed=values["S"])
    if "T" in values:
        block.new = replace(block.new, tool=int(values["T"]))


def _set_spindle_and_coolant(block: _Block, laser_mode: bool) -> None:
    """Steps 4.7-4.9. GRBL 1.1 waits for planned motion to finish before it switches the
    spindle or coolant, even in laser mode; a new S alone waits too, except in laser mode on a
    block that cuts (there the power rides along with the motion)."""
    commands, state = block.commands, block.state
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
        and block.words.axis_command is _AxisCommand.MOTION
        and block.motion in ("G1", "G2", "G3")
        and bool(block.axis_words)
    )
    speed_sync = (
        state.spindle != "M5" and block.new.spindle_speed != state.spindle_speed and not laser_cut
    )
    if spindle != state.spindle or speed_sync or (mist, flood) != (state.mist, state.flood):
        block.actions.append(Sync())
    block.new = replace(block.new, spindle=spindle, mist=mist, flood=flood)
    if Group.OVERRIDE in commands:
        block.values.pop("P", None)


def _dwell(block: _Block) -> None:
    """Step 4.10: G4 needs P (seconds) and waits for the buffer to empty first."""
    if block.non_modal == "G4":
        if "P" not in block.values:
            raise GcodeError(GrblError.GCODE_VALUE_WORD_MISSING)
        block.actions.extend((Sync(), Dwell(block.values.pop("P"))))


def _tool_length_offset(block: _Block) -> None:
    """Step 4.14: G43.1 takes a Z word only; G49 cancels. A change waits for the buffer."""
    commands = block.commands
    if Group.TOOL_LENGTH not in commands:
        return
    dynamic = commands[Group.TOOL_LENGTH] == "G43.1"
    if dynamic:
        if set(block.axis_words) != {2}:
            raise GcodeError(GrblError.GCODE_G43_DYNAMIC_AXIS_ERROR)
        tlo = block.axis_words[2] * block.unit
    else:
        tlo = 0.0
    block.new = replace(block.new, tool_length_active=dynamic)
    if tlo != block.offsets.tool_length:
        block.new_offsets = replace(block.new_offsets, tool_length=tlo)
        block.actions.append(Sync())


def _coordinate_system(block: _Block) -> None:
    """Step 4.15: G54-G59; a change waits for the buffer."""
    if Group.COORD_SYSTEM in block.commands:
        coord = int(block.commands[Group.COORD_SYSTEM][1:]) - 54
        if coord != block.state.coord_select:
            block.actions.append(Sync())
        block.new = replace(block.new, coord_select=coord)


def _non_modal_actions(block: _Block, wco_before: Vec) -> None:
    """Step 4.19: G10, G28/G30 (and .1), G92/G92.1; G53 only with G0 or G1."""
    non_modal = block.non_modal
    if non_modal == "G10":
        _set_coordinate_data(block)
    elif non_modal in ("G28.1", "G30.1"):
        position = block.state.position
        if non_modal == "G28.1":
            block.new_offsets = replace(block.new_offsets, g28=position)
        else:
            block.new_offsets = replace(block.new_offsets, g30=position)
        block.actions.append(Sync())
    elif non_modal == "G92":
        _set_g92(block)
    elif non_modal == "G92.1":
        block.new_offsets = replace(block.new_offsets, g92=ZERO)
        block.actions.append(Sync())
    elif non_modal == "G53" and block.motion not in ("G0", "G1"):
        raise GcodeError(GrblError.GCODE_G53_INVALID_MOTION_MODE)
    elif non_modal in ("G28", "G30"):
        stored = block.new_offsets.g28 if non_modal == "G28" else block.new_offsets.g30
        if block.axis_words:
            block.move_to(MoveKind.RAPID, block.target(wco_before), 0.0)
        # Only the axes named (or all, if none named) go to the stored position.
        final = list(block.new.position)
        for axis in block.axis_words or (0, 1, 2):
            final[axis] = stored[axis]
        block.move_to(MoveKind.RAPID, (final[0], final[1], final[2]), 0.0)


def _set_coordinate_data(block: _Block) -> None:
    """G10 L2 (offsets as given) and G10 L20 (offsets that make the current position the
    given one), P0 the active system, P1-P6 G54-G59; written to EEPROM, so it syncs."""
    values, offsets = block.values, block.new_offsets
    if not block.axis_words:
        raise GcodeError(GrblError.GCODE_NO_AXIS_WORDS)
    if "P" not in values and "L" not in values:
        raise GcodeError(GrblError.GCODE_VALUE_WORD_MISSING)
    l_word = values.pop("L", 0.0)
    index = math.trunc(values.pop("P", 0.0))
    if index > 6:
        raise GcodeError(GrblError.GCODE_UNSUPPORTED_COORD_SYS)
    if l_word not in (2.0, 20.0) or (l_word == 2.0 and "R" in values):
        raise GcodeError(GrblError.GCODE_UNSUPPORTED_COMMAND)
    slot = block.new.coord_select if index == 0 else index - 1
    coords = list(offsets.coord_systems[slot])
    position = block.state.position
    for axis, value in block.axis_words.items():
        mm = value * block.unit
        if l_word == 2.0:
            coords[axis] = mm
        else:
            extra = offsets.tool_length if axis == 2 else 0.0
            coords[axis] = position[axis] - mm - offsets.g92[axis] - extra
    systems = list(offsets.coord_systems)
    systems[slot] = (coords[0], coords[1], coords[2])
    block.new_offsets = replace(offsets, coord_systems=tuple(systems))
    block.actions.append(Sync())


def _set_g92(block: _Block) -> None:
    """G92: an offset that makes the current position read as the given one."""
    if not block.axis_words:
        raise GcodeError(GrblError.GCODE_NO_AXIS_WORDS)
    offsets = block.new_offsets
    g92 = list(offsets.g92)
    cs = offsets.coord_systems[block.new.coord_select]
    position = block.state.position
    for axis, value in block.axis_words.items():
        extra = offsets.tool_length if axis == 2 else 0.0
        g92[axis] = position[axis] - cs[axis] - value * block.unit - extra
    block.new_offsets = replace(offsets, g92=(g92[0], g92[1], g92[2]))
    block.actions.append(Sync())


def _motion(block: _Block) -> None:
    """Step 4.20: G0, G1, G2/G3 and G38.x, in the motion mode the block leaves in force."""
    motion = block.motion
    if block.words.axis_command is not _AxisCommand.MOTION or motion == "G80":
        block.new = replace(block.new, motion=motion)
        return
    machine = block.non_modal == "G53"
    wco = block.new.work_offset(block.new_offsets)
    new = block.new
    if motion == "G0":
        if block.axis_words:
            block.move_to(MoveKind.RAPID, block.target(wco, machine=machine), 0.0)
    else:
        if (new.inverse_time and block.inverse_minutes is None) or (
            not new.inverse_time and new.feed_mm_min <= 0
        ):
            raise GcodeError(GrblError.GCODE_UNDEFINED_FEED_RATE)
        if motion == "G1":
            if block.axis_words:
                block.move_to(MoveKind.FEED, block.target(wco, machine=machine),
                              new.feed_mm_min, block.inverse_minutes)
        elif motion in ("G2", "G3"):
            end = block.target(wco)
            block.actions.append(_arc(
                clockwise=motion == "G2", plane=new.plane, start=new.position, end=end,
                axis_words=block.axis_words, values=block.values, unit=block.unit,
                feed_mm_min=new.feed_mm_min, inverse_minutes=block.inverse_minutes,
            ))
            block.new = replace(block.new, position=end)
        else:
            _probe(block, wco)
    block.new = replace(block.new, motion=motion)


def _probe(block: _Block, wco: Vec) -> None:
    """G38.2-G38.5: sync, move until the probe changes, sync, then check the probe (G38.2 and
    G38.4 alarm when it never did)."""
    if not block.axis_words:
        raise GcodeError(GrblError.GCODE_NO_AXIS_WORDS)
    start = block.new.position
    end = block.target(wco)
    if end == start:
        raise GcodeError(GrblError.GCODE_INVALID_TARGET)
    probe = _line(MoveKind.PROBE, start, end, block.new.feed_mm_min, block.inverse_minutes)
    block.actions.extend((Sync(), probe, Sync(), ProbeCheck(block.motion in ("G38.2", "G38.4"))))
    block.new = replace(block.new, position=end)


def _program_flow(block: _Block) -> None:
    """Step 4.21: M0/M1 pause (M1 only with optional stop, which GRBL does not build in); M2/M30
    wait for the buffer, then reset the modes gc_execute_line lists."""
    stopping = block.commands.get(Group.STOPPING)
    if stopping in ("M0", "M1"):
        block.new = replace(block.new, program_flow=stopping)
        if stopping == "M0":
            block.actions.extend((Sync(), Pause()))
    elif stopping in ("M2", "M30"):
        block.actions.append(Sync())
        block.new = replace(
            block.new, motion="G1", plane="G17", absolute=True, inverse_time=False,
            coord_select=0, spindle="M5", mist=False, flood=False, program_flow="",
        )
        block.actions.append(ProgramEnd())
        if block.new.work_offset(block.new_offsets) != block.state.work_offset(block.offsets):
            block.work_offset_changed = True


def _refuse_unused_words(block: _Block) -> None:
    """End of step 3: words nothing used make GRBL refuse the whole block (error:36)."""
    values = block.values
    for letter in "NFST":
        values.pop(letter, None)
    if block.words.axis_command is not None:
        for letter in AXES:
            values.pop(letter, None)
    if block.motion in ("G2", "G3") and block.words.axis_command is _AxisCommand.MOTION:
        for letter in "IJKR":
            values.pop(letter, None)
    if values:
        raise GcodeError(GrblError.GCODE_UNUSED_WORDS)


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
