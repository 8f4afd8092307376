"""The Marlin protocol without a port: bytes in, bytes and events out."""

from __future__ import annotations

import random
import re
from collections import deque

import pytest

from agent.dialects.marlin import checksum
from agent.transport.marlin_flow import (
    BusyReply,
    ErrorKind,
    ErrorReply,
    EventKind,
    FirmwareCaps,
    FlowEvent,
    MarlinFlow,
    OkReply,
    Phase,
    ResendReply,
    TemperatureReply,
    UnknownCommandReply,
    parse_reply,
)
from tests.marlin.conftest import marlin_profile, sleeve_program

SETTINGS = marlin_profile().marlin
FRAMED = re.compile(rb"N(\d+) (.*?)\*(\d+)\n")
PLAIN = FirmwareCaps()
BUSY = FirmwareCaps(capabilities={"BUSY_PROTOCOL": True})


def sent(data: bytes) -> list[tuple[int, str]]:
    """(N, command) of every framed line in ``data``, checking each checksum."""
    out = []
    for m in FRAMED.finditer(data):
        body = data[m.start():m.start(3) - 1]
        assert int(m.group(3)) == checksum(body)
        out.append((int(m.group(1)), m.group(2).decode()))
    return out


def synced(lines: tuple[str, ...], caps: FirmwareCaps = PLAIN, ok: bytes = b"ok\n",
           **settings: object) -> tuple[MarlinFlow, list[tuple[int, str]]]:
    flow = MarlinFlow(lines, SETTINGS.model_copy(update=settings), caps, now=0.0)
    assert sent(flow.output()) == [(0, "M110 N0")]
    assert flow.output() == b""  # nothing numbered before the M110 ok
    flow.receive(ok, 0.0)
    return flow, sent(flow.output())


def phase_of(flow: MarlinFlow) -> Phase:
    """The flow's phase (a call, so the type checker does not narrow it between inputs)."""
    return flow.phase


def events(flow: MarlinFlow, kind: EventKind) -> list[FlowEvent]:
    return [e for e in flow.take_events() if e.kind is kind]


# -- replies -----------------------------------------------------------------------------------


def test_replies_are_typed() -> None:
    assert parse_reply("ok") == OkReply()
    assert parse_reply("ok N5 P15 B3") == OkReply(line=5, planner_free=15, queue_free=3)
    m105 = parse_reply("ok T:201.3 /210.0 B:59.8 /60.0 @:127 B@:0")
    assert isinstance(m105, OkReply)
    assert m105.temperatures == {"T": (201.3, 210.0), "B": (59.8, 60.0)}
    assert parse_reply("Resend: 12") == ResendReply(12)
    assert parse_reply("rs 7") == ResendReply(7)
    err = parse_reply("Error:checksum mismatch, Last Line: 4")
    assert isinstance(err, ErrorReply)
    assert err.kind is ErrorKind.TRANSMISSION
    killed = parse_reply("Error:Printer halted. kill() called!")
    assert isinstance(killed, ErrorReply)
    assert killed.kind is ErrorKind.KILLED
    other = parse_reply("Error:Hotend heating failed")
    assert isinstance(other, ErrorReply)
    assert other.kind is ErrorKind.OTHER
    assert isinstance(parse_reply("echo:busy: processing"), BusyReply)
    assert isinstance(parse_reply("busy: processing"), BusyReply)
    assert isinstance(parse_reply("T:21.0 /0.0 B:20.5 /0.0 @:0 B@:0"), TemperatureReply)
    assert parse_reply('echo:Unknown command: "M42 P4"') == UnknownCommandReply("M42 P4")


