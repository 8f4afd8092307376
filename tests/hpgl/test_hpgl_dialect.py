"""Raw HP-GL jobs: validated and normalised before anything is sent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.dialects.hpgl import prepare_hpgl_program, resume_preamble
from agent.errors import ProgramError
from agent.jobs.prepare import prepare_program
from agent.profiles import load_profile, parse_profile
from agent.profiles.hpgl import HpglProfile
from agent.schemas.job import JobKind, JobRequest
from tests.hpgl.plots import chest_logo_vinyl, graded_nest, sleeve_pattern, strokes_of


def plotter() -> HpglProfile:
    profile = load_profile("hpgl-7475a")
    assert isinstance(profile, HpglProfile)
    return profile


def cutter() -> HpglProfile:
    profile = load_profile("roland-camm-gl3")
    assert isinstance(profile, HpglProfile)
    return profile


def test_sleeve_pattern_normalises_to_the_same_drawing() -> None:
    text, expected = sleeve_pattern()
    program = prepare_hpgl_program(text, plotter())
    assert program.lines[0] == "PA;"
    assert all(line.endswith(";") and line[:2].isupper() for line in program.lines)
    assert "LT2,2;" in program.lines
    assert strokes_of(program.lines) == expected


def test_vinyl_logo_keeps_speed_and_force_on_the_cutter() -> None:
    text, expected = chest_logo_vinyl()
    program = prepare_hpgl_program(text, cutter())
    assert "VS20;" in program.lines
    assert "FS80;" in program.lines
    assert strokes_of(program.lines) == expected


def test_graded_nest_is_over_twenty_thousand_instructions() -> None:
    text, expected = graded_nest()
    program = prepare_hpgl_program(text, plotter())
    assert len(program) >= 20_000
    assert strokes_of(program.lines) == expected


def test_source_lines_point_at_the_job_text() -> None:
    text = "IN;SP1;\nPU400,400;\nPD800,400,800,800;PD400,800;\nPU;SP0;\n"
    program = prepare_hpgl_program(text, plotter())
    assert program.lines == ("PA;", "IN;", "PA;", "SP1;", "PU400,400;", "PD800,400,800,800;",
                             "PD400,800;", "PU;", "SP0;")
    assert program.source_lines == (1, 1, 1, 1, 2, 3, 3, 4, 4)


def test_long_polylines_are_split_and_relative_moves_made_absolute() -> None:
    pairs = ",".join(f"{40 * i},{40}" for i in range(1, 21))
    text = f"pu 0 0;pd{pairs};PR40,40,-40,0;PA;PU0,0;"
    program = prepare_hpgl_program(text, plotter())
    pd_lines = [line for line in program.lines if line.startswith("PD")]
    assert [line.count(",") for line in pd_lines] == [15, 15, 7, 3]
    assert pd_lines[-1] == "PD840,80,800,80;"
    assert program.lines[-1] == "PU0,0;"


def test_decimal_coordinates_round_to_plotter_units() -> None:
    program = prepare_hpgl_program("PU10.4,20.6;PD30.5,40.5;", plotter())
    assert program.lines[1:] == ("PU10,21;", "PD30,40;")


@pytest.mark.parametrize(
    ("text", "code", "line"),
    [
        ("IN;\nPD10,abc;\n", "invalid_program", 2),
        ("IN;\nSP1;\nPD10,20,30;\n", "invalid_program", 3),
        ("IN;\n3PU;\n", "invalid_program", 2),
        ("IN;\n\nCI400;\n", "invalid_program", 3),  # circles: not supported
        ("IN;\nSP9;\n", "invalid_program", 2),  # the 7475A has six pens
        ("IN;\nFS40;\n", "invalid_program", 2),  # no force setting on a pen plotter
        ("IN;\nPR40,40;\n", "invalid_program", 2),  # relative move from an unknown position
        ("IN;\nOS;\n", "blocked_instruction", 2),
        ("PU0,0;\nPD40,40;OE;\n", "blocked_instruction", 2),
        ("IN;\n\x1b.K\n", "blocked_instruction", 2),
        ("IN;\nSC0,100,0,100;\n", "blocked_instruction", 2),
        ("IN;\nIP0,0,4000,4000;\n", "blocked_instruction", 2),
        ("IN;\nPU0,0;\nPD16159,0;\n", "out_of_bounds", 3),
        ("IN;\nPU-40,0;\n", "out_of_bounds", 2),
        ("IN;\nPU16000,11000;PR200,0;\n", "out_of_bounds", 2),
        ("PU0,0;\nPD40000,0;\n", "out_of_bounds", 2),
        ("", "invalid_program", None),
    ],
)
def test_bad_programs_are_rejected_with_code_and_line(
    text: str, code: str, line: int | None
) -> None:
    with pytest.raises(ProgramError) as caught:
        prepare_hpgl_program(text, plotter())
    assert caught.value.code == code
    assert caught.value.line == line


def test_profile_allow_list_wins_over_its_patterns() -> None:
    data = plotter().model_dump(mode="json")
    data["blocked"] = {"patterns": ["^SP[3-6].*"], "allow": ["^SP4$"]}
    profile = parse_profile(data)
    assert isinstance(profile, HpglProfile)
    prepare_hpgl_program("SP4;", profile)
    with pytest.raises(ProgramError) as caught:
        prepare_hpgl_program("SP1;\nSP5;", profile)
    assert (caught.value.code, caught.value.line) == ("blocked_instruction", 2)


def test_hpgl_jobs_dispatch_to_the_hpgl_dialect() -> None:
    job = JobRequest(job_id="tee-110-sleeve", kind=JobKind.HPGL, program=sleeve_pattern()[0])
    assert len(prepare_program(job, plotter())) > 100
    gcode = JobRequest(job_id="tee-110-gcode", kind=JobKind.GCODE, program="G0 X1\n")
    with pytest.raises(ProgramError) as caught:
        prepare_program(gcode, plotter())
    assert caught.value.code == "unsupported_kind"


coordinate = st.integers(min_value=0, max_value=11_040)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(coordinate, coordinate), min_size=1, max_size=30),
                min_size=1, max_size=8))
def test_any_in_bed_polyline_set_survives_normalisation(
    polylines: list[list[tuple[int, int]]],
) -> None:
    parts = ["IN;SP1;"]
    expected = []
    for pts in polylines:
        parts.append(f"PU{pts[0][0]},{pts[0][1]};")
        if len(pts) > 1:
            parts.append("PD" + ",".join(f"{x},{y}" for x, y in pts[1:]) + ";")
            expected.append((1, tuple(pts)))
        parts.append("PU;")
    program = prepare_hpgl_program("".join(parts), plotter())
    assert strokes_of(program.lines) == expected
    assert max(len(line) for line in program.lines) < plotter().hpgl.buffer_bytes // 4


def test_resume_preamble_restores_pen_settings_and_position_without_drawing() -> None:
    lines = ("PA;", "IN;", "PA;", "VS20;", "SP2;", "LT2,2;", "PU400,400;", "PD800,400,800,800;",
             "PD400,800;", "PU;")
    assert resume_preamble(lines, 8) == ["IN;", "PA;", "SP2;", "VS20;", "LT2,2;", "PU800,800;",
                                         "PD;"]
    assert resume_preamble(lines, 9)[-2:] == ["PU400,800;", "PD;"]
    assert resume_preamble(lines, 10)[-1] == "PU400,800;"  # the pen was up: stays up
