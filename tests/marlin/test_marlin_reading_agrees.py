"""What the guard accepts, the firmware reads the same way: the dialect's strict reader and the
emulator's model of Marlin's parser agree on every accepted line, in the job's own spelling and
in the canonical line the agent sends."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.dialects.marlin import prepare_line
from agent.emulators.marlin import parse_command, stream_line
from agent.errors import ProgramError
from agent.reading.marlin import read_command, read_params
from tests.marlin.conftest import marlin_profile

PROFILE = marlin_profile()

_spaces = st.text(alphabet=" ", max_size=2)
_number = st.from_regex(r"[+-]?(\d{1,4}(\.\d{0,3})?|\.\d{1,3})", fullmatch=True)
_letter = st.sampled_from("XYZEFSPIJRxyzefspBT?")
_word = st.tuples(_letter, _spaces, st.one_of(_number, st.just(""))).map("".join)
_command = st.tuples(
    st.sampled_from("GgMmT"),
    _spaces,
    st.text(alphabet="0", max_size=2),
    st.sampled_from(["0", "1", "2", "4", "17", "21", "90", "92", "94", "3", "5", "104", "106",
                     "107", "118", "28", "400", "1.0", "1.5"]),
).map("".join)
_line = st.tuples(
    _spaces,
    _command,
    st.lists(st.tuples(_spaces, _word).map("".join), max_size=4),
    st.one_of(st.just(""), st.just(" ; note"), st.just(" (note)")),
).map(lambda t: t[0] + t[1] + "".join(t[2]) + t[3])



@st.composite
def _allowed_line(draw: st.DrawFn) -> str:
    """A line of an allowed command with allowed letters, spelled in the ways Marlin accepts."""
    name = draw(st.sampled_from(sorted(PROFILE.commands)))
    rule = PROFILE.commands[name]
    letters = draw(st.lists(st.sampled_from(rule.params), unique=True)) if rule.params else []
    words = []
    for letter in letters:
        low = rule.min.get(letter, -1000.0)
        high = rule.max.get(letter, 1000.0)
        value = draw(st.floats(low, high, allow_nan=False).map(lambda v: f"{v:.3f}"))
        value = value.rstrip("0").rstrip(".") if draw(st.booleans()) else value
        spelled = draw(st.sampled_from([letter, letter.lower()]))
        # A number directly followed by E or X is refused on purpose (exponent or hex).
        gap = " " if letter in "EX" else ""
        words.append(gap + draw(_spaces) + spelled + draw(_spaces) + value)
    head = draw(st.sampled_from([name[0], name[0].lower()])) + draw(_spaces)
    head += draw(st.text(alphabet="0", max_size=2)) + name[1:]
    return draw(_spaces) + head + " " + "".join(words)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_line, _allowed_line()))
def test_accepted_lines_mean_the_same_to_the_firmware(raw: str) -> None:
    try:
        sent = prepare_line(raw, 1, PROFILE)
    except ProgramError:
        return
    command = read_command(stream_line(raw, paren_comments=True), 1)
    assert command is not None
    params = read_params(command, 1)
    # The job's own spelling (comments removed) and the line the agent sends, as Marlin reads them.
    for text in (stream_line(raw, paren_comments=True), sent):
        firmware = parse_command(text)
        assert firmware.word == command.firmware_name.split(".")[0], (raw, text)
        assert firmware.subcode == command.subcode, (raw, text)
        assert set(firmware.params) == {letter for letter, _ in params}, (raw, text)
        for letter, value in params:
            if value is None:
                assert firmware.params[letter] is None, (raw, text, letter)
            else:
                assert firmware.value_float(letter) == float(value), (raw, text, letter)


@settings(max_examples=100, deadline=None)
@given(_allowed_line())
def test_the_generator_reaches_accepted_lines(raw: str) -> None:
    # The property above is not vacuous: the lines it draws from the allowlist are accepted.
    assert prepare_line(raw, 1, PROFILE)
