"""The GRBL wire model, driven with bytes and times alone (no pty, no clock)."""

from __future__ import annotations

from collections import deque

import pytest

from agent.emulators.grbl_wire_model import BANNER, CAUSES, GrblWireModel

BYTE_S = 10 / 115_200
OK = b"ok\r\n"


def _drain(model: GrblWireModel, until: float) -> list[tuple[float, bytes]]:
    """Every reply handed over up to ``until``, at the model's own deadlines."""
    out: list[tuple[float, bytes]] = []
    while (deadline := model.next_deadline()) is not None and deadline <= until:
        out += [(deadline, reply) for reply in model.advance(deadline)]
    return out


class CountingHost:
    """A host that counts characters as interface.md says and answers every ok at once
    (``late_s`` later, as a slow host would)."""

    def __init__(self, model: GrblWireModel, lines: list[bytes], late_s: float = 0.0) -> None:
        self.model = model
        self.lines = lines
        self.late_s = late_s
        self.next = 0
        self.count = 0
        self.in_flight: deque[int] = deque()
        self.oks = 0

    def pump(self, now: float) -> None:
        data = b""
        while (self.next < len(self.lines)
               and self.count + len(self.lines[self.next]) <= 127):
            line = self.lines[self.next]
            self.count += len(line)
            self.in_flight.append(len(line))
            data += line
            self.next += 1
        if data:
            self.model.feed(data, now)

    def run(self, emulator_late_s: float = 0.0) -> None:
        self.pump(0.0)
        while (deadline := self.model.next_deadline()) is not None:
            now = deadline + emulator_late_s
            for reply in self.model.advance(now):
                if reply == OK:
                    self.oks += 1
                    self.count -= self.in_flight.popleft()
            self.pump(now + self.late_s)


def _lines(n: int, size: int = 17) -> list[bytes]:
    body = "G1X{:06.2f}Y100.00" if size == 17 else "G1X{:07.3f}Y100.000F12000"
    lines = [(body.format(100 + i % 800) + "\n").encode() for i in range(n)]
    assert all(len(line) == size for line in lines)
    return lines


def test_bytes_cross_the_wire_one_by_one_and_the_ok_follows_its_delay() -> None:
    model = GrblWireModel(ok_delay_s=0.002)
    line = _lines(1)[0]
    model.feed(line, 1.0)
    replies = _drain(model, 2.0)
    # The newline arrives after 17 byte times, the ok is written 2 ms later and takes 4 byte
    # times to cross back.
    expected = 1.0 + 17 * BYTE_S + 0.002 + 4 * BYTE_S
    assert [reply for _t, reply in replies] == [OK]
    assert replies[0][0] == pytest.approx(expected, abs=1e-9)
    assert model.lines == [line.decode().strip()]


def test_bytes_written_while_others_cross_queue_behind_them() -> None:
    model = GrblWireModel(ok_delay_s=0.0)
    first, second = _lines(2)
    model.feed(first, 0.0)
    model.feed(second, 0.0005)  # the first line is still crossing (17 bytes take 1.48 ms)
    times = [t for t, reply in _drain(model, 1.0) if reply == OK]
    assert times[1] - times[0] == pytest.approx(17 * BYTE_S, abs=1e-9)


def test_every_ok_is_handed_over_on_its_own() -> None:
    model = GrblWireModel(ok_delay_s=0.002)
    model.feed(b"G1X1\nG1X2\nG1X3\n", 0.0)
    replies = model.advance(1.0)  # long after all three are due: still three separate writes
    assert replies == [OK, OK, OK]


def test_a_status_query_is_answered_at_once_ahead_of_oks_not_yet_due() -> None:
    model = GrblWireModel(ok_delay_s=0.010)
    model.feed(b"G1X1\n?", 0.0)
    replies = _drain(model, 1.0)
    assert replies[0][1].startswith(b"<Run|")
    report = replies[0][1]
    assert replies[0][0] == pytest.approx((6 + len(report)) * BYTE_S, abs=1e-9)
    assert replies[1][1] == OK
    assert replies[1][0] > replies[0][0]


def test_a_full_receive_buffer_loses_bytes() -> None:
    model = GrblWireModel()
    model.feed(b"!", 0.0)  # a feed hold: no line is answered, so none leaves the buffer
    lines = b"".join(_lines(10, 25))  # 250 bytes, 123 more than the 127 usable
    model.feed(lines, 0.001)
    model.advance(1.0)
    assert model.lost_bytes == 250 - 127
    assert model.held


