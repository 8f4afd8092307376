"""How a profile compiles device-neutral toolpaths for its machine (see agent/toolpaths/).

The ``[toolpath]`` section of a firmware profile. Which language is written follows the profile's
family (grbl, marlin, hpgl); what the machine does with a path follows ``machine``. A profile
without the section takes no toolpaths jobs.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from agent.profiles.pattern_defaults import PatternDefaults
from agent.schemas.toolpaths import Operation
from agent.strict import StrictModel

__all__ = [
    "HpglSettings",
    "HpglVariant",
    "KnifeSettings",
    "LaserSettings",
    "LiftMethod",
    "LiftSettings",
    "MachineKind",
    "OpDefaults",
    "ToolpathSettings",
]


class MachineKind(StrEnum):
    LASER = "laser"
    DRAG_KNIFE = "drag_knife"
    PEN = "pen"


class HpglVariant(StrEnum):
    HP7475A = "hp7475a"
    CAMM_GL3 = "camm-gl3"


class LiftMethod(StrEnum):
    Z = "z"
    SERVO = "servo"


Speed = Annotated[float, Field(gt=0, le=2000, allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Grams = Annotated[float, Field(ge=0, le=5000, allow_inf_nan=False)]
Passes = Annotated[int, Field(ge=1, le=20)]
ZHeight = Annotated[float, Field(ge=-100, le=100, allow_inf_nan=False)]
# A whole G-code line the profile asks us to send (servo up/down, air assist): no comments.
GcodeLine = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9.+\- ]{0,39}$")]


class OpDefaults(StrictModel):
    """Defaults for one operation (cut, score, draw); the job's settings win over these."""

    speed_mm_s: Speed | None = None
    power_pct: Percent | None = None
    force_g: Grams | None = None
    passes: Passes | None = None
    # Z machines: how deep this operation goes (a score is shallower than a cut).
    z_down_mm: ZHeight | None = None


class LaserSettings(StrictModel):
    # The S word that means 100 % power (GRBL $30, Marlin's laser PWM range).
    s_max: Annotated[int, Field(ge=1, le=100_000)] = 1000
    # M4: power follows speed so corners do not burn; M3: constant power.
    dynamic_power: bool = True
    air_assist: bool = False
    air_on: GcodeLine = "M8"
    air_off: GcodeLine = "M9"


class LiftSettings(StrictModel):
    """How a G-code knife or pen goes up and down."""

    method: LiftMethod = LiftMethod.Z
    z_up_mm: ZHeight = 5.0
    z_down_mm: ZHeight = 0.0
    z_speed_mm_s: Speed = 10.0
    servo_up: GcodeLine = "M5"
    servo_down: GcodeLine = "M3S1000"
    # Time for the servo to settle before moving (a G4 dwell); 0 sends no dwell.
    servo_dwell_s: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)] = 0.2

    @model_validator(mode="after")
    def _down_below_up(self) -> LiftSettings:
        if self.method is LiftMethod.Z and self.z_down_mm >= self.z_up_mm:
            raise ValueError("z_down_mm must be below z_up_mm")
        return self


class KnifeSettings(StrictModel):
    """Drag knife: the tip trails the holder's axis by ``blade_offset_mm``."""

    blade_offset_mm: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)] = 0.25
    # Turns sharper than this get a swivel arc about the corner so the blade turns in place.
    corner_threshold_deg: Annotated[float, Field(ge=0, le=180, allow_inf_nan=False)] = 30.0
    # Closed pieces are cut on past their start by this much so the fabric parts cleanly.
    overcut_mm: Annotated[float, Field(ge=0, le=50, allow_inf_nan=False)] = 1.0
    # Angle covered by one straight segment of a swivel arc.
    swivel_step_deg: Annotated[float, Field(ge=1, le=45, allow_inf_nan=False)] = 10.0


class HpglSettings(StrictModel):
    variant: HpglVariant = HpglVariant.HP7475A
    pen: Annotated[int, Field(ge=1, le=8)] = 1
    # Largest coordinate the device takes (HP-GL/1: 32767 on many devices).
    max_coordinate: Annotated[int, Field(ge=1000, le=8_388_607)] = 32_767
    # VS takes cm/s; values are clamped to the device's range.
    vs_min_cm_s: Annotated[float, Field(gt=0, le=200, allow_inf_nan=False)] = 1.0
    vs_max_cm_s: Annotated[float, Field(gt=0, le=200, allow_inf_nan=False)] = 38.0
    # FS (force select) exists on cutters, not on the HP 7475A class of pen plotters.
    force_select: bool = False
    fs_grams_per_unit: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] = 1.0
    fs_min: Annotated[int, Field(ge=0, le=10_000)] = 1
    fs_max: Annotated[int, Field(ge=1, le=10_000)] = 255

    @model_validator(mode="after")
    def _ranges(self) -> HpglSettings:
        if self.vs_min_cm_s > self.vs_max_cm_s:
            raise ValueError("vs_min_cm_s must not exceed vs_max_cm_s")
        if self.fs_min > self.fs_max:
            raise ValueError("fs_min must not exceed fs_max")
        return self


