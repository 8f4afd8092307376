"""Pattern jobs compiled without a machine: reading AAMA DXF, chaining, units, errors,
layers to operations, placement."""

from __future__ import annotations

import base64
import itertools
import math
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import Polygon

from agent.errors import ProgramError
from agent.patterns.chain import chain_segments
from agent.patterns.compile import plan_pattern
from agent.patterns.dxf import read_dxf
from agent.patterns.model import PatternError
from agent.patterns.nest import NestItem, nest, shelf_utilisation
from agent.patterns.sample import PIECES, SIZES, tshirt_dxf
from agent.profiles import load_profile
from agent.toolpaths import StrokeKind, compile_for_target, parse_for_target, target_for
from tests.patterns.helpers import cut_traces_outline, pattern_job


@pytest.fixture(scope="module")
def dxf() -> bytes:
    return tshirt_dxf()


def test_every_piece_block_is_read_with_its_size_quantity_and_closed_boundary(dxf: bytes) -> None:
    pattern = read_dxf(dxf)
    assert pattern.dxf_version == "AC1009"
    assert (pattern.units, pattern.units_from.startswith("AAMA default")) == ("in", True)
    assert pattern.sizes() == list(SIZES)
    assert len(pattern.pieces) == len(SIZES) * len(PIECES)
    band = next(p for p in pattern.pieces if p.name == "NECKBAND" and p.size == "M")
    # 18 x 1.5 in, read from three fragments (two POLYLINEs, one reversed, and LINEs)
    xs = [x for x, _ in band.boundary]
    ys = [y for _, y in band.boundary]
    assert max(xs) - min(xs) == pytest.approx(457.2)
    assert max(ys) - min(ys) == pytest.approx(38.1)
    front = next(p for p in pattern.pieces if p.name == "FRONT" and p.size == "M")
    assert len(front.boundary) == 21
    assert Polygon(front.boundary).is_valid
    assert Polygon(front.boundary).exterior.is_ccw
    sleeve = next(p for p in pattern.pieces if p.name == "SLEEVE")
    assert sleeve.quantity == 2
    assert len(front.drills) == 2 and len(front.notches) == 2 and front.grain is not None
    back = next(p for p in pattern.pieces if p.name == "BACK")
    assert len(back.cutouts) == 1 and not Polygon(back.cutouts[0]).exterior.is_ccw


def test_units_from_a_note_or_the_job(dxf: bytes) -> None:
    assert read_dxf(tshirt_dxf(("M",), units_note=True)).units_from == "UNITS note (ENGLISH)"
    in_mm = read_dxf(dxf, units="mm")
    band = next(p for p in in_mm.pieces if p.name == "NECKBAND" and p.size == "M")
    assert max(x for x, _ in band.boundary) == pytest.approx(18.0)


def test_chaining_joins_fragments_in_any_order_and_direction() -> None:
    square = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]
    edges = [[square[i], square[(i + 1) % 4]] for i in range(4)]
    for perm in itertools.permutations(edges):
        parts = [e[::-1] if i % 2 else e for i, e in enumerate(perm)]
        chains = chain_segments(parts, 0.01)
        assert len(chains) == 1 and chains[0].closed
        assert sorted(chains[0].points) == sorted(square)
    opened = chain_segments([[(0.0, 0.0), (10.0, 0.0), (10.0, 10.0)], [(10.0, 10.0), (0.5, 0.0)]],
                            0.1)
    assert not opened[0].closed and opened[0].gap == pytest.approx(0.5)


def test_a_boundary_that_does_not_close_is_reported_not_closed() -> None:
    with pytest.raises(PatternError) as err:
        read_dxf(tshirt_dxf(("M",), gap_in=0.1))
    assert err.value.where == "block FRONT_M, layer 1"
    assert "gap of 2.540 mm" in err.value.message
    # A wider chain tolerance closes it
    assert len(read_dxf(tshirt_dxf(("M",), gap_in=0.1), tolerance_mm=3.0).pieces) == 4


@pytest.mark.parametrize(("data", "phrase"), [
    (b"hello, not a dxf", "not a DXF file"),
    (b"0\nSECTION\n2\nENTITIES\n0\nLINE\n8\n1\n10\nabc\n", ""),
    (b"0\nSECTION\n2\nENTITIES\n0\nENDSEC\n0\nEOF\n", "no piece blocks"),
])
def test_broken_files_are_bad_pattern_never_a_crash(data: bytes, phrase: str) -> None:
    with pytest.raises(ProgramError) as err:
        plan_pattern(pattern_job(data=data), target_for(load_profile("grbl-knife")))
    assert err.value.code == "bad_pattern"
    assert phrase in err.value.message


