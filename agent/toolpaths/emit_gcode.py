"""Planned paths to G-code for GRBL 1.1 and Marlin 2 (lasers, Z or servo knives and pens).

GRBL lines are written the way the GRBL driver sends them: uppercase, no spaces, no comments,
modal words left out when unchanged. Marlin lines keep spaces and repeat the G word (Marlin has
no modal motion); the Marlin driver adds line numbers and checksums.

Lasers: GRBL runs the whole job under ``M4`` (dynamic power: the beam scales with actual speed
so corners do not burn) with ``S`` scaled to the profile's ``s_max``; every travel carries
``S0`` so the beam is off even if laser mode ($32) were off. Marlin switches the beam on with
``M3``/``M4 S..`` before each cut and ``M5`` after it.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.errors import ProgramError
from agent.profiles.toolpath import LiftMethod, MachineKind
from agent.toolpaths.geometry import XY
from agent.toolpaths.plan import PlannedPath
from agent.toolpaths.target import Dialect, MachineTarget


class GcodeWriter:
    def __init__(self, target: MachineTarget) -> None:
        self.target = target
        self.settings = target.settings
        self.compact = target.dialect is Dialect.GRBL
        self.scale = int(self.settings.units_per_mm)
        self.decimals = len(str(self.scale)) - 1
        self.lines: list[str] = []
        self.pos: tuple[int, int] | None = None  # machine units, None: unknown
        self.motion: str | None = None
        self.feed: str | None = None
        self.power: str | None = None
        self.down = False

    # -- formatting ------------------------------------------------------------------------

    def units(self, p: XY) -> tuple[int, int]:
        return (round(p[0] * self.scale), round(p[1] * self.scale))

    def number(self, n: int) -> str:
        if self.decimals == 0:
            return str(n)
        # n / scale printed to ``decimals`` places is exactly n units (scale is a power of 10).
        text = f"{n / self.scale:.{self.decimals}f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text

    def mm(self, value: float) -> str:
        return self.number(round(value * self.scale))

    def emit(self, *words: str) -> None:
        line = ("" if self.compact else " ").join(w for w in words if w)
        if len(line) > self.target.max_line_chars:
            raise ProgramError(
                f"compiled line longer than {self.target.max_line_chars} characters: {line}",
                code="invalid_toolpaths",
            )
        self.lines.append(line)

    # -- moves -----------------------------------------------------------------------------

    def move(self, code: str, p: tuple[int, int], feed: str = "", power: str = "") -> None:
        if p == self.pos and not power:
            return
        g = code
        if self.compact and code == self.motion:
            g = ""
        f = ""
        # F is modal; in Marlin G0 and G1 share it, so it is written whenever it changes.
        if feed and feed != self.feed:
            f = "F" + feed
            self.feed = feed
        s = ""
        if power and power != self.power:
            s = "S" + power
            self.power = power
        self.emit(g, "X" + self.number(p[0]), "Y" + self.number(p[1]), f, s)
        self.motion = code
        self.pos = p

    def feed_of(self, speed_mm_s: float) -> str:
        return self.mm(speed_mm_s * 60.0)


def emit_gcode(plan: Sequence[PlannedPath], target: MachineTarget) -> list[str]:
    w = GcodeWriter(target)
    s = target.settings
    w.emit("G21")  # millimetres
    w.emit("G90")  # absolute
    laser = s.laser if s.machine is MachineKind.LASER else None
    if laser is not None:
        if target.dialect is Dialect.GRBL:
            w.emit("M4" if laser.dynamic_power else "M3", "S0")
            w.power = "0"
        if laser.air_assist:
            w.emit(_spaced(laser.air_on, w.compact))
    else:
        _tool_up(w)
    for path in plan:
        for route in path.routes:
            _one_pass(w, path, route)
    if laser is not None:
        w.emit("M5")
        if laser.air_assist:
            w.emit(_spaced(laser.air_off, w.compact))
    else:
        _tool_up(w)
    return w.lines


def _one_pass(w: GcodeWriter, path: PlannedPath, route: tuple[XY, ...]) -> None:
    s = w.target.settings
    pts = [w.units(p) for p in route]
    travel_feed = "" if w.compact else w.feed_of(s.travel_speed_mm_s)
    if pts[0] != w.pos:
        if w.down:
            _tool_up(w)
        if s.laser is not None and w.compact:
            w.move("G0", pts[0], power="0")
        else:
            w.move("G0", pts[0], feed=travel_feed)
    cut_feed = w.feed_of(path.settings.speed_mm_s)
    if s.laser is not None:
        power = str(round(path.settings.power_pct / 100.0 * s.laser.s_max))
        if w.compact:
            moves = [p for i, p in enumerate(pts[1:]) if p != pts[i]]
            for i, p in enumerate(moves):
                w.move("G1", p, feed=cut_feed, power=power if i == 0 else "")
        else:
            w.emit("M4" if s.laser.dynamic_power else "M3", "S" + power)
            for p in pts[1:]:
                w.move("G1", p, feed=cut_feed)
            w.emit("M5")
        return
    _tool_down(w, path)
    for p in pts[1:]:
        w.move("G1", p, feed=cut_feed)
    _tool_up(w)


def _tool_up(w: GcodeWriter) -> None:
    lift = w.target.settings.lift
    if lift is None:
        return
    if lift.method is LiftMethod.Z:
        # GRBL rapids ignore F (and must not change the modal feed); Marlin's G0 uses it.
        feed = "" if w.compact else w.feed_of(lift.z_speed_mm_s)
        w.emit("G0", "Z" + w.mm(lift.z_up_mm), "F" + feed if feed and feed != w.feed else "")
        if feed:
            w.feed = feed
        w.motion = "G0"
    else:
        w.emit(_spaced(lift.servo_up, w.compact))
        _dwell(w, lift.servo_dwell_s)
    w.down = False


def _tool_down(w: GcodeWriter, path: PlannedPath) -> None:
    lift = w.target.settings.lift
    if lift is None:
        return
    if lift.method is LiftMethod.Z:
        z = path.settings.z_down_mm if path.settings.z_down_mm is not None else lift.z_down_mm
        feed = w.feed_of(lift.z_speed_mm_s)
        w.emit("G1", "Z" + w.mm(z), "F" + feed if feed != w.feed else "")
        w.motion = "G1"
        w.feed = feed
    else:
        w.emit(_spaced(lift.servo_down, w.compact))
        _dwell(w, lift.servo_dwell_s)
    w.down = True


def _dwell(w: GcodeWriter, seconds: float) -> None:
    """G4's P is seconds on GRBL (gcode.c reads it as a float of seconds) but milliseconds on
    Marlin (G4.cpp: P is milliseconds, S seconds): a servo settle of 0.2 s is P0.2 or P200."""
    if seconds <= 0:
        return
    if w.target.dialect is Dialect.GRBL:
        w.emit("G4", "P" + f"{seconds:.3f}".rstrip("0").rstrip("."))
    else:
        w.emit("G4", f"P{round(seconds * 1000)}")


def _spaced(line: str, compact: bool) -> str:
    return line.replace(" ", "") if compact else line
