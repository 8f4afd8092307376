"""The ``$$`` settings of the emulated machine and the rules GRBL applies when one is written.

Defaults describe a garment cutting table: 1600 x 1000 mm, 8000 mm/min rapids on X/Y, homing
enabled (this build has no homing lock at power-up, so it starts Idle).
"""

from __future__ import annotations

from agent.emulators.grbl_codes import GrblError

# Setting number -> (default value, is an integer setting).
_DEFAULTS: dict[int, tuple[float, bool]] = {
    0: (10, True),  # step pulse, us
    1: (25, True),  # step idle delay, ms
    2: (0, True),  # step port invert mask
    3: (0, True),  # direction invert mask
    4: (0, True),  # invert step enable
    5: (0, True),  # invert limit pins
    6: (0, True),  # invert probe pin
    10: (3, True),  # status report mask: bit 0 MPos, bit 1 buffer state
    11: (0.010, False),  # junction deviation, mm
    12: (0.002, False),  # arc tolerance, mm
    13: (0, True),  # report inches
    20: (0, True),  # soft limits
    21: (0, True),  # hard limits
    22: (1, True),  # homing cycle
    23: (0, True),  # homing direction invert mask
    24: (25.0, False),  # homing feed, mm/min
    25: (500.0, False),  # homing seek, mm/min
    26: (250, True),  # homing debounce, ms
    27: (1.0, False),  # homing pull-off, mm
    30: (1000, True),  # max spindle speed / laser power
    31: (0, True),  # min spindle speed
    32: (0, True),  # laser mode
    100: (80.0, False),  # steps/mm
    101: (80.0, False),
    102: (400.0, False),
    110: (8000.0, False),  # max rate, mm/min
    111: (8000.0, False),
    112: (1000.0, False),
    120: (500.0, False),  # acceleration, mm/s^2
    121: (500.0, False),
    122: (200.0, False),
    130: (1600.0, False),  # max travel, mm
    131: (1000.0, False),
    132: (50.0, False),
}


class Settings:
    """GRBL's EEPROM settings, as numbers."""

    def __init__(self) -> None:
        self.values: dict[int, float] = {k: v for k, (v, _) in _DEFAULTS.items()}

    def restore_defaults(self) -> None:
        self.values = {k: v for k, (v, _) in _DEFAULTS.items()}

    def __getitem__(self, key: int) -> float:
        return self.values[key]

    @property
    def laser_mode(self) -> bool:
        return bool(self.values[32])

    @property
    def homing_enabled(self) -> bool:
        return bool(self.values[22])

    def max_rates_mm_min(self) -> tuple[float, float, float]:
        return (self.values[110], self.values[111], self.values[112])

    def accelerations_mm_s2(self) -> tuple[float, float, float]:
        return (self.values[120], self.values[121], self.values[122])

    def store(self, key: int, value: float) -> GrblError | None:
        """Write ``$key=value``; return GRBL's error, or None when stored."""
        if key not in _DEFAULTS:
            return GrblError.INVALID_STATEMENT
        if value < 0:
            return GrblError.NEGATIVE_VALUE
        if key == 0 and value < 3:
            return GrblError.SETTING_STEP_PULSE_MIN
        if key == 20 and value and not self.homing_enabled:
            return GrblError.SOFT_LIMIT_ERROR
        is_int = _DEFAULTS[key][1]
        self.values[key] = float(int(value)) if is_int else value
        return None

    def report_lines(self) -> list[str]:
        lines = []
        for key, (_, is_int) in _DEFAULTS.items():
            value = self.values[key]
            lines.append(f"${key}={int(value)}" if is_int else f"${key}={value:.3f}")
        return lines