def test_m115_lines_fill_the_capabilities() -> None:
    caps = FirmwareCaps()
    assert caps.take_line("FIRMWARE_NAME:Marlin 2.1.2.1 (Github) SOURCE_CODE_URL:github.com/"
                          "MarlinFirmware/Marlin PROTOCOL_VERSION:1.0 MACHINE_TYPE:Cutter")
    assert caps.take_line("Cap:AUTOREPORT_TEMP:1")
    assert caps.take_line("Cap:EMERGENCY_PARSER:0")
    assert not caps.take_line("echo:SD card ok")
    assert caps.fields["FIRMWARE_NAME"] == "Marlin 2.1.2.1 (Github)"
    assert caps.fields["MACHINE_TYPE"] == "Cutter"
    assert caps.has("AUTOREPORT_TEMP")
    assert not caps.has("EMERGENCY_PARSER")


# -- window ------------------------------------------------------------------------------------


def framed_sizes(lines: list[tuple[int, str]]) -> list[int]:
    return [len(f"N{n} {c}*{checksum(f'N{n} {c}'.encode())}\n") for n, c in lines]


def test_without_advanced_ok_every_unacknowledged_line_counts_in_the_receive_buffer() -> None:
    # Marlin takes lines out of its receive buffer only between commands: nothing may be
    # assumed to be in the queue, so all unacknowledged bytes must fit 127 bytes.
    lines = sleeve_program(200)
    flow, first = synced(lines)
    assert [n for n, _ in first] == list(range(1, len(first) + 1))
    assert sum(framed_sizes(first)) <= 127
    nxt = len(f"N{len(first) + 1} {lines[len(first)]}*00\n")
    assert sum(framed_sizes(first)) + nxt > 127
    flow.receive(b"ok\n", 0.01)
    more = sent(flow.output())
    assert more
    assert more[0][0] == len(first) + 1
    assert sum(framed_sizes(first[1:] + more)) <= 127
    assert flow.acknowledged == 1


def test_stop_and_wait_keeps_one_line_in_flight() -> None:
    flow, first = synced(sleeve_program(20), stop_and_wait=True)
    assert len(first) == 1
    flow.receive(b"ok\n", 0.01)
    assert [n for n, _ in sent(flow.output())] == [2]


def test_advanced_ok_b_field_takes_queued_lines_out_of_the_count() -> None:
    lines = sleeve_program(200)
    _, plain = synced(lines)
    flow, first = synced(lines, caps=FirmwareCaps(advanced_ok=True), ok=b"ok N0 P15 B3\n")
    # Nothing is known to be in the queue yet: the same bytes as without ADVANCED_OK.
    assert first == plain
    # N1's ok with B0: the queue held N1 and the three lines after it when it answered.
    flow.receive(b"ok N1 P15 B0\n", 0.01)
    more = sent(flow.output())
    assert sum(framed_sizes([*first, *more][4:])) <= 127
    nxt = len(f"N{len(first) + len(more) + 1} {lines[len(first) + len(more)]}*00\n")
    assert sum(framed_sizes([*first, *more][4:])) + nxt > 127
    # The same ok with B3 (only N1 was queued) frees one line's bytes only.
    other, _ = synced(lines, caps=FirmwareCaps(advanced_ok=True), ok=b"ok N0 P15 B3\n")
    other.receive(b"ok N1 P15 B3\n", 0.01)
    fewer = sent(other.output())
    assert len(fewer) < len(more)
    assert sum(framed_sizes([*first, *fewer][1:])) <= 127


def test_advanced_ok_queue_report_never_counts_beyond_the_firmware_bufsize() -> None:
    # "ok N0 P15 B1": only M110 was queued, so BUFSIZE is 2: a later B0 means 1 line after k.
    lines = sleeve_program(200)
    flow, first = synced(lines, caps=FirmwareCaps(advanced_ok=True), ok=b"ok N0 P15 B1\n")
    flow.receive(b"ok N1 P15 B0\n", 0.01)
    more = sent(flow.output())
    assert sum(framed_sizes([*first, *more][2:])) <= 127


def test_advanced_ok_covers_a_lost_ok() -> None:
    flow, _first = synced(sleeve_program(50), caps=FirmwareCaps(advanced_ok=True),
                         ok=b"ok N0 P15 B3\n")
    flow.receive(b"ok N1 P15 B3\n", 0.01)
    # N2's ok never came; N3's says both ran.
    flow.receive(b"ok N3 P15 B3\n", 0.02)
    assert flow.acknowledged == 3
    # An ok without N (after a resend, or for an unnumbered line) is never ours.
    flow.receive(b"ok P15 B3\n", 0.03)
    assert flow.acknowledged == 3


