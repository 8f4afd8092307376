"""Issue 13 against the Marlin dialect: every attack line is refused by name, however written."""

from __future__ import annotations

from typing import Any

import pytest

from agent.dialects.marlin import prepare_marlin_program
from agent.errors import ConfigError, ProgramError
from agent.profiles import load_profile, parse_profile
from agent.profiles.marlin import MarlinProfile
from agent.reading.marlin_allowlist import RESERVED_COMMANDS
from tests.marlin.conftest import marlin_profile

# (line as the attacker wrote it, the command Marlin would run)
ATTACKS: list[tuple[str, str]] = [
    # Forged replies: the firmware prints M118's text as it is.
    ("M118 ok T:20.0 /0.0 B:20.0 /0.0 @:0 B@:0", "M118"),
    ("M118 start", "M118"),
    ("M118 E1 ok", "M118"),
    ("M118 A1 action:cancel", "M118"),
    ("M118 P0 Resend: 1", "M118"),
    ("M118 Error:Printer halted. kill() called!", "M118"),
    (" m118 ok", "M118"),
    ("M0118 ok", "M118"),
    ("M000118 ok", "M118"),
    ("M 118 ok", "M118"),
    ("M118ok", "M118"),
    ("\tM118 ok", "M118"),
    ("m118 ok ; just a note", "M118"),
    ("M118 ok (note)", "M118"),
    ("N5 M118 ok*12", "M118"),
    ("M118 ok*T:20.0", "M118"),
    ("n5 m118 ok", "M118"),
    ("N5M118 ok", "M118"),
    ("M65654 ok", "M118"),  # 65654 = 65536 + 118: Marlin's command number is 16 bits
    ("M117 ok", "M117"),
    ("M117 //action:cancel", "M117"),
    # Machine and link settings.
    ("M575 B9600", "M575"),
    ("m575 b9600", "M575"),
    ("M0575 P0 B250000", "M575"),
    ("M42 P4 S255 I", "M42"),
    ("m42 p4 s255 i", "M42"),
    ("M42 P4 S255", "M42"),
    ("M211 S0", "M211"),
    ("M0211 S0 ; soft endstops off", "M211"),
    ("M92 X80 Y80", "M92"),
    ("M18", "M18"),
    ("m18", "M18"),
    ("M84", "M84"),
    ("M84 X Y", "M84"),
    ("M80", "M80"),
    ("M81", "M81"),
    ("M111 S8", "M111"),
    ("M111 S255", "M111"),
    # Running or writing SD files: lines the agent never checked.
    ("M32 !cut.gco#", "M32"),
    ("M32 P !cut.gco#", "M32"),
    ("M23 cut.gco", "M23"),
    ("M24", "M24"),
    ("m24", "M24"),
    ("M28 cut.gco", "M28"),
    ("M29", "M29"),
    ("M30 cut.gco", "M30"),
    ("M928 log.gco", "M928"),
    ("M810 G28|M118 ok", "M810"),
    # Homing is an operator action.
    ("G28", "G28"),
    ("g28", "G28"),
    ("G028", "G28"),
    ("G 28", "G28"),
    ("G28 X Y", "G28"),
    ("G28 ; home first", "G28"),
    ("N7 G28*99", "G28"),
    # The agent's own protocol and the e-stop path.
    ("M110 N0", "M110"),
    ("M112", "M112"),
    ("M0112", "M112"),
    ("M108", "M108"),
    ("M410", "M410"),
    ("M105", "M105"),
    ("M115", "M115"),
    ("M155 S0", "M155"),
    ("M113 S0", "M113"),
    ("M500", "M500"),
    ("M502", "M502"),
    ("M997", "M997"),
    ("M999", "M999"),
    ("M0 S5 Load fabric", "M0"),
]

WORK_BEFORE = "G21\nG90\n"
WORK_AFTER = "G1 X20 Y20 F3000\nG4 P3000\nG1 X40 Y20\n"


def attack_program(line: str) -> str:
    """The attack line as line 3 of a real job."""
    return WORK_BEFORE + line + "\n" + WORK_AFTER


@pytest.mark.parametrize(("line", "command"), ATTACKS, ids=[a for a, _ in ATTACKS])
def test_attack_line_is_refused_by_name_with_its_line_number(line: str, command: str) -> None:
    with pytest.raises(ProgramError) as info:
        prepare_marlin_program(attack_program(line), marlin_profile())
    assert info.value.code == "blocked_instruction"
    assert info.value.line == 3
    assert info.value.message.startswith("line 3: ")
    assert command in info.value.message


def test_the_work_lines_alone_are_accepted() -> None:
    # The refusals above come from the attack line, not from the work around it.
    program = prepare_marlin_program(WORK_BEFORE + WORK_AFTER, marlin_profile())
    assert program.lines == ("G21", "G90", "G1 X20 Y20 F3000", "G4 P3000", "G1 X40 Y20")


def test_reply_forgers_say_why() -> None:
    with pytest.raises(ProgramError) as info:
        prepare_marlin_program("M118 ok T:20.0", marlin_profile())
    assert "forge" in info.value.message
    with pytest.raises(ProgramError) as info:
        prepare_marlin_program("M65654 ok", marlin_profile())
    assert "would run M118" in info.value.message
    with pytest.raises(ProgramError) as info:
        prepare_marlin_program("G28", marlin_profile())
    assert "operator" in info.value.message