def test_a_host_that_counts_loses_nothing_and_fills_the_link() -> None:
    model = GrblWireModel(ok_delay_s=0.002)
    host = CountingHost(model, _lines(2000))
    host.run()
    stats = model.stats()
    assert stats["lost_bytes"] == 0
    assert host.oks == 2000
    assert stats["job"]["lines"] == 2000
    assert stats["job"]["link_share"] == pytest.approx(1.0)


def test_the_idle_time_of_a_slow_host_is_put_down_to_the_host() -> None:
    model = GrblWireModel(ok_delay_s=0.002)
    host = CountingHost(model, _lines(300), late_s=0.012)  # 12 ms late after every ok
    host.run()
    job = model.stats()["job"]
    assert job["link_share"] < 0.9
    assert job["idle_s"]["host_late"] > 0.9 * (job["elapsed_s"] - job["busy_s"])


def test_a_window_too_small_for_the_delay_is_window_full_and_return_wire() -> None:
    model = GrblWireModel(ok_delay_s=0.020)  # 20 ms: far more than 127 bytes of wire time
    host = CountingHost(model, _lines(300))
    host.run()
    job = model.stats()["job"]
    idle = job["idle_s"]
    assert job["link_share"] < 0.6
    assert idle["window_full"] == max(idle.values())
    assert idle["return_wire_busy"] > 0
    assert idle["host_late"] == pytest.approx(0.0, abs=1e-6)


def test_answers_handed_over_late_are_the_emulators_fault() -> None:
    model = GrblWireModel(ok_delay_s=0.020)
    host = CountingHost(model, _lines(200))
    host.run(emulator_late_s=0.003)
    idle = model.stats()["job"]["idle_s"]
    assert idle["emulator_late"] > 0.1
    assert idle["host_late"] == pytest.approx(0.0, abs=1e-6)


def test_a_ring_full_of_a_line_that_never_ends_is_rx_full() -> None:
    model = GrblWireModel(ok_delay_s=0.002)
    model.feed(b"G1X1\n", 0.0)
    model.advance(0.01)
    model.feed(b"X" * 150, 0.01)  # no newline: the host counts nothing, the ring fills
    model.advance(0.05)
    model.feed(b"\n", 0.06)  # the run goes on, so the idle time before it is counted
    model.advance(0.1)
    stats = model.stats()
    assert stats["lost_bytes"] == 150 + 1 - 127  # the newline is lost too: the ring is full
    assert stats["job"]["idle_s"]["rx_full"] > 0.02


def test_busy_and_idle_add_up_to_the_run() -> None:
    model = GrblWireModel(ok_delay_s=0.002)
    CountingHost(model, _lines(500), late_s=0.004).run()
    job = model.stats()["job"]
    assert set(job["idle_s"]) == set(CAUSES)
    assert job["busy_s"] + sum(job["idle_s"].values()) == pytest.approx(job["elapsed_s"],
                                                                          abs=1e-6)


def test_a_long_pause_between_lines_starts_a_new_run() -> None:
    model = GrblWireModel(ok_delay_s=0.002, run_gap_s=0.5)
    model.feed(b"$I\n", 0.0)
    model.advance(0.2)
    model.feed(b"G1X1\n", 0.2)  # within the gap: the same run
    model.advance(2.0)
    model.feed(b"G1X2\n", 2.0)  # after it: a new run
    model.advance(3.0)
    assert [run["lines"] for run in model.stats()["runs"]] == [2, 1]
    assert model.system_commands == ["$I"]
    assert model.lines == ["G1X1", "G1X2"]


def test_soft_reset_empties_the_buffer_and_prints_the_banner() -> None:
    model = GrblWireModel(ok_delay_s=0.050)
    model.feed(b"G1X1\nG1X2\n\x18", 0.0)
    replies = [reply for _t, reply in _drain(model, 1.0)]
    assert replies == [BANNER]  # the lines' answers died with the reset


def test_cycle_start_resumes_answers_after_a_hold() -> None:
    model = GrblWireModel(ok_delay_s=0.002)
    model.feed(b"!G1X1\n", 0.0)
    assert _drain(model, 0.5) == []
    model.feed(b"~", 0.5)
    assert [reply for _t, reply in _drain(model, 1.0)] == [OK]
