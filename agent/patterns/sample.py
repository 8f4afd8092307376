"""A small AAMA-style T-shirt pattern written with ezdxf, as pattern exporters write them:
DXF R12, inches, one BLOCK per piece and size with "Piece Name:", "Size:" and "Quantity:"
notes, the cut line split into several POLYLINEs and LINEs in mixed directions, notches
(layer 4 POINTs), drill holes (13), an internal cut-out (11), an internal line (8), a grain
line (7) and annotation text (15). Used by the tests, the benchmark and the demo."""

from __future__ import annotations

import io
import itertools
import math

XY = tuple[float, float]

SIZES = ("S", "M", "L", "XL")
_GRADE = {"S": 0.94, "M": 1.0, "L": 1.06, "XL": 1.12}


def _body(neck_depth: float) -> list[XY]:
    """A T-shirt body (front or back), inches, counter-clockwise, with a curved neckline."""
    pts: list[XY] = [(0.0, 0.0), (20.0, 0.0), (20.0, 18.0), (19.0, 21.0), (17.5, 26.0)]
    # neckline: an arc from (13, 27) down through the centre and back to (7, 27)
    for i in range(13):
        a = math.pi * i / 12
        pts.append((10.0 + 3.0 * math.cos(a), 27.0 - neck_depth * math.sin(a)))
    pts += [(2.5, 26.0), (1.0, 21.0), (0.0, 18.0)]
    # the arc runs from (13, 27) to (7, 27) passing below: reverse so the ring stays simple
    return pts


def _half_body(neck_depth: float) -> list[XY]:
    """The left half of :func:`_body`, up to its centre line x = 10 (a mirror line)."""
    pts: list[XY] = [(0.0, 0.0), (10.0, 0.0)]
    for i in range(6, 13):
        a = math.pi * i / 12
        pts.append((10.0 + 3.0 * math.cos(a), 27.0 - neck_depth * math.sin(a)))
    return [*pts, (2.5, 26.0), (1.0, 21.0), (0.0, 18.0)]


def _sleeve() -> list[XY]:
    return [(0.0, 0.0), (13.0, 0.0), (14.0, 6.0)] + [
        (7.0 + 7.0 * math.cos(math.pi * i / 12), 6.0 + 3.0 * math.sin(math.pi * i / 12))
        for i in range(1, 12)
    ] + [(0.0, 6.0)]


def _neckband() -> list[XY]:
    return [(0.0, 0.0), (18.0, 0.0), (18.0, 1.5), (0.0, 1.5)]


PIECES: dict[str, tuple[list[XY], int]] = {
    "FRONT": (_body(4.0), 1),
    "BACK": (_body(1.5), 1),
    "SLEEVE": (_sleeve(), 2),
    "NECKBAND": (_neckband(), 1),
}


def _scaled(points: list[XY], k: float) -> list[XY]:
    return [(round(x * k, 4), round(y * k, 4)) for x, y in points]


def tshirt_dxf(sizes: tuple[str, ...] = SIZES, *, units_note: bool = False,
               extra_pieces: int = 0, gap_in: float = 0.0, half_front: bool = False,
               gerber: bool = False) -> bytes:
    """The pattern as DXF bytes. ``extra_pieces`` adds numbered copies of the pieces (as more
    blocks) for load tests; ``gap_in`` opens the FRONT's cut line by that much;
    ``half_front`` draws the FRONT as its left half with a mirror line (layer 6); ``gerber``
    writes it with ezdxf's ASTM D6673 exporter (no header variables, tables or handles, as
    Gerber AccuMark reads them)."""
    from ezdxf.document import Drawing

    doc = Drawing.new("R12")
    msp = doc.modelspace()
    for layer in ("1", "4", "6", "7", "8", "11", "13", "15"):
        doc.layers.add(layer)
    if units_note:
        msp.add_text("UNITS: ENGLISH", dxfattribs={"layer": "1"})
    names = list(PIECES)
    names += [f"{names[i % 4]}{i}" for i in range(extra_pieces)]
    y_at = 0.0
    for size in sizes:
        k = _GRADE.get(size, 1.0)
        for name in names:
            base = next(b for b in PIECES if name.startswith(b))
            outline, qty = PIECES[base]
            if half_front and base == "FRONT":
                outline = _half_body(4.0)
            ring = _scaled(outline, k)
            block_name = f"{name}_{size}"
            blk = doc.blocks.new(block_name)
            _write_boundary(blk, ring, gap_in if base == "FRONT" else 0.0)
            blk.add_text(f"Piece Name: {name}", dxfattribs={"layer": "1", "insert": (1, 1)})
            blk.add_text(f"Size: {size}", dxfattribs={"layer": "1", "insert": (1, 2)})
            blk.add_text(f"Quantity: {qty}", dxfattribs={"layer": "1", "insert": (1, 3)})
            blk.add_text(f"{name} {size} 100% cotton", dxfattribs={"layer": "15"})
            xs = [p[0] for p in ring]
            ys = [p[1] for p in ring]
            cx = (min(xs) + max(xs)) / 2
            # grain line along the piece's length
            blk.add_line((cx, min(ys) + 0.15 * (max(ys) - min(ys))),
                         (cx, min(ys) + 0.6 * (max(ys) - min(ys))), dxfattribs={"layer": "7"})
            # notches at the middle of the first edge and of the third
            for i in (0, 2):
                (x1, y1), (x2, y2) = ring[i], ring[(i + 1) % len(ring)]
                blk.add_point(((x1 + x2) / 2, (y1 + y2) / 2), dxfattribs={"layer": "4"})
            if half_front and base == "FRONT":
                blk.add_line((10.0 * k, 0.0), (10.0 * k, 23.0 * k), dxfattribs={"layer": "6"})
                cx = 6.0 * k
            if base == "FRONT":
                for dx in (-3.0, 3.0):
                    blk.add_point((cx + dx, 12.0 * k), dxfattribs={"layer": "13"})
                blk.add_line((cx - 4.0, 8.0 * k), (cx + 4.0, 8.0 * k), dxfattribs={"layer": "8"})
            if base == "BACK":
                # a hanger-loop slot: an internal cut-out
                blk.add_polyline2d([(cx - 1, 20 * k), (cx + 1, 20 * k), (cx + 1, 20.5 * k),
                                    (cx - 1, 20.5 * k)], close=True, dxfattribs={"layer": "11"})
            msp.add_blockref(block_name, (0, y_at))
            y_at += 40.0
    stream = io.StringIO()
    if gerber:
        from ezdxf.addons import gerber_D6673

        gerber_D6673.export_stream(doc, stream)
    else:
        doc.write(stream)
    return stream.getvalue().encode("cp1252")


def _write_boundary(blk: object, ring: list[XY], gap: float) -> None:
    """The cut line in three fragments: a POLYLINE, a reversed POLYLINE, and a LINE."""
    n = len(ring)
    closed = [*ring, ring[0]]
    a, b = n // 3, 2 * n // 3
    first = closed[: a + 1]
    if gap:
        first = [(first[0][0] + gap, first[0][1]), *first[1:]]
    blk.add_polyline2d(first, dxfattribs={"layer": "1"})  # type: ignore[attr-defined]
    blk.add_polyline2d(closed[a : b + 1][::-1], dxfattribs={"layer": "1"})  # type: ignore[attr-defined]
    rest = closed[b:]
    for p, q in itertools.pairwise(rest):
        blk.add_line(p, q, dxfattribs={"layer": "1"})  # type: ignore[attr-defined]
