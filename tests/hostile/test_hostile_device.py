"""Hostile machines: line noise on the serial wire, stray ``ok``s, a device that is unplugged
mid-job and plugged back in. Real Mosquitto, real ptys, the whole agent in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.dialects.grbl import prepare_grbl_program
from agent.dialects.marlin import prepare_marlin_program
from agent.emulators.grbl import GrblEmulator
from agent.emulators.pty import PtyEndpoint
from agent.garments import short_segment_outline, tshirt_knife_job
from agent.profiles import load_profile
from agent.profiles.grbl import GrblProfile
from agent.profiles.marlin import MarlinProfile
from tests.support.broker import Broker
from tests.support.planner import Planner
from tests.support.rig import grbl_rig, marlin_rig
from tests.support.station import agent_config, background, running_agent

pytestmark = pytest.mark.timeout(180)

# A care label engraved on the cutter's label corner: short, real, easy to read in a failure.
CARE_LABEL = "G21 G90\nG0 Z5\nG0 X20 Y20\nG1 Z-1 F600\nG1 X60 Y20 F3000\nG1 X60 Y50\n" \
             "G1 X20 Y50\nG1 X20 Y20\nG0 Z5\n"
# Lines the Marlin driver adds around a job itself (numbering, probes, fence, reports).
MARLIN_HOST_LINES = frozenset({"M110 N0", "M105", "M400"})


def _grbl_lines(program: str) -> list[str]:
    profile = load_profile("grbl-1.1")
    assert isinstance(profile, GrblProfile)
    return list(prepare_grbl_program(program, profile).lines)


def _marlin_lines(program: str) -> list[str]:
    profile = load_profile("marlin-2")
    assert isinstance(profile, MarlinProfile)
    return list(prepare_marlin_program(program, profile).lines)


async def test_noisy_wire_runs_a_tshirt_job_exactly_once_per_line(tmp_path: Path,
                                                                 broker: Broker) -> None:
    """Junk before a fifth of the replies (garbage, non-UTF-8, 600-byte runs, cut messages):
    the job completes and the machine ran every line once, in order, nothing skipped."""
    program = tshirt_knife_job(min_lines=1000)
    async with grbl_rig(tmp_path, broker, latency_s=0.001, noise=0.2, seed=7) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "SO-1042-tshirt-M-noise", "kind": "gcode",
                              "program": program})
        end = await planner.wait_terminal("SO-1042-tshirt-M-noise", timeout=150)
        assert end["event"] == "succeeded", end
        await planner.wait_status("idle")
    expected = _grbl_lines(program)
    assert len(expected) >= 1000
    assert emulator.executed == [*expected, "G4P0"]
    assert emulator.overflow_bytes == 0
    assert emulator.errors_sent == []
    # The noise really was there: this is not a quiet run that happens to pass.
    assert emulator._noise.lines_sent > 50


async def test_noisy_wire_with_a_full_planner_runs_exactly(tmp_path: Path,
                                                          broker: Broker) -> None:
    """Noise while the machine really moves: the planner fills, GRBL stops taking lines, the
    receive buffer stays full and status reports arrive garbled-around too."""
    sleeve = short_segment_outline(600, feed_mm_min=9000)
    async with grbl_rig(tmp_path, broker, latency_s=0.001, motion=True, noise=0.3, seed=3) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "SO-1042-sleeve-noise", "kind": "gcode",
                              "program": sleeve})
        end = await planner.wait_terminal("SO-1042-sleeve-noise", timeout=120)
    assert end["event"] == "succeeded", end
    assert emulator.executed == [*_grbl_lines(sleeve), "G4P0"]
    assert emulator.overflow_bytes == 0
    assert emulator._noise.lines_sent > 50


async def test_stray_ok_between_jobs_is_a_warning_not_an_acknowledgement(
        tmp_path: Path, broker: Broker) -> None:
    """An ``ok`` with nothing in flight must not free buffer space: the next job is streamed
    exactly as before and never overruns GRBL's 128-byte receive buffer."""
    # A sleeve cap traced in short segments: the planner fills at once and stays full.
    front = short_segment_outline(400, feed_mm_min=9000)
    # With motion the planner fills and GRBL stops taking lines: a host that believed a
    # stray ok would then overrun the receive buffer, and the emulator would drop bytes.
    async with grbl_rig(tmp_path, broker, motion=True) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "label-stray-1", "kind": "gcode",
                              "program": CARE_LABEL})
        assert (await planner.wait_terminal("label-stray-1"))["event"] == "succeeded"
        await planner.wait_status("idle")
        first_run = len(emulator.executed)
        # Three answers to lines nobody sent (a glitch, a board that replays).
        rig.endpoint.send(b"ok\r\nok\r\nok\r\n")
        await planner.wait_for(
            lambda: sum(1 for e in planner.events if e["event"] == "warning"
                        and "no line in flight" in e["detail"].get("message", "")) == 3,
            20, "three stray-ok warnings")
        await planner.submit({"job_id": "SO-1042-sleeve-stray", "kind": "gcode",
                              "program": front})
        end = await planner.wait_terminal("SO-1042-sleeve-stray", timeout=90)
        assert end["event"] == "succeeded", end
    expected = _grbl_lines(front)
    assert len(expected) > 100  # long enough to keep the receive buffer full
    assert emulator.executed[first_run:] == [*expected, "G4P0"]
    assert emulator.overflow_bytes == 0
    assert emulator.errors_sent == []


