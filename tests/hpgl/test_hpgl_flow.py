"""The HP-GL flow control on its own (sans I/O): framing, answers, and the byte budget."""

from __future__ import annotations

import random
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.profiles.hpgl import HpglFlowControl
from agent.transport.hpgl_flow import (
    ExtendedStatus,
    FlowSignal,
    FreeSpace,
    HpglFlow,
    IoError,
    Position,
    Query,
    ReplyError,
    ReplyFramer,
    Status,
    escape,
    parse_reply,
)


def buffer_flow(capacity: int = 1024, reserve: int = 64) -> HpglFlow:
    return HpglFlow(HpglFlowControl.BUFFER_QUERY, capacity=capacity, reserve=reserve,
                    wire_bytes_per_s=960, wire_window=64)


def test_parameterised_escapes_end_with_a_colon() -> None:
    assert escape("I", 256, None, 17) == b"\x1b.I256;;17:"
    assert escape("N", None, 19) == b"\x1b.N;19:"
    assert escape("@", None, 1) == b"\x1b.@;1:"
    assert Query.FREE_SPACE.wire == b"\x1b.B"
    assert Query.STATUS.wire == b"OS;"


def test_framer_splits_answers_and_flow_signals() -> None:
    framer = ReplyFramer()
    out = list(framer.feed(b"10")) + list(framer.feed(b"24\r\n\x137475A\r\x11"))
    assert out == ["1024", FlowSignal.XOFF, "7475A", FlowSignal.XON]


def test_answers_are_typed_per_query() -> None:
    assert parse_reply(Query.FREE_SPACE, "812") == FreeSpace(812)
    assert parse_reply(Query.IO_ERROR, "16") == IoError(16)
    assert parse_reply(Query.STATUS, "24") == Status(24)
    assert Status(24).initialized
    assert Status(56).error
    ext = parse_reply(Query.EXTENDED_STATUS, "40")
    assert isinstance(ext, ExtendedStatus)
    assert ext.lever_up
    assert ext.buffer_empty
    assert not ext.paused
    assert parse_reply(Query.POSITION, "400,800,1") == Position(400, 800, True)
    for query, text in [(Query.FREE_SPACE, "abc"), (Query.POSITION, "1,2"),
                        (Query.IO_ERROR, "-1"), (Query.IDENTITY, "")]:
        with pytest.raises(ReplyError):
            parse_reply(query, text)


def test_budget_is_free_space_minus_reserve_minus_bytes_sent_since_the_query() -> None:
    flow = buffer_flow()
    assert not flow.can_send(1, 0.0)  # nothing before the plotter has told us
    assert flow.wants_free_space(0.0)
    flow.query_sent(Query.FREE_SPACE, 0.0)
    flow.data_sent(0, 0.0)
    with pytest.raises(RuntimeError):
        flow.query_sent(Query.IO_ERROR, 0.0)  # one question at a time
    flow.data_sent(100, 0.0)  # sent while the question travels: not in the answer
    flow.reply("1024", 0.01, 0.05)
    assert flow.credit == 1024 - 64 - 100
    assert flow.can_send(860, 0.01)
    assert not flow.can_send(861, 0.01)


def test_never_fills_to_the_last_byte_even_when_told_so() -> None:
    flow = buffer_flow(reserve=1)
    flow.query_sent(Query.FREE_SPACE, 0.0)
    flow.reply("20", 0.0, 0.05)
    assert flow.can_send(19, 0.0)
    assert not flow.can_send(20, 0.0)


def test_an_answered_output_instruction_proves_the_buffer_drained_before_it() -> None:
    flow = buffer_flow()
    flow.query_sent(Query.FREE_SPACE, 0.0)
    flow.reply("100", 0.0, 0.05)
    flow.data_sent(36, 0.0)
    flow.query_sent(Query.STATUS, 0.0)  # OS; sits in the buffer behind the data
    flow.data_sent(50, 0.0)
    assert flow.credit == 100 - 64 - 36 - 3 - 50
    flow.reply("16", 1.0, 0.05)
    assert flow.credit == 1024 - 64 - 50


def test_full_buffer_answers_slow_down_the_questions() -> None:
    flow = buffer_flow()
    flow.query_sent(Query.FREE_SPACE, 0.0)
    flow.reply("70", 0.0, 0.05)
    assert not flow.wants_free_space(0.01)
    assert flow.wait_hint(0.01, 10) == pytest.approx(0.04)
    assert flow.wants_free_space(0.05)


def test_paced_modes_keep_a_small_window_on_the_wire_and_stop_at_xoff() -> None:
    flow = HpglFlow(HpglFlowControl.XONXOFF, capacity=1024, reserve=64,
                    wire_bytes_per_s=1000, wire_window=64)
    assert flow.can_send(40, 0.0)
    flow.data_sent(40, 0.0)
    assert not flow.can_send(40, 0.0)
    assert flow.wait_hint(0.0, 40) == pytest.approx(0.016)
    assert flow.can_send(40, 0.02)
    flow.signal(FlowSignal.XOFF)
    assert not flow.can_send(1, 10.0)
    flow.signal(FlowSignal.XON)
    assert flow.can_send(200, 10.0)  # an empty wire takes any one instruction


class SimulatedPlotter:
    """A buffer fed over a wire at the baud rate, answering ESC.B after a latency."""

    def __init__(self, capacity: int, bytes_per_tick: int, latency_ticks: int) -> None:
        self.capacity = capacity
        self.level = 0
        self.peak = 0
        self.wire: deque[int | None] = deque()  # byte counts; None = an ESC.B query
        self.bytes_per_tick = bytes_per_tick
        self.latency_ticks = latency_ticks
        self.answers: deque[tuple[int, str]] = deque()

    def tick(self, t: int, consume: int) -> None:
        budget = self.bytes_per_tick
        while self.wire and budget > 0:
            head = self.wire[0]
            if head is None:
                self.wire.popleft()
                budget -= 3
                self.answers.append((t + self.latency_ticks, str(self.capacity - self.level)))
                continue
            n = min(head, budget)
            budget -= n
            self.level += n
            self.peak = max(self.peak, self.level)
            if n == head:
                self.wire.popleft()
            else:
                self.wire[0] = head - n
        self.level = max(0, self.level - consume)


@settings(max_examples=40, deadline=None)
@given(
    capacity=st.integers(min_value=256, max_value=4096),
    reserve=st.integers(min_value=1, max_value=128),
    bytes_per_tick=st.integers(min_value=1, max_value=50),
    latency_ticks=st.integers(min_value=0, max_value=40),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_following_the_budget_never_overflows(
    capacity: int, reserve: int, bytes_per_tick: int, latency_ticks: int, seed: int
) -> None:
    """Whatever the wire speed, latency and pen speed, the buffer never fills completely."""
    rng = random.Random(seed)
    device = SimulatedPlotter(capacity, bytes_per_tick, latency_ticks)
    flow = buffer_flow(capacity, min(reserve, capacity // 2))
    sent = 0
    for t in range(3000):
        now = t * 0.001
        while device.answers and device.answers[0][0] <= t:
            flow.reply(device.answers.popleft()[1], now, 0.005)
        size = rng.randint(4, 40)
        while flow.can_send(size, now):
            flow.data_sent(size, now)
            device.wire.append(size)
            sent += size
            size = rng.randint(4, 40)
        if flow.wants_free_space(now):
            flow.query_sent(Query.FREE_SPACE, now)
            device.wire.append(None)
        device.tick(t, rng.choice((0, 0, 1, 5, 30)))
    assert device.peak <= capacity - flow.reserve
    assert sent > 0
