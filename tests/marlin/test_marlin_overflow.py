"""Issue 14: the window must not overflow a Marlin that fills its queue only in idle().

The flow and the emulator's model run together on a simulated clock (no pty): bytes reach the
board as fast as they are written, replies come back after a latency with seeded jitter (so oks
arrive in clumps and the flow writes bursts), and the board transfers lines from its receive
buffer into its queue only between commands.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.emulators.marlin_sim import pre_issue14_flow, simulate
from agent.transport.marlin_flow import Phase
from tests.marlin.conftest import executed_program, marlin_profile, sleeve_program

SETTINGS = marlin_profile().marlin


ISSUE: dict[str, Any] = {"latency_s": 0.005, "command_time_s": 0.0002, "bufsize": 4,
                         "rx_buffer_bytes": 128, "jitter_s": 0.005}


@pytest.mark.parametrize("advanced_ok", [False, True], ids=["counted-oks", "advanced-ok"])
def test_the_model_catches_the_old_window_overflowing(advanced_ok: bool) -> None:
    lines = sleeve_program(3000)
    overflows = 0
    for seed in range(3):
        old = simulate(lines, SETTINGS, advanced_ok=advanced_ok, seed=seed,
                       flow_factory=pre_issue14_flow, **ISSUE)
        overflows += old.rx_overflows
    assert overflows > 0


@pytest.mark.parametrize("advanced_ok", [False, True], ids=["counted-oks", "advanced-ok"])
def test_issue_configuration_runs_a_3000_line_job_without_overflow(advanced_ok: bool) -> None:
    lines = sleeve_program(3000)
    for seed in range(3):
        run = simulate(lines, SETTINGS, advanced_ok=advanced_ok, seed=seed, **ISSUE)
        assert run.phase is Phase.DONE
        assert run.rx_overflows == 0
        assert run.resend_requests == 0
        assert run.max_rx_bytes <= 127
        assert executed_program(run.executed) == list(lines)


_coordinate = st.integers(min_value=0, max_value=999_999).map(lambda v: f"{v / 1000:g}")
_move = st.tuples(st.sampled_from(["G0", "G1"]), _coordinate, _coordinate,
                  st.sampled_from(["", " F3000", " F600"])).map(
    lambda t: f"{t[0]} X{t[1]} Y{t[2]}{t[3]}")
_line = st.one_of(_move, st.sampled_from(["M3 S1000", "M5", "G90", "G92 X0 Y0", "M107"]))


@settings(max_examples=60, deadline=None)
@given(
    program=st.lists(_line, min_size=1, max_size=250),
    latency_ms=st.floats(min_value=0.0, max_value=10.0),
    jitter_fraction=st.floats(min_value=0.0, max_value=1.0),
    command_ms=st.floats(min_value=0.05, max_value=2.0),
    bufsize=st.integers(min_value=1, max_value=16),
    rx_bytes=st.integers(min_value=64, max_value=256),
    advanced_ok=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_no_overflow_and_every_line_once_in_order(
    program: list[str], latency_ms: float, jitter_fraction: float, command_ms: float,
    bufsize: int, rx_bytes: int, advanced_ok: bool, seed: int,
) -> None:
    run = simulate(
        program, SETTINGS, advanced_ok=advanced_ok, latency_s=latency_ms / 1000,
        jitter_s=latency_ms / 1000 * jitter_fraction, command_time_s=command_ms / 1000,
        bufsize=bufsize, rx_buffer_bytes=rx_bytes, seed=seed,
    )
    assert run.phase is Phase.DONE
    assert run.rx_overflows == 0
    assert run.resend_requests == 0
    assert run.max_rx_bytes <= rx_bytes - 1
    assert executed_program(run.executed) == program
    assert run.lines == len(program)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None)
@given(
    program=st.lists(_line, min_size=1, max_size=600),
    latency_ms=st.floats(min_value=0.0, max_value=10.0),
    jitter_fraction=st.floats(min_value=0.0, max_value=1.0),
    command_ms=st.floats(min_value=0.05, max_value=2.0),
    bufsize=st.integers(min_value=1, max_value=16),
    rx_bytes=st.integers(min_value=64, max_value=256),
    advanced_ok=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_no_overflow_many_examples(
    program: list[str], latency_ms: float, jitter_fraction: float, command_ms: float,
    bufsize: int, rx_bytes: int, advanced_ok: bool, seed: int,
) -> None:
    test_no_overflow_and_every_line_once_in_order.hypothesis.inner_test(  # type: ignore[attr-defined]
        program, latency_ms, jitter_fraction, command_ms, bufsize, rx_bytes, advanced_ok, seed)
