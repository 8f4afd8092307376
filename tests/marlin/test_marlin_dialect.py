"""Marlin programs: normalisation, the allowlist, framing and the profile."""

from __future__ import annotations

import functools
import operator

import pytest

from agent.dialects.marlin import checksum, frame_line, prepare_marlin_program
from agent.errors import ProgramError
from agent.profiles import load_profile
from agent.profiles.marlin import CommandRule, MarlinProfile
from tests.marlin.conftest import marlin_profile

FRONT_PANEL = """\
; T-shirt front, size M - knife on Z
G21
G90
  g01 z5 f600
G0 X20 Y20 ; hem corner
G1 Z-1 F600
G1X540Y20 F3000
G1 X540 Y(side seam) 510
M0106 S255
M 107
M400
"""


def test_profile_loads_with_its_marlin_section() -> None:
    profile = load_profile("marlin-2")
    assert isinstance(profile, MarlinProfile)
    assert profile.marlin.rx_buffer_bytes == 128
    assert profile.marlin.command_queue == 4
    assert "M104 S0" in profile.marlin.cancel_sequence


def test_front_panel_is_normalised_line_by_line() -> None:
    program = prepare_marlin_program(FRONT_PANEL, marlin_profile())
    assert program.lines == (
        "G21",
        "G90",
        "G1 Z5 F600",
        "G0 X20 Y20",
        "G1 Z-1 F600",
        "G1 X540 Y20 F3000",
        "G1 X540 Y510",
        "M106 S255",
        "M107",
        "M400",
    )
    # Source numbering survives dropped comment lines.
    assert program.source_lines[0] == 2
    assert program.source_lines[2] == 4


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("M500", "blocked_instruction"),
        ("M502", "blocked_instruction"),
        ("M997", "blocked_instruction"),
        ("M303 E0 S210 C8", "blocked_instruction"),
        ("M0 Load fabric", "blocked_instruction"),
        ("M01", "blocked_instruction"),
        ("M600", "blocked_instruction"),
        ("M112", "blocked_instruction"),
        ("M110 N5", "blocked_instruction"),
        ("M28 label.gco", "blocked_instruction"),
        ("G1 X10 *Y3", "invalid_program"),
        ("hello", "invalid_program"),
        ("G1 X1.2.3", "invalid_program"),
        ("G1 X1-2", "invalid_program"),
        ("G1 X1e5", "invalid_program"),
        ("G1 X0x10", "invalid_program"),
        ("G1 X10 x20", "invalid_program"),
        ("G1 X10 \\; M118 ok", "invalid_program"),
        ('G1 X10 "a"', "invalid_program"),
        ("G1 X10 ?", "invalid_program"),
        ("G1 X10 N5", "invalid_program"),
        ("G-1 X10", "invalid_program"),
        ("G1. X10", "invalid_program"),
        ("G1 G0 X10", "invalid_program"),
        ("G1 X10 M3", "invalid_program"),
        ("G1 X10 (unclosed", "invalid_program"),
        ("G1 X10\x07", "invalid_program"),
    ],
)
def test_bad_lines_are_rejected_with_code_and_line(line: str, code: str) -> None:
    program = f"G21\nG90\n{line}\nG1 X5 Y5\n"
    with pytest.raises(ProgramError) as info:
        prepare_marlin_program(program, marlin_profile())
    assert info.value.code == code
    assert info.value.line == 3


def test_a_site_may_extend_the_allowlist() -> None:
    profile = marlin_profile()
    commands = dict(profile.commands)
    commands["M600"] = CommandRule()
    profile = profile.model_copy(update={"commands": commands})
    assert prepare_marlin_program("M600", profile).lines == ("M600",)


def test_unknown_numbers_are_refused_not_left_to_the_firmware() -> None:
    # M5000 is no Marlin command; unknown means refused, and so does a near miss of an allowed one.
    for line in ("M5000", "G1.5 X10", "G10", "M1060 S255", "T0"):
        with pytest.raises(ProgramError) as info:
            prepare_marlin_program(line, marlin_profile())
        assert info.value.code == "blocked_instruction", line
        assert "not allowed" in info.value.message


def test_subcode_zero_is_the_command_itself() -> None:
    assert prepare_marlin_program("G1.0 X5", marlin_profile()).lines == ("G1 X5",)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("G4 P-1", "outside 0..600000"),
        ("G4 S601", "outside 0..600"),
        ("M104 S300", "outside 0..260"),
        ("M190 S111", "outside 0..110"),
        ("M106 S256", "outside 0..255"),
        ("M3 S-5", "outside 0..255"),
        ("M106 S255 I", "may not carry I"),
        ("G1 X10 P5", "may not carry P"),
        ("G92 X0", "may not carry X"),
        ("M104 S", "needs a number"),
    ],
)
def test_parameters_are_allowed_by_letter_and_limit(line: str, why: str) -> None:
    with pytest.raises(ProgramError) as info:
        prepare_marlin_program(f"G21\n{line}\n", marlin_profile())
    assert info.value.code == "blocked_instruction"
    assert info.value.line == 2
    assert why in info.value.message


def test_long_line_and_empty_program() -> None:
    with pytest.raises(ProgramError) as info:
        prepare_marlin_program("G1 X" + "1" * 90, marlin_profile())
    assert info.value.code == "line_too_long"
    with pytest.raises(ProgramError) as info:
        prepare_marlin_program("; nothing\n\n", marlin_profile())
    assert info.value.code == "empty_program"


def test_checksum_is_xor_of_the_bytes() -> None:
    for body in (b"", b"N1 G28", b"N12345 G1 X540.125 Y-20.5 F3000", bytes(range(256))):
        assert checksum(body) == functools.reduce(operator.xor, body, 0)


def test_frame_line_matches_marlins_format() -> None:
    assert frame_line(0, "M110 N0") == b"N0 M110 N0*125\n"
    framed = frame_line(42, "G1 X10 Y20")
    body, _, tail = framed.rstrip(b"\n").partition(b"*")
    assert body == b"N42 G1 X10 Y20"
    assert int(tail) == checksum(body)


def test_prepare_program_dispatches_gcode_jobs_to_the_marlin_dialect() -> None:
    from agent.jobs.prepare import prepare_program
    from agent.schemas.job import JobKind, JobRequest

    job = JobRequest(job_id="front-M-0001", kind=JobKind.GCODE, program=FRONT_PANEL)
    assert prepare_program(job, marlin_profile()).lines[0] == "G21"
    plot = JobRequest(job_id="label-0001", kind=JobKind.HPGL, program="IN;SP1;PU0,0;")
    with pytest.raises(ProgramError) as info:
        prepare_program(plot, marlin_profile())
    assert info.value.code == "unsupported_kind"