def test_a_graded_rule_file_is_refused_with_its_own_code() -> None:
    text = tshirt_dxf(("M",)).decode("cp1252").replace("Quantity: 1", "RULE: 12", 1)
    with pytest.raises(ProgramError) as err:
        plan_pattern(pattern_job(data=text.encode()), target_for(load_profile("grbl-knife")))
    assert err.value.code == "unsupported_pattern"
    assert "block FRONT_M" in err.value.message


def test_unknown_size_or_piece_and_bad_base64_are_bad_pattern() -> None:
    target = target_for(load_profile("grbl-knife"))
    for job, phrase in [
        (pattern_job(size="XXL"), "sizes: S, M, L, XL"),
        (pattern_job(pieces=[{"name": "POCKET"}]), "pieces: FRONT, BACK, SLEEVE, NECKBAND"),
    ]:
        with pytest.raises(ProgramError) as err:
            plan_pattern(job, target)
        assert err.value.code == "bad_pattern" and phrase in err.value.message
    job = pattern_job()
    assert job.pattern is not None
    broken = job.model_copy(update={"pattern": job.pattern.model_copy(
        update={"data_b64": "!!!!" + base64.b64encode(b"x").decode()})})
    with pytest.raises(ProgramError) as err:
        plan_pattern(broken, target)
    assert err.value.code == "bad_pattern"


def test_knife_skips_what_it_cannot_do_and_says_why(dxf: bytes) -> None:
    plan = plan_pattern(pattern_job(data=dxf), target_for(load_profile("grbl-knife")))
    skipped = plan.detail["skipped"]
    assert skipped["drill_holes"]["count"] == 2
    assert "grbl-knife" in skipped["drill_holes"]["why"]
    assert skipped["internal_lines"]["count"] == 1
    assert skipped["annotations"]["count"] == 5
    assert plan.detail["pieces"] == [{"name": "FRONT", "copies": 1}, {"name": "BACK", "copies": 1},
                                     {"name": "SLEEVE", "copies": 2},
                                     {"name": "NECKBAND", "copies": 1}]
    toolpaths = plan.job.toolpaths
    assert toolpaths is not None
    closed = [p for p in toolpaths.paths if p.closed]
    assert len(closed) == 5 + 1  # five boundaries and the back's cut-out
    slits = [p for p in toolpaths.paths if not p.closed]
    assert len(slits) == 2 * 5  # two notches per piece copy, 5 mm each
    for slit in slits:
        (x1, y1), (x2, y2) = slit.points
        assert ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5 == pytest.approx(5.0, abs=1e-3)


def test_a_laser_draws_drill_holes_and_internal_lines() -> None:
    data = tshirt_dxf(("M",), units_note=False)
    plan = plan_pattern(pattern_job(data=data, pieces=[{"name": "FRONT"}], units="cm"),
                        target_for(load_profile("grbl-laser")))
    assert "drill_holes" not in plan.detail["skipped"]
    toolpaths = plan.job.toolpaths
    assert toolpaths is not None
    assert sum(p.op.value == "draw" for p in toolpaths.paths) == 2 * 2 + 1


def test_placement_keeps_pieces_apart_inside_the_bed_and_beats_shelves() -> None:
    pattern = read_dxf(tshirt_dxf(), units="cm")  # a child's size: all four sizes fit
    items = [NestItem(f"{p.name}-{p.size}-{c}", p.boundary, (0, 180))
             for p in pattern.pieces for c in range(p.quantity or 1)]
    result = nest(items, 1400.0, 600.0, spacing=4.0, margin=5.0, step=4.0)
    assert result.unplaced == []
    placed = []
    for spot, item in zip(sorted(result.placed, key=lambda s: s.key),
                          sorted(items, key=lambda i: i.key), strict=True):
        from agent.patterns.nest import turn_points

        poly = Polygon([(x + spot.dx, y + spot.dy) for x, y in turn_points(item.ring, spot.turn)])
        x0, y0, x1, y1 = poly.bounds
        assert x0 >= 5.0 - 1e-6 and y0 >= 5.0 - 1e-6 and y1 <= 595.0 + 1e-6 and x1 <= 1395.0
        placed.append(poly)
    for a, b in itertools.combinations(placed, 2):
        assert a.distance(b) >= 4.0 - 0.05
    baseline = shelf_utilisation(items, 1400.0, 600.0, spacing=4.0, margin=5.0)
    assert result.utilisation > baseline + 0.10