def test_own_line_numbers_and_checksums_are_refused_even_on_allowed_commands() -> None:
    for line in ("N5 G1 X10", "G1 X10*57", "N5 G1 X10*57", "n5 g1 x10", "N5"):
        with pytest.raises(ProgramError) as info:
            prepare_marlin_program(attack_program(line), marlin_profile())
        assert info.value.code == "blocked_instruction", line
        assert info.value.line == 3
        assert "numbers and checksums every line itself" in info.value.message


# -- the profile's allowlist is validated -------------------------------------------------------


def profile_data(**commands: Any) -> dict[str, Any]:
    return {
        "name": "site-marlin",
        "family": "marlin",
        "bed": {"width_mm": 600.0, "height_mm": 400.0},
        "commands": commands,
    }


def test_shipped_profile_has_an_allowlist_and_no_blocked_patterns() -> None:
    profile = load_profile("marlin-2")
    assert isinstance(profile, MarlinProfile)
    assert {"G0", "G1", "G21", "G90", "M400"} <= set(profile.commands)
    assert "G28" not in profile.commands
    assert profile.blocked.patterns == ()
    assert not set(profile.commands) & set(RESERVED_COMMANDS)


@pytest.mark.parametrize("name", ["M118", "M117", "M110", "M28", "M575", "M112", "M815", "M32"])
def test_a_profile_may_never_allow_a_reserved_command(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_profile(profile_data(**{name: {}}))
    assert "may not be allowed by a profile" in str(info.value)
    assert name in str(info.value)


@pytest.mark.parametrize(
    ("commands", "complaint"),
    [
        ({"G01": {}}, "not a command name"),
        ({"g1": {}}, "not a command name"),
        ({"G1.0": {}}, "not a command name"),
        ({"M65654": {}}, "modulo 65536"),
        ({"G29.300": {}}, "modulo 256"),
        ({"G1": {"params": "XN"}}, "cannot be a parameter"),
        ({"G1": {"params": "XG"}}, "cannot be a parameter"),
        ({"G1": {"params": "XX"}}, "twice"),
        ({"G1": {"params": "X", "max": {"F": 10}}}, "not in params"),
        ({"G1": {"params": "X", "flags": "Y"}}, "not in params"),
        ({"G4": {"params": "P", "min": {"P": 10}, "max": {"P": 5}}}, "above max"),
        ({"G4": {"params": "P", "max": {"P": float("inf")}}}, "finite"),
        ({"G1": {"params": "X", "extra": 1}}, "extra"),
    ],
)
def test_bad_allowlist_entries_are_refused_at_load(
    commands: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_profile(profile_data(**commands))
    assert complaint in str(info.value).lower()


def test_blocked_patterns_are_refused_for_marlin() -> None:
    data = profile_data(G1={"params": "XY"})
    data["blocked"] = {"patterns": ["M118.*"]}
    with pytest.raises(ConfigError) as info:
        parse_profile(data)
    assert "[commands]" in str(info.value)


def test_a_site_allowlist_is_used_as_written() -> None:
    profile = parse_profile(profile_data(G1={"params": "XY"}, G28={"params": "XY",
                                                                    "flags": "XY"}))
    assert isinstance(profile, MarlinProfile)
    assert prepare_marlin_program("G28 X Y\nG1 X5 Y5", profile).lines == ("G28 X Y", "G1 X5 Y5")
    with pytest.raises(ProgramError) as info:
        prepare_marlin_program("G1 X5 F100", profile)
    assert "may not carry F" in info.value.message


def test_the_toolpath_compilers_own_lines_must_pass_the_allowlist() -> None:
    base = profile_data(G1={"params": "XYF"}, G0={"params": "XYF"}, G21={}, G90={}, G4={
        "params": "P"}, M5={}, M3={"params": "S", "max": {"S": 255}})
    servo = dict(base, toolpath={"machine": "pen", "speed_mm_s": 50.0, "lift": {
        "method": "servo", "servo_up": "M5", "servo_down": "M280 P0 S90"}})
    with pytest.raises(ConfigError) as info:
        parse_profile(servo)
    assert "lift.servo_down" in str(info.value)
    assert "M280" in str(info.value)
    laser = dict(base, toolpath={"machine": "laser", "speed_mm_s": 20.0, "laser": {
        "s_max": 1000, "dynamic_power": False}})
    with pytest.raises(ConfigError) as info:
        parse_profile(laser)
    assert "laser.s_max" in str(info.value)
    assert "M3 S1000 is outside -inf..255" in str(info.value)
    laser["toolpath"]["laser"]["s_max"] = 255
    assert isinstance(parse_profile(laser), MarlinProfile)


def test_a_carriage_return_inside_a_line_never_smuggles_a_second_command() -> None:
    # Marlin ends a line at CR as well as LF: "G1 X10\rM118 ok" is two commands to it. A lone
    # CR is refused where it stands, before any word is read.
    with pytest.raises(ProgramError) as info:
        prepare_marlin_program("G21\nG1 X10\rM118 ok\nG1 X20\n", marlin_profile())
    assert info.value.code == "bad_line_break"
    assert info.value.line == 2
    assert "column 7" in info.value.message


def test_a_profile_without_commands_allows_nothing() -> None:
    profile = parse_profile(profile_data())
    assert isinstance(profile, MarlinProfile)
    with pytest.raises(ProgramError) as info:
        prepare_marlin_program("G1 X5 Y5", profile)
    assert info.value.code == "blocked_instruction"
    assert "not in the profile's allowlist" in info.value.message
