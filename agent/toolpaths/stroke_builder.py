"""Collects moves into strokes: consecutive moves of the same kind and settings join up."""

from __future__ import annotations

from agent.toolpaths.geometry import XY
from agent.toolpaths.strokes import Stroke, StrokeKind


class StrokeBuilder:
    def __init__(self) -> None:
        self.strokes: list[Stroke] = []
        self._kind: StrokeKind | None = None
        self._points: list[XY] = []
        self._line = 0
        self._speed: float | None = None
        self._power: float | None = None

    def move(
        self,
        start: XY,
        end: XY,
        kind: StrokeKind,
        line: int,
        *,
        speed_mm_s: float | None = None,
        power_pct: float | None = None,
    ) -> None:
        if start == end:
            return
        same = (
            self._kind is kind
            and self._speed == speed_mm_s
            and self._power == power_pct
            and self._points
            and self._points[-1] == start
        )
        if not same:
            self.flush()
            self._kind = kind
            self._points = [start]
            self._line = line
            self._speed = speed_mm_s
            self._power = power_pct
        self._points.append(end)

    def flush(self) -> None:
        if self._kind is not None and len(self._points) > 1:
            self.strokes.append(
                Stroke(self._kind, tuple(self._points), self._line, self._speed, self._power)
            )
        self._kind = None
        self._points = []

    def finish(self) -> list[Stroke]:
        self.flush()
        return self.strokes
