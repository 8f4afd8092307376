"""How long a job will keep the machine busy, from a model of the machine's own motion."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.estimate.gcode_moves import read_motion
from agent.estimate.planner import MachineLimits, plan_seconds

__all__ = ["Estimate", "MachineLimits", "estimate_grbl", "estimate_grbl_seconds"]


@dataclass(frozen=True)
class Estimate:
    """A job's machine time, and what it was worked out from (said in ``accepted``)."""

    seconds: float
    basis: str

    def as_detail(self) -> dict[str, Any]:
        return {"estimated_s": round(self.seconds, 1), "estimate_basis": self.basis}


def estimate_grbl_seconds(lines: Iterable[str], limits: MachineLimits,
                          arc_tolerance_mm: float = 0.002) -> float:
    """Seconds a GRBL machine with ``limits`` takes over ``lines``: planned motion between
    stops, plus dwells (the planner empties before a dwell, so each run starts and ends at
    rest)."""
    motion = read_motion(lines, arc_tolerance_mm)
    return motion.dwell_s + sum(plan_seconds(run, limits) for run in motion.segments)


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
    seconds = read.dwell_s + sum(plan_seconds(run, limits) for run in read.segments)
    basis = "GRBL planner model with the machine's $110-$122, $11 and $12"
    if read.unread_lines:
        basis += f"; {read.unread_lines} lines with motion it does not model (a lower bound)"
    return Estimate(seconds, basis)