def _quick_timeout_profile(tmp_path: Path) -> Path:
    """grbl-1.1 with a 2 s response timeout, so a test need not wait the default 10 s."""
    text = (Path(__file__).parents[2] / "firmware_profiles" / "grbl-1.1.toml").read_text()
    assert "[grbl]\n" in text
    path = tmp_path / "grbl-quick.toml"
    path.write_text(text.replace("[grbl]\n", "[grbl]\nresponse_timeout_s = 2.0\n", 1))
    return path


async def test_ok_swallowed_by_a_half_line_fails_clearly_then_next_job_runs(
        tmp_path: Path, broker: Broker) -> None:
    """Half a line of noise with no line end glues itself to the next ``ok``: that reply is
    gone for good. The job must not hang (it did: GRBL idle, the agent waiting forever for the
    fence); it fails with ``device_timeout`` and the next job runs exactly."""
    sleeve = short_segment_outline(300, feed_mm_min=9000)
    quick = str(_quick_timeout_profile(tmp_path))
    async with grbl_rig(tmp_path, broker, motion=True, profile=quick) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "SO-1042-sleeve-lost", "kind": "gcode",
                              "program": sleeve})
        await planner.wait_for(lambda: len(emulator.executed) > 50, 30, "cutting")
        emulator.garble_next_ok()
        end = await planner.wait_terminal("SO-1042-sleeve-lost", timeout=60)
        await planner.wait_status("idle", timeout=20)
        before_label = len(emulator.executed)
        await planner.submit({"job_id": "label-after-lost-ok", "kind": "gcode",
                              "program": CARE_LABEL})
        after = await planner.wait_terminal("label-after-lost-ok", timeout=60)
    assert end["event"] == "failed", end
    assert end["detail"]["error"]["code"] == "device_timeout", end
    assert "never answered" in end["detail"]["error"]["message"]
    # Nothing was sent twice to make up for the lost reply.
    assert emulator.executed[:before_label] == [*_grbl_lines(sleeve), "G4P0"]
    assert after["event"] == "succeeded", after
    assert emulator.executed[before_label:] == [*_grbl_lines(CARE_LABEL), "G4P0"]
    assert emulator.overflow_bytes == 0


async def test_a_dwell_or_a_long_idle_is_not_mistaken_for_a_lost_reply(
        tmp_path: Path, broker: Broker) -> None:
    """GRBL stays Idle without answering during ``G4 P<s>``: a 3 s dwell under a 2 s response
    timeout must still succeed. So must a job sent after the machine idled longer than the
    timeout, with a slow adapter (300 ms) so that a status poll falls between the first line
    and its ``ok``."""
    # Laser label: wait for the air assist to blow the bed clear before engraving.
    label = "G21 G90\nG0 X20 Y20\nM8\nG4 P3\nG1 X60 Y20 F3000\nM9\n"
    quick = str(_quick_timeout_profile(tmp_path))
    async with grbl_rig(tmp_path, broker, latency_s=0.3, motion=True, profile=quick) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.wait_status("idle")
        await asyncio.sleep(2.5)  # idle for longer than the response timeout
        await planner.submit({"job_id": "label-after-idle", "kind": "gcode",
                              "program": CARE_LABEL})
        await planner.submit({"job_id": "label-dwell", "kind": "gcode", "program": label})
        first = await planner.wait_terminal("label-after-idle", timeout=60)
        end = await planner.wait_terminal("label-dwell", timeout=60)
    assert first["event"] == "succeeded", first
    assert end["event"] == "succeeded", end
    assert emulator.executed == [*_grbl_lines(CARE_LABEL), "G4P0", *_grbl_lines(label), "G4P0"]


