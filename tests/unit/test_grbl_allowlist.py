"""Parse, then allow: every line is read as GRBL 1.1 reads it and judged by the profile's
allowlist. The attack table holds the forms seen getting past the old regex blocklist."""

from __future__ import annotations

from typing import Any

import pytest

from agent.dialects.grbl import prepare_grbl_program
from agent.dialects.hpgl import prepare_hpgl_program
from agent.errors import ConfigError, ProgramError
from agent.profiles import load_profile, parse_profile
from agent.profiles.grbl import GrblProfile
from agent.profiles.hpgl import HpglProfile
from agent.reading.gcode import LineBreakError, iter_program_lines
from agent.reading.grbl import (
    ReadError,
    Word,
    classify_system,
    g_command,
    m_command,
    preprocess,
    read_float,
    read_words,
    split_number,
)
from tests.support.grbl_attacks import ATTACKS, attack_program


def _grbl(name: str) -> GrblProfile:
    profile = load_profile(name)
    assert isinstance(profile, GrblProfile)
    return profile


GENERIC = _grbl("grbl-1.1")
SHIPPED = [GENERIC, _grbl("grbl-knife"), _grbl("grbl-laser")]

@pytest.mark.parametrize("profile", SHIPPED, ids=lambda p: p.name)
@pytest.mark.parametrize(("line", "named"), ATTACKS, ids=[repr(a) for a, _ in ATTACKS])
def test_attack_lines_are_refused_with_their_line(
    profile: GrblProfile, line: str, named: str
) -> None:
    with pytest.raises(ProgramError) as info:
        prepare_grbl_program(attack_program(line), profile)
    assert info.value.code == "blocked_instruction", info.value.message
    assert info.value.line == 3
    assert info.value.message.startswith("line 3: ")
    assert named in info.value.message
    assert "not allowed" in info.value.message


def test_the_same_attack_lines_run_when_commented_out() -> None:
    # The guard reads comments as GRBL does: what GRBL drops cannot hurt, so it is no reason
    # to refuse. (The line's own characters ?, ! and ~ would act even there: they are refused.)
    bare = [line.translate(str.maketrans("", "", "();")) for line, _ in ATTACKS]
    lines = [f"; {line}" for line, _ in ATTACKS] + [f"({line})" for line in bare]
    program = "\n".join(["G21", *lines, "G0 X1"])
    assert prepare_grbl_program(program, GENERIC).lines == ("G21", "G0X1")


@pytest.mark.parametrize(
    ("line", "sent"),
    [
        ("G01 X10.5 F600", "G01X10.5F600"),
        ("g1 x-1.25 y+.5", "G1X-1.25Y+.5"),
        ("/G0 X1", "G0X1"),
        ("G0X1 (move) Y2 ; rest", "G0X1Y2"),
        ("G1.0 X1", "G1.0X1"),
        ("M3 S1000", "M3S1000"),
        ("G4 P0.5", "G4P0.5"),
        ("N5 G0 X1", "N5G0X1"),
        ("M4 S0", "M4S0"),
        ("G49.5", "G49.5"),  # gcode.c zeroes G49's mantissa: it is G49
    ],
)
def test_allowed_lines_are_sent_as_grbl_buffers_them(line: str, sent: str) -> None:
    assert prepare_grbl_program(line, GENERIC).lines == (sent,)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("G5 X1", "unsupported_command"),
        ("G10.01 L2 P1 X0", "unsupported_command"),  # GRBL: error:23, nothing runs
        ("G28.2", "unsupported_command"),
        ("M6 T1", "unsupported_command"),
        ("M0.5", "unsupported_command"),
        ("G1 X1 Q5", "invalid_program"),
        ("G1 X", "invalid_program"),
        ("G1 X1.2.3", "invalid_program"),
        ("G0 $H", "invalid_program"),  # '$' not first: GRBL says error:1
    ],
)
def test_what_grbl_itself_refuses(line: str, code: str) -> None:
    with pytest.raises(ProgramError) as info:
        prepare_grbl_program(f"G21\n{line}\n", GENERIC)
    assert (info.value.code, info.value.line) == (code, 2)


# -- the firmware's reading, rule by rule ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text", "overflow"),
    [
        ("$ 1 0 0 = 1", "$100=1", False),
        ("/$/H/", "$H", False),
        ("g0 x1 (c) y2 ; z3", "G0X1Y2", False),
        ("(a;b) $x", "$X", False),  # ';' means nothing inside '(...)'
        ("G0 (unclosed X1", "G0", False),
        ("é\x7f", "é\x7f", False),  # only a-z are upper-cased; only bytes <= ' ' dropped
        ("G1X" + "1" * 80, "G1X" + "1" * 76, True),
        ("G1X" + "1" * 76 + " (comment past the end)", "G1X" + "1" * 76, False),
    ],
)
def test_preprocess_is_protocol_c(raw: str, text: str, overflow: bool) -> None:
    line = preprocess(raw)
    assert (line.text, line.overflow) == (text, overflow)


