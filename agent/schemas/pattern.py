"""Pattern jobs (kind ``pattern``): an AAMA/ASTM DXF file, compiled and placed on the station.

The wire model carries the file (base64) and what to cut from it; agent/patterns/ reads the
file in the worker thread that validates jobs, maps its layers to operations, places the
pieces on the bed and compiles them as a toolpaths job.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from agent.schemas.base import WireModel

# Base64 of a DXF file: 12 MiB of text encodes about 9 MiB of DXF.
MAX_PATTERN_B64_CHARS = 12 * 1024 * 1024

Name = Annotated[str, Field(min_length=1, max_length=64)]


class PatternUnits(StrEnum):
    AUTO = "auto"
    MM = "mm"
    CM = "cm"
    IN = "in"


class PieceSelection(WireModel):
    name: Name
    # Copies of this piece; by default the file's "Quantity:", else 1.
    copies: Annotated[int, Field(ge=1, le=100)] | None = None


class PatternSource(WireModel):
    format: Literal["dxf"] = "dxf"
    data_b64: Annotated[str, Field(min_length=4, max_length=MAX_PATTERN_B64_CHARS)]
    # The graded size to cut ("SIZE:" of each piece block).
    size: Name
    # Default: every piece of that size, each with the file's quantity (else 1).
    pieces: Annotated[list[PieceSelection], Field(min_length=1, max_length=200)] | None = None
    # auto: the file's own "UNITS:" note, else $INSUNITS, else inches (AAMA's convention).
    units: PatternUnits = PatternUnits.AUTO
    # Boundary pieces whose ends lie closer than this are joined; a gap wider is an error.
    chain_tolerance_mm: Annotated[float, Field(gt=0, le=5, allow_inf_nan=False)] = 0.1
    # Depth of the slit cut for each notch, along the boundary's inward normal; by default
    # the profile's [toolpath.pattern] notch_depth_mm (5 mm).
    notch_depth_mm: Annotated[float, Field(gt=0, le=30, allow_inf_nan=False)] | None = None


class Placement(WireModel):
    # Clear distance between any two pieces.
    spacing_mm: Annotated[float, Field(ge=0, le=200, allow_inf_nan=False)] = 5.0
    # Clear distance from the bed's edges.
    margin_mm: Annotated[float, Field(ge=0, le=200, allow_inf_nan=False)] = 5.0
    # The grain line is laid along this bed axis (X: along the roll on a cutting table).
    grain_axis: Literal["x", "y"] = "x"
    # Pieces turn 0 or 180 degrees (grain kept); 90 and 270 only when allowed.
    allow_rotate_90: bool = False
    # Search step of the bottom-left fill, in mm (finer: tighter marker, slower).
    step_mm: Annotated[float, Field(ge=1, le=50, allow_inf_nan=False)] = 5.0


SvgOp = Literal["cut", "score", "draw", "skip"]
# Stroke colours ("#rrggbb", lower case) or group ids.
LayerKey = Annotated[str, Field(min_length=1, max_length=64)]


class SvgSource(WireModel):
    """An SVG drawing (kind ``svg``): shapes, paths and transforms flattened to toolpaths."""

    data: Annotated[str, Field(min_length=10, max_length=8 * 1024 * 1024)]
    # Millimetres per millimetre of the drawing: user units are CSS pixels (96 per inch)
    # unless the root's width/height and viewBox give real units.
    scale: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] = 1.0
    # Curves become chords no further than this from the curve, in mm (after scale).
    tolerance_mm: Annotated[float, Field(ge=0.005, le=2, allow_inf_nan=False)] = 0.05
    # Operation per stroke colour or enclosing group id (the nearest group wins over colour).
    layers: Annotated[dict[LayerKey, SvgOp], Field(max_length=64)] = Field(default_factory=dict)
    # For shapes no layer names.
    default_op: SvgOp = "cut"