_GCODE_UNITS = (1.0, 10.0, 100.0, 1000.0, 10000.0)


class ToolpathSettings(StrictModel):
    machine: MachineKind
    # Machine resolution: HP-GL plotter units per mm (40); G-code: 10**decimals (1000 = 0.001 mm).
    units_per_mm: Annotated[float, Field(ge=1, le=10_000, allow_inf_nan=False)] = 1000.0
    speed_mm_s: Speed = 20.0
    # Cut speeds above this are rejected, not clamped: the planner asked for something else.
    max_speed_mm_s: Speed = 200.0
    # Marlin G0 feed; GRBL rapids and HP-GL pen-up moves run at the machine's own rate.
    travel_speed_mm_s: Speed = 100.0
    power_pct: Percent = 50.0
    force_g: Grams = 100.0
    passes: Passes = 1
    # Several passes over the same line are normal on this machine (a laser going through
    # thick fabric in steps). None: lasers yes, knives and pens no. Where they are not normal,
    # a job asking for more than one pass must say toolpaths.repeat_same_place.
    multi_pass: bool | None = None
    # Operations this machine performs, with their own defaults; others are rejected.
    ops: dict[Operation, OpDefaults] = Field(
        default_factory=lambda: {op: OpDefaults() for op in Operation}
    )
    # Tool name of a path -> HP-GL pen/tool number (others use hpgl.pen).
    tools: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")],
        Annotated[int, Field(ge=1, le=255)],
    ] = Field(default_factory=dict, max_length=32)
    # Points after copies and passes; more is an absurd job for this machine.
    max_points: Annotated[int, Field(ge=100, le=20_000_000)] = 5_000_000
    laser: LaserSettings | None = None
    lift: LiftSettings | None = None
    knife: KnifeSettings | None = None
    hpgl: HpglSettings | None = None
    # Pattern jobs: what each pattern-file layer becomes on this machine.
    pattern: PatternDefaults = Field(default_factory=PatternDefaults)

    @model_validator(mode="after")
    def _sections_match_machine(self) -> ToolpathSettings:
        laser = self.machine is MachineKind.LASER
        if laser != (self.laser is not None):
            raise ValueError("a [toolpath.laser] section is required for, and only for, lasers")
        if (self.machine is MachineKind.DRAG_KNIFE) != (self.knife is not None):
            raise ValueError(
                "a [toolpath.knife] section is required for, and only for, drag knives"
            )
        if self.hpgl is not None:
            if laser:
                raise ValueError("HP-GL machines are knives or pens, not lasers")
            if self.lift is not None:
                raise ValueError("HP-GL machines lift with PU/PD: drop [toolpath.lift]")
        else:
            if not laser and self.lift is None:
                raise ValueError("a G-code knife or pen needs a [toolpath.lift] section")
            if laser and self.lift is not None:
                raise ValueError("a laser has no [toolpath.lift] section")
            if self.units_per_mm not in _GCODE_UNITS:
                raise ValueError("G-code units_per_mm must be 1, 10, 100, 1000 or 10000")
        if self.lift is not None and self.lift.method is LiftMethod.Z:
            for op, defaults in self.ops.items():
                if defaults.z_down_mm is not None and defaults.z_down_mm >= self.lift.z_up_mm:
                    raise ValueError(f"ops.{op.value}.z_down_mm must be below lift.z_up_mm")
        if self.speed_mm_s > self.max_speed_mm_s:
            raise ValueError("speed_mm_s exceeds max_speed_mm_s")
        if not self.ops:
            raise ValueError("ops must list at least one operation")
        if not self.multi_pass_normal:
            many = [f"ops.{op.value}.passes" for op, d in self.ops.items()
                    if d.passes is not None and d.passes > 1]
            if self.passes > 1:
                many.insert(0, "passes")
            if many:
                raise ValueError(f"{', '.join(many)} > 1 needs multi_pass = true: this "
                                 f"{self.machine.value} does not repeat cuts normally")
        return self

    @property
    def multi_pass_normal(self) -> bool:
        if self.multi_pass is not None:
            return self.multi_pass
        return self.machine is MachineKind.LASER

    def op_defaults(self, op: Operation) -> OpDefaults | None:
        return self.ops.get(op)
