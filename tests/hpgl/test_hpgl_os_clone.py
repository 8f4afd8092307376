"""OS bit 3 ("initialised"): clears on read on a real 7475A, constant on some clones."""

from __future__ import annotations

import asyncio

import pytest

from agent.aio import wait_within
from agent.dialects.hpgl import prepare_hpgl_program
from agent.errors import DeviceError
from agent.profiles import load_profile
from agent.profiles.hpgl import HpglProfile
from tests.hpgl.plots import graded_nest, sleeve_pattern
from tests.hpgl.rig import hpgl_profile, plotter_rig

pytestmark = pytest.mark.timeout(90)


def test_profiles_say_whether_os_bit_3_clears_on_read() -> None:
    hp = load_profile("hpgl-7475a")
    roland = load_profile("roland-camm-gl3")
    assert isinstance(hp, HpglProfile)
    assert isinstance(roland, HpglProfile)
    assert hp.hpgl.os_initialised_clears_on_read is True
    assert roland.hpgl.os_initialised_clears_on_read is False


async def test_a_clone_with_a_constant_os_finishes_a_job_with_the_switch_off() -> None:
    profile = hpgl_profile(check_every_bytes=512, os_initialised_clears_on_read=False)
    text, expected = sleeve_pattern()
    program = prepare_hpgl_program(text, profile)
    async with plotter_rig(profile, constant_os=True) as rig:
        assert rig.emulator.status_initialized  # the clone never clears it
        result = await rig.driver.stream(program.lines, lambda n: None)
        assert result.lines_done == len(program)
        assert [(s.pen, s.points) for s in rig.emulator.strokes] == expected


async def test_a_clone_with_a_constant_os_fails_with_the_switch_on() -> None:
    """Why the switch exists: the 7475A rule read against a clone fails every job."""
    profile = hpgl_profile(check_every_bytes=512)
    text, _ = sleeve_pattern()
    program = prepare_hpgl_program(text, profile)
    async with plotter_rig(profile, constant_os=True) as rig:
        with pytest.raises(DeviceError) as caught:
            await rig.driver.stream(program.lines, lambda n: None)
        assert caught.value.device_code is not None
        assert caught.value.device_code.startswith("OS")


async def test_a_real_reset_mid_job_fails_with_the_switch_on() -> None:
    profile = hpgl_profile(check_every_bytes=512, os_initialised_clears_on_read=True)
    program = prepare_hpgl_program(graded_nest()[0], profile)
    async with plotter_rig(profile, pen_speed_mm_s=300.0) as rig:
        reached = asyncio.Event()

        def progress(n: int) -> None:
            if n >= 1500:
                reached.set()

        task = asyncio.create_task(rig.driver.stream(program.lines, progress))
        await wait_within(reached.wait(), 30)
        rig.emulator.power_cycle()
        with pytest.raises(DeviceError) as caught:
            await wait_within(task, 30)
        assert caught.value.code == "device_error"
        assert caught.value.device_code is not None
        assert caught.value.device_code.startswith("OS")