@pytest.mark.parametrize(
    ("text", "value", "end"),
    [
        ("10=", 10.0, 2),
        ("+10=", 10.0, 3),
        ("10.0=", 10.0, 4),
        (".5=", 0.5, 2),
        ("-0.25X", -0.25, 5),
        ("010", 10.0, 3),
        ("1.", 1.0, 2),
        ("1.2.3", 1.2000000476837158, 3),  # single precision; stops at the second '.'
        ("123456789", 123456784.0, 9),  # 12345678 x 10: the ninth digit is dropped
        ("0.123456789", 0.1234566941857338, 11),  # the leading 0 is one of the 8 digits
    ],
)
def test_read_float_is_nuts_bolts_c(text: str, value: float, end: int) -> None:
    assert read_float(text, 0) == (value, end)


@pytest.mark.parametrize("text", ["", "=", "+", "-", ".", "+.", "--1", "e5"])
def test_read_float_needs_a_digit(text: str) -> None:
    assert read_float(text, 0) is None


def _word(text: str) -> Word:
    (word,) = read_words(text)
    return word


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("G010", "G10"), ("G10.0", "G10"), ("G10.001", "G10"), ("G028.1", "G28.1"),
        ("G28.10", "G28.1"), ("G38.2", "G38.2"), ("G91.1", "G91.1"), ("G49.5", "G49"),
        ("G43.1", "G43.1"), ("G1.004", "G1"), ("M0.001", "M0"), ("M030", "M30"), ("M7", "M7"),
    ],
)
def test_command_numbers_are_gcode_c(text: str, name: str) -> None:
    word = _word(text)
    assert (g_command(word) if word.letter == "G" else m_command(word)) == name


@pytest.mark.parametrize(
    ("text", "error"),
    [("G10.01", 23), ("G1.5", 23), ("G28.2", 20), ("G90.1", 20), ("G43", 20), ("G61.1", 20),
     ("G38.1", 20), ("G5", 20), ("G59.1", 23), ("M6", 20), ("M0.5", 23), ("G266", 23)],
)
def test_command_numbers_grbl_refuses(text: str, error: int) -> None:
    word = _word(text)
    with pytest.raises(ReadError) as info:
        g_command(word) if word.letter == "G" else m_command(word)
    assert info.value.code == error


def test_eight_bit_command_numbers_wrap_as_on_avr() -> None:
    assert split_number(266.0) == (10, 25600)  # error:23 on GRBL
    assert split_number(16394.0) == (10, 0)  # G10 on GRBL: the guard refuses it as out of range
    assert g_command(_word("G16394")) == "G10"


@pytest.mark.parametrize(
    ("line", "kind", "number", "value", "body"),
    [
        ("$100=1", "$x=", 100, 1.0, ""),
        ("$+10=2", "$x=", 10, 2.0, ""),
        ("$10.0=2", "$x=", 10, 2.0, ""),
        ("$.5=10", "$x=", 0, 10.0, ""),
        ("$N0=G0X500Y500", "$Nx=", 0, None, "G0X500Y500"),
        ("$N+1.7=M3", "$Nx=", 1, None, "M3"),
        ("$N0=", "$Nx=", 0, None, ""),
        ("$J=G91X10F600", "$J=", None, None, "G91X10F600"),
        ("$RST=*", "$RST=", None, None, "*"),
        ("$I=x", "$I=", None, None, "x"),
        ("$H", "$H", None, None, ""),
        ("$SLP", "$SLP", None, None, ""),
        ("$C", "$C", None, None, ""),
        ("$X", "$X", None, None, ""),
        ("$", "$", None, None, ""),
    ],
)
def test_system_lines_are_system_c(
    line: str, kind: str, number: int | None, value: float | None, body: str
) -> None:
    command = classify_system(line)
    assert (command.kind, command.number, command.value, command.body) == (
        kind, number, value, body)


@pytest.mark.parametrize(
    ("line", "error"),
    [("$J", 3), ("$JX", 3), ("$CX", 3), ("$XX", 3), ("$SL", 3), ("$RST=A", 3), ("$A=1", 2),
     ("$10", 3), ("$10=", 2), ("$10=1X", 3), ("$256=1", 3), ("$NX=G0", 2), ("$N0G0", 3)],
)
def test_system_lines_grbl_refuses(line: str, error: int) -> None:
    command = classify_system(line)
    assert (command.kind, command.error_code) == (None, error)


# -- the allowlist's parameter rules and the profile model ------------------------------------


def _profile_with(**allowlist: Any) -> GrblProfile:
    data = GENERIC.model_dump(mode="python")
    data["allowlist"] = {**data["allowlist"], **allowlist}
    profile = parse_profile(data)
    assert isinstance(profile, GrblProfile)
    return profile


