"""How long a job will keep the machine busy, from a model of the machine's own motion."""

from __future__ import annotations

from collections.abc import Iterable

from agent.estimate.gcode_moves import read_motion
from agent.estimate.planner import MachineLimits, plan_seconds

__all__ = ["MachineLimits", "estimate_grbl_seconds"]


def estimate_grbl_seconds(lines: Iterable[str], limits: MachineLimits,
                          arc_tolerance_mm: float = 0.002) -> float:
    """Seconds a GRBL machine with ``limits`` takes over ``lines``: planned motion between
    stops, plus dwells (the planner empties before a dwell, so each run starts and ends at
    rest)."""
    motion = read_motion(lines, arc_tolerance_mm)
    return motion.dwell_s + sum(plan_seconds(run, limits) for run in motion.segments)