def answer_all(flow: MarlinFlow, first: list[tuple[int, str]], *, lose: int = -1,
               now: float = 0.01) -> None:
    """Answer every line as the firmware would (M105 with T:), losing the ok of line ``lose``."""
    waiting = list(first)
    while waiting and flow.phase is Phase.STREAMING:
        n, command = waiting.pop(0)
        if command == "M105":
            flow.receive(b"ok T:22.0 /0.0 B:22.0 /0.0 @:0 B@:0\n", now)
        elif n != lose:
            flow.receive(b"ok\n", now)
        waiting += sent(flow.output())


def test_plain_ok_count_is_resynchronised_by_an_m105_answer() -> None:
    lines = sleeve_program(30)
    flow, first = synced(lines, caps=BUSY)
    answer_all(flow, first, lose=5)
    assert flow.phase is Phase.DONE
    assert flow.acknowledged == len(lines)
    assert events(flow, EventKind.DONE)


def test_plain_ok_while_an_m105_is_oldest_is_ignored() -> None:
    lines = ("G21", "G90", "M107")
    flow, first = synced(lines)
    assert [c for _, c in first] == [*lines, "M400", "M105"]
    flow.receive(b"ok\n" * 4, 0.01)  # 3 lines and the fence
    assert flow.acknowledged == 3
    flow.receive(b"ok\n", 0.02)  # spurious: the barrier M105 is answered with T: only
    assert phase_of(flow) is Phase.STREAMING
    flow.receive(b"ok T:22.0 /0.0\n", 0.03)
    assert phase_of(flow) is Phase.DONE


# -- resends ------------------------------------------------------------------------------------


def test_resend_rewinds_ignores_duplicates_and_skips_the_extra_ok() -> None:
    lines = sleeve_program(100)
    flow, first = synced(lines)
    last = first[-1][0]
    assert last >= 6
    assert [n for n, _ in first] == list(range(1, last + 1))
    flow.receive(b"ok\n", 0.01)  # N1 ran
    flow.output()
    last_sent = flow.last_sent_number
    # N2 arrived damaged: the firmware wants N2 again and flushed what followed.
    flow.receive(b"Error:checksum mismatch, Last Line: 1\nResend: 2\nok\n", 0.02)
    assert flow.acknowledged == 1  # the ok after Resend is not a line's
    assert [n for n, _ in sent(flow.output())] == [2]
    # Every line sent after N2 before the rewind is refused in turn: one request each.
    duplicates = last_sent - 2
    for _ in range(duplicates - 1):
        flow.receive(b"Error:Line Number is not Last Line Number+1, Last Line: 1\n"
                     b"Resend: 2\nok\n", 0.03)
        assert flow.output() == b""  # no copy per duplicate, nothing new meanwhile
    flow.receive(b"Error:Line Number is not Last Line Number+1, Last Line: 1\nResend: 2\nok\n",
                 0.04)
    after = sent(flow.output())
    assert after
    assert after[0][0] == 3  # the window opens again after the last duplicate
    flow.receive(b"ok\nok\n", 0.05)
    assert flow.acknowledged == 3


def test_resend_outside_the_history_fails_clearly() -> None:
    lines = sleeve_program(200)
    flow, _first = synced(lines, history_lines=16)
    for _ in range(60):
        flow.receive(b"ok\n", 0.01)
        flow.output()
    flow.receive(b"Resend: 3\n", 0.02)
    failed = events(flow, EventKind.FAILED)
    assert failed
    assert failed[0].error is not None
    assert failed[0].error.code == "resend_out_of_history"
    assert flow.output() == b""


def test_resend_of_a_line_never_sent_fails_clearly() -> None:
    flow, _first = synced(sleeve_program(50))
    flow.receive(b"Resend: 500\n", 0.01)
    failed = events(flow, EventKind.FAILED)
    assert failed[0].error is not None
    assert failed[0].error.code == "resend_out_of_history"


