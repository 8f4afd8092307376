"""``station-agent pattern info FILE.dxf``: what a pattern file holds, and what a station
would leave out of it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, ProgramError
from agent.patterns.compile import feature_ops, skipped_features
from agent.patterns.dxf import read_dxf
from agent.patterns.model import PatternError, PatternFile
from agent.profiles import load_profile
from agent.toolpaths.target import MachineTarget, target_for


def describe(pattern: PatternFile, target: MachineTarget | None = None) -> dict[str, Any]:
    sizes: dict[str, list[dict[str, Any]]] = {}
    for piece in pattern.pieces:
        sizes.setdefault(piece.size, []).append({
            "name": piece.name, "block": piece.block, "quantity": piece.quantity,
            "boundary_points": len(piece.boundary), "cutouts": len(piece.cutouts),
            "notches": len(piece.notches) + len(piece.notch_lines),
            "drill_holes": len(piece.drills), "internal_lines": len(piece.internal),
            "sew_lines": len(piece.sew), "grain_line": piece.grain is not None,
            "mirror_line": piece.mirror is not None,
        })
    out: dict[str, Any] = {
        "dxf_version": pattern.dxf_version, "units": pattern.units,
        "units_from": pattern.units_from, "sizes": sizes,
        "layers": dict(sorted(pattern.layers.items(), key=lambda kv: (len(kv[0]), kv[0]))),
    }
    if target is not None:
        first = pattern.sizes()[0]
        pieces = [p for p in pattern.pieces if p.size == first]
        _, reasons = feature_ops(target)
        out["skipped_on"] = {"profile": target.name, "size": first,
                             "skipped": skipped_features(pieces, reasons)}
    return out


def _print(info: dict[str, Any]) -> None:
    print(f"DXF {info['dxf_version']}, units {info['units']} ({info['units_from']})")
    for size, pieces in info["sizes"].items():
        print(f"size {size}:")
        for p in pieces:
            extras = [f"{k.replace('_', ' ')} {p[k]}" for k in
                      ("cutouts", "notches", "drill_holes", "internal_lines", "sew_lines")
                      if p[k]]
            flags = [k.replace("_", " ") for k in ("grain_line", "mirror_line") if p[k]]
            qty = p["quantity"] if p["quantity"] is not None else "-"
            print(f"  {p['name']:<16} x{qty}  {p['boundary_points']} boundary points"
                  + "".join(f", {e}" for e in extras + flags))
    print("layers: " + ", ".join(f"{k}: {v}" for k, v in info["layers"].items()))
    if "skipped_on" in info:
        sk = info["skipped_on"]
        print(f"skipped on {sk['profile']} (size {sk['size']}, one of each piece):")
        if not sk["skipped"]:
            print("  nothing")
        for feature, entry in sk["skipped"].items():
            print(f"  {feature}: {entry['count']} ({entry['why']})")


def pattern_main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 read, 1 the file would be refused, 2 bad input."""
    parser = argparse.ArgumentParser(prog="station-agent pattern",
                                     description="Inspect AAMA/ASTM pattern files.")
    sub = parser.add_subparsers(dest="action", required=True)
    info = sub.add_parser("info", help="pieces, sizes, quantities, layers, what is skipped")
    info.add_argument("file", type=Path)
    info.add_argument("--units", choices=["auto", "mm", "cm", "in"], default="auto")
    info.add_argument("--profile", help="also list what this profile's machine leaves out")
    info.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        data = args.file.read_bytes()
        target = target_for(load_profile(args.profile)) if args.profile else None
        pattern = read_dxf(data, units=args.units)
    except OSError as exc:
        print(f"error io_error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"error {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    except PatternError as exc:
        where = f" ({exc.where})" if exc.where else ""
        print(f"error {exc.code}: {exc.message}{where}", file=sys.stderr)
        return 1
    except ProgramError as exc:  # the profile takes no toolpaths
        print(f"error {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    result = describe(pattern, target)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0
