"""GRBL 1.1 vocabulary: machine states, error and alarm codes, realtime command bytes.

Codes and texts follow gnea/grbl ``doc/csv/error_codes_en_US.csv`` and
``doc/csv/alarm_codes_en_US.csv``; realtime bytes follow ``doc/markdown/commands.md``.
"""

from __future__ import annotations

import enum


class GrblState(enum.StrEnum):
    """The first field of a status report; the value is exactly what GRBL prints."""

    IDLE = "Idle"
    RUN = "Run"
    HOLD_COMPLETE = "Hold:0"
    HOLD_DECELERATING = "Hold:1"
    JOG = "Jog"
    ALARM = "Alarm"
    DOOR_CLOSED = "Door:0"
    DOOR_HOLDING = "Door:2"
    CHECK = "Check"
    HOME = "Home"
    SLEEP = "Sleep"

    @property
    def is_moving(self) -> bool:
        """States in which a soft reset loses position (GRBL throws ALARM:3 for them)."""
        return self in _MOVING

    @property
    def is_suspended(self) -> bool:
        """States in which GRBL parses no lines until resumed or reset."""
        return self in _SUSPENDED


_MOVING = frozenset(
    {GrblState.RUN, GrblState.HOLD_DECELERATING, GrblState.JOG, GrblState.DOOR_HOLDING}
)
_SUSPENDED = frozenset(
    {
        GrblState.HOLD_COMPLETE,
        GrblState.HOLD_DECELERATING,
        GrblState.DOOR_CLOSED,
        GrblState.DOOR_HOLDING,
        GrblState.SLEEP,
        GrblState.HOME,
    }
)


class GrblError(enum.IntEnum):
    """``error:N`` codes of GRBL 1.1."""

    EXPECTED_COMMAND_LETTER = 1
    BAD_NUMBER_FORMAT = 2
    INVALID_STATEMENT = 3
    NEGATIVE_VALUE = 4
    SETTING_DISABLED = 5
    SETTING_STEP_PULSE_MIN = 6
    SETTING_READ_FAIL = 7
    IDLE_ERROR = 8
    SYSTEM_GC_LOCK = 9
    SOFT_LIMIT_ERROR = 10
    OVERFLOW = 11
    MAX_STEP_RATE_EXCEEDED = 12
    CHECK_DOOR = 13
    LINE_LENGTH_EXCEEDED = 14
    TRAVEL_EXCEEDED = 15
    INVALID_JOG_COMMAND = 16
    SETTING_DISABLED_LASER = 17
    GCODE_UNSUPPORTED_COMMAND = 20
    GCODE_MODAL_GROUP_VIOLATION = 21
    GCODE_UNDEFINED_FEED_RATE = 22
    GCODE_COMMAND_VALUE_NOT_INTEGER = 23
    GCODE_AXIS_COMMAND_CONFLICT = 24
    GCODE_WORD_REPEATED = 25
    GCODE_NO_AXIS_WORDS = 26
    GCODE_INVALID_LINE_NUMBER = 27
    GCODE_VALUE_WORD_MISSING = 28
    GCODE_UNSUPPORTED_COORD_SYS = 29
    GCODE_G53_INVALID_MOTION_MODE = 30
    GCODE_AXIS_WORDS_EXIST = 31
    GCODE_NO_AXIS_WORDS_IN_PLANE = 32
    GCODE_INVALID_TARGET = 33
    GCODE_ARC_RADIUS_ERROR = 34
    GCODE_NO_OFFSETS_IN_PLANE = 35
    GCODE_UNUSED_WORDS = 36
    GCODE_G43_DYNAMIC_AXIS_ERROR = 37
    GCODE_MAX_VALUE_EXCEEDED = 38