def test_g10_only_with_the_l_values_the_profile_names() -> None:
    profile = _profile_with(g=[*GENERIC.allowlist.g, "G10"], params={"G10": {"L": [20]}})
    assert prepare_grbl_program("G10 L20 P1 X0\n", profile).lines == ("G10L20P1X0",)
    assert prepare_grbl_program("G10 L20.9 P1 X0\n", profile).lines == ("G10L20.9P1X0",)
    for line in ("G10 L2 P1 X0", "G10 L02 P1 X0", "G10 L2.5 P1 X0", "L2 G10 P1 X0",
                 "G10 P1 X0", "G10 L276 P1 X0"):
        with pytest.raises(ProgramError) as info:
            prepare_grbl_program(f"G21\n{line}\n", profile)
        assert (info.value.code, info.value.line) == ("blocked_instruction", 2), line
        assert "only with L in [20]" in info.value.message


def test_jog_and_startup_bodies_are_checked_when_allowed() -> None:
    profile = _profile_with(system=["$J=", "$Nx="])
    assert prepare_grbl_program("$J=G91X10F600\n", profile).lines == ("$J=G91X10F600",)
    for line in ("$J=G53G28.1X0F100", "$N0=G10L2P1X0", "$N1=M0"):
        with pytest.raises(ProgramError) as info:
            prepare_grbl_program(line, profile)
        assert info.value.code == "blocked_instruction", line
        assert " in $" in info.value.message


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"g": ["G0", "G01"]}, "G01"),
        ({"g": ["G0", "G5"]}, "G5"),
        ({"m": ["M6"]}, "M6"),
        ({"system": ["$Z"]}, "$Z"),
        ({"g": ["G0", "G10"]}, "params.G10.L"),
        ({"g": ["G0", "G10"], "params": {"G10": {"L": [3]}}}, "GRBL takes only [2, 20]"),
        ({"params": {"G10": {"L": [20]}}}, "not in the allowlist"),
        ({"params": {"G1": {"Q": [1]}}}, "not a GRBL parameter word"),
    ],
)
def test_profile_allowlist_is_validated(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError) as info:
        _profile_with(**change)
    assert complaint in info.value.message


def test_grbl_profiles_take_no_regex_blocklist_and_need_an_allowlist() -> None:
    data = GENERIC.model_dump(mode="python")
    data["blocked"] = {"patterns": ["^\\$H$"], "allow": []}
    with pytest.raises(ConfigError) as info:
        parse_profile(data)
    assert "[allowlist]" in info.value.message
    del data["blocked"]
    del data["allowlist"]
    with pytest.raises(ConfigError) as info:
        parse_profile(data)
    assert "allowlist" in info.value.message


def test_shipped_allowlists_keep_m0_m1_and_eeprom_writers_out() -> None:
    for profile in SHIPPED:
        allowed = set(profile.allowlist.g) | set(profile.allowlist.m)
        assert not allowed & {"M0", "M1", "G10", "G28.1", "G30.1", "G92", "G53", "G28", "G30"}
        assert profile.allowlist.system == ()
    knife = _grbl("grbl-knife")
    assert "M4" not in knife.allowlist.m  # no laser on a knife table


# -- line breaks (all dialects) ---------------------------------------------------------------

SEPARATORS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("sep", SEPARATORS, ids=[f"U+{ord(s):04X}" for s in SEPARATORS])
def test_gcode_refuses_other_line_breaks_where_they_stand(sep: str) -> None:
    program = f"G21\r\nG0 X1\nG0 X2{sep}$H\nG0 X3\n"
    with pytest.raises(LineBreakError) as info:
        prepare_grbl_program(program, GENERIC)
    assert (info.value.code, info.value.line, info.value.column) == ("bad_line_break", 3, 6)
    assert info.value.message.startswith("line 3, column 6: ")
    with pytest.raises(LineBreakError):
        list(iter_program_lines(program))


@pytest.mark.parametrize("sep", SEPARATORS[1:], ids=[f"U+{ord(s):04X}" for s in SEPARATORS[1:]])
def test_hpgl_refuses_other_line_breaks_where_they_stand(sep: str) -> None:
    profile = load_profile("hpgl-7475a")
    assert isinstance(profile, HpglProfile)
    program = f"IN;\rSP1;\r\nPU0,0;\nPD40,40{sep};\n"
    with pytest.raises(LineBreakError) as info:
        prepare_hpgl_program(program, profile)
    assert (info.value.code, info.value.line, info.value.column) == ("bad_line_break", 4, 8)


def test_hpgl_counts_a_lone_cr_as_a_line() -> None:
    profile = load_profile("hpgl-7475a")
    assert isinstance(profile, HpglProfile)
    with pytest.raises(ProgramError) as info:
        prepare_hpgl_program("IN;\rSP1;\r\nPU0,0;\rOS;\r", profile)
    assert (info.value.code, info.value.line) == ("blocked_instruction", 4)


def test_crlf_and_lf_keep_line_numbers() -> None:
    assert list(iter_program_lines("a\r\nb\n\r\nc\r\n")) == [(1, "a"), (2, "b"), (3, ""),
                                                                (4, "c")]
    with pytest.raises(ProgramError) as info:
        prepare_grbl_program("G21\r\n\r\nG0 X1\r\n$/H\r\n", GENERIC)
    assert (info.value.code, info.value.line) == ("blocked_instruction", 4)
