from __future__ import annotations

import pytest

from agent.dialects.grbl import prepare_grbl_program
from agent.errors import ProgramError
from agent.garments import tshirt_knife_job
from agent.profiles import load_profile
from agent.profiles.grbl import GrblProfile


@pytest.fixture(scope="module")
def profile() -> GrblProfile:
    p = load_profile("grbl-1.1")
    assert isinstance(p, GrblProfile)
    return p


def test_normalises_like_grbl(profile: GrblProfile) -> None:
    program = "G21 G90 ; millimetres\n\n(piece front)\ng0 x20 y20\nG1 Z-1 F600 (knife down)\n"
    prog = prepare_grbl_program(program, profile)
    assert prog.lines == ("G21G90", "G0X20Y20", "G1Z-1F600")
    assert prog.source_lines == (1, 4, 5)


def test_tshirt_job_is_valid(profile: GrblProfile) -> None:
    prog = prepare_grbl_program(tshirt_knife_job(), profile)
    assert len(prog) > 300
    assert all(len(line) <= 79 for line in prog.lines)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("$H", "blocked_instruction"),
        ("$X", "blocked_instruction"),
        ("$110=5000", "blocked_instruction"),
        ("$N0=G20", "blocked_instruction"),
        ("$RST=*", "blocked_instruction"),
        ("$SLP", "blocked_instruction"),
        ("$C", "blocked_instruction"),
        ("$I=cutter-01", "blocked_instruction"),
        ("G10 L2 P1 X0 Y0", "blocked_instruction"),
        ("G10 L20 P1 X0", "blocked_instruction"),
        ("G28.1", "blocked_instruction"),
        ("G30.1", "blocked_instruction"),
        ("G1 X10 Q5", "invalid_program"),
        ("G1 X1O", "invalid_program"),
        ("G5 X10", "unsupported_command"),
        ("M6 T2", "unsupported_command"),
        ("G1 X10 (unclosed", "invalid_program"),
        ("G1 X10 ! Y5", "invalid_program"),
        ("G1 X" + "1" * 90, "line_too_long"),
    ],
)
def test_rejects_with_line_number(profile: GrblProfile, line: str, code: str) -> None:
    program = f"G21 G90\nG0 X20 Y20\n{line}\nG0 X0 Y0\n"
    with pytest.raises(ProgramError) as info:
        prepare_grbl_program(program, profile)
    assert info.value.code == code
    assert info.value.line == 3


def test_profile_may_allow_a_system_command_by_name(profile: GrblProfile) -> None:
    allowed = profile.model_copy(update={"allowlist": profile.allowlist.model_copy(
        update={"system": ("$H",)})})
    prog = prepare_grbl_program("$H\nG0 X0 Y0\n", allowed)
    assert prog.lines[0] == "$H"
    with pytest.raises(ProgramError) as info:
        prepare_grbl_program("$H\n$X\n", allowed)
    assert (info.value.code, info.value.line) == ("blocked_instruction", 2)


def test_empty_program_rejected(profile: GrblProfile) -> None:
    with pytest.raises(ProgramError) as info:
        prepare_grbl_program("; nothing but a comment\n\n", profile)
    assert info.value.code == "empty_program"
