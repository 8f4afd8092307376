"""How long a job will keep the machine busy, from a model of the machine's own motion."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.estimate.gcode_moves import ProgramMotion, read_motion
from agent.estimate.planner import MachineLimits, plan_move_seconds

__all__ = ["Estimate", "MachineLimits", "estimate_grbl", "estimate_grbl_seconds"]


@dataclass(frozen=True)
class Estimate:
    """A job's machine time, and what it was worked out from (said in ``accepted``).

    ``line_end_s[i]``: the modelled seconds from the job's start to the end of line ``i``, so
    progress can say how much machine time is left after the lines done so far."""

    seconds: float
    basis: str
    line_end_s: array[float] = field(default_factory=lambda: array("d"), compare=False,
                                      repr=False)

    def as_detail(self) -> dict[str, Any]:
        return {"estimated_s": round(self.seconds, 1), "estimate_basis": self.basis}

    def remaining_after(self, lines_done: int) -> float:
        if lines_done <= 0 or not self.line_end_s:
            return self.seconds
        done = self.line_end_s[min(lines_done, len(self.line_end_s)) - 1]
        return max(0.0, self.seconds - done)


def _line_end_seconds(read: ProgramMotion, limits: MachineLimits) -> array[float]:
    per_line = [0.0] * read.line_count
    for moves, lines in zip(read.segments, read.move_lines, strict=True):
        for line, seconds in zip(lines, plan_move_seconds(moves, limits), strict=True):
            per_line[line] += seconds
    for line, seconds in read.dwells:
        per_line[line] += seconds
    out = array("d", per_line)
    total = 0.0
    for i, seconds in enumerate(per_line):
        total += seconds
        out[i] = total
    return out


def estimate_grbl_seconds(lines: Iterable[str], limits: MachineLimits,
                          arc_tolerance_mm: float = 0.002) -> float:
    """Seconds a GRBL machine with ``limits`` takes over ``lines``: planned motion between
    stops, plus dwells (the planner empties before a dwell, so each run starts and ends at
    rest)."""
    line_end_s = _line_end_seconds(read_motion(lines, arc_tolerance_mm), limits)
    return line_end_s[-1] if line_end_s else 0.0


def estimate_grbl(lines: Sequence[str], capabilities: Mapping[str, Any]) -> Estimate | None:
    """The estimate from the ``$$`` settings the driver read at connection (None without)."""
    motion = capabilities.get("motion")
    if not isinstance(motion, Mapping):
        return None
    rates, accels = motion["max_rate_mm_min"], motion["accel_mm_s2"]
    limits = MachineLimits((rates[0], rates[1], rates[2]), (accels[0], accels[1], accels[2]),
                           motion["junction_deviation_mm"],
                           horizon_blocks=int(capabilities.get("planner_blocks", 15)))
    read = read_motion(lines, motion["arc_tolerance_mm"])
    line_end_s = _line_end_seconds(read, limits)
    basis = "GRBL planner model with the machine's $110-$122, $11 and $12"
    if read.unread_lines:
        basis += f"; {read.unread_lines} lines with motion it does not model (a lower bound)"
    return Estimate(line_end_s[-1] if line_end_s else 0.0, basis, line_end_s)
