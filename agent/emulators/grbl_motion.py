"""How long the emulated machine takes over each planned block, and where it is meanwhile.

The model is deliberately simple: every block runs at its nominal speed (the programmed feed,
limited per axis by ``$110``-``$112``; rapids at the axis limits), so a stream of short
segments flows like GRBL's look-ahead planner lets it. Inverse-time blocks (G93) take exactly
their programmed time. Feed and rapid overrides scale the speed while the block runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.emulators.grbl_gcode import Move, MoveKind, Vec

_MIN_BLOCK_S = 0.001


@dataclass
class PlannedBlock:
    move: Move
    duration_s: float  # at 100 % override
    rate_mm_min: float  # nominal speed along the path
    elapsed_s: float = 0.0  # progress in override-free seconds

    @property
    def remaining_s(self) -> float:
        return max(0.0, self.duration_s - self.elapsed_s)

    def position(self) -> Vec:
        if self.duration_s <= 0:
            return self.move.end
        frac = min(1.0, self.elapsed_s / self.duration_s)
        s, e = self.move.start, self.move.end
        return (
            s[0] + (e[0] - s[0]) * frac,
            s[1] + (e[1] - s[1]) * frac,
            s[2] + (e[2] - s[2]) * frac,
        )


def plan_block(
    move: Move,
    max_rates_mm_min: tuple[float, float, float],
) -> PlannedBlock:
    """Duration and speed of one move on this machine."""
    deltas = [abs(e - s) for s, e in zip(move.start, move.end, strict=True)]
    chord = math.sqrt(sum(d * d for d in deltas))
    # The fastest speed along the path that keeps every axis within its own limit.
    limit = math.inf
    if chord > 0:
        for delta, rate in zip(deltas, max_rates_mm_min, strict=True):
            if delta > 0:
                limit = min(limit, rate * chord / delta)
    if not math.isfinite(limit):
        limit = min(max_rates_mm_min)
    if move.inverse_time_min is not None:
        duration = move.inverse_time_min * 60.0
        rate = move.length_mm / move.inverse_time_min if move.inverse_time_min > 0 else 0.0
    else:
        rate = limit if move.kind is MoveKind.RAPID else min(move.feed_mm_min, limit)
        duration = move.length_mm / (rate / 60.0) if rate > 0 else 0.0
    return PlannedBlock(move, max(duration, _MIN_BLOCK_S), rate)


def hold_deceleration_s(rate_mm_min: float, accel_mm_s2: float) -> float:
    """Time to stop from ``rate`` at ``accel``, kept within 0.1-0.3 s like a real table."""
    if accel_mm_s2 <= 0:
        return 0.3
    return min(0.3, max(0.1, (rate_mm_min / 60.0) / accel_mm_s2))