def test_a_line_requested_again_and_again_fails_with_resend_loop() -> None:
    flow, _first = synced(sleeve_program(50), stop_and_wait=True, max_resends_per_line=3)
    for i in range(4):
        flow.receive(b"Error:checksum mismatch, Last Line: 0\nResend: 1\nok\n", 0.01 * i)
        flow.output()
    failed = events(flow, EventKind.FAILED)
    assert failed[0].error is not None
    assert failed[0].error.code == "resend_loop"
    assert failed[0].error.line == 1


# -- errors, warnings, timeouts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (b"Error:Hotend heating failed\n", "device_error"),
        (b"Error:Thermal Runaway, system stopped! Heater_ID: 0\n", "device_killed"),
        (b"!! emergency stop\n", "device_killed"),
    ],
)
def test_firmware_errors_fail_the_job_with_its_text(reply: bytes, code: str) -> None:
    flow, _first = synced(sleeve_program(50))
    flow.receive(b"ok\nok\n", 0.01)
    flow.receive(reply, 0.02)
    failed = events(flow, EventKind.FAILED)
    assert failed[0].error is not None
    assert failed[0].error.code == code
    assert failed[0].error.line == 3  # the line the firmware was on
    assert reply.decode().strip().lstrip("!").strip()[-10:] in failed[0].error.message
    assert flow.output() == b""


def test_unknown_command_is_a_warning() -> None:
    flow, _first = synced(("M42 P4 S255", "G1 X10 Y10"))
    flow.receive(b'echo:Unknown command: "M42 P4 S255"\nok\n', 0.01)
    warnings = events(flow, EventKind.WARNING)
    assert warnings[0].detail["code"] == "unknown_command"
    assert warnings[0].detail["line"] == 1
    assert flow.phase is Phase.STREAMING


def test_busy_extends_the_timeout_then_one_probe_then_device_timeout() -> None:
    flow, _first = synced(sleeve_program(20), caps=BUSY, response_timeout_s=3.0)
    limit = 2.5 * SETTINGS.keepalive_interval_s
    flow.tick(limit - 0.1)
    flow.receive(b"echo:busy: processing\n", limit - 0.1)
    flow.tick(2 * limit - 0.2)
    assert flow.output() == b""
    flow.tick(2 * limit)
    probe = sent(flow.output())
    assert [c for _, c in probe] == ["M105"]
    flow.tick(2 * limit + 2.9)
    assert not events(flow, EventKind.FAILED)
    flow.tick(2 * limit + 3.0)
    failed = events(flow, EventKind.FAILED)
    assert failed[0].error is not None
    assert failed[0].error.code == "device_timeout"
    assert isinstance(failed[0].error, TimeoutError)


def test_long_commands_have_their_own_allowance() -> None:
    lines = ("M109 S210", "G28", "G1 X10 Y10")
    flow, first = synced(lines, response_timeout_s=1.0)  # no BUSY_PROTOCOL
    # The window holds at M109 (an M105 follows it to settle the ok count).
    assert [c for _, c in first] == ["M109 S210", "M105"]
    flow.tick(600.0)  # M109 may wait 1200 s
    assert flow.output() == b""
    flow.receive(b"ok\n", 600.0)  # M109 done; G28 (180 s) goes out and holds in its turn
    assert [c for _, c in sent(flow.output())] == ["G28", "M105"]
    flow.receive(b"ok T:210.0 /210.0\n", 600.0)
    flow.tick(750.0)
    assert flow.output() == b""
    flow.receive(b"ok\n", 760.0)  # G28 done; a G1 has only response_timeout_s
    assert [c for _, c in sent(flow.output())] == ["G1 X10 Y10", "M400", "M105"]
    flow.receive(b"ok T:210.0 /210.0\n", 760.0)
    flow.tick(761.1)
    assert [c for _, c in sent(flow.output())] == ["M105"]


