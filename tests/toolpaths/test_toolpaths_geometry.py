"""Geometry helpers on a pocket-sized square: overcut, blade offset, containment, order."""

from __future__ import annotations

import math

import pytest

from agent.toolpaths.geometry import (
    blade_offset,
    close_ring,
    last_direction,
    point_in_polygon,
    polygon_area,
    transform,
    with_overcut,
)
from agent.toolpaths.order import OrderItem, containers, order_paths

POCKET = [(0.0, 0.0), (150.0, 0.0), (150.0, 160.0), (0.0, 160.0)]  # a patch pocket, mm


def test_overcut_retraces_the_start_and_stops_at_one_lap() -> None:
    ring = close_ring(POCKET)
    assert with_overcut(ring, 2.0)[-2:] == [(0.0, 0.0), (2.0, 0.0)]
    assert with_overcut(ring, 155.0)[-2:] == [(150.0, 0.0), (150.0, 5.0)]
    lap = with_overcut(ring, 10_000.0)
    assert lap[-1] == (0.0, 0.0)
    assert len(lap) == 2 * len(ring) - 1
    assert with_overcut(ring, 0.0) == ring


def test_blade_offset_runs_ahead_and_swivels_round_square_corners() -> None:
    route = blade_offset(close_ring(POCKET), 0.5, 30.0, 10.0)
    assert route[0] == (0.5, 0.0)
    assert route[1] == (150.5, 0.0)
    # A 90-degree corner: nine 10-degree steps on a 0.5 mm arc about (150, 0).
    arc = route[1:11]
    assert all(math.dist(p, (150.0, 0.0)) == pytest.approx(0.5) for p in arc)
    assert route[10] == (150.0, 0.5)
    assert route[-1] == (0.0, -0.5)  # past the last vertex, heading down the left side


def test_gentle_turns_get_no_swivel() -> None:
    bend = [(0.0, 0.0), (100.0, 0.0), (200.0, 10.0)]  # a 5.7-degree bend in a hem
    assert len(blade_offset(bend, 0.25, 30.0, 10.0)) == 3
    assert blade_offset(bend, 0.0, 30.0, 10.0) == bend


def test_entry_swivel_turns_the_blade_from_its_last_direction() -> None:
    up = [(10.0, 10.0), (10.0, 60.0)]
    route = blade_offset(up, 0.25, 30.0, 10.0, entry_direction=(1.0, 0.0))
    assert route[0] == (10.25, 10.0)
    assert (10.0, 10.25) in route
    assert route[-1] == (10.0, 60.25)
    assert last_direction(up) == (0.0, 1.0)


def test_transform_turns_about_the_origin_then_moves() -> None:
    ((x, y),) = transform([(100.0, 0.0)], 90.0, 5.0, 7.0)
    assert (x, y) == pytest.approx((5.0, 107.0))


def test_containment_finds_the_smallest_container() -> None:
    front = POCKET
    flap = [(20.0, 100.0), (130.0, 100.0), (130.0, 150.0), (20.0, 150.0)]
    button = [(70.0, 120.0), (80.0, 120.0), (80.0, 130.0), (70.0, 130.0)]
    stitch = [(10.0, 10.0), (140.0, 10.0)]
    items = [
        OrderItem(p, closed)
        for p, closed in ((front, True), (flap, True), (button, True), (stitch, False))
    ]
    assert containers(items) == [None, 0, 1, 0]
    assert polygon_area(front) == 150.0 * 160.0
    assert point_in_polygon((75.0, 125.0), button)
    order = [v.index for v in order_paths(items)]
    assert order.index(2) < order.index(1) < order.index(0)
    assert order.index(3) < order.index(0)
