"""Damaged pattern files: truncated or with bytes changed, each either reads or is refused as
bad_pattern/unsupported_pattern, never a crash."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import ProgramError
from agent.patterns.compile import plan_pattern
from agent.patterns.sample import tshirt_dxf
from agent.patterns.svg import svg_toolpaths
from agent.profiles import load_profile
from agent.schemas.job import JobRequest
from agent.toolpaths import target_for
from tests.patterns.helpers import pattern_job

DXF = tshirt_dxf(("M",))
TARGET = target_for(load_profile("grbl-knife"))
# None: the damage left a usable file.
CODES = {None, "bad_pattern", "unsupported_pattern", "out_of_bounds", "invalid_toolpaths"}


def outcome(run: Callable[[], object]) -> str | None:
    """The rejection code, or None when it compiled; anything else raised fails the test."""
    try:
        run()
    except ProgramError as exc:
        return exc.code
    return None


def _plan(data: bytes) -> object:
    return plan_pattern(pattern_job(data=data), TARGET)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(0, len(DXF)), at=st.integers(0, len(DXF) - 1),
       junk=st.binary(min_size=1, max_size=12))
def test_damaged_dxf_is_read_or_refused(cut: int, at: int, junk: bytes) -> None:
    for data in (DXF[:cut], DXF[:at] + junk + DXF[at + len(junk):]):
        assert outcome(functools.partial(_plan, data)) in CODES


SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="100mm" height="50mm" '
       'viewBox="0 0 100 50"><g id="a" transform="rotate(10)"><rect x="5" y="5" width="20" '
       'height="10" stroke="#000"/><path d="M 10 40 C 20 10, 40 60, 50 40 Z" stroke="red"/>'
       '<ellipse cx="70" cy="25" rx="10" ry="5" stroke="blue"/></g></svg>')


@settings(max_examples=60, deadline=None)
@given(at=st.integers(0, len(SVG) - 1), junk=st.text(min_size=1, max_size=8))
def test_damaged_svg_is_read_or_refused(at: int, junk: str) -> None:
    text = SVG[:at] + junk + SVG[at + len(junk):]
    if len(text) < 10:
        return
    job = JobRequest.model_validate_json(
        json.dumps({"job_id": "s", "kind": "svg", "svg": {"data": text}}))
    assert outcome(lambda: svg_toolpaths(job)) in CODES
