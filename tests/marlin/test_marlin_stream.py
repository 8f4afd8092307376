"""Whole jobs on a pseudo-terminal: driver + SerialLink + Marlin emulator, with line noise."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.aio import wait_within
from agent.errors import DeviceError
from tests.marlin.conftest import (
    Progress,
    executed_program,
    marlin_profile,
    marlin_station,
    sleeve_program,
)

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("advanced_ok", [False, True], ids=["counted-oks", "advanced-ok"])
async def test_noisy_5000_line_job_runs_every_line_exactly_once(
    tmp_path: Path, advanced_ok: bool
) -> None:
    lines = sleeve_program(5000)
    async with marlin_station(
        tmp_path,
        advanced_ok=advanced_ok,
        corrupt_fraction=0.02,
        drop_ok_fraction=0.005,
        seed=11,
    ) as station:
        progress: list[int] = []
        result = await wait_within(station.driver.stream(lines, progress.append), 60)
        emulator = station.emulator
    assert result.lines_done == len(lines)
    # In order, none twice, none skipped.
    assert executed_program(emulator.executed) == list(lines)
    # The noise really happened and was recovered from.
    assert emulator.corrupted_lines > 40
    assert emulator.dropped_oks > 5
    assert emulator.resend_requests > 40
    assert progress == sorted(progress)
    assert progress[-1] == len(lines)


async def test_advanced_ok_keeps_within_the_queue_the_firmware_reported(tmp_path: Path) -> None:
    # The profile claims 8 command slots; the board has 4 and says so in its oks.
    profile = marlin_profile(boot_wait_s=0.2, command_queue=8)
    lines = sleeve_program(3000)
    async with marlin_station(tmp_path, profile=profile, advanced_ok=True, bufsize=4) as station:
        await wait_within(station.driver.stream(lines, lambda n: None), 60)
        emulator = station.emulator
    assert emulator.rx_overflows == 0
    assert emulator.resend_requests == 0
    assert emulator.max_rx_bytes <= 127
    assert executed_program(emulator.executed) == list(lines)


async def test_without_advanced_ok_a_wrong_queue_size_cannot_overflow(tmp_path: Path) -> None:
    # The same mistake without ADVANCED_OK: the window counts every unacknowledged line's bytes
    # against the receive buffer (issue 14), so the profile's queue size does not matter.
    profile = marlin_profile(boot_wait_s=0.2, command_queue=8)
    lines = sleeve_program(3000)
    async with marlin_station(tmp_path, profile=profile, advanced_ok=False, bufsize=4) as station:
        await wait_within(station.driver.stream(lines, lambda n: None), 60)
        emulator = station.emulator
    assert emulator.rx_overflows == 0
    assert emulator.resend_requests == 0
    assert executed_program(emulator.executed) == list(lines)


async def test_clean_job_never_overflows_the_receive_buffer(tmp_path: Path) -> None:
    lines = sleeve_program(3000)
    async with marlin_station(tmp_path, latency_s=0.005) as station:
        result = await wait_within(station.driver.stream(lines, lambda n: None), 60)
        emulator = station.emulator
        flow_max = station.driver.info.capabilities["command_queue"]
    assert result.lines_done == len(lines)
    assert emulator.rx_overflows == 0
    assert emulator.resend_requests == 0
    assert emulator.max_queue <= flow_max
    assert executed_program(emulator.executed) == list(lines)


async def test_resend_request_outside_the_history_fails_the_job(tmp_path: Path) -> None:
    profile = marlin_profile(boot_wait_s=0.2, history_lines=16)
    lines = sleeve_program(4000)
    async with marlin_station(tmp_path, profile=profile) as station:
        progress = Progress()
        job = asyncio.create_task(station.driver.stream(lines, progress))
        await progress.reached(500)
        station.emulator.say("Resend: 3")
        with pytest.raises(DeviceError) as info:
            await wait_within(job, 30)
    assert info.value.code == "resend_out_of_history"
    assert "3" in info.value.message


async def test_garbage_replies_are_ignored_and_the_record_file_matches(tmp_path: Path) -> None:
    lines = sleeve_program(2000)
    record = tmp_path / "ran.gcode"
    async with marlin_station(
        tmp_path, garbage_fraction=0.05, seed=5, record_path=record
    ) as station:
        result = await wait_within(station.driver.stream(lines, lambda n: None), 60)
        executed = list(station.emulator.executed)
    assert result.lines_done == len(lines)
    assert executed_program(executed) == list(lines)
    assert record.read_text().splitlines() == executed