def test_pause_during_a_heat_up_holds_the_moves_behind_it() -> None:
    # Issue 14: M109 then two moves; pause during the heat-up, cancel: the moves never go out.
    lines = ("M109 S150", "G1 X10 Y10 F3000", "G1 X20 Y10")
    for caps, ok in ((PLAIN, b"ok\n"), (FirmwareCaps(advanced_ok=True), b"ok N0 P15 B3\n")):
        flow, first = synced(lines, caps=caps, ok=ok)
        assert "G1 X10 Y10 F3000" not in [c for _, c in first]
        flow.pause()
        flow.receive(b"ok\n" if caps is PLAIN else b"ok N1 P15 B3\n", 2.0)  # heat-up done
        assert flow.acknowledged == 1
        assert flow.output() == b""
        flow.cancel()
        rest = [c for _, c in sent(flow.output())]
        assert not any(c.startswith("G1") for c in rest)
        assert rest[0] == SETTINGS.cancel_sequence[0]


def test_g4_allowance_is_its_duration() -> None:
    flow, _first = synced(("G4 S30", "G1 X1 Y1"), response_timeout_s=1.0)
    flow.tick(30.5)
    assert flow.output() == b""
    flow.tick(31.1)
    assert [c for _, c in sent(flow.output())] == ["M105"]


# -- operator actions ---------------------------------------------------------------------------


def test_pause_stops_feeding_and_resume_continues() -> None:
    flow, first = synced(sleeve_program(100))
    flow.pause()
    flow.receive(b"ok\nok\n", 0.01)
    assert flow.output() == b""
    flow.resume()
    assert sent(flow.output())[0][0] == len(first) + 1


def test_cancel_sends_the_cancel_sequence_instead_of_the_rest() -> None:
    lines = sleeve_program(100)
    flow, first = synced(lines)
    flow.receive(b"ok\n", 0.01)
    before = sent(flow.output())
    flow.cancel()
    after: list[str] = []
    for _ in range(len(first) + len(before)):
        flow.receive(b"ok\n", 0.02)
        after += [c for _, c in sent(flow.output())]
    cancel = list(SETTINGS.cancel_sequence)
    assert after[: len(cancel)] == cancel
    assert after[len(cancel):] == ["M400", "M105"]
    flow.receive(b"ok\n" * 20, 0.03)
    flow.receive(b"ok T:22 /0\n", 0.04)
    assert flow.phase is Phase.STOPPED
    assert events(flow, EventKind.STOPPED)


def test_cancel_after_a_resend_drops_refused_program_lines() -> None:
    lines = sleeve_program(100)
    flow, _first = synced(lines)
    flow.cancel()
    flow.receive(b"Error:checksum mismatch, Last Line: 0\nResend: 1\nok\n", 0.01)
    again = [c for _, c in sent(flow.output())]
    assert again[0] == SETTINGS.cancel_sequence[0]  # N1 now carries the cancel sequence


# -- a whole job against a small firmware model, with noise -------------------------------------


