"""The peer benchmark's pure parts (bench/peers): reading the wire as GRBL reads it, the link
share, lost lines, CPU from /proc stat text, the job, and the device command. No processes,
no network, no npm."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from peers.device import DeviceCommand, device_stats_figures, wire_model_listed
from peers.job import tshirt_front_job
from peers.procs import CpuTimes, median_run, parse_stat, per_line_us
from peers.summary import goal, sender_row
from peers.wire import (
    figures,
    job_span,
    lines_not_executed,
    link_share,
    read_wire,
)

# A /proc/<pid>/stat line whose command name holds a space and a parenthesis, as node's can.
STAT = ("4242 (node (cncjs) x) S 1 4242 4242 0 -1 4194560 9000 0 0 0 "
        "1234 567 0 0 20 0 11 0 100 1000000 5000 18446744073709551615")


def test_cpu_times_come_from_utime_and_stime_counted_after_the_command_name() -> None:
    assert parse_stat(STAT, ticks_per_s=100) == CpuTimes(12.34, 5.67)


def test_cpu_per_line_splits_user_and_system_time() -> None:
    spent = CpuTimes(1.5, 0.6) - CpuTimes(0.5, 0.1)
    assert per_line_us(spent, 1000) == {"cpu_us_per_line": 1500.0, "user_us_per_line": 1000.0,
                                        "sys_us_per_line": 500.0}


def test_the_median_run_is_the_middle_one_by_cpu() -> None:
    runs = [{"cpu_us_per_line": 90.0, "n": 1}, {"cpu_us_per_line": 70.0, "n": 2},
            {"cpu_us_per_line": 80.0, "n": 3}]
    assert median_run(runs)["n"] == 3
    assert median_run(runs[:2])["n"] == 2  # even count: the lower middle


def test_a_full_wire_for_one_second_is_a_link_share_of_one() -> None:
    assert link_share(11_520, 1.0, 115_200) == pytest.approx(1.0)
    assert link_share(5_760, 2.0, 115_200) == pytest.approx(0.25)


JOB = ["G21", "G01X1.000Y2.000", "G01X3.000Y4.000"]


def _records() -> list[tuple[float, str, bytes]]:
    """A sender's session: junk before a reset, the banner, a $G, then the job with status
    queries and a line split across writes, each reply 0.01 s later."""
    return [
        (0.00, "h", b"G0X9\n"),            # before the reset: forgotten with it
        (0.01, "h", b"\x18"),
        (0.02, "d", b"\r\nGrbl 1.1h ['$' for help]\r\n"),
        (0.03, "h", b"$G\n"),
        (0.04, "d", b"[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]\r\nok\r\n"),
        (1.00, "h", b"G21\nG01X1.000"),    # the job's first byte at 1.00 s
        (1.01, "h", b"?Y2.000\n"),          # a status query inside a line, as GRBL allows
        (1.02, "d", b"ok\r\n<Idle|MPos:0.000,0.000,0.000|FS:0,0>\r\n"),
        (1.03, "h", b"G01X3.000Y4.000\n"),
        (1.04, "d", b"ok\r\n"),
        (1.50, "d", b"ok\r\n"),             # the reply to the job's last line at 1.50 s
    ]


def test_the_wire_reads_lines_and_replies_since_the_last_reset() -> None:
    wire = read_wire(_records())
    assert [text for _, text in wire.lines] == ["$G", *JOB]
    assert wire.lines[2][0] == 1.00  # a line's time is its first byte's
    assert [t for t, _ in wire.replies] == [0.04, 1.02, 1.04, 1.50]


def test_the_job_span_ends_at_the_reply_to_its_last_line() -> None:
    span = job_span(read_wire(_records()), JOB)
    assert (span["t0"], span["t1"]) == (1.00, 1.50)
    assert span["end_by_reply_count"] is True
    assert span["error_replies"] == 0


def test_figures_give_lines_per_second_and_the_share_of_the_link() -> None:
    out = figures(read_wire(_records()), JOB, executed=JOB, baud=115_200)
    payload = sum(len(line) + 1 for line in JOB)
    assert out["lines_per_s"] == pytest.approx(3 / 0.5)
    assert out["link_share"] == pytest.approx(payload * 10 / 115_200 / 0.5, abs=1e-4)
    assert out["overflow_lines"] == 0


def test_a_missing_reply_falls_back_to_the_last_one_seen() -> None:
    span = job_span(read_wire(_records()[:-1]), JOB)
    assert span["end_by_reply_count"] is False
    assert span["t1"] == 1.04


def test_lines_lost_or_garbled_by_an_overflow_are_counted() -> None:
    job = [f"G01X{i}.000Y0.000" for i in range(10)]
    executed = [*job[:3], "G01X3.000Y0.0G01X5.000Y0.000", *job[6:]]  # 3..5 merged: bytes lost
    assert lines_not_executed(job, executed) == 3
    assert lines_not_executed(job, [x.lower() for x in job]) == 0


def test_the_job_is_a_garment_cut_of_short_lines() -> None:
    job = tshirt_front_job(3000)
    cuts = [line for line in job if line.startswith("G01X")]
    assert len(cuts) == 3000
    assert {len(line) + 1 for line in cuts} <= {18, 19, 20}
    assert job == tshirt_front_job(3000)  # the same bytes for every sender


def test_the_wire_model_is_used_when_the_emulator_lists_it() -> None:
    assert wire_model_listed("  --wire-model  pace bytes at the baud rate ...")
    assert not wire_model_listed("  --latency-ms LATENCY_MS")
    link, record = Path("/tmp/dev"), Path("/tmp/rec")
    stats = Path("/tmp/stats")
    assert DeviceCommand(("emu",), True).argv_for(link, record, stats)[-1] == "--wire-model"
    assert DeviceCommand(("emu",), True, stats=True).argv_for(link, record, stats)[-2:] == [
        "--stats", str(stats)]
    plain = DeviceCommand(("emu",), False).argv_for(link, record, stats)
    assert "--wire-model" not in plain
    assert plain[-2:] == ["--latency-ms", "2"]


def test_the_device_s_own_account_is_its_longest_run_in_milliseconds() -> None:
    stats = {"lost_bytes": 3, "job": {"link_share": 0.99, "lines": 3007,
                                      "idle_s": {"host_late": 0.0125, "rx_full": 0.0}}}
    assert device_stats_figures(stats) == {"link_share": 0.99, "lines": 3007, "lost_bytes": 3,
                                           "idle_ms": {"host_late": 12.5, "rx_full": 0.0}}
    assert device_stats_figures({"lost_bytes": 0, "job": None})["link_share"] is None


def _run(share: float, cpu: float, overflows: int = 0) -> dict[str, Any]:
    return {"lines_per_s": share * 600, "link_share": share, "overflow_lines": overflows,
            "error_replies": 0, "cpu_us_per_line": cpu, "user_us_per_line": cpu - 10,
            "sys_us_per_line": 10.0}


def test_a_sender_row_takes_each_figure_s_median_and_sums_overflows() -> None:
    row = sender_row("agent", [_run(0.6, 80.0), _run(0.98, 73.0, 2), _run(0.9, 93.0)])
    assert (row["link_share"], row["link_share_best"], row["cpu_us_per_line"]) == (0.9, 0.98, 80.0)
    assert row["user_us_per_line"] == 70.0  # the median-CPU run's split
    assert row["overflow_lines"] == 2


def test_the_goal_needs_cncjs_s_link_share_at_under_a_tenth_of_its_cpu() -> None:
    cncjs = sender_row("cncjs", [_run(0.997, 300.0)])
    assert goal({"agent": sender_row("agent", [_run(0.997, 29.0)]), "cncjs": cncjs})["met"]
    slow = goal({"agent": sender_row("agent", [_run(0.99, 29.0)]), "cncjs": cncjs})
    assert (slow["met"], slow["link_share_met"], slow["cpu_met"]) == (False, False, True)
    costly = goal({"agent": sender_row("agent", [_run(0.997, 31.0)]), "cncjs": cncjs})
    assert (costly["met"], costly["cpu_ratio_agent_to_cncjs"]) == (False, 0.103)
    assert goal({"agent": sender_row("agent", [_run(0.9, 1.0)])})["met"] is None