def test_pieces_that_cannot_fit_are_named() -> None:
    job = pattern_job(pieces=[{"name": "FRONT", "copies": 4}])
    with pytest.raises(ProgramError) as err:
        plan_pattern(job, target_for(load_profile("grbl-knife")))
    assert err.value.code == "out_of_bounds"
    assert "FRONT#" in err.value.message


def test_compiled_knife_program_traces_each_placed_outline(dxf: bytes) -> None:
    target = target_for(load_profile("grbl-knife"))
    plan = plan_pattern(pattern_job(data=dxf), target)
    program = compile_for_target(plan.job, target)
    cuts = [s.points for s in parse_for_target(program.lines, target)
            if s.kind is StrokeKind.CUT]
    knife = target.settings.knife
    assert knife is not None
    for key, outline in plan.outlines.items():
        assert cut_traces_outline(cuts, outline, knife.blade_offset_mm + 0.01), key


def test_a_piece_named_twice_gets_both_copies_placed_apart() -> None:
    job = pattern_job(pieces=[{"name": "NECKBAND"}, {"name": "NECKBAND", "copies": 2}])
    plan = plan_pattern(job, target_for(load_profile("grbl-knife")))
    assert sorted(plan.outlines) == ["NECKBAND#1", "NECKBAND#2", "NECKBAND#3"]
    polys = [Polygon(o) for o in plan.outlines.values()]
    for a, b in itertools.combinations(polys, 2):
        assert a.distance(b) >= 5.0 - 0.05


def test_a_half_piece_with_a_mirror_line_is_unfolded() -> None:
    from agent.patterns.compile import unfold

    half = next(p for p in read_dxf(tshirt_dxf(("M",), half_front=True)).pieces
                if p.name == "FRONT")
    whole = next(p for p in read_dxf(tshirt_dxf(("M",))).pieces if p.name == "FRONT")
    assert half.mirror is not None
    unfolded = unfold(half)
    assert unfolded.mirror is None
    assert Polygon(unfolded.boundary).area == pytest.approx(Polygon(whole.boundary).area,
                                                            rel=1e-4)
    assert Polygon(unfolded.boundary).symmetric_difference(
        Polygon(whole.boundary)).area < 1.0  # mm²
    assert Polygon(unfolded.boundary).exterior.is_ccw
    assert len(unfolded.drills) == 4 and len(unfolded.internal) == 2
    # and the job cuts the whole front
    plan = plan_pattern(pattern_job(data=tshirt_dxf(("M",), half_front=True),
                                    pieces=[{"name": "FRONT"}]),
                        target_for(load_profile("grbl-knife")))
    assert Polygon(plan.outlines["FRONT#1"]).area == pytest.approx(
        Polygon(whole.boundary).area, rel=1e-4)
    assert plan.detail["skipped"]["drill_holes"]["count"] == 4


def test_the_profile_maps_layers_to_operations(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "firmware_profiles" / "grbl-knife.toml").read_text()
    custom = tmp_path / "knife-scores.toml"
    custom.write_text(text + '\n[toolpath.pattern]\nnotch_depth_mm = 8.0\n'
                      'internal_lines = "score"\ndrill_holes = "skip"\n')
    target = target_for(load_profile(str(custom)))
    plan = plan_pattern(pattern_job(pieces=[{"name": "FRONT"}]), target)
    toolpaths = plan.job.toolpaths
    assert toolpaths is not None
    scores = [p for p in toolpaths.paths if p.op.value == "score"]
    assert len(scores) == 1  # the front's internal line, scored by the knife
    assert "internal_lines" not in plan.detail["skipped"]
    assert plan.detail["skipped"]["drill_holes"] == {
        "count": 2, "why": "grbl-knife's profile skips them ([toolpath.pattern])"}
    slits = [p for p in toolpaths.paths if not p.closed and p.op.value == "cut"]
    assert len(slits) == 2
    for slit in slits:
        assert math.dist(*slit.points) == pytest.approx(8.0, abs=1e-3)
    # the job's own notch depth wins
    plan = plan_pattern(pattern_job(pieces=[{"name": "FRONT"}], notch_depth_mm=3.0), target)
    assert plan.job.toolpaths is not None
    assert {round(math.dist(*p.points), 3) for p in plan.job.toolpaths.paths
            if not p.closed and p.op.value == "cut"} == {3.0}