class TinyMarlin:
    """Marlin's line checks, queue and receive buffer, synchronous, with a noisy wire."""

    def __init__(self, rng: random.Random, corrupt: float, drop_ok: float) -> None:
        self.rng, self.corrupt, self.drop_ok = rng, corrupt, drop_ok
        self.last_n = 0
        self.rx = bytearray()
        self.queue: deque[tuple[str, int | None]] = deque()
        self.executed: list[str] = []
        self.out = bytearray()
        self.overflows = 0

    def say(self, text: str, *, is_ok: bool = False) -> None:
        if is_ok and self.rng.random() < self.drop_ok:
            return
        self.out += text.encode() + b"\n"

    def receive(self, data: bytes) -> None:
        for raw in data.splitlines(keepends=True):
            line = raw
            if self.rng.random() < self.corrupt:
                damaged = bytearray(raw)
                damaged[self.rng.randrange(len(raw) - 1)] ^= 1 << self.rng.randrange(7)
                line = bytes(damaged)
            free = 127 - len(self.rx)
            if len(line) > free:
                self.overflows += 1
            self.rx += line[:free]
            self.pump()

    def pump(self) -> None:
        while len(self.queue) < 4 and b"\n" in self.rx:
            raw, _, rest = bytes(self.rx).partition(b"\n")
            self.rx = bytearray(rest)
            self.take(raw.decode("ascii", "replace").strip())

    def error(self, text: str) -> None:
        self.say(f"Error:{text}, Last Line: {self.last_n}")
        self.rx.clear()
        self.say(f"Resend: {self.last_n + 1}")
        self.say("ok", is_ok=True)

    def take(self, line: str) -> None:
        m = re.fullmatch(r"N(\d+) (.*)\*(\d+)", line)
        if m is None:
            self.error("No Checksum with line number")
            return
        n, command = int(m.group(1)), m.group(2)
        if command.startswith("M110"):
            n = 0
        elif n != self.last_n + 1:
            self.error("Line Number is not Last Line Number+1")
            return
        if int(m.group(3)) != checksum(line[: line.rindex("*")].encode()):
            self.error("checksum mismatch")
            return
        self.last_n = n
        self.queue.append((command, n))

    def run(self, count: int) -> None:
        for _ in range(count):
            if not self.queue:
                break
            command, _ = self.queue.popleft()
            self.executed.append(command)
            if command == "M105":
                self.say("ok T:22.0 /0.0 B:21.0 /0.0 @:0 B@:0", is_ok=True)
            else:
                self.say("ok", is_ok=True)
            self.pump()

    def take_output(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_noisy_job_against_the_model_runs_every_line_once(seed: int) -> None:
    rng = random.Random(seed)
    lines = sleeve_program(1500)
    board = TinyMarlin(rng, corrupt=0.02, drop_ok=0.005)
    flow = MarlinFlow(lines, SETTINGS, BUSY, now=0.0)
    now = 0.0
    for _ in range(200_000):
        board.receive(flow.output())
        board.run(rng.randrange(0, 4))
        flow.receive(board.take_output(), now)
        now += 0.002
        flow.tick(now)
        if flow.phase is not Phase.SYNCING and flow.phase is not Phase.STREAMING:
            break
    assert flow.phase is Phase.DONE, [e.error for e in flow.take_events() if e.error]
    program = [c for c in board.executed if c not in ("M110 N0", "M105", "M400")]
    assert program == list(lines)
    assert flow.acknowledged == len(lines)
    assert board.overflows == 0


def test_advanced_ok_shrinks_the_window_for_slots_taken_by_others() -> None:
    lines = sleeve_program(300)
    flow, first = synced(lines, caps=FirmwareCaps(advanced_ok=True), ok=b"ok N0 P15 B3\n")
    flow.pause()
    last = first[-1][0]
    for k in range(1, last - 1):
        flow.receive(b"ok N%d P15 B3\n" % k, 0.01)
    # Two of our lines are left, yet the report shows the queue full: two slots hold commands
    # that are not ours (an LCD menu, an SD print macro).
    flow.receive(b"ok N%d P15 B0\n" % (last - 1), 0.02)
    flow.resume()
    more = sent(flow.output())
    in_flight = [first[-1], *more]
    framed = [len(f"N{n} {c}*{checksum(f'N{n} {c}'.encode())}\n") for n, c in in_flight]
    # Only 4 - 2 = 2 lines are taken to be in the queue; the rest must fit the 127 bytes.
    assert sum(framed[2:]) <= 127
    _, unpaused = synced(lines, caps=FirmwareCaps(advanced_ok=True), ok=b"ok N0 P15 B3\n")
    assert len(in_flight) < len(unpaused)


def test_start_index_resumes_a_job_part_way() -> None:
    lines = sleeve_program(50)
    flow = MarlinFlow(lines, SETTINGS, PLAIN, start_index=20, now=0.0)
    flow.output()
    flow.receive(b"ok\n", 0.0)
    first = sent(flow.output())
    assert first[0] == (1, lines[20])
    flow.receive(b"ok\n", 0.01)
    assert flow.acknowledged == 21
