"""HP-GL plotter and cutter family profile (HP 7475A, Roland CAMM-GL III and compatibles)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from agent.profiles.base import ProfileBase, StrictModel

# One plotter unit is 0.025 mm.
UNITS_PER_MM = 40


class HpglFlowControl(StrEnum):
    """How the agent keeps the plotter's input buffer from overflowing."""

    # Ask the free space with ESC.B and never send more than it minus a reserve.
    BUFFER_QUERY = "buffer_query"
    # The device drops CTS when its buffer is nearly full (needs a cable with RTS/CTS wired).
    RTSCTS = "rtscts"
    # The device sends XOFF/XON (configured with ESC.I / ESC.N); handled by the agent itself.
    XONXOFF = "xonxoff"


class HpglSettings(StrictModel):
    flow_control: HpglFlowControl = HpglFlowControl.BUFFER_QUERY
    # Expected input buffer size; the smaller of this and the device's ESC.L answer is used.
    buffer_bytes: Annotated[int, Field(ge=128, le=16 * 1024 * 1024)] = 1024
    # Bytes never filled: sending exactly the ESC.B figure overflowed on real hardware.
    reserve_bytes: Annotated[int, Field(ge=1, le=65_536)] = 64
    # xonxoff: the device is told (ESC.I) to send XOFF when its free space drops below this.
    xoff_threshold_bytes: Annotated[int, Field(ge=16, le=65_536)] = 256
    # rtscts/xonxoff: bytes the agent lets travel unconfirmed on the wire (bounds what an
    # XOFF or a cancel has to catch up with).
    wire_window_bytes: Annotated[int, Field(ge=16, le=65_536)] = 64
    # Largest coordinate magnitude the device's HP-GL accepts (HP-GL/1: 32767).
    max_coordinate: Annotated[int, Field(ge=1024, le=8_388_607)] = 32_767
    # Highest pen/tool number SP may select.
    max_pen: Annotated[int, Field(ge=1, le=255)] = 8
    # VS ceiling in cm/s.
    max_velocity_cm_s: Annotated[float, Field(gt=0, le=1000)] = 38.1
    # FS range in the device's own units; None: the device has no force setting.
    max_force: Annotated[int, Field(ge=1, le=100_000)] | None = None
    # PU/PD coordinate pairs per normalised instruction (keeps every line far below the buffer).
    max_pairs_per_instruction: Annotated[int, Field(ge=1, le=64)] = 8
    # A status check (OS;, and ESC.E) goes out at the first pen-up point after this many bytes.
    check_every_bytes: Annotated[int, Field(ge=256, le=16 * 1024 * 1024)] = 4096
    # While the buffer is full, how long to wait before asking ESC.B again.
    poll_interval_s: Annotated[float, Field(gt=0, le=5)] = 0.05
    # An immediate (escape) query must be answered within this.
    response_timeout_s: Annotated[float, Field(gt=0, le=600)] = 5.0
    # A buffered output instruction (OS;) is answered only when the pen reaches it: the time
    # to plot a full buffer, at the slowest speed, must fit in this.
    drain_timeout_s: Annotated[float, Field(gt=0, le=7200)] = 600.0
    # OS bit 3 ("initialised") clears each time OS is read (HP 7470A/7475A interfacing manual,
    # OS instruction: "cleared by ... output of the status byte in RS-232-C system"). Then the
    # bit set again during a job means the plotter was reset under it: the job fails. Off for
    # clones whose OS answer is a constant (bit 3 always set): the bit is ignored in jobs.
    os_initialised_clears_on_read: bool = True

    @model_validator(mode="after")
    def _reserve_leaves_room(self) -> HpglSettings:
        if self.reserve_bytes * 2 > self.buffer_bytes:
            raise ValueError("reserve_bytes must be at most half of buffer_bytes")
        return self


class HpglProfile(ProfileBase):
    family: Literal["hpgl"]
    baud: Annotated[int, Field(ge=300, le=4_000_000)] = 9600
    hpgl: HpglSettings = HpglSettings()

    @model_validator(mode="after")
    def _bed_within_coordinates(self) -> HpglProfile:
        for name, mm in (("width_mm", self.bed.width_mm), ("height_mm", self.bed.height_mm)):
            if round(mm * UNITS_PER_MM) > self.hpgl.max_coordinate:
                raise ValueError(
                    f"bed.{name} = {mm} mm exceeds hpgl.max_coordinate "
                    f"({self.hpgl.max_coordinate} plotter units of 0.025 mm)"
                )
        return self

    @property
    def bed_units(self) -> tuple[int, int]:
        """The bed in plotter units: (x max, y max)."""
        return (round(self.bed.width_mm * UNITS_PER_MM), round(self.bed.height_mm * UNITS_PER_MM))