def _skirt_r2000() -> Any:
    """A piece in mm (R2000, $INSUNITS 4) whose cut line is an LWPOLYLINE with a bulge, an
    ARC, a SPLINE and a LINE."""
    from ezdxf.document import Drawing

    doc = Drawing.new("R2000")
    doc.header["$INSUNITS"] = 4
    blk = doc.blocks.new("SKIRT_10")
    blk.add_lwpolyline([(0, 0, 0, 0, 0), (200, 0, 0, 0, 0.3), (200, 100, 0, 0, 0)],
                       format="xyseb", dxfattribs={"layer": "1"})
    blk.add_arc((150, 100), 50, 0, 180, dxfattribs={"layer": "1"})
    blk.add_spline([(100, 100), (60, 130), (30, 90), (0, 100)], dxfattribs={"layer": "1"})
    blk.add_line((0, 100), (0, 0), dxfattribs={"layer": "1"})
    blk.add_point((100, 0), dxfattribs={"layer": "2"})  # a turn point: construction
    blk.add_text("Piece Name: SKIRT", dxfattribs={"layer": "1"})
    blk.add_text("Size: 10", dxfattribs={"layer": "1"})
    return doc


@pytest.mark.parametrize("fmt", ["asc", "bin"])
def test_r2000_lwpolyline_arc_spline_boundary_in_mm_text_or_binary(fmt: str) -> None:
    import io

    doc = _skirt_r2000()
    if fmt == "bin":
        out = io.BytesIO()
        doc.write(out, fmt="bin")
        data = out.getvalue()
        assert data.startswith(b"AutoCAD Binary DXF")
    else:
        data = _to_text(doc).encode()
    pattern = read_dxf(data)
    assert (pattern.units, pattern.units_from, pattern.dxf_version) == ("mm", "$INSUNITS 4",
                                                                       "AC1015")
    (skirt,) = pattern.pieces
    assert (skirt.name, skirt.size, skirt.quantity) == ("SKIRT", "10", None)
    assert skirt.ignored == {"POINT@2": 1}
    poly = Polygon(skirt.boundary)
    assert poly.is_valid and poly.exterior.is_ccw
    # the arc's top, flattened within 0.05 mm of the true circle
    on_arc = [p for p in skirt.boundary if p[1] > 100.5 and p[0] > 100.5]
    assert len(on_arc) > 10
    for x, y in on_arc:
        assert abs(math.hypot(x - 150, y - 100) - 50) <= 0.05 + 1e-6
    assert poly.bounds[3] == pytest.approx(150.0, abs=0.05)


def _to_text(doc: Any) -> str:
    import io

    stream = io.StringIO()
    doc.write(stream)
    return stream.getvalue()


def test_too_many_copies_are_refused_before_placing() -> None:
    job = pattern_job(pieces=[{"name": n, "copies": 100} for n in PIECES])
    with pytest.raises(ProgramError) as err:
        plan_pattern(job, target_for(load_profile("grbl-knife")))
    assert err.value.code == "invalid_job" and "400 piece copies" in err.value.message


def test_a_gerber_astm_export_without_tables_or_handles_is_read() -> None:
    data = tshirt_dxf(("M", "L"), gerber=True)
    assert b"TABLES" not in data and b"$ACADVER" not in data
    pattern = read_dxf(data)
    assert pattern.sizes() == ["M", "L"] and len(pattern.pieces) == 8
    plan = plan_pattern(pattern_job(data=data, size="L"), target_for(load_profile("grbl-knife")))
    assert len(plan.outlines) == 5


@pytest.mark.parametrize(("axis", "rotate_90"), [("x", False), ("y", False), ("x", True)])
def test_grain_lines_lie_along_the_chosen_axis(axis: str, rotate_90: bool) -> None:
    from agent.patterns.compile import _rotate

    pattern = read_dxf(tshirt_dxf(("M",)))
    plan = plan_pattern(pattern_job(placement={"grain_axis": axis,
                                               "allow_rotate_90": rotate_90}),
                        target_for(load_profile("grbl-knife")))
    assert len(plan.turns) == 5
    for key, turn in plan.turns.items():
        piece = next(p for p in pattern.pieces if p.name == key.split("#")[0])
        assert piece.grain is not None
        (x1, y1), (x2, y2) = _rotate(list(piece.grain), turn)
        angle = math.degrees(math.atan2(y2 - y1, x2 - x1)) % 180.0
        along = 0.0 if axis == "x" else 90.0
        allowed = {along, (along + 90.0) % 180.0} if rotate_90 else {along}
        assert min(min(abs(angle - a), 180.0 - abs(angle - a)) for a in allowed) < 1e-6, key
