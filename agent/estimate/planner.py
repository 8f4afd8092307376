"""Machine time of a sequence of straight moves, planned the way GRBL 1.1's planner does.

Each rule follows gnea/grbl 1.1h ``planner.c`` (and ``stepper.c`` for the profile):

- A block's nominal speed is its programmed rate, capped so no axis exceeds its ``$110``-``$112``
  rate (``limit_value_by_axis_maximum`` over the unit vector); rapids run at that cap.
- A block's acceleration is ``$120``-``$122`` capped the same way over the unit vector.
- The speed at a junction is at most ``sqrt(a_j * $11 * s / (1 - s))`` with
  ``s = sqrt((1 - cos_theta) / 2)`` (``plan_buffer_line``): ``a_j`` is the acceleration limit
  along the junction vector (the difference of the two unit vectors); a straight continuation
  has no junction limit, a full reversal stops. Never above either block's nominal speed.
- The machine starts and ends at rest, and a block's speeds obey ``v_exit^2 <= v_entry^2 + 2ad``
  in both directions (``planner_recalculate``'s reverse and forward passes).
- Look-ahead is bounded: GRBL holds ``BLOCK_BUFFER_SIZE - 1`` = 15 blocks, so while one block
  runs the planner can only count on stopping at the end of the last block it holds. With the
  stream keeping the buffer full (the agent's window does), a block's exit speed is also capped
  by the speed from which the machine can stop within the next ``horizon - 1`` blocks. This is
  what makes a job of very short segments slower than its feed rate says.
- Each block then runs a trapezoid (or a triangle when it is too short to reach its nominal
  speed): accelerate from the entry speed, cruise, decelerate to the exit speed.

Dwells and arc segments are added by the reader (``gcode_moves``), not here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# planner.h: BLOCK_BUFFER_SIZE 16 on an Uno; one slot stays empty.
GRBL_PLANNER_BLOCKS = 15
# config.h: MINIMUM_JUNCTION_SPEED 0.0 mm/min, MINIMUM_FEED_RATE 1.0 mm/min.
_MIN_FEED_MM_MIN = 1.0
_STRAIGHT = 0.999999  # planner.c: |cos_theta| beyond this is straight on or a reversal


@dataclass(frozen=True)
class MachineLimits:
    """What a machine reports about its own motion (GRBL's ``$$``, Marlin's M503)."""

    max_rate_mm_min: tuple[float, float, float]  # $110-$112
    accel_mm_s2: tuple[float, float, float]  # $120-$122
    junction_deviation_mm: float = 0.01  # $11
    horizon_blocks: int = GRBL_PLANNER_BLOCKS


@dataclass(frozen=True)
class StraightMove:
    """One planner block: where it goes and the rate it was asked for (None: a rapid)."""

    delta_mm: tuple[float, float, float]
    feed_mm_min: float | None


@dataclass(frozen=True)
class _Block:
    length_mm: float
    unit: tuple[float, float, float]
    nominal_mm_s: float
    accel_mm_s2: float


def _limit_by_axes(limits: Sequence[float], unit: Sequence[float]) -> float:
    """planner.c ``limit_value_by_axis_maximum``: the largest value along ``unit`` that keeps
    every axis component within its own limit."""
    best = math.inf
    for limit, component in zip(limits, unit, strict=True):
        if component != 0.0:
            best = min(best, limit / abs(component))
    return best


def _block(move: StraightMove, limits: MachineLimits) -> _Block | None:
    length = math.sqrt(sum(d * d for d in move.delta_mm))
    if length <= 0.0:
        return None  # planner.c drops a block with no steps
    unit = (move.delta_mm[0] / length, move.delta_mm[1] / length, move.delta_mm[2] / length)
    cap = _limit_by_axes(limits.max_rate_mm_min, unit)
    rate = cap if move.feed_mm_min is None else min(max(move.feed_mm_min, _MIN_FEED_MM_MIN), cap)
    accel = _limit_by_axes(limits.accel_mm_s2, unit)
    return _Block(length, unit, rate / 60.0, accel)


def _junction_speed_sq(prev: _Block, block: _Block, limits: MachineLimits) -> float:
    cos_theta = -sum(a * b for a, b in zip(prev.unit, block.unit, strict=True))
    if cos_theta > _STRAIGHT:
        return 0.0  # a reversal: stop
    if cos_theta < -_STRAIGHT:
        return math.inf  # straight on: no junction limit
    junction = [b - a for a, b in zip(prev.unit, block.unit, strict=True)]
    norm = math.sqrt(sum(c * c for c in junction))
    accel = _limit_by_axes(limits.accel_mm_s2, [c / norm for c in junction])
    sin_half = math.sqrt(0.5 * (1.0 - cos_theta))
    return accel * limits.junction_deviation_mm * sin_half / (1.0 - sin_half)


def _stop_speed_sq(blocks: Sequence[_Block], start: int, count: int, entry_caps: Sequence[float]
                   ) -> float:
    """The squared speed at the start of ``blocks[start]`` from which the machine can still
    stop at the end of ``blocks[start + count - 1]``, honouring the junction caps."""
    v_sq = 0.0
    for i in range(min(start + count, len(blocks)) - 1, start - 1, -1):
        v_sq = min(entry_caps[i], v_sq + 2.0 * blocks[i].accel_mm_s2 * blocks[i].length_mm)
    return v_sq


def _trapezoid_s(block: _Block, entry_sq: float, exit_sq: float) -> float:
    a, d = block.accel_mm_s2, block.length_mm
    nominal_sq = block.nominal_mm_s ** 2
    accel_d = max(0.0, (nominal_sq - entry_sq) / (2.0 * a))
    decel_d = max(0.0, (nominal_sq - exit_sq) / (2.0 * a))
    if accel_d + decel_d <= d:
        v0, v1, vn = math.sqrt(entry_sq), math.sqrt(exit_sq), block.nominal_mm_s
        cruise = d - accel_d - decel_d
        return (vn - v0) / a + cruise / vn + (vn - v1) / a
    # Too short to reach the nominal speed: a triangle peaking where the two ramps meet.
    peak_sq = min(nominal_sq, (2.0 * a * d + entry_sq + exit_sq) / 2.0)
    peak = math.sqrt(peak_sq)
    return (peak - math.sqrt(entry_sq)) / a + (peak - math.sqrt(exit_sq)) / a


def plan_seconds(moves: Sequence[StraightMove], limits: MachineLimits) -> float:
    """Seconds the machine takes over ``moves``, starting and ending at rest."""
    return math.fsum(plan_move_seconds(moves, limits))


def plan_move_seconds(moves: Sequence[StraightMove], limits: MachineLimits) -> list[float]:
    """The seconds each of ``moves`` takes (0 for a move with no length), starting and ending
    at rest."""
    planned = [(index, b) for index, b in enumerate(_block(m, limits) for m in moves)
               if b is not None]
    out = [0.0] * len(moves)
    blocks = [b for _, b in planned]
    n = len(blocks)
    # The most each block may enter at: its junction with the previous block and both
    # nominal speeds (planner.c max_entry_speed_sqr).
    entry_caps = [0.0] * n
    for i in range(1, n):
        entry_caps[i] = min(_junction_speed_sq(blocks[i - 1], blocks[i], limits),
                            blocks[i].nominal_mm_s ** 2, blocks[i - 1].nominal_mm_s ** 2)
    horizon = max(1, limits.horizon_blocks)
    entry_sq = 0.0
    for i, (index, block) in enumerate(planned):
        # The exit is the next block's entry, limited by what the planner can see: stopping
        # by the end of the blocks it holds while this one runs.
        exit_sq = 0.0 if i + 1 == n else _stop_speed_sq(blocks, i + 1, horizon - 1, entry_caps)
        # Reachable from this block's entry speed over its length (forward pass).
        exit_sq = min(exit_sq, entry_sq + 2.0 * block.accel_mm_s2 * block.length_mm)
        out[index] = _trapezoid_s(block, entry_sq, exit_sq)
        entry_sq = exit_sq
    return out