class GrblAlarm(enum.IntEnum):
    """``ALARM:N`` codes of GRBL 1.1."""

    HARD_LIMIT = 1
    SOFT_LIMIT = 2
    ABORT_CYCLE = 3
    PROBE_FAIL_INITIAL = 4
    PROBE_FAIL_CONTACT = 5
    HOMING_FAIL_RESET = 6
    HOMING_FAIL_DOOR = 7
    HOMING_FAIL_PULLOFF = 8
    HOMING_FAIL_APPROACH = 9


class Realtime(enum.StrEnum):
    """Single-byte commands GRBL acts on at once; they never enter the receive buffer."""

    STATUS_REPORT = "status_report"
    FEED_HOLD = "feed_hold"
    CYCLE_START = "cycle_start"
    SOFT_RESET = "soft_reset"
    SAFETY_DOOR = "safety_door"
    JOG_CANCEL = "jog_cancel"
    FEED_OVR_RESET = "feed_ovr_reset"
    FEED_OVR_COARSE_PLUS = "feed_ovr_coarse_plus"
    FEED_OVR_COARSE_MINUS = "feed_ovr_coarse_minus"
    FEED_OVR_FINE_PLUS = "feed_ovr_fine_plus"
    FEED_OVR_FINE_MINUS = "feed_ovr_fine_minus"
    RAPID_OVR_RESET = "rapid_ovr_reset"
    RAPID_OVR_MEDIUM = "rapid_ovr_medium"
    RAPID_OVR_LOW = "rapid_ovr_low"
    SPINDLE_OVR_RESET = "spindle_ovr_reset"
    SPINDLE_OVR_COARSE_PLUS = "spindle_ovr_coarse_plus"
    SPINDLE_OVR_COARSE_MINUS = "spindle_ovr_coarse_minus"
    SPINDLE_OVR_FINE_PLUS = "spindle_ovr_fine_plus"
    SPINDLE_OVR_FINE_MINUS = "spindle_ovr_fine_minus"
    SPINDLE_OVR_STOP = "spindle_ovr_stop"
    COOLANT_FLOOD_TOGGLE = "coolant_flood_toggle"
    COOLANT_MIST_TOGGLE = "coolant_mist_toggle"


REALTIME_BYTES: dict[int, Realtime] = {
    ord("?"): Realtime.STATUS_REPORT,
    ord("!"): Realtime.FEED_HOLD,
    ord("~"): Realtime.CYCLE_START,
    0x18: Realtime.SOFT_RESET,
    0x84: Realtime.SAFETY_DOOR,
    0x85: Realtime.JOG_CANCEL,
    0x90: Realtime.FEED_OVR_RESET,
    0x91: Realtime.FEED_OVR_COARSE_PLUS,
    0x92: Realtime.FEED_OVR_COARSE_MINUS,
    0x93: Realtime.FEED_OVR_FINE_PLUS,
    0x94: Realtime.FEED_OVR_FINE_MINUS,
    0x95: Realtime.RAPID_OVR_RESET,
    0x96: Realtime.RAPID_OVR_MEDIUM,
    0x97: Realtime.RAPID_OVR_LOW,
    0x99: Realtime.SPINDLE_OVR_RESET,
    0x9A: Realtime.SPINDLE_OVR_COARSE_PLUS,
    0x9B: Realtime.SPINDLE_OVR_COARSE_MINUS,
    0x9C: Realtime.SPINDLE_OVR_FINE_PLUS,
    0x9D: Realtime.SPINDLE_OVR_FINE_MINUS,
    0x9E: Realtime.SPINDLE_OVR_STOP,
    0xA0: Realtime.COOLANT_FLOOD_TOGGLE,
    0xA1: Realtime.COOLANT_MIST_TOGGLE,
}


def is_realtime_byte(byte: int) -> bool:
    """GRBL intercepts the four ASCII realtime characters and every byte above 0x7F.

    Extended-ASCII bytes without a meaning are thrown away by the serial interrupt too, so
    they never reach the receive buffer either.
    """
    return byte > 0x7F or byte in REALTIME_BYTES