async def test_marlin_garbage_replies_job_completes_exactly(tmp_path: Path,
                                                           broker: Broker) -> None:
    program = "G21\nG90\n" + "".join(
        f"G1 X{20 + i * 1.5:.1f} Y{40 + (i % 7) * 2.0:.1f} F1800\n" for i in range(120))
    async with marlin_rig(tmp_path, broker, station="cutter-01", garbage_fraction=0.3,
                          seed=11) as rig:
        emulator, planner = rig.emulator, rig.planner
        await planner.submit({"job_id": "sleeve-cap-marlin", "kind": "gcode",
                              "program": program})
        end = await planner.wait_terminal("sleeve-cap-marlin", timeout=90)
        assert end["event"] == "succeeded", end
    ran = [line for line in emulator.executed if line not in MARLIN_HOST_LINES
           and not line.startswith(("M115", "M155", "M113"))]
    assert ran == _marlin_lines(program)
    assert emulator.rx_overflows == 0


async def test_device_unplugged_while_paused_fails_device_lost(tmp_path: Path,
                                                              broker: Broker) -> None:
    # Sleeve caps traced in short segments: minutes of cutting, so it is mid-job when pulled.
    link = tmp_path / "ttyGRBL"
    long_job = short_segment_outline(3000, feed_mm_min=6000)
    async with Planner(broker.host, broker.port) as planner, running_agent(
            agent_config(tmp_path, broker, link)) as agent:
        async with PtyEndpoint(link, baud=115_200, latency_s=0.001) as endpoint:
            emulator = GrblEmulator(endpoint, motion=True)
            async with background(emulator.run, "grbl"):
                await agent.wait_device_online()
                await planner.submit({"job_id": "SO-1042-front-XL", "kind": "gcode",
                                      "program": long_job})
                await planner.wait_for(lambda: len(emulator.executed) > 30, 30, "cutting")
                await planner.command("pause", request_id="hmi-3")
                await planner.wait_status("paused")
                await planner.wait_for(lambda: emulator.state == "Hold:0", 10, "hold complete")
                endpoint.disconnect()
                end = await planner.wait_terminal("SO-1042-front-XL", timeout=30)
                await planner.wait_status("device_offline", timeout=20)
        assert agent.task is not None and not agent.task.done()
    assert end["event"] == "failed", end
    assert end["detail"]["error"]["code"] == "device_lost", end


async def test_device_unplugged_mid_job_fails_device_lost_then_reconnects(
        tmp_path: Path, broker: Broker) -> None:
    # Sleeve caps traced in short segments: minutes of cutting, so it is mid-job when pulled.
    link = tmp_path / "ttyGRBL"
    long_job = short_segment_outline(3000, feed_mm_min=6000)
    async with Planner(broker.host, broker.port) as planner, running_agent(
            agent_config(tmp_path, broker, link)) as agent:
        endpoint = PtyEndpoint(link, baud=115_200, latency_s=0.001)
        endpoint.open()
        emulator = GrblEmulator(endpoint, motion=True)
        try:
            async with background(emulator.run, "grbl"):
                await agent.wait_device_online()
                await planner.submit({"job_id": "SO-1042-back-L", "kind": "gcode",
                                      "program": long_job})
                await planner.wait_event("SO-1042-back-L", "started")
                await planner.wait_for(lambda: len(emulator.executed) > 30, 30, "cutting")
                endpoint.disconnect()  # the USB cable is pulled: pty gone, symlink gone
                end = await planner.wait_terminal("SO-1042-back-L", timeout=30)
                await planner.wait_status("device_offline", timeout=20)
        finally:
            await endpoint.aclose()
        assert not link.exists()
        # Plugged back in: a fresh board (a new pty) appears under the same name.
        async with PtyEndpoint(link, baud=115_200) as endpoint2:
            emulator2 = GrblEmulator(endpoint2)
            async with background(emulator2.run, "grbl-replugged"):
                await planner.wait_status("idle", timeout=30)
                await planner.submit({"job_id": "label-after-replug", "kind": "gcode",
                                      "program": CARE_LABEL})
                after = await planner.wait_terminal("label-after-replug", timeout=60)
    assert end["event"] == "failed", end
    assert end["detail"]["error"]["code"] == "device_lost", end
    assert after["event"] == "succeeded", after
    assert emulator2.executed == [*_grbl_lines(CARE_LABEL), "G4P0"]
    # The failed job is not re-run on the new board.
    assert "SO-1042-back-L" not in {e["job_id"] for e in planner.events
                                    if e["event"] == "started" and e["seq"] > end["seq"]}

