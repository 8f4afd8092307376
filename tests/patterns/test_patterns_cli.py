"""``station-agent pattern info`` and ``station-agent preview`` of a pattern job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.patterns.sample import tshirt_dxf
from tests.patterns.helpers import pattern_payload


def test_pattern_info_lists_sizes_pieces_layers_and_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tee.dxf"
    path.write_bytes(tshirt_dxf(("M", "L")))
    assert main(["pattern", "info", str(path), "--profile", "grbl-knife", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert list(info["sizes"]) == ["M", "L"]
    sleeve = next(p for p in info["sizes"]["M"] if p["name"] == "SLEEVE")
    assert sleeve["quantity"] == 2 and sleeve["notches"] == 2 and sleeve["grain_line"]
    assert info["layers"]["13"] == 4 and info["units"] == "in"
    assert info["skipped_on"]["skipped"]["drill_holes"]["count"] == 2
    assert main(["pattern", "info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "size L:" in text and "FRONT" in text and "drill holes 2" in text


def test_pattern_info_names_a_broken_block(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gap.dxf"
    path.write_bytes(tshirt_dxf(("M",), gap_in=0.5))
    assert main(["pattern", "info", str(path)]) == 1
    assert "bad_pattern" in capsys.readouterr().err


def test_preview_draws_a_placed_pattern_job(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps(pattern_payload("tee-M", tshirt_dxf(("M",)))))
    out = tmp_path / "marker.svg"
    assert main(["preview", str(job), "--profile", "grbl-knife", "-o", str(out)]) == 0
    svg = out.read_text()
    assert svg.startswith("<?xml") and "tee-M on grbl-knife" in svg
    assert svg.count("<polyline") >= 5
